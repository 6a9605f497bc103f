"""Training: the loop, top to bottom, with the run folder it writes and resuming.

The whole dataset sits on the device as uint8 tensors. Each epoch draws a permutation,
slices it into batches, augments and normalises each batch as one tensor, and steps the
optimizer and schedule. Every epoch's randomness (order, augmentation, dropout) comes from
(seed, epoch) alone, so a run resumed from its last completed epoch ends exactly where an
uninterrupted one does. The test set (or, with a validation split, the held-out images) is
evaluated after each epoch for the log only: nothing is chosen by it. A recipe with a teacher
distills from it (`tinymnist.distill`), which is loaded and checked before anything is written.

Two engines run the steps (`tinymnist.engines`, one interface): the eager loop (torch.optim, the
default on CPUs) and the graph engine (the whole step captured as one CUDA graph, the default on
CUDA; if capture fails, a new run falls back to the eager engine and says why). The precision
(bf16 autocast or float32) is decided per machine by `tinymnist.precision`. Both choices, and a
fallback, are recorded in the run's config and kept when a run resumes.
"""

import json
import math
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import torch

import tinymnist
from tinymnist import checkpoint, distill, engines, models, plots, precision, results
from tinymnist.data import DEFAULT, MNIST
from tinymnist.engines import EagerEngine, GraphEngine, choose_engine  # noqa: F401 (the engines, for tests)
from tinymnist.errors import TinyMnistError
from tinymnist.evaluation import evaluate
from tinymnist.models import TARGET
from tinymnist.recipes import Recipe, from_dict, to_dict, validate

SEED_LIMITS = {"parameters": 20_000, "accuracy": TARGET, "epochs": 20}  # the seed document's claim (on MNIST)
PLOT_SECONDS = 30.0  # the curves are redrawn at most this often, and once at the end


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


