"""The Python API, three functions: load a model, predict digits, train a recipe.

    import tinymnist
    model = tinymnist.load("seed")                   # a shipped model, a run folder or a checkpoint
    tinymnist.predict(model, ["digit.png"])[0].digit
    run = tinymnist.train(recipe="fast", epochs=1, out="runs/try")   # quiet unless verbose=True

They are reached as `tinymnist.load`, `tinymnist.predict` and `tinymnist.train` (imported on
first use). Bad input raises a `tinymnist.TinyMnistError` subclass with a one-line message.
The command line is built on the same functions.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from tinymnist import checkpoint, data, inference, pretrained, recipes, training
from tinymnist.data import DEFAULT, get
from tinymnist.errors import TinyMnistError
from tinymnist.images import ImageError, read, to_input
from tinymnist.inference import Prediction

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor
PRIVATE = ("state_dict", "optimizer", "scheduler")  # checkpoint entries that are not metadata


@dataclass
class Model:
    """A model ready for inference: its network in eval mode, and where it came from."""

    network: nn.Module  # takes normalised float images (N, 1, 28, 28) and returns (N, 10) logits
    name: str  # the architecture: a name from tinymnist.models.MODELS
    info: dict  # a shipped model's card, or a checkpoint's recipe, seed and final metrics; `source` is the file


@dataclass
class Run:
    """A finished training run: its folder and its final model."""

    path: Path  # the run folder: config.json, metrics.jsonl, model.pt, curves.png
    model: Model
    history: list[dict]  # one record per epoch

    @property
    def final(self) -> dict:
        """The final epoch's metrics: the ones to report."""
        return self.history[-1]


def load(source: str | Path = "seed", device: str | torch.device = "cpu") -> Model:
    """A shipped model by name (`tinymnist models` lists them), or the model of a run folder or
    checkpoint file; a path that exists wins over a name."""
    network, info = pretrained.load_model(source, device)
    return Model(network, info["model"], {k: v for k, v in info.items() if k not in PRIVATE})


def to_digit(image: ImageLike, name: str, framing: str = "digit") -> torch.Tensor:
    """One image (file path, PIL image or 2-D array) as the 28x28 uint8 input the network sees.

    Arrays are greyscale: uint8 in 0-255, or floats in 0-1. Any size and either polarity.
    """
    if isinstance(image, str | Path):
        image = read(Path(image))
    elif not isinstance(image, Image.Image):
        a = np.asarray(image.detach().cpu() if isinstance(image, torch.Tensor) else image)
        if a.ndim != 2:
            raise ImageError(f"{name}: an array must be one greyscale image (H, W), not shape {a.shape}")
        if a.dtype.kind == "f":
            a = a * 255
        image = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    return to_input(image, framing, name)


def predict(model: Model | nn.Module, images: ImageLike | Iterable[ImageLike], top: int = 1) -> list[Prediction]:
    """The most probable digit (and the `top` most probable, with probabilities) of each image, by a
    loaded `Model` (or any tinymnist network).

    `images` is one image or several: file paths, PIL images, 2-D arrays, or a 3-D array (N, H, W).
    Each is prepared as the model's dataset was made: for MNIST, cropped to the ink, scaled to 20x20
    and centred by its centre of mass; for Fashion-MNIST, framed as its product photos were.
    """
    if isinstance(images, str | Path | Image.Image) or (
        isinstance(images, np.ndarray | torch.Tensor) and images.ndim == 2
    ):
        images = [images]
    items = list(images)
    if not items:
        raise TinyMnistError("predict: no images given")
    if not 1 <= top <= 10:
        raise TinyMnistError(f"top={top}: must be between 1 and 10")
    names = [str(x) if isinstance(x, str | Path) else f"images[{i}]" for i, x in enumerate(items)]
    spec = get(model.info.get("dataset", DEFAULT) if isinstance(model, Model) else DEFAULT)
    digits = torch.stack([to_digit(x, n, spec.framing) for x, n in zip(items, names, strict=True)])
    network = model.network if isinstance(model, Model) else model
    return inference.top_digits(network, digits, names, top, spec.name)


def train(
    recipe: str | recipes.Recipe = "seed",
    out: str | Path | None = None,
    seed: int = 1,
    val: int | None = None,
    mnist: data.MNIST | None = None,
    data_dir: str | Path | None = None,
    dataset: str | None = None,
    download: bool = True,
    device: str = "auto",
    precision: str = "auto",
    memory_format: str = "auto",
    engine: str = "auto",
    verbose: bool = False,
    **fields: object,
) -> Run:
    """Train a recipe (a registered name, a recipe file or a `Recipe`), with any fields changed
    (`epochs=3`, `lr=0.05`, ...), into the run folder `out` (default: runs/<model>-<time>).

    With `val=N`, N training images are held out and evaluated instead of the test set (for choosing
    recipes). `mnist` trains on a dataset already loaded (e.g. a subset) instead of loading `dataset`
    ("mnist" or "fashion-mnist") from `data_dir`. `precision` ("auto", "bf16", "fp32"), `memory_format`
    ("auto", "channels_last", "contiguous") and `engine` ("auto", "eager", "graph") are as in
    `tinymnist train --help`. Quiet unless `verbose`: then one
    line per epoch and the seed's verdict.
    """
    if isinstance(recipe, str):
        recipe = recipes.resolve(recipe)
    recipe = recipes.validate(recipes.override(recipe, **{k: recipes.check_value(k, v) for k, v in fields.items()}))
    out = Path(out) if out else training.new_run_dir(recipe.model)
    # a folder with only config.json is a run stopped in its first epoch: nothing to lose, start it again
    if any((out / name).exists() for name in (checkpoint.LAST, checkpoint.FINAL)):
        raise TinyMnistError(
            f"{out}: already holds a run; resume it (tinymnist train --resume {out}) or choose another"
        )
    dev = training.pick_device(device)
    mnist = (mnist or data.load(data_dir, download=download, dataset=dataset or data.DEFAULT)).to(dev)
    split = "test"
    if val:
        mnist, split = data.validation_split(mnist, val), "val"
    log = print if verbose else lambda line: None
    final = training.train(
        recipe,
        mnist,
        out,
        seed=seed,
        split=split,
        progress=None if verbose else False,
        log=log,
        precision_request=precision,
        memory_format=memory_format,
        engine=engine,
    )
    return Run(out, load(out, dev), final["history"])
