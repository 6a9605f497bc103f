"""Checkpoints: written atomically, read with `weights_only=True` (never unpickled).

A checkpoint is a plain dict: the model's name, its state dict, the recipe it was trained
with, and (for the resumable `last.pt`) the optimizer and schedule states and the metrics so
far. A run folder holds `model.pt` (final) and `last.pt` (last completed epoch).
"""

import json
import os
from pathlib import Path

import torch
from torch import nn

from tinymnist import models
from tinymnist.errors import TinyMnistError

FINAL, LAST = "model.pt", "last.pt"


class CheckpointError(TinyMnistError):
    pass


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)`, then rename the temporary file into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save(path: Path, checkpoint: dict) -> None:
    atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def save_json(path: Path, value: object) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n"))


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
    path = resolve(path)
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a damaged file can fail anywhere inside the unpickler
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable tinymnist checkpoint ({reason[:200]})") from None
    if not isinstance(checkpoint, dict) or not {"model", "state_dict"} <= checkpoint.keys():
        raise CheckpointError(f"{path}: not a tinymnist checkpoint (no model name and weights in it)")
    return checkpoint


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The trained model (in eval mode) and its checkpoint dict."""
    checkpoint = read(path, device)
    name = checkpoint["model"]
    if not models.known(name):
        raise CheckpointError(f"{resolve(path)}: checkpoint of unknown model {name!r}")
    model = models.create(name).to(device)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{resolve(path)}: weights do not fit model {name!r} ({first})") from None
    return model.eval(), checkpoint
