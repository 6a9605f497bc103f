"""The multi-seed protocol on a small subset."""

import hashlib
import json
import os
import shutil
import subprocess
from functools import partial
from pathlib import Path

import pytest
import torch

from helpers import die_in_second_epoch, subset
from tinymnist import engines, models, results, training
from tinymnist import repeat as repeat_module
from tinymnist.cli import main
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import get, override, to_dict

TINY = override(get("tiny4k"), epochs=1, batch_size=100)


@pytest.fixture
def small_data(mnist, monkeypatch):
    small = subset(mnist, 2000, 500)
    monkeypatch.setattr(repeat_module.data, "load", lambda *a, **k: small)


def test_two_seeds_then_a_rerun_trains_nothing(small_data, tmp_path, monkeypatch):
    out, runs = tmp_path / "results" / "tiny.json", tmp_path / "runs"
    state = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    saved = json.loads(out.read_text())
    assert [r["seed"] for r in saved["runs"]] == [1, 2] == [r["seed"] for r in state["runs"]]
    assert saved["summary"]["seeds"] == 2 and saved["machine"]["cores"] >= 1
    assert all(r["machine"]["git_commit"] == saved["machine"]["git_commit"] for r in saved["runs"])
    assert saved["runs"][0]["test_loss"] != saved["runs"][1]["test_loss"]  # different seeds differ

    monkeypatch.setattr(repeat_module, "train_seed", lambda *a: pytest.fail("trained again"))
    again = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    assert again["runs"] == saved["runs"]


def test_a_stopped_sweep_keeps_its_finished_seeds(small_data, tmp_path):
    out, runs = tmp_path / "tiny.json", tmp_path / "runs"
    repeat_module.repeat("tiny", TINY, 1, out, runs, log=lambda s: None)
    state = repeat_module.repeat("tiny", TINY, 2, out, runs, log=lambda s: None)
    assert [r["seed"] for r in state["runs"]] == [1, 2]


