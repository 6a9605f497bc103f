"""Command-line error paths: one line on stderr, exit code 2, no traceback."""

import datetime
import json
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from helpers import subset
from tinymnist import models, recipes, training
from tinymnist.cli import build_parser, main
from tinymnist.optim import make_optimizer


def fails(argv, capsys, expected):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("tinymnist: error: ") and err.count("\n") == 1, err
    assert expected in err, err


def test_unknown_recipe_and_model(capsys):
    fails(["train", "--recipe", "nope"], capsys, "unknown recipe")
    fails(["train", "--model", "nope"], capsys, "unknown model")


def test_bad_numbers(capsys):
    fails(["train", "--epochs", "0"], capsys, "epochs=0: must be at least 1")
    fails(["train", "--lr", "-1"], capsys, "lr=-1.0: must be positive")
    fails(["train", "--set", "batch_size=0"], capsys, "batch_size=0: must be at least 1")
    fails(["train", "--set", "schedule=cosine"], capsys, "schedule='cosine': choose onecycle or constant")


def test_bad_settings_and_recipe_files(capsys, tmp_path):
    fails(["train", "--set", "nope=1"], capsys, "unknown recipe field 'nope'")
    fails(["train", "--set", "lr=fast"], capsys, "lr takes a float, not 'fast'")
    fails(["train", "--set", "bf16=maybe"], capsys, "bf16 takes a bool")
    fails(["train", "--set", "epochs"], capsys, "expected NAME=VALUE")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"recipe": {"model": "seed", "epochs": 3}}))
    fails(["train", "--recipe", str(partial)], capsys, "lacks field(s) batch_size")
    broken = tmp_path / "broken.toml"
    broken.write_text("lr = = 3")
    fails(["train", "--recipe", str(broken)], capsys, "not valid TOML")
    typed = tmp_path / "typed.toml"
    typed.write_text('base = "seed"\nepochs = "ten"\n')
    fails(["train", "--recipe", str(typed)], capsys, "epochs='ten': must be int, not str")
    fails(["train", "--recipe", str(tmp_path / "none.toml")], capsys, "cannot read")


def test_missing_run_folder(capsys, tmp_path):
    fails(["evaluate", str(tmp_path / "nope")], capsys, "no such run folder")
    fails(["evaluate", str(tmp_path)], capsys, "no model.pt or last.pt")
    fails(["train", "--resume", str(tmp_path / "nope")], capsys, "no such run folder")
    fails(["train", "--resume", str(tmp_path)], capsys, "not a tinymnist run folder (no config.json")


def test_damaged_checkpoints(capsys, tmp_path, trained_checkpoint):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained_checkpoint.read_bytes()[:5000])
    fails(["evaluate", str(truncated)], capsys, "not a tinymnist checkpoint (not a PyTorch checkpoint file")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    fails(["evaluate", str(text)], capsys, "not a tinymnist checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    fails(["evaluate", str(plain)], capsys, "not a tinymnist checkpoint")
    fails(["evaluate", "/dev/null"], capsys, "not a tinymnist checkpoint (not a regular file)")


def test_a_checkpoint_weights_only_refuses_is_named_never_unpickled(capsys, tmp_path, trained_checkpoint):
    crafted = torch.load(trained_checkpoint, weights_only=True)
    crafted["note"] = datetime.datetime(2026, 1, 1)  # not a tensor or plain value: refused by weights_only
    path = tmp_path / "objects.pt"
    torch.save(crafted, path)
    for argv in (["evaluate"], ["export", "--format", "onnx"], ["predict", "x.png"]):
        fails([argv[0], str(path), *argv[1:]], capsys, "objects.pt: not a tinymnist checkpoint (refused")
    main(["evaluate", str(path)])
    err = capsys.readouterr().err.replace(str(path), "FILE")
    assert "nothing in it was run" in err and "weights_only" not in err, err


def test_predict_with_the_run_folder_forgotten(capsys, tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("L", (28, 28)).save(tmp_path / name)
    fails(["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png")], capsys, "a.png: not a tinymnist checkpoint")
    main(["predict", str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    err = capsys.readouterr().err.replace(str(tmp_path), "DIR")
    assert "weights_only" not in err and "run folder" in err, err


@pytest.mark.parametrize("field", ["model", "state_dict"])
@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "serve"])
def test_crafted_checkpoint_fields_of_the_wrong_type(capsys, tmp_path, trained_checkpoint, field, command):
    crafted = torch.load(trained_checkpoint, weights_only=True)
    crafted[field] = ["seed"] if field == "model" else [torch.zeros(3)]
    torch.save(crafted, tmp_path / "crafted.pt")
    extra = {"predict": ["x.png"], "export": ["--format", "torchscript"], "serve": ["--port", "0"]}
    fails([command, str(tmp_path / "crafted.pt"), *extra.get(command, [])], capsys, "of the wrong type")


def test_checkpoint_of_another_model(capsys, tmp_path, trained_checkpoint):
    other = torch.load(trained_checkpoint, weights_only=True)
    other["state_dict"] = {"conv.weight": torch.zeros(8, 1, 3, 3)}
    torch.save(other, tmp_path / "other.pt")
    fails(["evaluate", str(tmp_path / "other.pt")], capsys, "weights do not fit model 'seed'")
    other["model"] = "resnet152"
    torch.save(other, tmp_path / "unknown.pt")
    fails(["evaluate", str(tmp_path / "unknown.pt")], capsys, "unknown model 'resnet152'")


def test_out_folder_with_a_run_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "last.pt").write_text("epoch 1")
    fails(["train", "--out", str(tmp_path), "--epochs", "1"], capsys, "already holds a run")
    assert (tmp_path / "config.json").read_text() == "{}" and (tmp_path / "last.pt").read_text() == "epoch 1"


