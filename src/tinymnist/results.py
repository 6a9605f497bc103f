"""Results files: what a measurement ran on, and the multi-seed summaries that the README's
tables are generated from. Every figure in the README comes from a JSON file written here.
"""

import hashlib
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

import torch

import tinymnist
from tinymnist import models, precision, recipes
from tinymnist.checkpoint import save_json
from tinymnist.errors import TinyMnistError
from tinymnist.models import TARGET
from tinymnist.recipes import Recipe, tomllib


def machine(device: torch.device | str = "cpu") -> dict:
    """The machine a measurement ran on, in words and numbers."""
    info = {
        "cpu": precision.cpu_model(),
        "cores": os.cpu_count(),
        "cpu_features": precision.cpu_features(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tinymnist": tinymnist.__version__,
        "os": platform.platform(),
        **git_state(),
    }
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


PACKAGE = Path(__file__).resolve().parent
GIT_SECONDS = 10  # each git command; a hung git (a stale lock, a network file system) gives no commit


def checkout(package: Path) -> Path | None:
    """The git checkout whose src/ holds `package` and whose pyproject.toml names tinymnist; None for an
    installed copy (e.g. in a .venv inside the user's own repository, whose commit is not tinymnist's)."""
    top = package.parent.parent
    try:
        name = tomllib.loads((top / "pyproject.toml").read_text()).get("project", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return top if package.parent.name == "src" and name == "tinymnist" and (top / ".git").exists() else None


def git_state(package: Path = PACKAGE) -> dict:
    """The commit the code runs from ('+dirty' if the work tree has changes) and, if dirty, what:
    the changed files and the SHA-256 of `git diff HEAD`, so the change can be recognised later.
    Only for tinymnist's own checkout; git runs nowhere else, and for at most GIT_SECONDS each time."""
    top = checkout(package)

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=top, capture_output=True, text=True, check=True, timeout=GIT_SECONDS)
        return run.stdout

    try:
        if top is None or Path(git("rev-parse", "--show-toplevel").strip()).resolve() != top.resolve():
            return {"git_commit": None}
        commit = git("rev-parse", "HEAD").strip()
        changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
        diff = git("diff", "HEAD") if changed else ""
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return {"git_commit": None}
    if not changed:
        return {"git_commit": commit}
    return {
        "git_commit": commit + "+dirty",
        "git_changed_files": sorted(line[3:] for line in changed),
        "git_diff_sha256": hashlib.sha256(diff.encode()).hexdigest(),
    }


def differences(recorded: dict, now: dict) -> str:
    """The fields in which two recipes (as dicts) differ, e.g. "lr 0.1 recorded, 0.2 now"."""

    def shown(d: dict, key: str) -> str:
        return repr(d[key]) if key in d else "missing"

    keys = [
        k for k in sorted(recorded.keys() | now.keys()) if (k in recorded, recorded.get(k)) != (k in now, now.get(k))
    ]
    return "; ".join(f"{k} {shown(recorded, k)} recorded, {shown(now, k)} now" for k in keys)


def mismatch(found: dict, recipe: Recipe) -> str:
    """Why a results file was not made with `recipe` as it stands now ("" if it was): a field differs,
    or the model's name stands for another size (a zoo row whose widths changed keeps its name)."""
    if not recipes.same(found.get("recipe"), recipe):
        recorded = found.get("recipe")
        return differences(recorded if isinstance(recorded, dict) else {}, recipes.to_dict(recipe))
    size = models.count_parameters(models.create(recipe.model))
    sizes = {r["parameters"] for r in found["runs"] if "parameters" in r} - {size}
    return f"model {recipe.model} had {sizes.pop():,} parameters, {size:,} now" if sizes else ""


def summarize(accuracies: list[float]) -> dict:
    return {
        "seeds": len(accuracies),
        "mean": statistics.fmean(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "min": min(accuracies),
        "max": max(accuracies),
        "at_least_99_40": sum(a >= TARGET for a in accuracies),
    }


def read(path: Path) -> dict | None:
    """A results file, None if there is none; a damaged one is an error, never overwritten."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
        if not isinstance(value, dict) or not isinstance(value.get("runs"), list):
            raise ValueError("no list of runs")
        return value
    except (ValueError, OSError) as e:
        raise TinyMnistError(f"{path}: damaged results file ({e}); move it away to start over") from None


write = save_json