def test_damaged_results_file_is_an_error_and_kept(tmp_path, capsys):
    damaged = tmp_path / "seed.json"
    damaged.write_text('{"runs": [')
    code = main(["repeat", "--recipe", "seed", "--seeds", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "damaged results file" in err and str(damaged) in err
    assert damaged.read_text() == '{"runs": ['


def test_results_of_another_recipe_are_not_mixed_in(small_data, tmp_path):
    out = tmp_path / "tiny.json"
    repeat_module.repeat("tiny", TINY, 1, out, tmp_path / "runs", log=lambda s: None)
    with pytest.raises(TinyMnistError, match=f"different 'tiny' recipe \\(lr {TINY.lr} recorded, 0.2 now\\)"):
        repeat_module.repeat("tiny", override(TINY, lr=0.2), 1, out, tmp_path / "runs", log=lambda s: None)


def test_results_of_a_zoo_row_whose_widths_changed_are_not_mixed_in(small_data, tmp_path, monkeypatch):
    out = tmp_path / "tiny.json"
    repeat_module.repeat("tiny", TINY, 1, out, tmp_path / "runs", log=lambda s: None)
    before = models.count_parameters(models.create(TINY.model))
    monkeypatch.setitem(models.MODELS, TINY.model, partial(models.TinyNet, (4, 4, 8, 8)))  # same name, other size
    after = models.count_parameters(models.create(TINY.model))
    why = f"model {TINY.model} had {before:,} parameters, {after:,} now"
    with pytest.raises(TinyMnistError, match=f"different 'tiny' recipe \\({why}\\)"):
        repeat_module.repeat("tiny", TINY, 1, out, tmp_path / "runs", log=lambda s: None)


def test_a_seed_run_folder_of_another_recipe_is_not_resumed(small_data, tmp_path):
    runs = tmp_path / "runs"
    repeat_module.repeat("tiny", TINY, 1, tmp_path / "a.json", runs, log=lambda s: None)
    (runs / "tiny-seed1" / "model.pt").unlink()  # as if interrupted: last.pt and config.json remain
    kept = (runs / "tiny-seed1" / "last.pt").read_bytes()
    other = override(TINY, weight_decay=0.0)
    with pytest.raises(TinyMnistError, match="tiny-seed1: a run of another recipe or seed \\(weight_decay"):
        repeat_module.repeat("tiny", other, 1, tmp_path / "b.json", runs, log=lambda s: None)
    assert (runs / "tiny-seed1" / "last.pt").read_bytes() == kept and not (tmp_path / "b.json").exists()


def test_wall_time_covers_every_process_of_a_resumed_seed(small_data, tmp_path, monkeypatch):
    recipe, out, runs = override(TINY, epochs=2), tmp_path / "tiny.json", tmp_path / "runs"
    restore = die_in_second_epoch(monkeypatch, training.EagerEngine)
    with pytest.raises(KeyboardInterrupt):
        repeat_module.repeat("tiny", recipe, 1, out, runs, log=lambda s: None)
    first = torch.load(runs / "tiny-seed1" / "last.pt", weights_only=True)["wall_seconds"]
    restore()
    row = repeat_module.repeat("tiny", recipe, 1, out, runs, log=lambda s: None)["runs"][0]
    assert row["epochs"] == 2 and row["wall_seconds"] > first > 0
    assert row["wall_seconds"] >= row["train_seconds"]  # both epochs' processes, not only the last


def test_a_seed_whose_graph_capture_failed_says_so_in_its_row(small_data, tmp_path, monkeypatch):
    def failing(self):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(engines.GraphEngine, "capture", failing)
    monkeypatch.setattr(repeat_module, "train", partial(training.train, engine="graph"))  # as on CUDA
    row = repeat_module.train_seed(TINY, 1, tmp_path / "seed1", None, "cpu", 0)
    assert row["engine"] == "eager" and row["engine_fallback"].startswith("graph engine: capture failed (CUDA error")


def git_repo(folder, project: str) -> Path:
    """A git repository whose pyproject.toml names `project`, with one commit; returns its src/tinymnist."""
    package = folder / "src" / "tinymnist"
    package.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{project}"\n')
    (package / "a.py").write_text("x = 1\n")
    git(folder, "init", "-q")
    git(folder, "add", ".")
    git(folder, "commit", "-qm", "a")
    return package


def git(folder, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True)


def test_a_dirty_commit_records_what_changed(tmp_path):
    package = git_repo(tmp_path, "tinymnist")
    clean = results.git_state(package)
    assert list(clean) == ["git_commit"] and "+" not in clean["git_commit"]
    (package / "a.py").write_text("x = 2\n")
    dirty = results.git_state(package)
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert dirty == {
        "git_commit": clean["git_commit"] + "+dirty",
        "git_changed_files": ["src/tinymnist/a.py"],
        "git_diff_sha256": hashlib.sha256(diff.encode()).hexdigest(),
    }


def test_a_copy_installed_inside_another_repository_records_no_commit(tmp_path):
    """tinymnist in a .venv (or vendored under src/) of the user's own repository: not its commit."""
    git_repo(tmp_path, "users-project")
    venv_copy = tmp_path / ".venv" / "lib" / "python3.12" / "site-packages" / "tinymnist"
    shutil.copytree(results.PACKAGE, venv_copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    (venv_copy / "results.py").write_text("changed = True\n")  # the user's repository is dirty
    assert results.git_state(venv_copy) == {"git_commit": None}
    assert results.git_state(tmp_path / "src" / "tinymnist") == {"git_commit": None}  # another project's src/


def test_the_real_checkout_records_its_commit():
    if results.checkout(results.PACKAGE) is None:
        pytest.skip("tinymnist runs from an installed copy here, not from its git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=results.PACKAGE, capture_output=True, text=True).stdout
    assert results.git_state()["git_commit"].removesuffix("+dirty") == head.strip()


def test_a_hanging_git_gives_no_commit_instead_of_hanging(tmp_path, monkeypatch):
    package = git_repo(tmp_path / "repo", "tinymnist")
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 600\n")  # a child process that keeps the output pipe open, too
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(results, "GIT_SECONDS", 0.5)
    assert results.git_state(package) == {"git_commit": None}


def test_ctrl_c_in_repeat_says_the_same_command_continues(tmp_path, monkeypatch, capsys, mnist_dir):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(repeat_module, "repeat", interrupted)
    assert main(["repeat", "--recipe", "tiny3k", "--out", str(tmp_path), "--data-dir", str(mnist_dir)]) == 130
    assert "the same command continues" in capsys.readouterr().err


def test_a_recipe_file_is_repeated_under_its_name(small_data, tmp_path, capsys):
    recipe_file = tmp_path / "best-recipe.json"
    recipe_file.write_text(json.dumps({"recipe": to_dict(TINY), "sweep": {"study": "s", "trial": 3}}))
    for argv, name in ([], "best-recipe"), (["--name", "mine"], "mine"):
        common = ["--seeds", "1", "--out", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")]
        assert main(["repeat", "--recipe", str(recipe_file), *argv, *common, "--device", "cpu"]) == 0
        saved = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert saved["name"] == name and saved["recipe"] == to_dict(TINY) and len(saved["runs"]) == 1
    assert "99.40%" in capsys.readouterr().out  # MNIST results say how many seeds reached the target

    longer = ["--recipe", str(recipe_file), "--set", "epochs=2", *common, "--device", "cpu"]
    assert main(["repeat", *longer]) == 2  # a changed recipe needs its own name
    assert "name its results with --name" in capsys.readouterr().err
    assert main(["repeat", *longer, "--name", "longer", "--seeds", "0"]) == 2  # --seeds is checked too
    assert not (tmp_path / "results" / "longer.json").exists()
