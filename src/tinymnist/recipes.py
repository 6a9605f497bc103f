"""Recipes: everything that decides a training run, as data. One definition per recipe.

A recipe names a model and says how to train it: optimizer, learning-rate schedule,
augmentation, batch size and epochs. `tinymnist train --recipe NAME` runs one; command-line
options override single fields (`--epochs 3`, `--set lr=0.05`, ...), and `--recipe FILE` reads
one from a TOML or JSON file (a run's `config.json` included).

A recorded recipe (in a run's config, a results file, a weights card) is always read whole:
`from_dict` refuses missing or unknown fields instead of filling them with today's defaults, so
changing a default can never silently relabel an old result. The two exceptions are tables: a
field added later is filled with the value every run had before it existed (`PAST`), and a field
that no longer changes a result is dropped (`RETIRED`).
"""

import json
import math
import reprlib
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, cast

from tinymnist.errors import TinyMnistError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Recipe:
    model: str = "seed"  # a name from tinymnist.models.MODELS
    epochs: int = 15  # the seed's constraint is fewer than 20
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" or "adamw"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum (AdamW: beta1)
    nesterov: bool = True  # SGD: Nesterov momentum
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # "onecycle" (warm-up then cosine decay) or "constant"
    warmup: float = 0.2  # fraction of all steps spent warming up (onecycle)
    label_smoothing: float = 0.0
    degrees: float = 10.0  # augmentation: random rotation, +- degrees
    translate: float = 0.1  # augmentation: random shift, +- this fraction of the image size
    scale: float = 0.1  # augmentation: random zoom in [1 - scale, 1 + scale]
    brightness: float = 0.0  # augmentation: add a random offset in +- this to the [0, 1] pixels
    contrast: float = 0.0  # augmentation: multiply the pixels by a random factor in [1 - contrast, 1 + contrast]
    bf16: bool = False  # numerics allow bf16 autocast; used where it measures faster (tinymnist.precision)
    low_res: int = 28  # progressive resizing: the side, in pixels, of the images of the first epochs
    low_res_epochs: int = 0  # how many first epochs train at low_res (the rest, and always the last, at 28x28)
    eval_every: int = 1  # evaluate after every N-th epoch and after the last (0: after the last only)
    teacher: str = ""  # knowledge distillation from this finished run, checkpoint or shipped model (tinymnist.distill)
    distill: float = 0.5  # with a teacher: the weight of its term in the loss (the rest is cross-entropy)
    temperature: float = 4.0  # with a teacher: the temperature that softens both models' predictions


@dataclass(frozen=True)
class Rule:
    """The values a field takes beyond its type: numbers in [low, high] (an end excluded where `above` or
    `below`; finite always), strings among `choices`. A new Recipe field needs a rule here (a test says so)."""

    low: float | None = None
    high: float | None = None
    above: bool = False  # low itself excluded
    below: bool = False  # high itself excluded
    choices: tuple[str, ...] = ()


# Each field's rule, in one table, checked wherever a value enters a recipe (`check_value`: --set, the
# shortcut options, recipe files, recorded recipes, the Python API, sweep spaces). Bounds are generous
# (what torch accepts and a run can use), never a tuning choice; `model` is checked in `validate`.
RULES: dict[str, Rule] = {
    "model": Rule(),  # a registered model or a family name within models.MAX_PARAMETERS (`validate`)
    "epochs": Rule(1, 1_000),
    "batch_size": Rule(1, 60_000),  # at most the training set (`training.train` checks the data's own size)
    "optimizer": Rule(choices=("sgd", "adamw")),
    "lr": Rule(0, 10, above=True),
    "momentum": Rule(0, 1, below=True),  # SGD momentum or AdamW beta1: below 1
    "nesterov": Rule(),
    "weight_decay": Rule(0, 1),
    "schedule": Rule(choices=("onecycle", "constant")),
    "warmup": Rule(0, 1, below=True),  # a fraction of the steps; one-cycle needs some steps after it
    "label_smoothing": Rule(0, 1),
    "degrees": Rule(0, 180),
    "translate": Rule(0, 1),
    "scale": Rule(0, 1, below=True),  # zoom in [1 - scale, 1 + scale]: above 0
    "brightness": Rule(0, 1),
    "contrast": Rule(0, 1),  # a factor in [1 - contrast, 1 + contrast]: never negative
    "bf16": Rule(),
    "low_res": Rule(8, 28),  # pixels: the side of the first epochs' images (progressive resizing)
    "low_res_epochs": Rule(0, 1_000),
    "eval_every": Rule(0, 1_000),  # 0: after the last epoch only
    "teacher": Rule(),  # a path or a shipped model's name, checked when the run loads it (`distill.load_teacher`)
    "distill": Rule(0, 1),
    "temperature": Rule(0, 100, above=True),
}
SEED_RULE = Rule(0, 2**32 - 1)  # a training seed (torch seeds each epoch with seed * 100,003 + epoch)

