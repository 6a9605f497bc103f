"""`tinymnist sweep`: real worker processes on a journal file, the budget, and bad input."""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.storages import fail_stale_trials

from conftest import ROOT
from helpers import SUBSET_CLI, paused_at_epoch, subset
from tinymnist import models, recipes, sweep
from tinymnist.cli import build_parser, main

TrialState = optuna.trial.TrialState

# A tiny space that fits its budget everywhere: 2 epochs of 500 images per trial.
SPACE = {
    "base": "tiny4k",
    "budget": 4_000,
    "family": "tinynet",
    "params": {
        "w1": {"low": 3, "high": 5},
        "w2": 4,
        "w3": {"low": 6, "high": 8},
        "w4": 8,
        "lr": {"low": 0.02, "high": 0.2, "log": True},
        "batch_size": {"choice": [64, 128]},
        "epochs": 2,
    },
}
TRIAL_ARGS = ["--train-images", "500", "--pruner", "none"]


def write_space(folder: Path, space: dict = SPACE) -> Path:
    path = folder / "space.json"
    path.write_text(json.dumps(space))
    return path


def sweep_command(*args: str) -> list[str]:
    return [*SUBSET_CLI, "all", "all", "sweep", *args, "--no-download", "--device", "cpu"]


def sweep_env(mnist_dir: Path) -> dict:
    return {**os.environ, "TINYMNIST_DATA": str(mnist_dir), "OMP_NUM_THREADS": "1"}


def run_sweep(*args: str, mnist_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_command(*args), env=sweep_env(mnist_dir), capture_output=True, text=True, timeout=600)


def trial_lines(output: str) -> list[int]:
    """The trial numbers of the one-line reports of finished trials."""
    return [int(m[1]) for m in re.finditer(r"^trial +(\d+) (COMPLETE|PRUNED|REJECTED|FAIL)", output, re.M)]


@pytest.mark.slow  # sweep processes
def test_two_workers_on_a_journal_file_then_a_rerun_continues(tmp_path, mnist_dir):
    folder = tmp_path / "sweep"
    first = run_sweep(str(folder), "--space", str(write_space(tmp_path)), "--trials", "3", "--workers", "2",
                      *TRIAL_ARGS, mnist_dir=mnist_dir)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert sorted(trial_lines(first.stdout)) == [0, 1, 2]  # one line per trial, none run twice
    second = run_sweep(str(folder), "--trials", "5", "--workers", "2", *TRIAL_ARGS, mnist_dir=mnist_dir)
    assert second.returncode == 0, second.stderr
    assert sorted(trial_lines(second.stdout)) == [3, 4]  # continued, nothing redone

    study = optuna.load_study(study_name="sweep", storage=sweep.open_storage(None, folder))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 5
    for t in study.trials:  # each trial trained once, in its own run folder
        lines = (folder / "trials" / f"{t.number:04d}" / "metrics.jsonl").read_text().splitlines()
        assert len(lines) == 2 and json.loads(lines[-1])["val_accuracy"] == t.value
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["states"]["COMPLETE"] == 5 and summary["best"][0]["val_accuracy"] == study.best_value
    assert (folder / "history.png").stat().st_size > 0 and (folder / "importances.png").stat().st_size > 0
    best = json.loads((folder / "best-recipe.json").read_text())
    recipe = recipes.from_dict(best["recipe"])
    assert recipe.model == study.best_trial.user_attrs["model"] and recipe.epochs == 2
    assert models.count_parameters(models.create(recipe.model)) == study.best_trial.user_attrs["parameters"]


@pytest.mark.slow  # sweep processes
def test_a_killed_sweep_continues_when_run_again(tmp_path, mnist_dir):
    folder, space = tmp_path / "sweep", str(write_space(tmp_path))
    args = [str(folder), "--space", space, "--trials", "2", *TRIAL_ARGS]
    ready = tmp_path / "paused"  # the worker waits at its first trial's second epoch, the first one reported
    env = sweep_env(mnist_dir)
    process = paused_at_epoch(sweep_command(*args), 2, ready, env=env, stdout=subprocess.PIPE, text=True)
    study = optuna.load_study(study_name="sweep", storage=sweep.open_storage(None, folder))
    killed = wait_for_trial_mid_way(study, f"{socket.gethostname()}:{process.pid}", process)
    process.send_signal(signal.SIGKILL)
    process.wait()

    again = run_sweep(*args, mnist_dir=mnist_dir)
    assert again.returncode == 0, again.stderr
    assert f"trial {killed} was left running by a killed sweep: failed, queued again" in again.stdout
    trials = study.get_trials()
    assert trials[killed].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].params == trials[killed].params and retry[0].number in trial_lines(again.stdout)
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]


