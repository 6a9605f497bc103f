"""Short real-data trainings on a subset: learning, determinism, resume."""

import json

import pytest
import torch

from helpers import SUBSET_CLI, die_in_second_epoch, paused_at_epoch, subset
from tinymnist import checkpoint, engines, training
from tinymnist.recipes import get, override

pytestmark = pytest.mark.slow  # trainings
SMALL = override(get("seed"), epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def small(mnist):
    return subset(mnist, 4000, 1000)


def quiet(line: str) -> None:
    pass


def test_short_training_learns(small, tmp_path):
    final = training.train(SMALL, small, tmp_path / "run", seed=3, log=quiet)
    assert final["final"]["test_accuracy"] > 0.90
    run = tmp_path / "run"
    assert {"config.json", "metrics.jsonl", "model.pt", "last.pt"} <= {p.name for p in run.iterdir()}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert json.loads((run / "config.json").read_text())["recipe"]["epochs"] == 2
    model, ckpt = checkpoint.load_model(run)
    assert ckpt["final"]["test_accuracy"] == final["final"]["test_accuracy"]


def test_bf16_autocast_learns_and_keeps_float32_weights(small, tmp_path):
    final = training.train(override(SMALL, bf16=True), small, tmp_path / "run", seed=3, log=quiet)
    assert final["final"]["test_accuracy"] > 0.90
    assert all(v.dtype in (torch.float32, torch.int64) for v in final["state_dict"].values())


def metrics(final: dict) -> dict:
    return {k: v for k, v in final["final"].items() if k not in ("seconds", "images_per_second")}


def test_same_seed_same_metrics(small, tmp_path):
    a = training.train(SMALL, small, tmp_path / "a", seed=5, log=quiet)
    b = training.train(SMALL, small, tmp_path / "b", seed=5, log=quiet)
    assert metrics(a) == metrics(b)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_resume_after_interruption_matches_uninterrupted(small, tmp_path, monkeypatch, engine):
    whole = training.train(SMALL, small, tmp_path / "whole", seed=7, log=quiet, engine=engine)
    assert whole["engine"] == engine and whole["final"]["test_accuracy"] > 0.90  # both engines learn
    restore = die_in_second_epoch(monkeypatch, training.EagerEngine if engine == "eager" else training.GraphEngine)
    with pytest.raises(KeyboardInterrupt):
        training.train(SMALL, small, tmp_path / "cut", seed=7, log=quiet, engine=engine)
    restore()
    assert not (tmp_path / "cut" / "model.pt").exists()
    recipe, config = training.resume_settings(tmp_path / "cut")
    assert config["engine"] == engine
    resumed = training.train(recipe, small, tmp_path / "cut", seed=config["seed"], resume=True, log=quiet)
    assert resumed["engine"] == engine
    assert metrics(resumed) == metrics(whole)
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2


def test_verdict_uses_the_final_epoch():
    history = [{"epoch": 1, "test_accuracy": 0.995}, {"epoch": 2, "test_accuracy": 0.993}]
    lines = training.verdict(19_712, history, "test")
    assert "[FAIL] final-epoch test accuracy 99.30%" in "\n".join(lines)
    assert "best epoch, for information only: 1" in lines[-1]


@pytest.mark.timeout(3600)  # three 2-epoch trainings on all of MNIST: over 300 s an epoch under load
def test_kill_9_mid_epoch_then_resume(tmp_path, mnist_dir):
    """A real `kill -9` during the second epoch: the run resumes and ends as an uninterrupted one."""
    import os
    import signal
    import subprocess

    from tinymnist.cli import main

    def argv(out):
        return [
            "train",
            "--model",
            "tiny3k",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--data-dir",
            str(mnist_dir),
            "--device",
            "cpu",
        ]

    cut = tmp_path / "cut"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # as the resume below: same numerics
    ready = tmp_path / "paused"  # written by the process at the start of its second epoch, where it waits
    proc = paused_at_epoch([*SUBSET_CLI, "all", "all", *argv(cut)], 2, ready, stdout=subprocess.DEVNULL, env=env)
    assert proc.poll() is None, f"it ended before its second epoch (exit code {proc.poll()})"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "model.pt").exists(), "the run ended before it was killed"
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 1
    assert main(["train", "--resume", str(cut), "--data-dir", str(mnist_dir), "--device", "cpu"]) == 0
    assert main(argv(tmp_path / "whole")) == 0
    resumed, whole = (json.loads((d / "metrics.jsonl").read_text().splitlines()[-1]) for d in (cut, tmp_path / "whole"))
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert resumed[key] == whole[key], key


