"""Runs stopped by kill -9, Ctrl-C or a full disk: one line, nothing lost, and the command that
the message names (or the same command) continues. Real `tinymnist` processes on an MNIST subset."""

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import SUBSET_CLI, paused_at_epoch, subset
from tinymnist import checkpoint, data
from tinymnist.cli import main

pytestmark = pytest.mark.slow  # real processes and trainings
CLI = [*SUBSET_CLI, "2000", "200"]


def train_args(out: Path, mnist_dir: Path, epochs: int = 1) -> list[str]:
    return ["train", "--model", "tiny3k", "--epochs", str(epochs), "--out", str(out), "--data-dir", str(mnist_dir)]


def tinymnist(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def stopped_in_first_epoch(out: Path, mnist_dir: Path, sig: int) -> subprocess.Popen:
    """A `train` process sent `sig` while it waits inside its first epoch (its config.json written)."""
    ready = out.parent / f"{out.name}.paused"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc = paused_at_epoch([*CLI, *train_args(out, mnist_dir)], 1, ready, **pipes)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    proc.wait(timeout=300)
    assert (out / "config.json").is_file() and not (out / checkpoint.LAST).exists()
    return proc


def run_settings(run: Path) -> tuple:
    """What decides a run's numbers: recipe, seed, split, engine and whether it used bf16."""
    config = json.loads((run / "config.json").read_text())
    return config["recipe"], config["seed"], config["split"], config["engine"], config["precision"]["bf16"]


def test_ctrl_c_in_the_first_epoch_names_the_command_that_continues(tmp_path, mnist_dir):
    cut = tmp_path / "cut"
    proc = stopped_in_first_epoch(cut, mnist_dir, signal.SIGINT)
    err = proc.stderr.read()
    assert proc.returncode == 130 and err.count("\n") == 1 and "continue with: tinymnist train --resume" in err, err
    command = shlex.split(err.split("continue with: ", 1)[1])
    assert command[:4] == ["tinymnist", "train", "--resume", str(cut)]
    settings = run_settings(cut)
    resumed = tinymnist(*command[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert "no completed epoch to resume from; starting it again with its settings" in resumed.stdout
    assert run_settings(cut) == settings
    assert len(torch.load(cut / checkpoint.FINAL, weights_only=True)["history"]) == 1


def test_kill_9_in_the_first_epoch_or_its_save_then_train_again_or_resume(tmp_path, mnist_dir):
    cut = tmp_path / "cut"
    stopped_in_first_epoch(cut, mnist_dir, signal.SIGKILL)
    (cut / ".last.pt.tmp").write_bytes(b"PK\x03\x04 half a checkpoint")  # what a kill inside the save leaves
    shutil.copytree(cut, tmp_path / "again")
    for run, argv in (
        (cut, ["train", "--resume", str(cut), "--data-dir", str(mnist_dir)]),
        (tmp_path / "again", train_args(tmp_path / "again", mnist_dir)),  # the same command again
    ):
        done = tinymnist(*argv)
        assert done.returncode == 0, done.stderr
        assert (run / checkpoint.FINAL).is_file() and not (run / ".last.pt.tmp").exists()


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")

    def half_then_full(tmp: Path) -> None:
        tmp.write_text("half")
        no_space()

    with pytest.raises(checkpoint.WriteError, match="results.json: cannot write it: no space left on device"):
        checkpoint.atomic_write(target, half_then_full)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_train_on_a_full_disk_says_so_and_resumes(tmp_path, mnist_dir, monkeypatch, capsys):
    small = subset(data.load(mnist_dir, download=False), 2000, 200)
    monkeypatch.setattr(data, "load", lambda *a, **k: small)
    real_save, saves = torch.save, []

    def full_at_second_save(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:  # epoch 2's last.pt
            f.write(b"half")
            no_space()
        return real_save(obj, f, *args, **kwargs)

    run = tmp_path / "run"
    monkeypatch.setattr(torch, "save", full_at_second_save)
    assert main(train_args(run, mnist_dir, epochs=2)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'last.pt'}: cannot write it: no space left on device" in err, err
    assert f"continue with: tinymnist train --resume {run} --data-dir {mnist_dir}" in err, err
    assert len(torch.load(run / "last.pt", weights_only=True)["history"]) == 1  # epoch 1's, intact
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)
    assert main(["train", "--resume", str(run), "--data-dir", str(mnist_dir)]) == 0
    assert len(torch.load(run / "model.pt", weights_only=True)["history"]) == 2


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, filled so that only a few KiB are free (skipped where tmpfs cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 16 * 1024))
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_real_full_disk(small_disk, tmp_path, mnist_dir, trained_checkpoint):
    """train, evaluate, export and repeat on a tmpfs with 16 KiB free: one line each, old files intact."""
    run = small_disk / "run"
    stopped = tinymnist(*train_args(run, mnist_dir))
    assert stopped.returncode == 2 and stopped.stderr.count("\n") == 1, stopped.stderr
    assert "no space left on device" in stopped.stderr and "continue with: tinymnist train --resume" in stopped.stderr
    assert not list(run.glob(".*.tmp"))

    evaluate = tinymnist("evaluate", str(trained_checkpoint), "--data-dir", str(mnist_dir), "--out", str(small_disk))
    assert evaluate.returncode == 2 and "no space left on device" in evaluate.stderr, evaluate.stderr
    old = small_disk / "old.torchscript.pt"
    old.write_text("the user's file")
    export = tinymnist("export", str(trained_checkpoint), "--format", "torchscript", "--out", str(old), "--overwrite")
    assert export.returncode == 2 and f"{old}: cannot write it: no space left on device" in export.stderr
    assert old.read_text() == "the user's file"

    repeat = tinymnist(
        "repeat", "--recipe", "tiny3k", "--seeds", "1", "--out", str(small_disk), "--runs", str(run.parent)
    )
    assert repeat.returncode == 2 and repeat.stderr.count("\n") == 1, repeat.stderr
    assert "tiny3k-seed1/last.pt: cannot write it: no space left on device" in repeat.stderr

    (small_disk / "filler").unlink()  # space freed: the command the message named finishes the run
    resumed = tinymnist("train", "--resume", str(run), "--data-dir", str(mnist_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in small_disk.rglob(".*.tmp")]
