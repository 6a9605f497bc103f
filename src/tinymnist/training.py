"""Training: the loop, top to bottom, with the run folder it writes and resuming.

The whole dataset sits on the device as uint8 tensors. Each epoch draws a permutation,
slices it into batches, augments and normalises each batch as one tensor, and steps the
optimizer and schedule. Every epoch's randomness (order, augmentation, dropout) comes from
(seed, epoch) alone, so a run resumed from its last completed epoch ends exactly where an
uninterrupted one does. The test set (or, with a validation split, the held-out images) is
evaluated after each epoch for the log only: nothing is chosen by it.
"""

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

import tinymnist
from tinymnist import checkpoint, models, plots
from tinymnist.augment import random_affine
from tinymnist.data import MNIST, normalize
from tinymnist.errors import TinyMnistError
from tinymnist.evaluation import evaluate
from tinymnist.recipes import Recipe, from_dict, to_dict

SEED_LIMITS = {"parameters": 20_000, "accuracy": 0.994, "epochs": 20}  # the seed document's claim


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if name not in available:
        raise TinyMnistError(f"--device {name!r}: choose auto, cpu, cuda or mps")
    if not available[name]:
        raise TinyMnistError(f"--device {name}: not available on this machine")
    return torch.device(name)


def make_optimizer(model: nn.Module, recipe: Recipe, steps: int):
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
            weight_decay=recipe.weight_decay,
        )
    elif recipe.optimizer == "adamw":
        opt = torch.optim.AdamW(
            model.parameters(), lr=recipe.lr, betas=(recipe.momentum, 0.999), weight_decay=recipe.weight_decay
        )
    else:
        raise TinyMnistError(f"optimizer {recipe.optimizer!r}: choose sgd or adamw")
    if recipe.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=steps, pct_start=recipe.warmup, cycle_momentum=False
        )
    elif recipe.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        raise TinyMnistError(f"schedule {recipe.schedule!r}: choose onecycle or constant")
    return opt, sched


