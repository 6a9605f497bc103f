"""The Python API, three functions: load a model, predict digits, train a recipe.

    import tinymnist
    model = tinymnist.load("seed")                   # a shipped model, a run folder or a checkpoint
    tinymnist.predict(model, ["digit.png"])[0].digit
    run = tinymnist.train(recipe="fast", epochs=1, out="runs/try")   # quiet unless verbose=True

They are reached as `tinymnist.load`, `tinymnist.predict` and `tinymnist.train` (imported on
first use). Bad input raises a `tinymnist.TinyMnistError` subclass with a one-line message.
The command line is built on the same functions.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from tinymnist import data, inference, pretrained, recipes, training
from tinymnist.data import DEFAULT, get
from tinymnist.errors import TinyMnistError
from tinymnist.images import ImageError, decode, read, to_input
from tinymnist.inference import Prediction

ImageLike = str | Path | bytes | Image.Image | np.ndarray | torch.Tensor
PRIVATE = ("state_dict", "optimizer", "scheduler")  # checkpoint entries that are not metadata
CHANNELS = (1, 3, 4)  # an array's last axis of this size holds a pixel's channels: grey, RGB, RGBA
KINDS = "a file path, an image file's bytes, a PIL image, or an array or tensor"  # what an image may be


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
    checkpoint file; a path that exists wins over a name. `device`: "cpu", "cuda", "cuda:N", "mps",
    "auto" or a torch.device, which must be there."""
    if not isinstance(source, str | Path):
        raise TinyMnistError(
            f"source={source!r}: a shipped model's name or a run folder's or checkpoint's path expected"
        )
    network, info = pretrained.load_model(source, checked_device(device))
    return Model(network, info["model"], {k: v for k, v in info.items() if k not in PRIVATE})


def checked_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device that this machine has."""
    if device == "auto":
        return training.pick_device("auto")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise TinyMnistError(f"device={device!r}: not a device (cpu, cuda, cuda:N, mps or auto)") from None
    count = {"cpu": 1, "cuda": torch.cuda.device_count(), "mps": int(torch.backends.mps.is_available())}
    if (dev.index or 0) >= count.get(dev.type, 0):
        raise TinyMnistError(f"device={device!r}: not available on this machine")
    return dev


def array_of(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """A numpy view of an array or tensor (any device; bfloat16 and other float types as float32)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        return (image.float() if image.is_floating_point() else image).numpy()
    return np.asarray(image)


def split(images: ImageLike | Iterable[ImageLike]) -> list:
    """The images in `images`: one image, a list of them, or an array or tensor of one or several.

    Arrays: (H, W) is one greyscale image and (H, W, C) one image with C = 1, 3 or 4 channels (grey,
    RGB, RGBA); (N, H, W) is N greyscale images, (N, H, W, C) or (N, C, H, W) N images. The last
    axis is taken as the channels when its size is 1, 3 or 4, so (N, H, W) with W <= 4 is one image.
    """
    if isinstance(images, str | Path | bytes | Image.Image):
        return [images]
    if isinstance(images, np.ndarray | torch.Tensor):
        a = array_of(images)
        if is_one_image(a):
            return [a]
        if a.ndim == 3 or (a.ndim == 4 and a.shape[3] in CHANNELS):
            return list(a)
        if a.ndim == 4 and a.shape[1] in CHANNELS:
            return list(np.moveaxis(a, 1, 3))
        raise ImageError(
            f"images: an array of shape {a.shape} is not an image or images: (H, W), (H, W, C), (N, H, W), "
            "(N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4 expected"
        )
    try:
        return list(images)
    except TypeError:
        raise ImageError(f"images: {type(images).__name__} is not an image nor a list of them ({KINDS})") from None


def is_one_image(a: np.ndarray) -> bool:
    """Whether an array's shape is one image's: (H, W), or (H, W, C) with C = 1, 3 or 4."""
    return a.ndim == 2 or (a.ndim == 3 and a.shape[2] in CHANNELS)