def run_folder(tmp_path, trained_checkpoint) -> tuple:
    """A run folder of the fixture's recipe (config.json only) and the fixture checkpoint's dict."""
    ckpt = torch.load(trained_checkpoint, weights_only=True)
    run = tmp_path / "run"
    run.mkdir()
    recipe = {**recipes.to_dict(recipes.get("seed")), **ckpt["recipe"]}  # the fixture predates some fields
    config = {"recipe": recipe, "seed": 1, "split": "test", "train_images": 60000, "eval_images": 10000}
    (run / "config.json").write_text(json.dumps(config))
    return run, ckpt


def test_resume_with_a_model_pt_copied_to_last_pt(capsys, tmp_path, trained_checkpoint, mnist_dir):
    run, _ = run_folder(tmp_path, trained_checkpoint)
    shutil.copy(trained_checkpoint, run / "last.pt")
    resume = ["train", "--resume", str(run), "--data-dir", str(mnist_dir), "--device", "cpu"]
    fails(resume, capsys, "last.pt: not a last.pt (no optimizer, schedule and history in it; a copied model.pt?)")


def test_resume_with_another_runs_last_pt(capsys, tmp_path, trained_checkpoint, mnist_dir):
    run, ckpt = run_folder(tmp_path, trained_checkpoint)
    other = recipes.get("tiny3k")
    model = models.create(other.model)
    opt, sched = make_optimizer(model.parameters(), other, 100)
    last = {"model": other.model, "state_dict": model.state_dict(), "recipe": recipes.to_dict(other)}
    last |= {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": []}
    torch.save(last, run / "last.pt")
    resume = ["train", "--resume", str(run), "--data-dir", str(mnist_dir), "--device", "cpu"]
    fails(resume, capsys, "saved by a run of another recipe")
    torch.save(last | {"recipe": ckpt["recipe"]}, run / "last.pt")  # the right recipe, the wrong weights
    fails(resume, capsys, "last.pt: does not fit this run")


def test_resume_refuses_other_options(capsys, tmp_path):
    fails(["train", "--resume", str(tmp_path), "--epochs", "3"], capsys, "--resume continues a run")


@pytest.mark.slow  # evaluates all 10,000 test images
def test_evaluate_prints_accuracy(capsys, trained_checkpoint, mnist_dir, tmp_path):
    argv = [
        "evaluate",
        str(trained_checkpoint),
        "--data-dir",
        str(mnist_dir),
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    assert (tmp_path / "confusion.png").is_file() and (tmp_path / "mistakes.png").is_file()
    out = capsys.readouterr().out
    assert "accuracy 9" in out and "per-class accuracy" in out


def test_recipe_files_round_trip_a_runs_config(tmp_path, mnist):
    recipe = recipes.override(recipes.get("tiny3k"), epochs=1, lr=0.02, label_smoothing=0.1)
    training.train(recipe, subset(mnist, 256, 100), tmp_path / "run", log=lambda line: None)
    assert recipes.resolve(str(tmp_path / "run" / "config.json")) == recipe
    (tmp_path / "mine.toml").write_text('[recipe]\nbase = "tiny3k"\nepochs = 1\nlr = 0.02\nlabel_smoothing = 0.1\n')
    assert recipes.resolve(str(tmp_path / "mine.toml")) == recipe
    assert dict(map(recipes.parse_setting, ["lr=0.02", "bf16=yes", "epochs=1"])) == {
        "lr": 0.02,
        "bf16": True,
        "epochs": 1,
    }


def test_help_and_version_answer_without_importing_torch():
    code = "import sys; from tinymnist.cli import main; main(sys.argv[1:])"
    for argv in (["--help"], ["--version"], ["train", "--help"]):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", code, *argv], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
        assert "torch" not in imported and "matplotlib" not in imported, argv
    assert out.stdout.count("example:") == 1
    version = subprocess.run([sys.executable, "-m", "tinymnist", "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"tinymnist {__import__('tinymnist').__version__}"


def test_every_subcommand_has_a_description_and_an_example():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "evaluate", "repeat", "serve", "summary", "models", "predict", "export", "sweep"}
    for name, parser in commands.items():
        text = parser.format_help()
        assert parser.description and f"example:\n  tinymnist {name}" in text, name


def test_the_dataset_names_of_help_are_the_registry():
    from tinymnist import cli, data

    assert cli.DATASETS == tuple(data.DATASETS)