def new_run_dir(model: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{model}-{stamp}", 1
    while path.exists():
        path, n = root / f"{model}-{stamp}-{n}", n + 1
    return path


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def forward(model: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Float32 logits; with `bf16`, the layers run under bfloat16 autocast (weights stay float32)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return model(x).float()


def train_epoch(
    model: nn.Module, recipe: Recipe, data: MNIST, opt, sched, generator: torch.Generator, progress: bool
) -> tuple[float, float]:
    """One pass over the training images; returns mean loss and accuracy."""
    model.train()
    n, bs = len(data.train_labels), recipe.batch_size
    order = torch.randperm(n, generator=generator, device=generator.device)
    steps = n // bs  # the last partial batch is dropped; the next epoch's order differs
    total_loss = torch.zeros((), device=data.train_labels.device)
    correct = torch.zeros((), dtype=torch.long, device=data.train_labels.device)
    for i in tqdm(range(steps), disable=not progress, leave=False, unit="batch"):
        idx = order[i * bs : (i + 1) * bs]
        x = data.train_images[idx].unsqueeze(1).float().div_(255)
        x = normalize(random_affine(x, recipe.degrees, recipe.translate, recipe.scale, generator))
        if recipe.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = data.train_labels[idx]
        logits = forward(model, x, recipe.bf16)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
    seen = steps * bs
    return total_loss.item() / seen, correct.item() / seen


def verdict(parameters: int, history: list[dict], split: str) -> list[str]:
    """The seed's three constraints, judged on the final epoch."""
    final, epochs = history[-1], len(history)
    acc = final[f"{split}_accuracy"]
    best = max(history, key=lambda r: r[f"{split}_accuracy"])
    checks = [
        (parameters < SEED_LIMITS["parameters"], f"trainable parameters {parameters:,} < 20,000"),
        (acc >= SEED_LIMITS["accuracy"], f"final-epoch {split} accuracy {acc:.2%} >= 99.40%"),
        (epochs < SEED_LIMITS["epochs"], f"epochs {epochs} < 20"),
    ]
    lines = [f"Seed constraints, judged on the final epoch ({epochs}):"]
    lines += [f"  [{'PASS' if ok else 'FAIL'}] {text}" for ok, text in checks]
    lines.append(f"  (best epoch, for information only: {best['epoch']} at {best[f'{split}_accuracy']:.2%})")
    return lines


def train(
    recipe: Recipe,
    data: MNIST,
    out: Path,
    seed: int = 1,
    split: str = "test",
    resume: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    config_extra: dict | None = None,
) -> dict:
    """Train `recipe` on `data` into run folder `out`; returns the final checkpoint dict.

    `split` names what `data`'s test tensors are ("test", or "val" for a validation split).
    With `resume`, training continues from `out/last.pt`.
    """
    device = data.train_images.device
    progress = sys.stdout.isatty() if progress is None else progress
    torch.manual_seed(seed)
    model = models.create(recipe.model).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    parameters = models.count_parameters(model)
    opt, sched = make_optimizer(model, recipe, recipe.epochs * (len(data.train_labels) // recipe.batch_size))
    history: list[dict] = []

    if resume:
        state = checkpoint.read(out / checkpoint.LAST, device)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = state["history"]
        log(f"resuming {out} after epoch {len(history)} of {recipe.epochs}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "recipe": to_dict(recipe),
            "seed": seed,
            "split": split,
            "parameters": parameters,
            "device": str(device),
            "torch": torch.__version__,
            "tinymnist": tinymnist.__version__,
            "train_images": len(data.train_labels),
            "eval_images": len(data.test_labels),
            **(config_extra or {}),
        }
        checkpoint.save_json(out / "config.json", config)
        log(f"{recipe.model}: {parameters:,} trainable parameters; run folder {out}")

    for epoch in range(len(history) + 1, recipe.epochs + 1):
        torch.manual_seed(epoch_seed(seed, epoch))  # dropout
        generator = torch.Generator(device).manual_seed(epoch_seed(seed, epoch))  # order, augmentation
        lr = sched.get_last_lr()[0]
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, recipe, data, opt, sched, generator, progress)
        seconds = time.perf_counter() - start
        result = evaluate(model, data.test_images, data.test_labels, recipe.channels_last)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            f"{split}_loss": result.loss,
            f"{split}_accuracy": result.accuracy,
            "lr": lr,
            "seconds": seconds,
            "images_per_second": len(data.train_labels) / seconds,
        }
        history.append(record)
        log(
            f"epoch {epoch:2d}/{recipe.epochs}  train loss {train_loss:.4f} acc {train_acc:.2%}  "
            f"{split} loss {result.loss:.4f} acc {result.accuracy:.2%}  lr {lr:.4f}  {seconds:.1f}s"
        )
        checkpoint.save(
            out / checkpoint.LAST,
            {
                "model": recipe.model,
                "state_dict": model.state_dict(),
                "recipe": to_dict(recipe),
                "seed": seed,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "history": history,
            },
        )
        checkpoint.atomic_write(
            out / "metrics.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
        )
        plots.training_curves(history, split, out / "curves.png")

    final = {
        "model": recipe.model,
        "state_dict": model.state_dict(),
        "recipe": to_dict(recipe),
        "seed": seed,
        "parameters": parameters,
        "split": split,
        "final": history[-1],
        "history": history,
        "train_seconds": sum(r["seconds"] for r in history),
    }
    checkpoint.save(out / checkpoint.FINAL, final)
    for line in verdict(parameters, history, split):
        log(line)
    return final


def resume_settings(out: Path) -> tuple[Recipe, dict]:
    """The recipe and config of an interrupted run folder."""
    config_path = out / "config.json"
    if not out.is_dir():
        raise TinyMnistError(f"--resume {out}: no such run folder")
    if not config_path.is_file() or not (out / checkpoint.LAST).is_file():
        raise TinyMnistError(
            f"--resume {out}: not a tinymnist run folder with a completed epoch (no config.json or last.pt)"
        )
    try:
        config = json.loads(config_path.read_text())
        return from_dict(config["recipe"]), config
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise TinyMnistError(f"{config_path}: damaged run config ({e})") from None
