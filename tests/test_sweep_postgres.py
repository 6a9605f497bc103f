"""`tinymnist sweep` on a real PostgreSQL: two workers (two "machines"), one killed mid-trial.

The test starts a throwaway server itself with Debian's `postgresql` binaries (initdb, pg_ctl),
as an unprivileged user when run as root, on a free loopback port; it is skipped only where the
binaries are absent.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from helpers import paused_at_epoch
from test_sweep import TRIAL_ARGS, run_sweep, sweep_command, sweep_env, trial_lines, wait_for_trial_mid_way, write_space
from tinymnist import sweep

TrialState = optuna.trial.TrialState


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: Debian keeps them out of PATH, under /usr/lib/postgresql."""
    on_path = [Path(p).parent for p in [shutil.which("initdb")] if p]
    folders = on_path + sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # newest version first
    return next((f for f in folders if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh server on 127.0.0.1 and a URL to it; stopped and deleted afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="tinymnist-pg-"))
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = "postgres" if user_exists("postgres") else "nobody"  # Debian's package creates postgres
        shutil.chown(folder, user)
        as_user = ["runuser", "-u", user, "--"]
    data, port = folder / "data", free_port()
    pg_ctl = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "sweep", "--auth=trust"], check=True,
                   capture_output=True)  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    subprocess.run([*pg_ctl, "-l", str(folder / "log"), "-w", "-o", options, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://sweep@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_a_worker_killed_mid_trial_has_its_trial_failed_and_retried(tmp_path, mnist_dir, postgres_url):
    # a short heartbeat and grace (the defaults are 60 s and 120 s), so that the killed trial is failed soon
    trials, common = 4, ["--storage", postgres_url, "--study", "pg", "--heartbeat", "2", "--grace", "20", *TRIAL_ARGS]
    created = run_sweep(str(tmp_path / "create"), "--space", str(write_space(tmp_path)), "--trials", "0", *common,
                        mnist_dir=mnist_dir)  # fmt: skip
    assert created.returncode == 0, created.stderr  # the study exists before the workers start
    pipes = {"env": sweep_env(mnist_dir), "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    argv = {name: sweep_command(str(tmp_path / name), "--trials", str(trials), *common) for name in ("a", "b")}
    # "a" waits at its first trial's second epoch (the first one reported) until it is killed there
    victim = paused_at_epoch(argv["a"], 2, tmp_path / "paused", **pipes)
    worker = subprocess.Popen(argv["b"], **pipes)
    study = optuna.load_study(study_name="pg", storage=sweep.open_storage(postgres_url, tmp_path))
    killed = wait_for_trial_mid_way(study, f"{socket.gethostname()}:{victim.pid}", victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    out, err = worker.communicate(timeout=600)
    assert worker.returncode == 0, err
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[killed].state == TrialState.FAIL
    retries = [t for t in by_number.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == by_number[killed].params  # the same design, trained again
    assert sweep.counted(list(by_number.values())) == trials  # nothing lost, nothing extra
    assert sorted(t.state.name for t in by_number.values()) == ["COMPLETE"] * trials + ["FAIL"]
    assert retries[0].number in trial_lines(out)
