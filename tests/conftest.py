"""Shared test fixtures: where MNIST is, and a small trained checkpoint."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The local MNIST copy (TINYMNIST_DATA, else ../shared/mnist beside the repository)."""
    path = Path(os.environ.get("TINYMNIST_DATA") or ROOT.parent / "shared" / "mnist")
    if not (path / "t10k-labels-idx1-ubyte.gz").exists() and not (path / "t10k-labels-idx1-ubyte").exists():
        pytest.fail(f"MNIST not found at {path}: set TINYMNIST_DATA")
    return path


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from tinymnist import data

    return data.load(mnist_dir, download=False)


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """Fashion-MNIST's four original files, from Debian's dataset-fashion-mnist (.ci/run installs it)."""
    from tinymnist import data

    folder = Path(data.DATASETS["fashion-mnist"].system[0])
    if not (folder / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not at {folder}: apt-get install dataset-fashion-mnist (as .ci/run does)")
    return folder


@pytest.fixture(scope="session")
def fashion(fashion_dir):
    from tinymnist import data

    return data.load(fashion_dir, download=False, dataset="fashion-mnist")


@pytest.fixture(scope="session")
def trained_checkpoint() -> Path:
    """The seed network after 2 epochs (about 99% test accuracy); see fixtures/README.md."""
    return FIXTURES / "seed-2epochs.pt"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Never touch the user's real cache from a test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def no_timing(monkeypatch):
    """Training in a test does not time the candidate settings (seconds each): fake timings pick
    float32, channels_last, all threads. tests/test_precision.py times for real where it means to."""
    from helpers import fake_timings
    from tinymnist import precision

    monkeypatch.setattr(precision, "measure", fake_timings())