def new_run_dir(model: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{model}-{stamp}", 1
    while path.exists():
        path, n = root / f"{model}-{stamp}-{n}", n + 1
    return path


def is_run(folder: Path) -> bool:
    """Whether `folder` holds a tinymnist run's config.json (a run stopped before its first epoch
    ended has only that), so that training may write into it."""
    config = checkpoint.read_config(folder)
    return isinstance(config.get("recipe"), dict) and "seed" in config


def check_new_run(out: Path) -> None:
    """Refuse, before anything is written, an `out` that a new run would overwrite: a run that can be
    resumed or is finished, a file, or a folder of other files."""
    checkpoint.check_path(out)
    if any((out / name).exists() for name in (checkpoint.LAST, checkpoint.FINAL)):
        raise TinyMnistError(
            f"{out}: already holds a run; resume it (tinymnist train --resume {out}) or choose another"
        )
    checkpoint.check_folder(out, is_run, "a tinymnist run folder")


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def verdict(parameters: int, history: list[dict], split: str) -> list[str]:
    """The seed's three constraints, judged on the final epoch."""
    final, epochs = history[-1], len(history)
    acc = final[f"{split}_accuracy"]
    best = max((r for r in history if f"{split}_accuracy" in r), key=lambda r: r[f"{split}_accuracy"])
    checks = [
        (parameters < SEED_LIMITS["parameters"], f"trainable parameters {parameters:,} < 20,000"),
        (acc >= SEED_LIMITS["accuracy"], f"final-epoch {split} accuracy {acc:.2%} >= {TARGET:.2%}"),
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
    precision_request: str = "auto",
    engine: str = "auto",
    memory_format: str = "auto",
    on_epoch: Callable[[dict], None] | None = None,
) -> dict:
    """Train `recipe` on `data` into run folder `out`; returns the final checkpoint dict.

    `split` names what `data`'s test tensors are ("test", or "val" for a validation split).
    `precision_request` ("auto", "bf16", "fp32"), `memory_format` ("auto", "channels_last",
    "contiguous") and `engine` ("auto", "eager", "graph") are resolved for this machine
    (`tinymnist.precision` measures) and recorded in config.json. With `resume`, training continues
    from `out/last.pt` with the run's recorded settings. `on_epoch` gets a copy of each epoch's
    record (its metrics.jsonl line) once it is saved; an exception raised there stops the run and is
    raised to the caller, with that epoch saved (a sweep pruning a trial; `--resume` continues it).
    """
    validate(recipe)
    if recipe.batch_size > len(data.train_labels):
        raise TinyMnistError(
            f"batch_size={recipe.batch_size}: more than the {len(data.train_labels):,} training images"
        )
    device = data.train_images.device
    progress = sys.stdout.isatty() if progress is None else progress
    recorded: dict = {}  # the config of the run resumed
    if resume:
        recorded = resume_settings(out)[1]
        kept = recorded.get("precision", {})  # runs before the choice: the recipe's
        precision_request = "bf16" if kept.get("bf16", recipe.bf16) else "fp32"
        cl = kept.get("channels_last", recorded["recipe"].get("channels_last", True))
        memory_format, engine = ("channels_last" if cl else "contiguous"), recorded.get("engine", "eager")
        torch.set_num_threads(kept.get("threads", torch.get_num_threads()))
        resume = (out / checkpoint.LAST).is_file()  # a run stopped in its first epoch starts again
        if not resume:
            log(f"{out}: no completed epoch to resume from; starting it again with its settings")
    teacher, taught = None, {}  # knowledge distillation: the teacher, and what the run records of it
    if recipe.teacher:
        teacher, info = distill.load_teacher(recipe.teacher, data, split, device, recorded.get("teacher"))
        taught = {"teacher": info}
    chosen = precision.choose(
        recipe.bf16, precision_request, device, recipe.model, recipe.batch_size, memory_format, log
    )
    engine = choose_engine(engine, device)
    if teacher is not None:
        teacher = precision.apply(teacher, chosen)
    torch.manual_seed(seed)
    model = precision.apply(models.create(recipe.model).to(device), chosen)
    parameters = models.count_parameters(model)

    def heartbeat(done: int, steps: int, images_per_second: float) -> None:
        eta = (steps - done) * recipe.batch_size / images_per_second
        log(f"  epoch {epoch}: {done / steps:.0%} ({done}/{steps} batches)  {images_per_second:,.0f} images/s  "
            f"epoch ends in {eta:.0f}s")  # fmt: skip

    runner, fallback = engines.create(
        engine, model, recipe, data, chosen, None if progress else heartbeat, progress, resume, log, teacher
    )
    engine, fallback = runner.name, fallback or recorded.get("engine_fallback", "")
    fell_back = {"engine_fallback": fallback} if fallback else {}  # why it is not the engine first chosen
    history: list[dict] = []
    started, earlier = time.perf_counter(), 0.0  # wall time of this process, and of those before it

    if resume:
        state = checkpoint.restore(out / checkpoint.LAST, to_dict(recipe), model, runner)
        history, earlier = state["history"], state.get("wall_seconds", 0.0)
        if state.get("dataset", DEFAULT) != data.dataset:
            raise TinyMnistError(
                f"{out}: a run on {state.get('dataset', DEFAULT)}, not {data.dataset}; cannot resume it"
            )
        log(f"resuming {out} after epoch {len(history)} of {recipe.epochs}")
        config = {**recorded, **fell_back}
        if fallback != recorded.get("engine_fallback", ""):  # the graph could not be captured this time
            checkpoint.save_json(out / "config.json", config)
    else:
        check_new_run(out)
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "recipe": to_dict(recipe),
            "dataset": data.dataset,
            "seed": seed,
            "split": split,
            "parameters": parameters,
            "device": str(device),
            "engine": engine,
            **fell_back,
            "precision": chosen,
            "machine": results.machine(device),
            "torch": torch.__version__,
            "tinymnist": tinymnist.__version__,
            "train_images": len(data.train_labels),
            "eval_images": len(data.test_labels),
            **taught,
            **(config_extra or {}),
        }
        checkpoint.save_json(out / "config.json", config)
        autocast = "bf16 autocast" if chosen["bf16"] else "float32"
        fmt, threads = "channels_last" if chosen["channels_last"] else "contiguous", chosen["threads"]
        log(
            f"{recipe.model}: {parameters:,} trainable parameters; {engine} engine, {autocast}, {fmt}, "
            f"{threads} thread{'s' * (threads > 1)} ({chosen['reason']})"
        )
        log(f"run folder {out}")

    last_plot = 0.0
    for epoch in range(len(history) + 1, recipe.epochs + 1):
        torch.manual_seed(epoch_seed(seed, epoch))  # dropout (and augmentation in the graph engine)
        generator = torch.Generator(device).manual_seed(epoch_seed(seed, epoch))  # order, augmentation
        lr = runner.lr
        runner.side = recipe.low_res if epoch <= recipe.low_res_epochs and epoch < recipe.epochs else 28
        start, captured = time.perf_counter(), runner.capture_seconds
        train_loss, train_acc = runner.epoch(generator)
        if not math.isfinite(train_loss):  # diverged: keep the last finite epoch, save nothing of this one
            raise TinyMnistError(
                f"{out}: training diverged in epoch {epoch} (loss {train_loss}); try a lower lr than {recipe.lr:g}"
            )
        seconds = time.perf_counter() - start - (runner.capture_seconds - captured)  # a graph recaptured
        if runner.fallback and runner.fallback != fallback:  # the graph could not be captured again mid-run
            fallback, fell_back = runner.fallback, {"engine_fallback": runner.fallback}
            config |= fell_back
            checkpoint.save_json(out / "config.json", config)
        record = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc}
        shown = "not evaluated"  # the recipe evaluates only every eval_every-th epoch and the last
        if epoch == recipe.epochs or (recipe.eval_every and epoch % recipe.eval_every == 0):
            result = evaluate(model, data.test_images, data.test_labels, chosen["channels_last"], data.dataset)
            record |= {f"{split}_loss": result.loss, f"{split}_accuracy": result.accuracy}
            shown = f"loss {result.loss:.4f} acc {result.accuracy:.2%}"
        record |= {"lr": lr, "seconds": seconds, "images_per_second": len(data.train_labels) / seconds}
        if runner.capture_seconds:  # the one-time capture, outside the timed steps
            record["capture_seconds"], runner.capture_seconds = runner.capture_seconds, 0.0
        history.append(record)
        log(
            f"epoch {epoch:2d}/{recipe.epochs}  train loss {train_loss:.4f} acc {train_acc:.2%}  "
            f"{split} {shown}  lr {lr:.4f}  {seconds:.1f}s"
        )
        checkpoint.save(
            out / checkpoint.LAST,
            {
                "model": recipe.model,
                "state_dict": model.state_dict(),
                "recipe": to_dict(recipe),
                "dataset": data.dataset,
                "seed": seed,
                "engine": engine,
                **fell_back,
                **runner.state_dict(),
                "history": history,
                "wall_seconds": earlier + time.perf_counter() - started,
            },
        )
        checkpoint.atomic_write(
            out / "metrics.jsonl", lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
        )
        if epoch == recipe.epochs or time.perf_counter() - last_plot >= PLOT_SECONDS:
            plots.training_curves(history, split, out / "curves.png")
            last_plot = time.perf_counter()
        if on_epoch:
            on_epoch(dict(record))  # a copy: the history saved next epoch is the run's own

    final = {
        "model": recipe.model,
        "state_dict": model.state_dict(),
        "recipe": to_dict(recipe),
        "dataset": data.dataset,
        "seed": seed,
        "parameters": parameters,
        "split": split,
        "train_images": len(data.train_labels),
        "eval_images": len(data.test_labels),
        **taught,
        "engine": engine,
        **fell_back,
        "precision": chosen,
        "final": history[-1],
        "history": history,
        "train_seconds": sum(r["seconds"] for r in history),
        "capture_seconds": sum(r.get("capture_seconds", 0.0) for r in history),
        "wall_seconds": earlier + time.perf_counter() - started,  # up to each process's last saved epoch
    }
    checkpoint.save(out / checkpoint.FINAL, final)
    for line in verdict(parameters, history, split) if data.dataset == DEFAULT else []:
        log(line)
    return final


def resume_settings(out: Path) -> tuple[Recipe, dict]:
    """The recipe and config of an interrupted run folder (with or without a completed epoch)."""
    config_path = out / "config.json"
    if not out.is_dir():
        raise TinyMnistError(f"--resume {out}: no such run folder")
    if not config_path.is_file():
        raise TinyMnistError(
            f"--resume {out}: not a tinymnist run folder (no config.json; a run stopped before it wrote one "
            f"can start again with --out {out})"
        )
    try:
        config = json.loads(config_path.read_text())
        return from_dict(config["recipe"], str(config_path)), config
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise TinyMnistError(f"{config_path}: damaged run config ({e})") from None
