"""Recipes: everything that decides a training run, as data. One definition per recipe.

A recipe names a model and says how to train it: optimizer, learning-rate schedule,
augmentation, batch size and epochs. `tinymnist train --recipe NAME` runs one; command-line
options override single fields (`--epochs 3`, `--lr 0.1`, ...).
"""

from dataclasses import asdict, dataclass, fields, replace

from tinymnist.errors import TinyMnistError


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
    channels_last: bool = True  # faster on the CPU in nearly every configuration measured (README)
    bf16: bool = False  # run the forward pass under bfloat16 autocast (faster where the chip has bf16 units)


SEED = Recipe()
# Models under 5k parameters underfit: they get lighter augmentation, a lower peak learning rate
# (0.1 made their validation accuracy swing by several points mid-run) and little weight decay.
SMALL = {"degrees": 6.0, "translate": 0.06, "scale": 0.06, "lr": 0.05}

RECIPES: dict[str, Recipe] = {
    # The seed network with a one-cycle schedule and light affine augmentation.
    "seed": SEED,
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
    # The least wall time to >= 99.40% final-epoch accuracy under 20k parameters: tiny20k has half
    # the seed's multiply-accumulates and no dropout; 8 epochs reached 99.36% on the validation split,
    # with bf16 autocast as without it (99.36% both), and autocast trains faster (README, Speed).
    "fast": replace(SEED, model="tiny20k", epochs=8, bf16=True),
    # GPU recipes: large batches keep a GPU busy (a step costs about the same at any batch size there),
    # with the peak learning rate scaled by the square root of the batch size. 8 epochs, bf16.
    "gpu": replace(SEED, model="tiny20k", epochs=8, batch_size=512, lr=0.2, bf16=True),
    "gpu-seed": replace(SEED, epochs=8, batch_size=256, lr=0.14, bf16=True),
    # The zoo, one recipe per parameter budget (models.ZOO); smaller models get less regularisation.
    "tiny20k": replace(SEED, model="tiny20k", epochs=18),
    "tiny8k": replace(SEED, model="tiny8k", epochs=18, weight_decay=2e-4),
    "tiny4k": replace(SEED, model="tiny4k", epochs=18, weight_decay=1e-4, **SMALL),
    "tiny3k": replace(SEED, model="tiny3k", epochs=18, weight_decay=5e-5, **SMALL),
}

# --- Fashion-MNIST (train with --dataset fashion-mnist; docs/datasets.md) ---------------------
# The same recipes without rotation: Fashion-MNIST's articles are product photos, always upright
# (a rotated shirt or boot is an image its test set never holds), while handwriting slants.
# Kept only if the validation split agrees (scripts/fashion_results.py; results/fashion-mnist/validation/).
RECIPES |= {
    "fashion-seed": replace(RECIPES["seed"], degrees=0.0),
    "fashion-tiny3k": replace(RECIPES["tiny3k"], degrees=0.0),
}


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise TinyMnistError(f"--recipe {name!r}: unknown recipe; choose from: {', '.join(RECIPES)}")
    return RECIPES[name]


def override(recipe: Recipe, **changes: object) -> Recipe:
    """The recipe with the fields given (not None) replaced."""
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})


def from_dict(values: dict) -> Recipe:
    known = {f.name for f in fields(Recipe)}
    return Recipe(**{k: v for k, v in values.items() if k in known})


to_dict = asdict
