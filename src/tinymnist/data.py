"""MNIST-shaped datasets as four tensors: find the IDX files, check them, parse them, keep them in memory.

Two datasets are registered (`DATASETS`): `mnist` (the default) and `fashion-mnist`. Both have
the same four file names, so each file's content checksum says which dataset it belongs to.

Where the files are looked for: an explicit folder (`--data-dir`, else the dataset's
environment variable, `TINYMNIST_DATA` for MNIST and `TINYMNIST_FASHION_DATA` for
Fashion-MNIST) is the only place looked at when given; otherwise the user cache
(`~/.cache/tinymnist/<dataset>`, honouring `XDG_CACHE_HOME`), where `tinymnist.download`
fetches missing files. A torchvision-style root (`DIR/MNIST/raw/`, `DIR/FashionMNIST/raw/`) is
accepted too. The user's files are only ever read, and never decompressed past their
expected size (a gzip bomb costs no more memory than the real file).
"""

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from tinymnist.errors import TinyMnistError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 and 1 dimensions
# Images (or labels) in each file of an MNIST-shaped dataset; the IDX header adds 16 (or 8) bytes.
COUNTS = {
    "train-images-idx3-ubyte": 60_000,
    "train-labels-idx1-ubyte": 60_000,
    "t10k-images-idx3-ubyte": 10_000,
    "t10k-labels-idx1-ubyte": 10_000,
}
VALIDATION_SEED = 0  # the fixed permutation that carves the validation split
VALIDATION_IMAGES = 5_000  # the split recipes are chosen on (`tinymnist train --val 5000`, sweeps, probes)
DEFAULT = "mnist"


def expected_size(name: str) -> int:
    """Bytes of the decompressed IDX file `name`: header plus one byte per pixel or label."""
    return 16 + COUNTS[name] * 784 if "images" in name else 8 + COUNTS[name]


LARGEST = max(map(expected_size, COUNTS))


@dataclass(frozen=True)
class Dataset:
    """What tinymnist knows about one dataset."""

    name: str
    title: str  # for messages
    env: str  # environment variable naming its folder
    torchvision: str  # torchvision's folder name: ROOT/<torchvision>/raw
    files: dict[str, str]  # IDX file name -> SHA-256 of its decompressed content
    mean: float  # of the training images, scaled to [0, 1] (tests check both)
    std: float
    classes: tuple[str, ...]  # label i's name
    mirrors: tuple[str, ...]  # base URLs serving <file>.gz, tried in order
    # How predict/serve turn a photo into a 28x28 input (tinymnist.images): "digit" crops the
    # ink to 20x20 and centres its mass, as MNIST was made; "product" trims the background,
    # scales the longest side to 28 and centres the box, as Fashion-MNIST was made.
    framing: str
    # Folders where an operating-system package installs the files, used when nothing names a
    # folder and the cache lacks them (Debian and Ubuntu: `apt install dataset-fashion-mnist`).
    system: tuple[str, ...] = ()


DATASETS = {
    "mnist": Dataset(
        name="mnist",
        title="MNIST",
        env="TINYMNIST_DATA",
        torchvision="MNIST",
        files={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mean=0.1307,
        std=0.3081,
        classes=tuple("0123456789"),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        framing="digit",
    ),
    "fashion-mnist": Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST",
        env="TINYMNIST_FASHION_DATA",
        torchvision="FashionMNIST",
        files={  # computed from Debian's dataset-fashion-mnist (the original files, 2020-05-23)
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mean=0.2860,
        std=0.3530,
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        framing="product",
        system=("/usr/share/datasets/fashion-mnist",),
    ),
}
FILES = DATASETS[DEFAULT].files  # MNIST's, the default


class DataError(TinyMnistError):
    pass


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"--dataset {name!r}: unknown dataset; choose from: {', '.join(DATASETS)}")
    return DATASETS[name]


