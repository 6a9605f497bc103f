"""Nothing the user had is overwritten: every command that writes where the user pointed refuses, in one
line and before any work, a file where a folder belongs, a folder that is not empty nor its own, and an
existing file (unless --overwrite)."""

import json
from pathlib import Path

import pytest

import tinymnist
from helpers import subset
from tinymnist import recipes, repeat, training
from tinymnist.cli import main
from tinymnist.errors import TinyMnistError

NOT_OURS = {  # config.json contents that are not a tinymnist run's
    "empty object": "{}",
    "a list": "[1, 2]",
    "not JSON": "my own notes",
    "deeply nested": "[" * 100_000 + "]" * 100_000,
    "no recipe table": json.dumps({"recipe": "seed", "seed": 1}),
    "binary": "\x00\xff",
}


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (or `folder` itself, if a file) and its bytes."""
    if folder.is_file():
        return {folder: folder.read_bytes()}
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fails(argv: list[str], capsys, expected: str) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tinymnist: error: ") and err.count("\n") == 1, err
    assert expected in err, err


def users_folders(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Places a user may point --out at by mistake, and the reason each is refused."""
    cases = {}
    files = tmp_path / "my-files"
    files.mkdir()
    for name in ("notes.txt", "metrics.jsonl", "curves.png", "summary.json"):
        (files / name).write_text(f"the user's own {name}")
    cases["a folder of the user's files"] = (files, "neither empty nor")
    a_file = tmp_path / "thesis.tex"
    a_file.write_text("the user's thesis")
    cases["a file where a folder belongs"] = (a_file, "is a file, not a folder")
    for what, text in NOT_OURS.items():
        folder = tmp_path / what.replace(" ", "-")
        folder.mkdir()
        (folder / "config.json").write_text(text)
        cases[f"config.json: {what}"] = (folder, "neither empty nor a tinymnist run folder")
    config_folder = tmp_path / "config-is-a-folder"
    (config_folder / "config.json").mkdir(parents=True)
    cases["config.json is a folder"] = (config_folder, "neither empty nor")
    return cases


def test_train_out_refuses_what_is_not_a_run_before_writing(tmp_path, capsys, monkeypatch, mnist_dir):
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("started training"))
    for case, (out, reason) in users_folders(tmp_path).items():
        before = snapshot(out)
        fails(["train", "--out", str(out), "--epochs", "1", "--data-dir", str(mnist_dir)], capsys, reason)
        assert snapshot(out) == before, case
        with pytest.raises(TinyMnistError, match=reason):
            tinymnist.train(out=out, epochs=1, data_dir=mnist_dir)
        assert snapshot(out) == before, case


def test_a_nul_in_the_run_folder_is_one_sentence(tmp_path):
    with pytest.raises(TinyMnistError, match="a path cannot contain a NUL character"):
        tinymnist.train(out=tmp_path / "a\0b", epochs=1, data_dir=tmp_path)


def test_the_training_loop_refuses_them_too(tmp_path, mnist):
    """repeat, sweep and scripts train through `training.train`: it checks its folder itself."""
    small = subset(mnist, 256, 64)
    for case, (out, reason) in users_folders(tmp_path).items():
        before = snapshot(out)
        with pytest.raises(TinyMnistError, match=reason):
            training.train(recipes.override(recipes.get("tiny3k"), epochs=1), small, out, progress=False)
        assert snapshot(out) == before, case


def test_a_run_stopped_before_its_first_epoch_ended_can_start_again(tmp_path, mnist, monkeypatch):
    small = subset(mnist, 256, 64)
    recipe = recipes.override(recipes.get("tiny3k"), epochs=1, batch_size=64)
    out = tmp_path / "run"

    def interrupted(self, generator):
        raise KeyboardInterrupt

    monkeypatch.setattr(training.EagerEngine, "epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        training.train(recipe, small, out, progress=False, log=lambda line: None)
    assert [p.name for p in out.iterdir()] == ["config.json"]
    monkeypatch.undo()
    run = tinymnist.train(recipe, out=out, mnist=small)  # as the docs promise: --out DIR accepts it
    assert len(run.history) == 1 and (out / "model.pt").is_file()


def test_export_refuses_an_existing_file_unless_overwrite(trained_checkpoint, mnist_dir, tmp_path, capsys):
    out = tmp_path / "model.torchscript.pt"
    out.write_text("the user's file")
    argv = [
        "export",
        str(trained_checkpoint),
        "--format",
        "torchscript",
        "--out",
        str(out),
        "--data-dir",
        str(mnist_dir),
    ]
    fails(argv, capsys, f"{out}: already exists; pass --overwrite")
    assert out.read_text() == "the user's file"
    fails([*argv[:-4], "--out", str(tmp_path), *argv[-2:]], capsys, f"{tmp_path}: is a folder")
    assert main([*argv, "--overwrite"]) == 0
    assert out.read_bytes() != b"the user's file"


def test_evaluate_refuses_the_users_plots_unless_overwrite(trained_checkpoint, mnist_dir, tmp_path, capsys):
    folder = tmp_path / "downloads"  # a checkpoint file among the user's own files: its plots go beside it
    folder.mkdir()
    checkpoint = folder / "model.pt"
    checkpoint.write_bytes(trained_checkpoint.read_bytes())
    (folder / "mistakes.png").write_text("the user's picture")
    data = ["--data-dir", str(mnist_dir), "--device", "cpu"]
    fails(["evaluate", str(checkpoint), *data], capsys, f"{folder / 'mistakes.png'}: already exists")
    fails(["evaluate", str(checkpoint), "--out", str(checkpoint), *data], capsys, "is a file, not a folder")
    assert (folder / "mistakes.png").read_text() == "the user's picture"
    assert main(["evaluate", str(checkpoint), *data, "--overwrite"]) == 0
    assert (folder / "mistakes.png").read_bytes().startswith(b"\x89PNG")


def test_repeat_refuses_before_any_seed_trains(tmp_path, capsys, monkeypatch, mnist_dir):
    monkeypatch.setattr(repeat, "train", lambda *a, **k: pytest.fail("started training"))
    base = ["repeat", "--recipe", "tiny3k", "--seeds", "2", "--data-dir", str(mnist_dir)]
    runs, results = tmp_path / "runs", tmp_path / "results"
    fails([*base, "--name", "../escape", "--runs", str(runs), "--out", str(results)], capsys, "a plain file name")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    fails([*base, "--runs", str(runs), "--out", str(a_file)], capsys, "is a file, not a folder")
    fails([*base, "--runs", str(a_file), "--out", str(results)], capsys, "is a file, not a folder")
    (runs / "tiny3k-seed2").mkdir(parents=True)
    (runs / "tiny3k-seed2" / "notes.txt").write_text("mine")
    fails([*base, "--runs", str(runs), "--out", str(results)], capsys, "neither empty nor a tinymnist run folder")
    assert a_file.read_text() == "mine" and not results.exists()
    assert [p.name for p in (runs / "tiny3k-seed2").iterdir()] == ["notes.txt"]


def test_sweep_refuses_a_folder_of_other_files(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "summary.json").write_text("the user's summary")
    fails(["sweep", str(folder), "--space", "tiny4k", "--trials", "0"], capsys, "neither empty nor a tinymnist sweep")
    assert [p.name for p in folder.iterdir()] == ["summary.json"]
    assert main(["sweep", str(tmp_path / "new"), "--space", "tiny4k", "--trials", "0"]) == 0
    assert main(["sweep", str(tmp_path / "new"), "--trials", "0"]) == 0  # its own folder: continued