SEED = Recipe()
# tiny3k (SeparableNet) underfits: it gets lighter augmentation, a lower peak learning rate (0.1 made
# its validation accuracy swing by several points mid-run) and little weight decay.
SMALL: dict[str, Any] = {"degrees": 6.0, "translate": 0.06, "scale": 0.06, "lr": 0.05}

RECIPES: dict[str, Recipe] = {
    # The seed network with a one-cycle schedule and light affine augmentation; bf16 autocast where it
    # measures faster (the Xeon with AMX: 1.9x per step, results/speed-seed-cpu.json). Its 5 seeds were
    # trained again in bf16 (results/seed.json: 99.52% mean, 99.46% min; 99.53% and 99.48% in float32,
    # results/history/).
    "seed": replace(SEED, bf16=True),
    # The seed document's own recipe, as its notebook ran it: plain SGD at a constant 0.01, no
    # augmentation; 19 epochs, the most its "under 20 epochs" allows.
    "notebook": replace(
        SEED,
        lr=0.01,
        nesterov=False,
        weight_decay=0.0,
        schedule="constant",
        epochs=19,
        degrees=0.0,
        translate=0.0,
        scale=0.0,
    ),
    # The least wall time to >= 99.40% final-epoch test accuracy under 20k parameters on a CPU
    # (docs/speed.md). A model shaped for the chip: 16 channels at full resolution (a multiple of
    # the vector width), its widest layers (24) after the first pooling, no dropout. Batch 256 at
    # peak lr 0.2, the first epochs on images resampled to 20x20 (half the CPU time of 28x28), and
    # only the last epoch evaluated. Chosen on the validation split (results/validation/speed-*.json).
    "fast": replace(
        SEED,
        model="tinynet-16-16-24-20",
        epochs=6,
        batch_size=256,
        lr=0.2,
        bf16=True,
        low_res=20,
        low_res_epochs=3,
        eval_every=0,
    ),
    # GPU recipes: large batches keep a GPU busy (a step costs about the same at any batch size there),
    # with the peak learning rate scaled by the square root of the batch size; bf16. On the validation
    # split (results/validation/gpu*.json) tiny20k at batch 512 reached 99.40% in 8 epochs; the seed
    # network at batch 256 reached 99.16% in 8 epochs, 99.22% with peak lr 0.2, 99.28% in 12 epochs.
    "gpu": replace(SEED, model="tiny20k", epochs=8, batch_size=512, lr=0.2, bf16=True),
    "gpu-seed": replace(SEED, epochs=12, batch_size=256, lr=0.14, bf16=True),
    # The zoo, one recipe per parameter budget (models.ZOO); smaller models get less regularisation.
    "tiny20k": replace(SEED, model="tiny20k", epochs=18),
    # The best trials of the tiny8k and tiny4k sweeps (results/sweeps/*/best-recipe.json; values
    # rounded), trained 18 epochs. On the validation split they beat the hand-made rows they replaced
    # (results/validation/tiny*k-swept*.json against tiny*k-hand-made*.json): tiny8k 99.31% against
    # 99.25% over 3 seeds (within noise, with 1,093 fewer parameters; on the test set it scored 0.05
    # lower, docs/sweeps.md), tiny4k 99.32% against 98.90%. Both train at batch 64.
    "tiny8k": replace(
        SEED,
        model="tiny8k",
        epochs=18,
        batch_size=64,
        lr=0.111,
        weight_decay=1.16e-5,
        label_smoothing=0.0805,
        degrees=14.3,
        translate=0.0454,
        scale=0.0556,
        bf16=True,
    ),
    "tiny4k": replace(
        SEED,
        model="tiny4k",
        epochs=18,
        batch_size=64,
        lr=0.275,
        weight_decay=1.21e-4,
        label_smoothing=0.0225,
        degrees=9.63,
        translate=0.0804,
        scale=0.05,
        bf16=True,
    ),
    "tiny3k": replace(SEED, model="tiny3k", epochs=18, weight_decay=5e-5, **SMALL),
    # The best trial of the tiny1k5 sweep (results/sweeps/tiny1k5/best-recipe.json: 98.18% on the
    # validation split after its 5 epochs; values rounded), trained as long as the other rows, with
    # lighter regularisation: the 1,471-parameter model underfits. No label smoothing and milder
    # augmentation reached 98.50% on the validation split against 98.33% with the sweep's values
    # (0.093; 10.5 degrees, 0.083 shift, 0.126 zoom), paired over 3 seeds (results/validation/tiny1k5*).
    "tiny1k5": replace(
        SEED,
        model="tiny1k5",
        epochs=18,
        batch_size=64,
        lr=0.102,
        weight_decay=1.96e-4,
        label_smoothing=0.0,
        degrees=6.0,
        translate=0.05,
        scale=0.06,
        bf16=True,
    ),
}