def test_progress_lines_without_a_terminal(small, tmp_path, monkeypatch):
    monkeypatch.setattr(engines, "HEARTBEAT_SECONDS", 0.0)  # a line after every batch
    lines: list[str] = []
    training.train(
        override(SMALL, epochs=1), subset(small, 640, 100), tmp_path / "run", log=lines.append, progress=False
    )
    beats = [line for line in lines if "images/s" in line]
    assert len(beats) == 10 and "epoch 1: 10% (1/10 batches)" in beats[0], lines


def capture_fails(self) -> None:
    raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nCUDA kernel errors ...")


class Replays:
    """A captured graph's stand-in on the CPU: replaying it runs the step."""

    def __init__(self, engine: engines.GraphEngine) -> None:
        self.engine = engine

    def replay(self) -> None:
        self.engine.step()


def capture_once_then_fail(self) -> None:
    if self.graph is not None:
        capture_fails(self)
    self.graph, self.captured_side = Replays(self), self.side


def test_a_graph_run_whose_recapture_for_a_new_image_size_fails_goes_on_uncaptured(small, tmp_path, monkeypatch):
    recipe = override(SMALL, model="tiny4k", epochs=2, low_res=20, low_res_epochs=1)  # a model of any image size
    tiny = subset(small, 640, 200)
    uncaptured = training.train(recipe, tiny, tmp_path / "uncaptured", seed=3, log=quiet, engine="graph")
    monkeypatch.setattr(engines.GraphEngine, "capture", capture_once_then_fail)  # captured at 28x28, not at 20x20
    lines: list[str] = []
    final = training.train(recipe, tiny, tmp_path / "fell", seed=3, log=lines.append, engine="graph")
    reason = "graph engine: capture at 20x20 failed (CUDA error: operation not permitted when stream is capturing)"
    assert [line for line in lines if "failed" in line] == [reason + "; continuing uncaptured"]
    assert final["engine"] == "graph" and metrics(final) == metrics(uncaptured)  # the same steps, none lost
    config = json.loads((tmp_path / "fell" / "config.json").read_text())
    assert config["engine_fallback"] == final["engine_fallback"] == reason + "; continuing uncaptured"
    assert "engine_fallback" not in json.loads((tmp_path / "uncaptured" / "config.json").read_text())


def test_a_graph_run_whose_capture_fails_trains_with_the_eager_engine_and_says_why(small, tmp_path, monkeypatch):
    tiny, recipe = subset(small, 640, 200), override(SMALL, epochs=1)
    monkeypatch.setattr(engines.GraphEngine, "capture", capture_fails)  # as a GPU would fail it
    lines: list[str] = []
    final = training.train(recipe, tiny, tmp_path / "fell", seed=3, log=lines.append, engine="graph")
    reason = "graph engine: capture failed (CUDA error: operation not permitted when stream is capturing); "
    assert [line for line in lines if "capture failed" in line] == [reason + "training with the eager engine"]
    config = json.loads((tmp_path / "fell" / "config.json").read_text())
    assert config["engine"] == final["engine"] == "eager" and config["engine_fallback"] == final["engine_fallback"]
    eager = training.train(recipe, tiny, tmp_path / "eager", seed=3, log=quiet, engine="eager")
    assert metrics(final) == metrics(eager)  # exactly an eager run: nothing of the failed capture is left


def test_a_resumed_graph_run_whose_capture_fails_continues_uncaptured(small, tmp_path, monkeypatch):
    tiny = subset(small, 640, 200)
    whole = training.train(SMALL, tiny, tmp_path / "whole", seed=7, log=quiet, engine="graph")
    restore = die_in_second_epoch(monkeypatch, training.GraphEngine)
    with pytest.raises(KeyboardInterrupt):
        training.train(SMALL, tiny, tmp_path / "cut", seed=7, log=quiet, engine="graph")
    restore()
    monkeypatch.setattr(engines.GraphEngine, "capture", capture_fails)
    resumed = training.train(SMALL, tiny, tmp_path / "cut", seed=7, resume=True, log=quiet)
    assert resumed["engine"] == "graph" and resumed["engine_fallback"].endswith("training with its step uncaptured")
    assert metrics(resumed) == metrics(whole)  # its own optimizer state, continued exactly
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert config["engine"] == "graph" and config["engine_fallback"] == resumed["engine_fallback"]
