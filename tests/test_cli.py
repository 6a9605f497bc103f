"""Command-line error paths: one line on stderr, exit code 2, no traceback."""

import torch

from tinymnist.cli import main


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
    fails(["train", "--epochs", "0"], capsys, "--epochs 0")
    fails(["train", "--lr", "-1"], capsys, "--lr")


def test_missing_run_folder(capsys, tmp_path):
    fails(["evaluate", str(tmp_path / "nope")], capsys, "no such run folder")
    fails(["evaluate", str(tmp_path)], capsys, "no model.pt or last.pt")
    fails(["train", "--resume", str(tmp_path / "nope")], capsys, "no such run folder")
    fails(["train", "--resume", str(tmp_path)], capsys, "not a tinymnist run folder")


def test_damaged_checkpoints(capsys, tmp_path, trained_checkpoint):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(trained_checkpoint.read_bytes()[:5000])
    fails(["evaluate", str(truncated)], capsys, "not a readable tinymnist checkpoint")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    fails(["evaluate", str(text)], capsys, "not a readable tinymnist checkpoint")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    fails(["evaluate", str(plain)], capsys, "not a tinymnist checkpoint")


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
    fails(["train", "--out", str(tmp_path), "--epochs", "1"], capsys, "already holds a run")
    assert (tmp_path / "config.json").read_text() == "{}"


def test_resume_refuses_other_options(capsys, tmp_path):
    fails(["train", "--resume", str(tmp_path), "--epochs", "3"], capsys, "--resume continues a run")


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