def wait_for_trial_mid_way(study: optuna.Study, worker: str, process: subprocess.Popen) -> int:
    """The number of a trial `worker` is running and has reported one epoch of (not finished)."""
    while process.poll() is None:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.user_attrs.get("worker") == worker and t.intermediate_values:
                return t.number
        time.sleep(0.1)
    pytest.fail(f"worker {worker} ended before it was seen mid-trial: {process.communicate()}")


def test_a_design_over_budget_is_rejected_before_it_trains(tmp_path):
    space = {**SPACE, "budget": 2_000}  # tinynet-3-4-6-8 fits (1,843), tinynet-5-4-8-8 does not
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("space", space)
    study.enqueue_trial({"w1": 5, "w3": 8, "lr": 0.1, "batch_size": 64})
    study.optimize(lambda t: sweep.objective(t, mnist=None, folder=tmp_path), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["rejected"] == f"{trial.user_attrs['parameters']:,} parameters > budget 2,000"
    assert not (tmp_path / "trials").exists()
    assert "REJECTED" in sweep.describe(trial) and sweep.counted([trial]) == 0


def test_a_poor_trial_is_pruned_mid_way_after_the_epoch_it_reported(tmp_path, mnist):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.999))
    study.set_user_attr("space", {**SPACE, "params": {**SPACE["params"], "epochs": 4}})
    study.optimize(lambda t: sweep.objective(t, subset(mnist, 500, 500), tmp_path), n_trials=1)
    trial = study.trials[0]  # epochs 1-2, the first half of its schedule, are reported but not judged
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [1, 2, 3]
    assert len((tmp_path / "trials" / "0000" / "metrics.jsonl").read_text().splitlines()) == 3  # epoch 4 never ran
    assert sweep.describe(trial).startswith("trial   0 PRUNED at epoch 3 val ")


def test_a_trial_that_trained_every_epoch_is_complete(tmp_path, mnist):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.999))
    study.set_user_attr("space", {**SPACE, "params": {**SPACE["params"], "epochs": 1}})
    study.optimize(lambda t: sweep.objective(t, subset(mnist, 500, 500), tmp_path), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE  # its value counts, pruner or not


def test_parametric_model_names():
    assert models.count_parameters(models.create("tinynet-9-6-13-14")) == models.count_parameters(
        models.create("tiny8k")
    )
    assert models.known("sepnet-8-16-20-24-32") and not models.known("tinynet-8-8-12")
    assert not models.known("tinynet-8-8-0-17") and not models.known("nonet-1-2-3-4")


def test_registered_spaces_fit_their_budgets():
    for name in recipes.SPACES:
        sweep.load_space(name)  # raises if a space is malformed or its smallest design is over budget


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": 500}, "cannot fit the budget: its smallest design tinynet-3-4-6-8 has 1,843 parameters > 500"),
        ({"params": {**SPACE["params"], "learning_rate": 0.1}}, "'learning_rate' is not a recipe field"),
        ({"params": {**SPACE["params"], "lr": {"low": 0.1}}}, "lr: give a value"),
        ({"params": {**SPACE["params"], "lr": {"low": 0, "high": 0.1, "log": True}}}, "lr: give a value"),
        ({"family": "resnet"}, "family 'resnet' is not one of"),
        ({"base": "nope"}, "base 'nope' is not a recipe"),
    ],
)
def test_bad_space_is_one_line(tmp_path, capsys, change, message):
    space = write_space(tmp_path, {**SPACE, **change})
    assert main(["sweep", str(tmp_path / "s"), "--space", str(space), "--trials", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinymnist: error: --space ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/db", "--storage postgresql+psycopg://nobody@127.0.0.1:1/db: cannot"),
        ("not a url", "--storage not a url: cannot open it"),
        ("postgresql+nodriver://x@127.0.0.1/db", "cannot open it"),
    ],
)
def test_bad_storage_is_one_line(tmp_path, capsys, url, message):
    args = ["sweep", str(tmp_path / "s"), "--space", str(write_space(tmp_path)), "--trials", "0", "--storage", url]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinymnist: error: ") and message in err and err.count("\n") == 1


def test_password_is_not_shown(tmp_path, capsys):
    url = "postgresql+psycopg://me:secret@127.0.0.1:1/db"
    assert main(["sweep", str(tmp_path / "s"), "--space", "tiny8k", "--trials", "0", "--storage", url]) == 2
    assert "secret" not in capsys.readouterr().err


def test_a_rerun_without_a_space_in_a_new_folder_is_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "new"), "--trials", "0"]) == 2
    assert "no study 'new' here yet: give --space" in capsys.readouterr().err