# --- Fashion-MNIST (train with --dataset fashion-mnist; docs/datasets.md) ---------------------
# Its articles are product photos, always upright, while handwriting slants; so tiny3k's recipe
# was tried without rotation on the validation split (scripts/fashion_results.py). It reached 88.84%
# against 89.20% with rotation (results/fashion-mnist/validation/), so the Fashion-MNIST rows use
# the MNIST recipes unchanged. The rotation-free recipe stays, so that the comparison can be rerun.
RECIPES["fashion-tiny3k"] = replace(RECIPES["tiny3k"], degrees=0.0)


class RecipeError(TinyMnistError):
    pass


TYPES: dict[str, type] = {f.name: f.type for f in fields(Recipe)}  # type: ignore[misc]  # the annotations, as types (no `from __future__` here)


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"--recipe {name!r}: unknown recipe; choose from: {', '.join(RECIPES)}")
    return RECIPES[name]


def override(recipe: Recipe, **changes: Any) -> Recipe:
    """The recipe with the fields given (not None) replaced, each checked."""
    return replace(recipe, **{k: check_value(k, v) for k, v in changes.items() if v is not None})


def brief(value: object) -> str:
    """A value's repr, bounded: it may be a huge string or number, or a deeply nested structure."""
    try:
        return reprlib.repr(value)
    except ValueError:  # an int of more digits than Python converts to text
        return f"<{type(value).__name__} too large to show>"


def check(name: str, value: Any, kind: type, rule: Rule) -> Any:
    """`value` if it is a `kind` (an int is accepted for a float, a bool for nothing else) that `rule`
    allows, as a `kind`; else a RecipeError naming `name` and what it must be."""
    shown = f"{name}={brief(value)}"
    if type(value) is not kind and not (kind is float and type(value) is int):
        raise RecipeError(f"{shown}: must be {kind.__name__}, not {type(value).__name__}")
    if type(value) is float and not math.isfinite(value):
        raise RecipeError(f"{shown}: must be a finite number")
    value = cast(Any, value)  # the type() tests above narrowed it to `object` for mypy
    low, high = rule.low, rule.high  # set for numbers only
    too_low = low is not None and (value < low or rule.above and value == low)
    if too_low or high is not None and (value > high or rule.below and value == high):
        lower = "positive" if rule.above and low == 0 else f"at least {low:,}" if low is not None else ""
        upper = f"below {high:,}" if rule.below else f"at most {high:,}" if high is not None else ""
        raise RecipeError(f"{shown}: must be {' and '.join(filter(None, (lower, upper)))}")
    if rule.choices and value not in rule.choices:
        raise RecipeError(f"{shown}: choose {' or '.join(rule.choices)}")
    return float(value) if kind is float else value


def check_value(name: str, value: object) -> Any:
    """`value` for recipe field `name`, if it has the field's type and its rule allows it."""
    if name not in TYPES:
        raise RecipeError(f"{name}: unknown recipe field; fields: {', '.join(TYPES)}")
    return check(name, value, TYPES[name], RULES[name])