def as_picture(a: np.ndarray, name: str) -> Image.Image:
    """One image array as a PIL image: integers 0-255, floats 0-1 or booleans (True is 255)."""
    if a.dtype.kind not in "biuf":
        raise ImageError(f"{name}: an array of {a.dtype} is not an image (numbers or booleans expected)")
    if not is_one_image(a):
        raise ImageError(f"{name}: an array of shape {a.shape} is not one image: (H, W) or (H, W, C), C = 1, 3 or 4")
    if a.size and a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError(f"{name}: the array holds NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ImageError(f"{name}: float values must be in 0-1, not {a.min():g} to {a.max():g} (divide by 255?)")
        a = np.rint(a * 255)
    elif a.size and a.dtype.kind in "iu" and (a.min() < 0 or a.max() > 255):
        raise ImageError(f"{name}: integer values must be in 0-255, not {a.min()} to {a.max()}")
    a = a.astype(np.uint8) * (255 if a.dtype.kind == "b" else 1)
    return Image.fromarray(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a)  # L, RGB or RGBA


def to_digit(image: ImageLike, name: str, framing: str = "digit") -> torch.Tensor:
    """One image (file path, file contents, PIL image, array or tensor) as the 28x28 uint8 input the
    network sees. Any size and either polarity."""
    if isinstance(image, str | Path):
        image = read(Path(image))
    elif isinstance(image, bytes):
        image = decode(image, name)
    elif isinstance(image, np.ndarray | torch.Tensor):
        image = as_picture(array_of(image), name)
    elif not isinstance(image, Image.Image):
        raise ImageError(f"{name}: {type(image).__name__} is not an image ({KINDS})")
    return to_input(image, framing, name)


def predict(
    model: Model | nn.Module | str | Path, images: ImageLike | Iterable[ImageLike], top: int = 1
) -> list[Prediction]:
    """The most probable digit (and the `top` most probable, with probabilities) of each image, by a
    loaded `Model`, any tinymnist network, or a model `load` finds by name or path.

    `images` is one image or several: file paths, image file contents (bytes), PIL images, arrays or
    tensors (see `split` for their shapes). Each is prepared as the model's dataset was made: for
    MNIST, cropped to the ink, scaled to 20x20 and centred by its centre of mass; for Fashion-MNIST,
    framed as its product photos were.
    """
    if isinstance(model, str | Path):
        model = load(model)
    elif not isinstance(model, Model | nn.Module):
        raise TinyMnistError(
            f"model: {type(model).__name__} is not a model: a Model from tinymnist.load, a network, "
            "or a shipped model's name or a run's path expected"
        )
    spec = get(model.info.get("dataset", DEFAULT) if isinstance(model, Model) else DEFAULT)
    if isinstance(top, bool) or not isinstance(top, Integral) or not 1 <= top <= len(spec.classes):
        raise TinyMnistError(f"top={top!r}: must be a whole number from 1 to {len(spec.classes)}")
    items = split(images)
    if not items:
        raise TinyMnistError("predict: no images given")
    names = [str(x) if isinstance(x, str | Path) else f"images[{i}]" for i, x in enumerate(items)]
    digits = torch.stack([to_digit(x, n, spec.framing) for x, n in zip(items, names, strict=True)])
    network = model.network if isinstance(model, Model) else model
    return inference.top_digits(network, digits, names, int(top), spec.name)


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
    on_epoch: Callable[[dict], None] | None = None,
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

    `on_epoch(metrics)` is called after each epoch is saved, with that epoch's record (a copy of its
    metrics.jsonl line), e.g. to send it to TensorBoard or MLflow. An exception raised there stops the
    run and reaches the caller unchanged; the epochs done are kept, and `tinymnist train --resume`
    continues them.
    """
    if isinstance(recipe, str):
        recipe = recipes.resolve(recipe)
    recipe = recipes.validate(recipes.override(recipe, **fields))
    recipes.check("seed", seed, int, recipes.SEED_RULE)
    if val is not None:
        recipes.check("val", val, int, recipes.Rule(1))  # and below the training set's size: validation_split
    out = Path(out) if out else training.new_run_dir(recipe.model)
    training.check_new_run(out)  # before the data is loaded; a run stopped in its first epoch starts again
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
        on_epoch=on_epoch,
    )
    return Run(out, load(out, dev), final["history"])
