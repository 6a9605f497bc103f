"""MNIST as four tensors: find the IDX files, check them, parse them, keep them in memory.

Where the files are looked for, in order: an explicit folder (`--data-dir` or the
`TINYMNIST_DATA` environment variable), then the user cache (`~/.cache/tinymnist/mnist`,
honouring `XDG_CACHE_HOME`). A torchvision-style root (`DIR/MNIST/raw/`) is accepted too.
If they are nowhere, `tinymnist.download` fetches them into the cache. The user's files are
only ever read.
"""

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinymnist.errors import TinyMnistError

MEAN, STD = 0.1307, 0.3081  # of the training images, scaled to [0, 1]

# SHA-256 of the decompressed IDX bytes: the content is checked, not the archive.
FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 and 1 dimensions
VALIDATION_SEED = 0  # the fixed permutation that carves the validation split


class DataError(TinyMnistError):
    pass


@dataclass
class MNIST:
    """The whole dataset: uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def to(self, device: torch.device | str) -> "MNIST":
        return MNIST(*(t.to(device) for t in vars(self).values()))


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tinymnist" / "mnist"


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _candidates(data_dir: str | Path | None) -> list[Path]:
    explicit = data_dir or os.environ.get("TINYMNIST_DATA")
    roots = ([Path(explicit)] if explicit else []) + [cache_dir()]
    return [folder for root in roots for folder in (root, root / "MNIST" / "raw")]


def find(data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """The four files from the first folder that holds all of them, or None."""
    for folder in _candidates(data_dir):
        found = {name: _file_in(folder, name) for name in FILES}
        if all(found.values()):
            return found
    return None


def missing_message(data_dir: str | Path | None) -> str:
    explicit = data_dir or os.environ.get("TINYMNIST_DATA")
    where = Path(explicit) if explicit else cache_dir()
    missing = [name for name in FILES if not any(_file_in(f, name) for f in (where, where / "MNIST" / "raw"))]
    return (
        f"MNIST not found: {where} lacks {', '.join(missing)}; "
        f"pass --data-dir DIR, set TINYMNIST_DATA=DIR, or let tinymnist download it into {cache_dir()}"
    )


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: corrupt or unreadable gzip stream ({e})") from None


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


def _split(images: Path, labels: Path, verify: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse an images/labels pair; structural faults are named before a checksum mismatch."""
    raws = [read_bytes(images), read_bytes(labels)]
    x = parse_idx(raws[0], str(images), IMAGES_MAGIC)
    y = parse_idx(raws[1], str(labels), LABELS_MAGIC)
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if y.size and y.max() > 9:
        raise DataError(f"{labels}: label {int(y.max())} out of range 0-9")
    for path, raw in zip((images, labels), raws, strict=True):
        name = path.name.removesuffix(".gz")
        if verify and hashlib.sha256(raw).hexdigest() != FILES[name]:
            raise DataError(f"{path}: checksum mismatch (SHA-256 of the content is not MNIST's {name})")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def load_files(files: dict[str, Path], verify: bool = True) -> MNIST:
    train = _split(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"], verify)
    test = _split(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"], verify)
    return MNIST(*train, *test)


def load(data_dir: str | Path | None = None, download: bool = True) -> MNIST:
    """Find (or download into the cache) and load MNIST; raises DataError with what to do."""
    files = find(data_dir)
    if files is None:
        if not download:
            raise DataError(missing_message(data_dir))
        from tinymnist.download import download_mnist

        download_mnist(cache_dir(), hint=missing_message(data_dir))
        files = find(data_dir)
    return load_files(files)


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
    return MNIST(data.train_images[kept], data.train_labels[kept], data.train_images[held], data.train_labels[held])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) or float [0, 1] (N, 1, 28, 28) to the normalised float input of the models."""
    if images.dtype == torch.uint8:
        images = images.unsqueeze(1).float().div_(255)
    return (images - MEAN) / STD
