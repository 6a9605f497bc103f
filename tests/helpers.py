"""Small builders shared by the tests: IDX files, an MNIST subset, an interrupted epoch, a paused process."""

import gzip
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinymnist.data import MNIST

SUBSET_CLI = [sys.executable, str(Path(__file__).parent / "subset_cli.py")]  # then N M ARGS...


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = True, magic: int | None = None) -> Path:
    raw = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def subset(data: MNIST, train: int | None, test: int | None) -> MNIST:
    """The first `train` training and `test` test images (None: all)."""
    return replace(
        data,
        train_images=data.train_images[:train],
        train_labels=data.train_labels[:train],
        test_images=data.test_images[:test],
        test_labels=data.test_labels[:test],
    )


def fake_timings(fastest: dict | None = None) -> Callable:
    """A stand-in for `precision.measure` that times nothing: `fastest` (default: float32,
    channels_last, all threads: the settings the tests' numbers were written for) takes 1 s per
    step, every other setting 1 s more for each way in which it differs."""
    import torch

    def measure(model_name, batch_size, device, settings):
        best = fastest or {"bf16": False, "channels_last": True, "threads": torch.get_num_threads()}
        return [1.0 + sum(s[k] != v for k, v in best.items()) for s in settings]

    return measure


def die_in_second_epoch(monkeypatch, engine_class) -> Callable[[], None]:
    """Make the second epoch of `engine_class` raise KeyboardInterrupt, as `kill -9` mid-epoch would
    stop it (nothing of that epoch is saved); returns the function that undoes it."""
    real, calls = engine_class.epoch, []

    def epoch(self, generator):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, generator)

    monkeypatch.setattr(engine_class, "epoch", epoch)
    return lambda: monkeypatch.setattr(engine_class, "epoch", real)


def paused_at_epoch(argv: list[str], epoch: int, ready: Path, **popen) -> subprocess.Popen:
    """`argv` (a SUBSET_CLI command) started, returned once it waits at the start of its `epoch`-th
    epoch (it has written `ready`) or has exited: a test then signals it at that known point."""
    env = {**popen.pop("env", os.environ), "PAUSE_AT_EPOCH": f"{epoch}:{ready}"}
    proc = subprocess.Popen(argv, env=env, **popen)
    while not ready.exists() and proc.poll() is None:
        time.sleep(0.02)
    return proc


LOCAL = "http://localhost"  # a TestClient's base URL for `serve`'s app, which answers to loopback host names only