def test_a_fashion_mnist_sweep_records_its_dataset(tmp_path, capsys, fashion_dir, monkeypatch):
    monkeypatch.setenv("TINYMNIST_FASHION_DATA", str(fashion_dir))
    monkeypatch.setattr(sweep.torch, "set_num_threads", lambda n: None)  # the worker runs in this process
    folder, space = tmp_path / "s", str(write_space(tmp_path))
    args = ["sweep", str(folder), "--space", space, *TRIAL_ARGS, "--device", "cpu", "--dataset", "fashion-mnist"]
    assert main([*args, "--trials", "1"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["dataset"] == "fashion-mnist" and summary["states"]["COMPLETE"] == 1
    assert json.loads((folder / "best-recipe.json").read_text())["sweep"]["dataset"] == "fashion-mnist"
    assert json.loads((folder / "trials" / "0000" / "config.json").read_text())["dataset"] == "fashion-mnist"
    capsys.readouterr()
    assert main(["sweep", str(folder), "--trials", "0", "--dataset", "mnist"]) == 2  # the study is on Fashion-MNIST
    assert "exists with other settings" in capsys.readouterr().err


def test_importing_sweep_changes_no_global_state():
    """Optuna's verbosity and the warnings filters are the process's own until a sweep runs."""
    code = (
        "import logging, warnings, optuna, torch  # torch adds filters of its own\n"
        "before = optuna.logging.get_verbosity(), list(warnings.filters), logging.getLogger('optuna').level\n"
        "import tinymnist.sweep\n"
        "after = optuna.logging.get_verbosity(), list(warnings.filters), logging.getLogger('optuna').level\n"
        "assert before == after, (before, after)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_sweep_restores_optuna_logging_and_warnings_after_it(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.INFO)
    filters = list(warnings.filters)
    summary = sweep.run(tmp_path / "s", str(write_space(tmp_path)), 0, 1, None, None, None, "none", None, "cpu")
    assert summary["states"]["COMPLETE"] == 0
    assert optuna.logging.get_verbosity() == optuna.logging.INFO and warnings.filters == filters


@pytest.mark.parametrize("storage", ["journal", "database"])
def test_a_design_that_kills_its_worker_is_retried_at_most_retries_times(tmp_path, monkeypatch, capsys, storage):
    """Each time its worker dies (out of memory, say) the trial stays RUNNING; the journal's rerun or the
    database's stale-trial check fails it and queues the design again, `retries` times, then no more."""
    heartbeat = sweep.Heartbeat(retries=2)
    url = None if storage == "journal" else f"sqlite:///{tmp_path / 'sweep.db'}"
    backend = sweep.open_storage(url, tmp_path, heartbeat)
    study = optuna.create_study(storage=backend, direction="maximize")
    study.enqueue_trial({"x": 1.0})
    running = lambda study_id: [t._trial_id for t in study.get_trials(states=(TrialState.RUNNING,))]  # noqa: E731
    monkeypatch.setattr(backend, "_get_stale_trial_ids", running, raising=False)  # silent past the grace period
    for _ in range(6):
        if not study.get_trials(states=(TrialState.WAITING,)):
            break
        study.ask({"x": optuna.distributions.FloatDistribution(0, 2)})  # a worker takes the design, and dies
        if storage == "journal":
            sweep.retry_abandoned(study, heartbeat)  # the command run again
        else:
            fail_stale_trials(study)  # what every worker does before it starts a trial
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 and all(t.params == {"x": 1.0} for t in trials)
    if storage == "journal":
        assert capsys.readouterr().out.splitlines()[-1].endswith("its design was tried 3 times: left failed")


def test_heartbeat_defaults_are_optunas_scale_and_what_the_docs_say(tmp_path):
    default = sweep.Heartbeat()
    assert (default.interval, default.grace, default.retries) == (60, 120, 3)
    backend = sweep.open_storage(f"sqlite:///{tmp_path / 'sweep.db'}", tmp_path)
    assert (backend.heartbeat_interval, backend.grace_period) == (60, 120)
    docs = " ".join((ROOT / "docs" / "sweeps.md").read_text().split())
    assert f"heartbeat every {default.interval} s (`--heartbeat SECONDS`)" in docs
    assert f"silent for {default.grace} s (`--grace SECONDS`" in docs
    assert f"at most {default.retries} times (`--retries N`)" in docs
    options = {a.dest: a.help for a in sweep_parser()._actions}
    assert options["heartbeat"].endswith(f"({default.interval})") and options["grace"].endswith(f"({default.grace})")
    assert options["retries"].endswith(f"({default.retries})")


def sweep_parser() -> argparse.ArgumentParser:
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subcommands.choices["sweep"]


def test_heartbeat_grace_and_retries_are_set_from_the_command_line(tmp_path, monkeypatch, capsys):
    given = []
    monkeypatch.setattr(sweep, "run", lambda *args, **kwargs: given.append(args[-1]) or {"best": []})
    monkeypatch.setattr(sweep, "table", lambda summary: "")
    args = ["sweep", str(tmp_path / "s"), "--trials", "0"]
    assert main([*args, "--heartbeat", "5", "--grace", "30", "--retries", "0"]) == 0
    assert given == [sweep.Heartbeat(interval=5, grace=30, retries=0)]
    for bad in (["--heartbeat", "0"], ["--grace", "60"], ["--retries", "-1"]):  # grace must be longer than the beat
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinymnist: error: --heartbeat ") and err.count("\n") == 1


def in_process(monkeypatch) -> None:
    """A sweep's single worker runs in the test's process: leave the test's torch threads alone."""
    monkeypatch.setattr(sweep.torch, "set_num_threads", lambda n: None)


def test_enqueue_trains_a_known_design_first_and_epochs_sets_the_trials_length(tmp_path, capsys, monkeypatch):
    in_process(monkeypatch)
    recipe = tmp_path / "mine.json"  # tiny4k's recipe but for these, all within SPACE
    recipe.write_text(json.dumps({"base": "tiny4k", "model": "tinynet-4-4-7-8", "lr": 0.1, "batch_size": 64}))
    folder = tmp_path / "s"
    args = ["sweep", str(folder), "--space", str(write_space(tmp_path)), *TRIAL_ARGS, "--device", "cpu"]
    assert main([*args, "--trials", "1", "--epochs", "1", "--enqueue", str(recipe)]) == 0
    assert main([*args, "--trials", "2", "--epochs", "1", "--enqueue", str(recipe)]) == 0  # queued once only
    study = optuna.load_study(study_name="s", storage=sweep.open_storage(None, folder))
    first = study.trials[0]
    assert first.user_attrs["model"] == "tinynet-4-4-7-8" and first.user_attrs["enqueued"] == str(recipe)
    assert first.params == {"w1": 4, "w3": 7, "lr": 0.1, "batch_size": 64}
    assert [t.params == first.params for t in study.trials] == [True, False]
    assert study.user_attrs["space"]["params"]["epochs"] == 1  # the study's space says how long trials train
    assert all(len(t.intermediate_values) == 1 for t in study.trials)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["trials"][0]["enqueued"] == str(recipe) and "enqueued" not in summary["trials"][1]
    assert f"[enqueued: {recipe}]" in capsys.readouterr().out

    assert main(["sweep", str(folder), "--trials", "0", "--epochs", "3"]) == 2  # not how this study trains
    assert "--epochs 3: study 's' trains 1 epochs a trial" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("tiny4k", "w1=8 is outside the space (searched in {'low': 3, 'high': 5})"),
        ("tiny3k", "model tiny3k is not a tinynet design"),
        ('{"base": "tiny4k", "model": "tinynet-4-5-7-8"}', "w2=5 is outside the space (fixed at 4)"),
        ('{"base": "tiny4k", "model": "tinynet-4-4-7-8", "lr": 0.1, "momentum": 0.5}', "momentum=0.5 is outside"),
    ],
)
def test_a_design_the_space_cannot_train_is_not_enqueued(tmp_path, capsys, recipe, message):
    if recipe.startswith("{"):
        (tmp_path / "r.json").write_text(recipe)
        recipe = str(tmp_path / "r.json")
    args = ["sweep", str(tmp_path / "s"), "--space", str(write_space(tmp_path)), "--trials", "0"]
    assert main([*args, "--enqueue", recipe]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinymnist: error: --enqueue {recipe}: ") and message in err and err.count("\n") == 1


def test_at_its_timeout_a_sweep_stops_its_trial_after_the_epoch_and_queues_it_again(tmp_path, capsys, monkeypatch):
    in_process(monkeypatch)
    now = [0.0]  # the sweep's clock: an hour passes in the first epoch of its first trial
    monkeypatch.setattr(
        sweep, "time", SimpleNamespace(time=lambda: now[0], sleep=time.sleep, perf_counter=time.perf_counter)
    )
    real = sweep.train

    def slow(*args, on_epoch, **kwargs):
        def epoch(record: dict) -> None:
            now[0] += 3600
            on_epoch(record)

        return real(*args, on_epoch=epoch, **kwargs)

    monkeypatch.setattr(sweep, "train", slow)
    folder, space = tmp_path / "s", str(write_space(tmp_path))
    args = ["sweep", str(folder), "--space", space, *TRIAL_ARGS, "--device", "cpu", "--trials", "2"]
    assert main([*args, "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert "trial   0 STOPPED at epoch 1: out of time (--timeout); queued again" in out
    assert "--timeout 60: stopped at 0 of 2 trials; the same command continues" in out
    assert len((folder / "trials" / "0000" / "metrics.jsonl").read_text().splitlines()) == 1  # epoch 2 never ran

    assert main(args) == 0  # no timeout: the stopped design is trained first, then one more
    study = optuna.load_study(study_name="s", storage=sweep.open_storage(None, folder))
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params and study.trials[1].system_attrs["failed_trial"] == 0