def parse_setting(text: str) -> tuple[str, object]:
    """`--set NAME=VALUE`: the field and its value, parsed as the field's type."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep:
        raise RecipeError(f"--set {text!r}: expected NAME=VALUE, e.g. --set lr=0.05")
    if name not in TYPES:
        raise RecipeError(f"--set {text}: unknown recipe field {name!r}; fields: {', '.join(TYPES)}")
    kind, raw = TYPES[name], raw.strip()
    booleans = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    try:
        value = booleans[raw.lower()] if kind is bool else kind(raw)
    except (KeyError, ValueError):
        raise RecipeError(f"--set {text}: {name} takes a {kind.__name__}, not {raw!r}") from None
    return name, check_value(name, value)


def validate(recipe: Recipe) -> Recipe:
    """The recipe, if every field is usable (its rule, a model that exists and fits the size ceiling,
    and what torch needs of fields together); else the first problem, naming the field."""
    from tinymnist import models  # imports torch: only when a recipe is about to be used

    for f in fields(Recipe):
        check_value(f.name, getattr(recipe, f.name))
    if not models.known(recipe.model):  # raises for a family name over the size ceiling
        choices = ", ".join([*models.MODELS, *models.FAMILY_NAMES])
        raise RecipeError(f"recipe field model={brief(recipe.model)}: unknown model; choose from: {choices}")
    if recipe.teacher and recipe.low_res_epochs and recipe.low_res < 28 and recipe.epochs > 1:
        raise RecipeError(
            f"recipe field teacher={brief(recipe.teacher)}: distillation with progressive resizing (low_res_epochs="
            f"{recipe.low_res_epochs}) would show the teacher {recipe.low_res}x{recipe.low_res} images it never "
            "trained on; set low_res_epochs=0"
        )
    if recipe.optimizer == "sgd" and recipe.nesterov and recipe.momentum == 0:
        raise RecipeError("recipe field nesterov=True: Nesterov momentum needs momentum > 0 (or nesterov=false)")
    return recipe


# Fields added after results were recorded: the value every run had before the field existed.
PAST: dict[str, tuple[object, str]] = {
    "nesterov": (True, "added in 8c66256; until then SGD was always Nesterov (nesterov=True)"),
    "bf16": (False, "added in 63eaea4; until then the forward pass was always float32"),
    "low_res": (28, "added with progressive resizing; until then every epoch trained at 28x28"),
    "low_res_epochs": (0, "added with progressive resizing; until then every epoch trained at 28x28"),
    "eval_every": (1, "added with skipped evaluations; until then every epoch was evaluated"),
    "brightness": (0.0, "added with brightness and contrast jitter; until then there was none"),
    "contrast": (0.0, "added with brightness and contrast jitter; until then there was none"),
    "teacher": ("", "added with knowledge distillation; until then no run had a teacher"),
    "distill": (0.5, "added with knowledge distillation; without a teacher it changes nothing"),
    "temperature": (4.0, "added with knowledge distillation; without a teacher it changes nothing"),
}
# Fields that no longer change a result, ignored when read: the machine decides them now.
RETIRED = {"channels_last": "the memory format is measured per machine (tinymnist.precision)"}


def from_dict(values: dict, source: str = "recipe") -> Recipe:
    """The recipe recorded in `values`: every field present (or in PAST), each of its type, nothing else."""
    if not isinstance(values, dict):
        raise RecipeError(f"{source}: a recipe must be a table of fields")
    missing = [name for name in TYPES if name not in values and name not in PAST]
    if missing:
        raise RecipeError(f"{source}: recipe lacks field(s) {', '.join(missing)} (recorded recipes are read whole)")
    values = {name: value for name, (value, _) in PAST.items()} | values
    try:
        return Recipe(**{name: check_value(name, value) for name, value in values.items() if name not in RETIRED})
    except RecipeError as e:
        raise RecipeError(f"{source}: {e}") from None


def same(recorded: dict | None, recipe: Recipe) -> bool:
    """Whether a recorded recipe is exactly `recipe`: every field, none filled with today's defaults."""
    return isinstance(recorded, dict) and from_dict(recorded) == recipe


