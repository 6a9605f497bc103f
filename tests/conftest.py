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


SLOW_TIMEOUT = 1800  # seconds: real processes on a loaded 2-core machine took over 300 s an epoch

# Fixtures that start something slow: a test using one gets these marks (see pyproject's markers).
MARKS_OF_FIXTURES = {
    "postgres_url": ("postgres",),
    "page": ("browser",),
    "server_url": ("browser",),
    "fashion_run": ("slow",),  # trains
    "small_data": ("slow",),  # test_repeat, test_validate: they train on it
}


def pytest_collection_modifyitems(config, items) -> None:
    """Mark tests by the fixtures they use; postgres, browser and gpu tests are slow too, and slow
    tests have SLOW_TIMEOUT seconds unless they say otherwise (pyproject's timeout for the others)."""
    for item in items:
        for fixture in item.fixturenames:
            for mark in MARKS_OF_FIXTURES.get(fixture, ()):
                item.add_marker(mark)
        if any(item.get_closest_marker(m) for m in ("postgres", "browser", "gpu")):
            item.add_marker("slow")
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


@pytest.fixture(autouse=True)
def fast_tests_do_not_train(request, monkeypatch):
    """Under `-m "not slow"` (make test-fast), an unmarked test that trains or starts the tinymnist
    command in a process is skipped when it gets there: it runs in `make test`; mark it slow."""
    if "not slow" not in request.config.getoption("markexpr", "") or request.node.get_closest_marker("slow"):
        return
    import subprocess

    from tinymnist import engines

    def skip(*args, **kwargs):
        pytest.skip("trains a model or starts tinymnist: runs in `make test` (mark it slow)")

    for engine in (engines.EagerEngine, engines.GraphEngine):
        monkeypatch.setattr(engine, "epoch", skip)
    real_popen = subprocess.Popen.__init__

    def popen(self, args, *rest, **kwargs):
        if any(a == "tinymnist" or str(a).endswith("subset_cli.py") for a in list(args)[1:3]):
            skip()
        real_popen(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", popen)


@pytest.fixture(autouse=True)
def no_timing(monkeypatch):
    """Training in a test does not time the candidate settings (seconds each): fake timings pick
    float32, channels_last, all threads. tests/test_precision.py times for real where it means to."""
    from helpers import fake_timings
    from tinymnist import precision

    monkeypatch.setattr(precision, "measure", fake_timings())
