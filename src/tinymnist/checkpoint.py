"""Checkpoints: written atomically, read with `weights_only=True` (never unpickled).

A checkpoint is a plain dict: the model's name, its state dict, the recipe it was trained
with, and (for the resumable `last.pt`) the optimizer and schedule states and the metrics so
far. A run folder holds `model.pt` (final) and `last.pt` (last completed epoch).
"""

import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tinymnist import models
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import RETIRED

FINAL, LAST = "model.pt", "last.pt"
RESUMABLE = ("optimizer", "scheduler", "history")  # what last.pt holds beyond the weights


class CheckpointError(TinyMnistError):
    pass


class WriteError(TinyMnistError):
    """A file could not be written (disk full, no permission): nothing was replaced."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)`, then rename the temporary file into place.

    On any failure (disk full, Ctrl-C) the temporary file is removed and `path` is untouched;
    an OSError becomes a WriteError naming `path`.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            reason = (e.strerror or str(e)).lower()
            raise WriteError(f"{path}: cannot write it: {reason} (nothing was replaced)") from None
        raise


def check_path(path: Path) -> None:
    """Refuse a path no file can have (Python raises ValueError, not OSError, for a NUL in it)."""
    if "\0" in str(path):
        raise TinyMnistError(f"{str(path)!r}: a path cannot contain a NUL character")


def check_folder(path: Path, ours: Callable[[Path], bool] | None = None, what: str = "") -> None:
    """Refuse, before anything is written into `path`, a file, or (given `ours`) a folder that is
    neither empty nor `what` as `ours` recognises it: the user's own files are never overwritten."""
    check_path(path)
    if path.exists() and not path.is_dir():
        raise TinyMnistError(f"{path}: is a file, not a folder; choose a new or empty folder")
    if ours and path.is_dir() and any(path.iterdir()) and not ours(path):
        raise TinyMnistError(
            f"{path}: a folder that is neither empty nor {what}; nothing was written, choose a new or empty folder"
        )


def check_file(path: Path, overwrite: bool = False) -> None:
    """Refuse, before any work, to write over a folder, or over a file unless `overwrite`."""
    check_path(path)
    if path.is_dir():
        raise TinyMnistError(f"{path}: is a folder; give a file name")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise TinyMnistError(f"{path}: already exists; pass --overwrite to replace it")


def save(path: Path, checkpoint: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a Python file, so a full disk raises OSError (ENOSPC)
            torch.save(checkpoint, f)

    atomic_write(path, write)


def save_json(path: Path, value: object) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n"))


def read_config(folder: Path) -> dict:
    """A run folder's config.json (its first MiB), or {} if it is missing, unreadable or not a JSON table."""
    try:
        with open(folder / "config.json", "rb") as f:
            config = json.loads(f.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return {}
    return config if isinstance(config, dict) else {}


def first_line(e: BaseException) -> str:
    """The start of an error from deep inside torch: enough to say what went wrong, on one line."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def resolve(path: str | Path) -> Path:
    """A checkpoint file from a run folder (its final model, else its last epoch) or a file."""
    path = Path(path)
    if path.is_dir():
        for name in (FINAL, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no {FINAL} or {LAST} in this folder; is it a tinymnist run folder?")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    return path


def read(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """A checkpoint's dict, loaded with `weights_only=True`: anything but tensors and plain values
    is refused, never unpickled."""
    path = resolve(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: not a tinymnist checkpoint (not a regular file)")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: not a tinymnist checkpoint (not a PyTorch checkpoint file: damaged, or another kind of "
            "file; expected a run folder or its model.pt)"
        )
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: not a tinymnist checkpoint (refused: it holds Python objects other than tensors and plain "
            "values, or is damaged; nothing in it was run)"
        ) from None
    except Exception as e:  # a damaged file can fail anywhere inside the reader
        raise CheckpointError(f"{path}: not a tinymnist checkpoint (damaged: {first_line(e)})") from None
    if not isinstance(checkpoint, dict) or not {"model", "state_dict"} <= checkpoint.keys():
        raise CheckpointError(f"{path}: not a tinymnist checkpoint (no model name and weights in it)")
    weights = checkpoint["state_dict"]
    if not isinstance(checkpoint["model"], str) or not (
        isinstance(weights, dict) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in weights.items())
    ):
        raise CheckpointError(f"{path}: not a tinymnist checkpoint (its model name or weights are of the wrong type)")
    check_finite(weights, path)
    return checkpoint


def check_finite(weights: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse weights that hold NaN or infinity (a diverged run): they would answer nan for every image."""
    bad = [k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: weights are not finite (NaN or infinity in {bad[0]}): a diverged run?")


def restore(path: Path, recipe: dict, model: nn.Module, engine) -> dict:
    """Load `last.pt` of a run of `recipe` into its model and training engine (optimizer and
    schedule); returns it."""
    state = read(path, next(model.parameters()).device)
    if not set(RESUMABLE) <= state.keys() or not isinstance(state["history"], list):
        raise CheckpointError(f"{path}: not a {LAST} (no optimizer, schedule and history in it; a copied {FINAL}?)")
    saved = state["recipe"] if isinstance(state.get("recipe"), dict) else {}
    # a field newer than the file is no change, nor is a retired one (recipes.RETIRED)
    changed = [k for k, v in saved.items() if k not in RETIRED and recipe.get(k) != v]
    if not saved or changed:
        raise CheckpointError(
            f"{path}: saved by a run of another recipe than this run folder's config.json "
            f"({', '.join(changed) or 'no recipe'} differ)"
        )
    try:
        model.load_state_dict(state["state_dict"])
        engine.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: does not fit this run ({first_line(e)})") from None
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The trained model (in eval mode) and its checkpoint dict."""
    checkpoint = read(path, device)
    name = checkpoint["model"]
    if not models.known(name):
        raise CheckpointError(f"{resolve(path)}: checkpoint of unknown model {name!r}")
    model = models.create(name).to(device)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{resolve(path)}: weights do not fit model {name!r} ({first_line(e)})") from None
    return model.eval(), checkpoint
