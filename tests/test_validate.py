"""scripts/validate.py: a validation record from a real (small) run, resumed and reused."""

import importlib.util
import json

import pytest

from conftest import ROOT
from helpers import die_in_second_epoch, subset
from tinymnist import checkpoint, data, training

spec = importlib.util.spec_from_file_location("validate", ROOT / "scripts" / "validate.py")
validate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validate)

TRAIN_ARGS = ["--recipe", "tiny3k", "--epochs", "2", "--batch-size", "100", "--seed", "3"]


@pytest.fixture
def small_data(mnist, monkeypatch):
    small = subset(mnist, 6000, 100)  # the validation split holds out 5,000 of the 6,000
    monkeypatch.setattr(data, "load", lambda *a, **k: small)


def test_record_then_reuse_then_refuse_other_args(small_data, tmp_path, monkeypatch, capsys):
    folders = ["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "records")]
    validate.main(["tiny", *folders, "--", *TRAIN_ARGS])
    saved = json.loads((tmp_path / "records" / "tiny.json").read_text())
    run = checkpoint.read(tmp_path / "runs" / "tiny" / checkpoint.FINAL)
    assert saved["history"] == run["history"] and len(saved["history"]) == 2
    assert saved["final_val_accuracy"] == run["history"][-1]["val_accuracy"]
    assert saved["config"]["split"] == "val" and saved["config"]["eval_images"] == 5000
    assert saved["config"]["recipe"]["model"] == "tiny3k" and saved["config"]["seed"] == 3
    assert saved["command"] == "tinymnist train " + " ".join(TRAIN_ARGS) + " --val 5000"
    assert "git_commit" in saved["machine"] and saved["what"].startswith("validation run: trained on 1,000")

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained again"))
    validate.main(["tiny", *folders, "--", *TRAIN_ARGS])
    assert json.loads((tmp_path / "records" / "tiny.json").read_text())["history"] == saved["history"]

    with pytest.raises(SystemExit) as stop:
        validate.main(["tiny", *folders, "--", *TRAIN_ARGS[:-1], "4"])
    assert stop.value.code == 2 and "started with other TRAIN_ARGS" in capsys.readouterr().err
    validate.args_file(tmp_path / "runs", "tiny").unlink()
    with pytest.raises(SystemExit) as stop:
        validate.main(["tiny", *folders, "--", *TRAIN_ARGS])
    assert stop.value.code == 2 and "a run not started by this script" in capsys.readouterr().err


def test_an_interrupted_run_is_resumed(small_data, tmp_path, monkeypatch):
    folders = ["--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "records")]
    restore = die_in_second_epoch(monkeypatch, training.EagerEngine)
    with pytest.raises(SystemExit):
        validate.main(["cut", *folders, "--", *TRAIN_ARGS])
    assert not (tmp_path / "records" / "cut.json").exists()
    restore()
    validate.main(["cut", *folders, "--", *TRAIN_ARGS])
    validate.main(["whole", *folders, "--", *TRAIN_ARGS])
    cut, whole = (json.loads((tmp_path / "records" / f"{n}.json").read_text()) for n in ("cut", "whole"))
    assert cut["final_val_accuracy"] == whole["final_val_accuracy"]


@pytest.mark.parametrize("option", [["--val", "100"], ["--out", "x"], ["--data-dir", "x"], ["--resume", "x"]])
def test_options_the_script_sets_are_refused(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        validate.main(["x", "--runs", str(tmp_path), "--", *TRAIN_ARGS, *option])
    assert stop.value.code == 2 and "set by this script" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