def load_file(path: Path) -> Recipe:
    """A recipe from a TOML or JSON file: its fields at the top level or in a `recipe` table (as in a
    run's config.json). Fields not given come from the registered recipe named by `base`, if any."""
    try:
        text = path.read_text()
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as e:
        raise RecipeError(f"--recipe {path}: cannot read ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise RecipeError(f"--recipe {path}: not valid {path.suffix[1:].upper() or 'JSON'} ({e})") from None
    values = values.get("recipe", values) if isinstance(values, dict) else values
    if isinstance(values, dict) and "base" in values:
        values = dict(values)
        base = values.pop("base")
        if not isinstance(base, str) or base not in RECIPES:
            raise RecipeError(f"--recipe {path}: base {brief(base)} is not a recipe; choose from: {', '.join(RECIPES)}")
        try:
            return replace(RECIPES[base], **{k: check_value(k, v) for k, v in values.items()})
        except RecipeError as e:
            raise RecipeError(f"--recipe {path}: {e}") from None
    return from_dict(values, f"--recipe {path}")


def resolve(name_or_file: str) -> Recipe:
    """A registered recipe by name, or a recipe file (.toml or .json)."""
    if name_or_file in RECIPES:
        return RECIPES[name_or_file]
    path = Path(name_or_file)
    if path.suffix in (".toml", ".json") or path.exists():
        return load_file(path)
    return get(name_or_file)


to_dict = asdict


# Search spaces of `tinymnist sweep`, as data. Each names the recipe it starts from, a parameter
# budget (a hard constraint: a design over it is rejected before it trains) and a model family
# (models.FAMILIES) whose widths are the parameters w1, w2, ...; every other parameter is a Recipe
# field. A parameter is a fixed value, {"low": .., "high": ..} (integers if both are; "log": true
# for a log scale) or {"choice": [...]}. A space can also be a JSON file of this shape.
def _range(low: float, high: float, log: bool = False) -> dict:
    return {"low": low, "high": high, "log": log}


SWEEP_RECIPE = {
    "lr": _range(0.02, 0.3, log=True),
    "weight_decay": _range(1e-5, 1e-3, log=True),
    "label_smoothing": _range(0.0, 0.1),
    "degrees": _range(0.0, 15.0),
    "translate": _range(0.0, 0.15),
    "scale": _range(0.0, 0.15),
    "batch_size": {"choice": [64, 128, 256]},
    "epochs": 5,  # short trials on one CPU thread; the winner is then trained longer (docs/sweeps.md)
    "bf16": True,  # 1.5x faster on CPUs with bf16 units, same validation accuracy (README, Speed)
}
# Width ranges are drawn so that most designs fit the budget: 75-90% of uniform draws do for tiny8k,
# tiny4k and tiny1k5, 45% for tiny20k (a design over budget costs a line, not a training run).
SPACES: dict[str, dict] = {
    "tiny20k": {
        "base": "tiny20k",
        "budget": 20_000,
        "family": "tinynet",
        "params": {
            "w1": _range(6, 16),
            "w2": _range(6, 16),
            "w3": _range(12, 32),
            "w4": _range(16, 40),
            **SWEEP_RECIPE,
        },
    },
    "tiny8k": {
        "base": "tiny8k",
        "budget": 8_000,
        "family": "tinynet",
        "params": {"w1": _range(4, 10), "w2": _range(4, 10), "w3": _range(8, 14), "w4": _range(12, 20), **SWEEP_RECIPE},
    },
    "tiny4k": {
        "base": "tiny4k",
        "budget": 4_000,
        "family": "tinynet",
        "params": {"w1": _range(3, 8), "w2": _range(3, 8), "w3": _range(6, 10), "w4": _range(8, 14), **SWEEP_RECIPE},
    },
    "tiny1k5": {
        "base": "tiny3k",
        "budget": 1_499,
        "family": "sepnet",
        "params": {
            "w1": _range(4, 8),
            "w2": _range(6, 14),
            "w3": _range(8, 16),
            "w4": _range(8, 16),
            "w5": _range(12, 24),
            **SWEEP_RECIPE,
        },
    },
}

# --- Public claims (tinymnist.claims) -----------------------------------------------------------
# Each claim's design trained as its source describes, as near as a Recipe can say it (claims.py
# lists what had to be approximated: per-epoch piecewise-linear schedules become one-cycle with the
# same peak and warm-up length, augmentation probabilities become "every image"), and the same
# design with the zoo recipe of the smallest budget that holds it ("ours-").
RECIPES.update(
    {
        "claim-3762": Recipe(
            model="claim-3762",
            epochs=15,
            batch_size=32,
            optimizer="sgd",
            lr=0.1,
            momentum=0.0,
            nesterov=False,
            weight_decay=0.0,
            warmup=0.133,  # 2 of 15 epochs
            degrees=7.0,
            translate=0.09,
            scale=0.09,
        ),
        "claim-4838": Recipe(
            model="claim-4838",
            epochs=12,
            batch_size=64,
            optimizer="adamw",
            lr=0.01,
            nesterov=False,
            weight_decay=0.0,
            warmup=0.167,  # 2 of 12 epochs
            degrees=5.0,
            translate=0.04,
            scale=0.085,
        ),
        "claim-19898": Recipe(
            model="claim-19898",
            epochs=19,
            batch_size=64,
            optimizer="adamw",
            lr=0.003,
            nesterov=False,
            weight_decay=1e-5,
            schedule="constant",
            degrees=3.0,
            translate=0.0,
            scale=0.0,
        ),
        "claim-1936": Recipe(
            model="claim-1936",
            epochs=75,
            batch_size=32,
            optimizer="adamw",
            lr=0.001,
            nesterov=False,
            weight_decay=0.0,
            schedule="constant",
            degrees=0.0,
            translate=0.0,
            scale=0.0,
        ),
        "ours-3762": replace(RECIPES["tiny4k"], model="claim-3762"),
        "ours-4838": replace(RECIPES["tiny8k"], model="claim-4838"),
        "ours-19898": replace(RECIPES["tiny20k"], model="claim-19898"),
        "ours-1936": replace(RECIPES["tiny3k"], model="claim-1936"),
    }
)
