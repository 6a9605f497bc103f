"""Pretrained weights shipped in the package, and the one loader of every command's RUN argument.

`weights/<recipe>.safetensors` holds a model's weights (safetensors: plain tensors, nothing is
unpickled or executed on load) and `weights/<recipe>.json` its card: model, recipe, seed, final
test accuracy, protocol, machine, command. Both are written by `scripts/make_pretrained.py`
from real runs, never by hand.

`load_model` resolves what a user typed: a path that exists (run folder or checkpoint file)
wins; otherwise a shipped model's name.
"""

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tinymnist import checkpoint, models, recipes, results
from tinymnist.errors import TinyMnistError

WEIGHTS = Path(__file__).resolve().parent / "weights"
SEEDS = 5  # a recipe ships weights once its results file has this many seeds


class PretrainedError(TinyMnistError):
    pass


def names() -> list[str]:
    """The shipped models: one per card in the package."""
    return sorted(p.stem for p in WEIGHTS.glob("*.json"))


def card(name: str) -> dict:
    """The card of a shipped model: how it was made and what it measured."""
    if name not in names():
        shipped = ", ".join(names()) or "none"
        raise PretrainedError(
            f"{name}: no such run folder or checkpoint file, nor a shipped model (shipped: {shipped})"
        )
    return json.loads((WEIGHTS / f"{name}.json").read_text())


def load(name: str, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A shipped model in eval mode, and its card."""
    info = card(name)
    path = WEIGHTS / f"{name}.safetensors"
    model = models.create(info["model"])
    try:
        weights = load_file(path)
        model.load_state_dict(weights)
    except (OSError, SafetensorError, RuntimeError) as e:
        raise PretrainedError(f"{path}: damaged shipped weights ({str(e).splitlines()[0]})") from None
    checkpoint.check_finite(weights, path)
    return model.to(device).eval(), {**info, "source": str(path)}


def write(folder: Path, card: dict, state_dict: dict) -> None:
    """Write a model's weights (`<name>.safetensors`) and its card (`<name>.json`), each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    metadata = {"model": card["model"], "recipe": card["name"]}
    checkpoint.atomic_write(folder / f"{card['name']}.safetensors", lambda tmp: save_file(tensors, str(tmp), metadata))
    checkpoint.save_json(folder / f"{card['name']}.json", card)


def eligible(results_dir: Path) -> list[str]:
    """The recipes that ship weights: those whose results file has 5 seeds made with the recipe as
    registered now (every field as recorded)."""
    names = []
    for name, recipe in recipes.RECIPES.items():
        found = results.read(results_dir / f"{name}.json")
        if found and len(found["runs"]) >= SEEDS and not results.mismatch(found, recipe):
            names.append(name)
    return names


def load_model(source: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a run folder, a checkpoint file or a shipped model name (a path that exists wins),
    in eval mode, with its checkpoint dict or card (`source` says which file it came from)."""
    if Path(source).exists():
        model, ckpt = checkpoint.load_model(source, device)
        return model, {**ckpt, "source": str(checkpoint.resolve(source))}
    return load(str(source), device)


def is_shipped(source: str | Path) -> bool:
    """Whether `source` names a shipped model rather than a path (so nothing is written beside it)."""
    return not Path(source).exists() and str(source) in names()