def trained_on(checkpoint: dict, source: object) -> Dataset:
    """The dataset a checkpoint (or run config) records; MNIST if it records none (older runs)."""
    name = checkpoint.get("dataset", DEFAULT)
    if not isinstance(name, str) or name not in DATASETS:
        raise DataError(f"{source}: made on an unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    return DATASETS[name]


@dataclass
class MNIST:
    """The whole dataset: uint8 images (N, 28, 28), int64 labels (N,), and which dataset it is."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    dataset: str = DEFAULT

    def to(self, device: torch.device | str) -> "MNIST":
        train_images, train_labels, test_images, test_labels = (
            t.to(device) for t in (self.train_images, self.train_labels, self.test_images, self.test_labels)
        )
        return MNIST(train_images, train_labels, test_images, test_labels, self.dataset)


def subfolder(dataset: str) -> str:
    """Where a dataset's results and runs go inside results/ and runs/...: MNIST's at the top."""
    return "" if dataset == DEFAULT else dataset


def cache_root() -> Path:
    """tinymnist's folder in the user cache (honouring XDG_CACHE_HOME)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinymnist"


def cache_dir(dataset: str = DEFAULT) -> Path:
    return cache_root() / dataset


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        try:
            if candidate.is_file():
                return candidate
        except OSError as e:  # e.g. a folder without read or search permission
            raise DataError(f"{folder}: cannot read the folder ({e.strerror or e})") from None
    return None


def _root(data_dir: str | Path | None, spec: Dataset) -> tuple[Path, bool]:
    """The folder looked in, and whether the user named it (then it is the only one). Otherwise
    the cache, unless it lacks a file that a system folder holds all of."""
    explicit = data_dir or os.environ.get(spec.env)
    if explicit:
        return Path(explicit), True
    cache = cache_dir(spec.name)
    complete = [Path(f) for f in spec.system if all(_files_in(Path(f), spec).values())]
    return (complete[0] if complete and not all(_files_in(cache, spec).values()) else cache), False


def _files_in(root: Path, spec: Dataset) -> dict[str, Path | None]:
    """Each file from `root` or its torchvision layout, whichever holds more of them."""
    layouts = [
        {name: _file_in(folder, name) for name in spec.files} for folder in (root, root / spec.torchvision / "raw")
    ]
    return max(layouts, key=lambda found: sum(p is not None for p in found.values()))


def find(data_dir: str | Path | None = None, dataset: str = DEFAULT) -> dict[str, Path] | None:
    """The four files, or None if the folder looked in lacks any."""
    found = _files_in(_root(data_dir, get(dataset))[0], get(dataset))
    return found if all(found.values()) else None  # type: ignore[return-value]


def missing_message(data_dir: str | Path | None, dataset: str = DEFAULT) -> str:
    spec = get(dataset)
    root, explicit = _root(data_dir, spec)
    missing = [name for name, path in _files_in(root, spec).items() if path is None]
    if explicit:
        fix = (
            f"an explicit folder (--data-dir or {spec.env}) is the only place looked at: put the files there, "
            f"or drop it to use (and download into) {cache_dir(spec.name)}"
        )
    else:
        fix = f"pass --data-dir DIR or set {spec.env}=DIR, or let tinymnist download it into {root}"
    return f"{spec.title} not found: {root} lacks {', '.join(missing)}; {fix}"


def read_bytes(path: Path, limit: int = LARGEST) -> bytes:
    """The file's content, decompressed if it is gzip; more than `limit` bytes is an error.

    At most `limit` + 1 bytes are ever read or decompressed, so memory stays bounded.
    """
    gz = False
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            raw = (gzip.GzipFile(fileobj=f) if gz else f).read(limit + 1)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        if not gz:
            raise DataError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
        raise DataError(f"{path}: corrupt or unreadable gzip stream ({e})") from None
    if len(raw) > limit:
        raise DataError(
            f"{path}: content larger than {limit:,} bytes, the size of this file (a gzip bomb or another file)"
        )
    return raw


def parse_idx(raw: bytes, source: str, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes; `source` names the file in errors."""
    if len(raw) < 8:
        raise DataError(f"{source}: truncated file ({len(raw)} bytes, no IDX header)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{source}: wrong magic number {found} (expected {magic}); not an MNIST IDX file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated file ({len(raw)} bytes, header needs {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated file" if len(raw) < expected else "trailing bytes"
        raise DataError(f"{source}: {what} ({len(raw)} bytes, shape {shape} needs {expected})")
    if ndim == 3 and shape[1:] != (28, 28):
        raise DataError(f"{source}: wrong image size {shape[1]}x{shape[2]} (expected 28x28)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def owner(name: str, digest: str) -> Dataset | None:
    """The registered dataset whose file `name` has this content checksum."""
    return next((spec for spec in DATASETS.values() if spec.files.get(name) == digest), None)


def _split(images: Path, labels: Path, spec: Dataset, verify: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse an images/labels pair; structural faults are named before a checksum mismatch."""
    names = [p.name.removesuffix(".gz") for p in (images, labels)]
    raws = [read_bytes(path, expected_size(name)) for path, name in zip((images, labels), names, strict=True)]
    x = parse_idx(raws[0], str(images), IMAGES_MAGIC)
    y = parse_idx(raws[1], str(labels), LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if y.size and y.max() > 9:
        raise DataError(f"{labels}: label {int(y.max())} out of range 0-9")
    for path, name, raw in zip((images, labels), names, raws, strict=True):
        digest = hashlib.sha256(raw).hexdigest()
        if verify and digest != spec.files[name]:
            other = owner(name, digest)
            what = (
                f"it is {other.title}'s {name}: use --dataset {other.name}" if other else f"not {spec.title}'s {name}"
            )
            raise DataError(f"{path}: checksum mismatch (SHA-256 of the content: {what})")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def load_files(files: dict[str, Path], verify: bool = True, dataset: str = DEFAULT) -> MNIST:
    spec = get(dataset)
    train = _split(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"], spec, verify)
    test = _split(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"], spec, verify)
    return MNIST(*train, *test, dataset=spec.name)


def load(data_dir: str | Path | None = None, download: bool = True, dataset: str = DEFAULT) -> MNIST:
    """Find (or download into the cache) and load a dataset; raises DataError with what to do."""
    spec = get(dataset)
    files = find(data_dir, spec.name)
    if files is None:
        root, explicit = _root(data_dir, spec)
        if explicit or not download:
            raise DataError(missing_message(data_dir, spec.name))
        from tinymnist.download import download_dataset

        download_dataset(spec, root)
        files = find(data_dir, spec.name)
        assert files is not None, "download_dataset leaves the four files in the cache"
    return load_files(files, dataset=spec.name)


def validation_split(data: MNIST, size: int) -> MNIST:
    """Hold out `size` training images (a fixed permutation, seed VALIDATION_SEED) as the test set.

    The result trains on the other 60,000 - size images and evaluates on the held-out ones, so
    recipes are tuned without ever looking at the real test set.
    """
    n = len(data.train_labels)
    if not 0 < size < n:
        raise DataError(f"--val {size}: must be between 1 and {n - 1}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    held, kept = order[:size].to(data.train_labels.device), order[size:].to(data.train_labels.device)
    return replace(
        data,
        train_images=data.train_images[kept],
        train_labels=data.train_labels[kept],
        test_images=data.train_images[held],
        test_labels=data.train_labels[held],
    )


def normalize(images: torch.Tensor, dataset: str = DEFAULT) -> torch.Tensor:
    """uint8 (N, 28, 28) or float [0, 1] (N, 1, 28, 28) to the normalised float input of the models."""
    if images.dtype == torch.uint8:
        images = images.unsqueeze(1).float().div_(255)
    spec = get(dataset)
    return (images - spec.mean) / spec.std
