"""Knowledge distillation: a trained teacher's softened predictions join the student's loss.

A recipe whose `teacher` names a finished run folder, its checkpoint file, or a shipped model trains
on (1 - distill) x cross-entropy + distill x T^2 x KL(teacher || student), both predictions
softened at temperature T (Hinton et al., 2015). The teacher sees each augmented batch as the
student does, in eval mode and without gradients, so it costs one forward pass per step.

The teacher must never have trained on the images the run is judged on. Every tinymnist run
trains on training images only, so any teacher may teach a run evaluated on the test set; a run
on the validation split needs a teacher that held out at least the same images (`--val N` with
an N as large), and a shipped model (trained on all 60,000 training images) teaches test runs only.
"""

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tinymnist import checkpoint, models, pretrained
from tinymnist.data import DEFAULT, MNIST
from tinymnist.errors import TinyMnistError
from tinymnist.precision import forward
from tinymnist.recipes import Recipe

MAX_SOURCE = 4096  # characters of a teacher's path or name


def loss(
    logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None, recipe: Recipe
) -> torch.Tensor:
    """The training loss: cross-entropy, mixed with the teacher's term when there is a teacher."""
    ce = F.cross_entropy(logits, labels, label_smoothing=recipe.label_smoothing)
    if teacher_logits is None:
        return ce
    t = recipe.temperature
    student, teacher = F.log_softmax(logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1)
    kd = F.kl_div(student, teacher, reduction="batchmean", log_target=True) * t * t
    return (1 - recipe.distill) * ce + recipe.distill * kd


def trained_on(info: dict, folder: Path | None) -> tuple[str, str, int]:
    """A teacher's dataset, split ("test": it trained on every training image; "val": it held some out)
    and how many training images it held out, from its checkpoint or its run folder's config.json."""
    config = checkpoint.read_config(folder) if folder is not None else {}
    dataset = info.get("dataset", config.get("dataset", DEFAULT))
    split = info.get("split", config.get("split", "test"))
    held_out = info.get("eval_images", config.get("eval_images", 0)) if split == "val" else 0
    if not (isinstance(dataset, str) and split in ("test", "val") and isinstance(held_out, int)):
        raise TinyMnistError("cannot tell which images it trained on (its checkpoint and config.json are damaged)")
    return dataset, split, held_out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_teacher(
    source: str, data: MNIST, split: str, device: torch.device, recorded: dict | None = None
) -> tuple[nn.Module, dict]:
    """The teacher named by `source` (frozen, in eval mode, on `device`) and what to record of it, if it
    may teach a run on `data` evaluated on `split` ("test" or "val"); `recorded` is a resumed run's
    record, whose file must not have changed. Else a TinyMnistError naming the teacher and why."""
    named = f"recipe field teacher={source[:200]!r}"
    if len(source) > MAX_SOURCE or "\0" in source:
        raise TinyMnistError(f"{named}: not a path or a shipped model's name")
    try:
        shipped = pretrained.is_shipped(source)
        model, info = pretrained.load_model(source, device)
    except TinyMnistError as e:
        raise TinyMnistError(f"{named}: {e}") from None
    except OSError as e:  # a path the system refuses (too long a name, no permission)
        raise TinyMnistError(f"{named}: cannot read ({e.strerror or e})") from None
    file = Path(info["source"])
    if not shipped and "final" not in info:
        raise TinyMnistError(f"{named}: {file} is an unfinished run's checkpoint; a teacher must have finished")
    dataset, taught_split, held_out = trained_on(info, None if shipped else file.parent)
    if dataset != data.dataset:
        raise TinyMnistError(f"{named}: trained on {dataset}, not on {data.dataset}")
    if split == "val" and (taught_split != "val" or held_out < len(data.test_labels)):
        saw = "every training image" if taught_split == "test" else f"all but {held_out:,} training images"
        raise TinyMnistError(
            f"{named}: it trained on {saw}, so it saw this run's {len(data.test_labels):,} validation images; "
            f"train the teacher with --val {len(data.test_labels)} too"
        )
    record = {
        "source": source,
        "file": str(file),
        "sha256": digest(file),
        "model": info["model"],
        "parameters": models.count_parameters(model),
        "seed": info.get("seed"),
        "split": taught_split,
        "held_out": held_out,
        "accuracy": info["test_accuracy"] if shipped else info["final"].get(f"{taught_split}_accuracy"),
        "train_seconds": info.get("train_seconds"),
    }
    if recorded and recorded.get("sha256") != record["sha256"]:
        raise TinyMnistError(f"{named}: {file} changed since this run started; its teacher is gone")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), record


def teacher_logits(teacher: nn.Module | None, x: torch.Tensor, bf16: bool) -> torch.Tensor | None:
    """The teacher's logits for the batch the student sees, without gradients; None without a teacher."""
    if teacher is None:
        return None
    with torch.no_grad():
        return forward(teacher, x, bf16)
