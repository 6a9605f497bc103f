import gzip
import os
import shutil
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
import torch

from helpers import idx_bytes, write_idx
from tinymnist import data
from tinymnist.cli import main


def test_parse_generated_idx():
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    parsed = data.parse_idx(idx_bytes(images), "x", data.IMAGES_MAGIC)
    assert np.array_equal(parsed, images)
    labels = np.arange(5, dtype=np.uint8)
    assert np.array_equal(data.parse_idx(idx_bytes(labels), "y", data.LABELS_MAGIC), labels)


def test_gzip_and_plain_read_the_same(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    a = data.read_bytes(write_idx(tmp_path / "a", labels, compress=True))
    b = data.read_bytes(write_idx(tmp_path / "b", labels, compress=False))
    assert a == b


def test_real_mnist_loads(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels.shape == (60000,) and int(mnist.train_labels.max()) == 9
    pixels, spec = mnist.train_images.float().div(255), data.DATASETS["mnist"]
    assert abs(pixels.mean().item() - spec.mean) < 1e-3 and abs(pixels.std().item() - spec.std) < 1e-3


def test_torchvision_layout_and_uncompressed_files(tmp_path, mnist_dir):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FILES:
        (raw / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    files = data.find(tmp_path / "root")
    assert files is not None and all(p.parent == raw for p in files.values())


def test_validation_split_is_disjoint_and_fixed(mnist):
    a, b = data.validation_split(mnist, 5000), data.validation_split(mnist, 5000)
    assert len(a.test_labels) == 5000 and len(a.train_labels) == 55000
    assert torch.equal(a.test_images, b.test_images)
    # no held-out image is a training image of the split: compare by content hashes
    held = {bytes(x.numpy()) for x in a.test_images}
    assert not any(bytes(x.numpy()) in held for x in a.train_images[:20000])


@pytest.fixture
def data_copy(tmp_path, mnist_dir):
    """A writable copy of MNIST whose files the tests damage one at a time."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.FILES:
        shutil.copy(mnist_dir / f"{name}.gz", folder / f"{name}.gz")
    return folder


def run_evaluate(folder, trained_checkpoint, capsys):
    code = main(["evaluate", str(trained_checkpoint), "--data-dir", str(folder), "--no-download", "--device", "cpu"])
    return code, capsys.readouterr().err


def replace_labels(folder, labels: np.ndarray, **kw):
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels, **kw)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "t10k-labels-idx1-ubyte.gz").unlink(), "lacks t10k-labels-idx1-ubyte"),
        (lambda f: replace_labels(f, np.zeros(10000, np.uint8), magic=2051), "wrong magic number"),
        (lambda f: replace_labels(f, np.zeros(9000, np.uint8)), "10000 images but"),
        (
            lambda f: (f / "t10k-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(gzip.decompress((f / "t10k-labels-idx1-ubyte.gz").read_bytes())[:5000])
            ),
            "truncated file",
        ),
        (lambda f: (f / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage"), "corrupt"),
        (
            lambda f: (f / "t10k-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(idx_bytes(np.zeros(10000, np.uint8)))
            ),
            "checksum mismatch",
        ),
        (lambda f: write_idx(f / "t10k-images-idx3-ubyte.gz", np.zeros((10, 32, 32), np.uint8)), "wrong image size"),
    ],
    ids=["missing", "magic", "count", "truncated", "gzip", "checksum", "size"],
)
def test_bad_data_gives_one_line_error(data_copy, trained_checkpoint, capsys, damage, message):
    damage(data_copy)
    before = {p.name: p.read_bytes() for p in data_copy.iterdir()}
    code, err = run_evaluate(data_copy, trained_checkpoint, capsys)
    assert code == 2
    assert err.startswith("tinymnist: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert {p.name: p.read_bytes() for p in data_copy.iterdir()} == before  # nothing modified


def test_missing_files_say_the_three_ways(tmp_path, trained_checkpoint, capsys):
    code, err = run_evaluate(tmp_path / "empty", trained_checkpoint, capsys)
    assert code == 2
    assert "--data-dir" in err and "TINYMNIST_DATA" in err and "download" in err


def test_wrong_magic_unit():
    with pytest.raises(data.DataError, match="wrong magic number"):
        data.parse_idx(idx_bytes(np.zeros((2, 28, 28), np.uint8)), "f", data.LABELS_MAGIC)


def test_unknown_dataset_is_one_line(capsys):
    assert main(["train", "--dataset", "cifar10", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--dataset 'cifar10': unknown dataset; choose from: mnist, fashion-mnist" in err


def test_an_explicit_folder_is_the_only_place_looked_at(data_copy, mnist_dir, trained_checkpoint, capsys):
    cache = data.cache_dir()  # a complete MNIST in the cache must not stand in for the missing file
    shutil.copytree(mnist_dir, cache, ignore=shutil.ignore_patterns("*.part"))
    (data_copy / "train-labels-idx1-ubyte.gz").unlink()
    code, err = run_evaluate(data_copy, trained_checkpoint, capsys)
    assert code == 2 and f"{data_copy} lacks train-labels-idx1-ubyte" in err and "only place looked at" in err


def test_fashion_files_under_mnist_names_are_named(fashion_dir, trained_checkpoint, capsys):
    code, err = run_evaluate(fashion_dir, trained_checkpoint, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "checksum mismatch" in err and "it is Fashion-MNIST's" in err and "--dataset fashion-mnist" in err


def gzip_bomb(path, header: bytes, size: int) -> None:
    """A small gzip file that decompresses to `size` bytes: an IDX header, then zeros."""
    packer, zeros = zlib.compressobj(1, zlib.DEFLATED, 31), bytes(1 << 20)
    with open(path, "wb") as f:
        f.write(packer.compress(header))
        for _ in range(size >> 20):
            f.write(packer.compress(zeros))
        f.write(packer.flush())


def test_gzip_bomb_is_refused_in_bounded_memory(data_copy, trained_checkpoint, capsys):
    labels = data_copy / "t10k-labels-idx1-ubyte.gz"
    gzip_bomb(labels, idx_bytes(np.zeros(0, np.uint8))[:4] + (64 << 20).to_bytes(4, "big"), 64 << 20)
    assert labels.stat().st_size < 1 << 20  # under 1 MB on disk, 64 MB decompressed
    tracemalloc.start()
    with pytest.raises(data.DataError, match="content larger than 10,008 bytes"):
        data.read_bytes(labels, data.expected_size("t10k-labels-idx1-ubyte"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 << 20  # read no further than the file's expected size
    code, err = run_evaluate(data_copy, trained_checkpoint, capsys)
    assert code == 2 and "gzip bomb" in err and err.count("\n") == 1


def test_unreadable_folder_is_one_line(tmp_path, trained_checkpoint):
    """chmod 000 on the data folder; root (who reads anything) runs the command without that power."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    argv = [sys.executable, "-m", "tinymnist", "evaluate", str(trained_checkpoint), "--data-dir", str(locked)]
    if os.geteuid() == 0:
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True)
    locked.chmod(0o700)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"tinymnist: error: {locked}: cannot read the folder (Permission denied)\n"
