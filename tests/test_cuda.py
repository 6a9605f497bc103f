"""The graph engine on a real GPU: capture, replay, and exact resume after `kill -9`.

Skipped without CUDA (CI has none); `benchmarks/gpu_check.sh` runs these wherever a GPU is.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from helpers import SUBSET_CLI, paused_at_epoch, subset
from tinymnist import training
from tinymnist.recipes import get, override

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def quiet(line: str) -> None:
    pass


def final_metrics(final: dict) -> dict:
    return {k: v for k, v in final["final"].items() if k not in ("seconds", "images_per_second", "capture_seconds")}


def test_captured_step_learns_and_repeats_exactly(mnist, tmp_path):
    small = subset(mnist, 8192, 2000).to("cuda")
    recipe = override(get("gpu"), epochs=2)
    a = training.train(recipe, small, tmp_path / "a", seed=3, log=quiet)
    b = training.train(recipe, small, tmp_path / "b", seed=3, log=quiet)
    assert a["engine"] == "graph" and a["capture_seconds"] > 0
    assert a["final"]["test_accuracy"] > 0.9
    assert final_metrics(a) == final_metrics(b)


def test_captured_and_uncaptured_steps_agree(mnist, tmp_path, monkeypatch):
    small = subset(mnist, 8192, 2000).to("cuda")
    recipe = override(get("gpu"), epochs=2, bf16=False)
    captured = training.train(recipe, small, tmp_path / "graph", seed=4, log=quiet, precision_request="fp32")
    monkeypatch.setattr(training.GraphEngine, "capture", lambda self: None)  # the same step, run uncaptured
    eager = training.train(recipe, small, tmp_path / "eager", seed=4, log=quiet, precision_request="fp32")
    assert abs(captured["final"]["test_accuracy"] - eager["final"]["test_accuracy"]) < 0.01


def run(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tinymnist", "train", *args], env=env)


def test_kill_9_and_resume_ends_like_an_uninterrupted_graph_run(mnist_dir, tmp_path):
    common = ["--recipe", "gpu", "--epochs", "4", "--device", "cuda", "--data-dir", str(mnist_dir)]
    assert run(*common, "--out", str(tmp_path / "whole")).wait() == 0
    cut = tmp_path / "cut"
    argv = [*SUBSET_CLI, "all", "all", "train", *common, "--out", str(cut)]
    proc = paused_at_epoch(argv, 3, tmp_path / "paused")  # waits at its third epoch, two saved
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run("--resume", str(cut), "--device", "cuda", "--data-dir", str(mnist_dir)).wait() == 0

    def final(folder):
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        record = json.loads(lines[-1])
        return {k: v for k, v in record.items() if k not in ("seconds", "images_per_second", "capture_seconds")}

    assert final(cut) == final(tmp_path / "whole")
