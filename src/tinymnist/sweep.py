"""Sweeps: search model widths and recipe fields with Optuna, on the validation split only.

A sweep is an Optuna study plus a folder. Each trial builds a recipe from a search space
(recipes.SPACES, or a JSON file of that shape), rejects it before training if its model is over
the space's parameter budget, trains it on 55,000 images (or a subset), and reports each epoch's
accuracy on the fixed 5,000-image validation split to a pruner; its value is the final epoch's.
The test set never enters a sweep.

Storage: by default an Optuna journal file in the sweep folder (worker processes on one machine,
nothing to start); with `--storage postgresql+psycopg://...` many machines run the same command
against one database, whose heartbeat marks a killed worker's trial failed and queues it again
(a bounded number of times: a design that kills its worker, e.g. out of memory, is left failed).
The study is created once, before any worker starts; rerunning the command continues it.

A sweep can train its trials longer than its space says (`--epochs`, recorded in the study's space),
start from known designs (`--enqueue`: a zoo row, an earlier winner) and end by a wall-clock time
(`--timeout`: a trial still running then stops after its epoch and is queued again for the next run).
"""

import fcntl
import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from tinymnist import checkpoint, data, models, plots, recipes, results
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import Recipe
from tinymnist.training import pick_device, train

JOURNAL = "journal.log"  # the default storage, in the sweep folder
WAIT_SECONDS = 2  # a worker with nothing to start looks again this often for others' trials to end
# Stop poor trials early, judged on each epoch's validation accuracy.
PRUNER: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
    "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4),  # from mid-trial on: judged()
    "halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}
BEST_SHOWN = 10  # rows of the final table
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SweepError(TinyMnistError):
    pass


class OutOfTime(Exception):
    """Raised in a trial that is still running at the sweep's --timeout: it stops after its epoch."""


@dataclass(frozen=True)
class Heartbeat:
    """How a dead worker is noticed, at Optuna's usual scale: with a database, workers beat every
    `interval` s, and a trial silent for `grace` s (its machine died or paused too long) is failed and
    its design queued again, at most `retries` times (so one that kills its worker is not forever)."""

    interval: int = 60
    grace: int = 120
    retries: int = 3

    def __post_init__(self) -> None:
        values = (self.interval, self.grace, self.retries)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise SweepError(f"--heartbeat, --grace and --retries must be whole numbers, not {values}")
        if self.interval < 1 or self.grace <= self.interval or self.retries < 0:
            raise SweepError(
                f"--heartbeat {self.interval} --grace {self.grace} --retries {self.retries}: the heartbeat "
                "must be at least 1 s, the grace longer than it, and the retries at least 0"
            )

    def retry(self, study: optuna.Study, failed: FrozenTrial) -> None:
        """Queue a failed trial's design again (a WAITING copy with its retry_history), up to `retries` times."""
        RetryHeartbeatStaleTrialCallback(max_retry=self.retries)(study, failed)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's log lines and its experimental-feature warnings (heartbeats, plots) off while a sweep
    runs, as it prints one line per trial itself; restored after, so the rest of the process (and
    importing this module) keeps its own logging and warnings settings."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def load_space(name_or_file: str) -> dict:
    """A registered space (recipes.SPACES) or a JSON file of the same shape, checked."""
    if name_or_file in recipes.SPACES:
        space = recipes.SPACES[name_or_file]
    elif name_or_file.endswith(".json"):
        space = read_json(Path(name_or_file), "--space")
    else:
        raise SweepError(f"--space {name_or_file!r}: not a JSON file nor one of: {', '.join(recipes.SPACES)}")
    check_space(space, f"--space {name_or_file}")
    return space


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise SweepError(f"{what} {path}: not a readable JSON file ({e})") from None


def check_space(space: object, where: str) -> None:
    """Everything a space needs, named in one line if it is wrong; and its smallest design must fit."""
    if not isinstance(space, dict) or not {"base", "budget", "family", "params"} <= space.keys():
        raise SweepError(f"{where}: a space needs base, budget, family and params")
    if space["base"] not in recipes.RECIPES:
        raise SweepError(f"{where}: base {space['base']!r} is not a recipe ({', '.join(recipes.RECIPES)})")
    if space["family"] not in models.FAMILIES:
        raise SweepError(f"{where}: family {space['family']!r} is not one of {', '.join(models.FAMILIES)}")
    if not isinstance(space["budget"], int) or space["budget"] < 1:
        raise SweepError(f"{where}: budget {space['budget']!r} must be a positive number of parameters")
    params, known = space["params"], {f.name for f in fields(Recipe)} - {"model"}
    widths = width_names(space)
    for name, spec in params.items() if isinstance(params, dict) else [("params", None)]:
        if name not in known and name not in widths:
            raise SweepError(f"{where}: {name!r} is not a recipe field nor a width ({', '.join(widths)})")
        if isinstance(spec, dict) and not (ranged(spec) or spec.keys() == {"choice"} and spec["choice"]):
            raise SweepError(f'{where}: {name}: give a value, {{"low", "high"[, "log"]}} or {{"choice"}}')
        for value in values_of(spec) if name in known else ():  # each end of a range, each choice
            try:
                recipes.check_value(name, value)
            except recipes.RecipeError as e:
                raise SweepError(f"{where}: {e}") from None
    missing = [w for w in widths if w not in params]
    if missing:
        raise SweepError(f"{where}: family {space['family']} needs widths {', '.join(missing)}")
    smallest = model_name(space, {w: lowest(params[w]) for w in widths})
    size = count(smallest)
    if size > space["budget"]:
        raise SweepError(
            f"{where}: cannot fit the budget: its smallest design {smallest} has {size:,} parameters "
            f"> {space['budget']:,}"
        )


def values_of(spec: object) -> list:
    """The values a parameter's spec names: a fixed value, the ends of a range, or the choices."""
    if not isinstance(spec, dict):
        return [spec]
    return list(spec["choice"]) if "choice" in spec else [spec["low"], spec["high"]]


def ranged(spec: dict) -> bool:
    """Whether `spec` is a valid {"low", "high"[, "log"]}."""
    if not {"low", "high"} <= spec.keys() <= {"low", "high", "log"}:
        return False
    low, high = spec["low"], spec["high"]
    return all(isinstance(v, int | float) for v in (low, high)) and low <= high and (low > 0 or not spec.get("log"))


def width_names(space: dict) -> list[str]:
    return [f"w{i}" for i in range(1, models.FAMILIES[space["family"]][1] + 1)]


def lowest(spec: object) -> object:
    return min(values_of(spec))


def model_name(space: dict, values: dict) -> str:
    return "-".join([space["family"], *(str(values[w]) for w in width_names(space))])


def count(model: str) -> int:
    return models.count_parameters(models.create(model))


def suggest(trial: optuna.Trial, space: dict) -> dict:
    """The values of one design: the space's fixed values and what the sampler picks for the rest."""
    values = {}
    for name, spec in space["params"].items():
        if not isinstance(spec, dict):
            values[name] = spec
        elif "choice" in spec:
            values[name] = trial.suggest_categorical(name, spec["choice"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
        else:
            values[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
    return values


def recipe_of(space: dict, values: dict) -> Recipe:
    fixed = {k: v for k, v in values.items() if k not in width_names(space)}
    return replace(recipes.get(space["base"]), model=model_name(space, values), **fixed)


def trial_recipe(space: dict, params: dict) -> Recipe:
    """The recipe a trial trained: the space's fixed values and the values sampled for the trial."""
    return recipe_of(space, {**space["params"], **params})


def with_epochs(space: dict, epochs: int) -> dict:
    """The space with every trial trained `epochs` epochs: the registered spaces train 5, which ranked
    designs poorly for the 18 epochs the rows train (docs/sweeps.md); a full-length sweep says so here."""
    recipes.check_value("epochs", epochs)
    return {**space, "params": {**space["params"], "epochs": epochs}}


def contains(spec: dict, value: object) -> bool:
    """Whether a searched parameter's range or choices hold `value`."""
    if "choice" in spec:
        return value in spec["choice"]
    return isinstance(value, int | float) and spec["low"] <= value <= spec["high"]


def design_params(space: dict, recipe: Recipe, where: str) -> dict:
    """The sampled values that make a trial of `space` train `recipe`: its widths and the fields the space
    searches. The space's fixed values (its epochs, bf16) are its trials' conditions and stay; anything
    else the recipe cannot say within the space is refused, so a queued trial is that design and recipe."""
    found = models.design(recipe.model)
    if found is None or found[0] != space["family"]:
        raise SweepError(f"{where}: model {recipe.model} is not a {space['family']} design")
    widths = dict(zip(width_names(space), found[1], strict=True))
    values, base = {**widths, **recipes.to_dict(recipe)}, recipes.get(space["base"])
    for name, value in values.items():
        spec = space["params"].get(name)
        if isinstance(spec, dict):
            ok, within = contains(spec, value), f"searched in {spec}"
        elif name in widths:
            ok, within = spec == value, f"fixed at {spec}"
        elif name == "model" or spec is not None:
            continue  # the model is its widths; a fixed recipe field is the space's, for every trial
        else:
            kept = getattr(base, name)
            ok, within = value == kept, f"not searched: {space['base']}'s {kept!r}"
        if not ok:
            raise SweepError(f"{where}: {name}={value!r} is outside the space ({within})")
    size = count(recipe.model)
    if size > space["budget"]:
        raise SweepError(f"{where}: {recipe.model} has {size:,} parameters > budget {space['budget']:,}")
    return {name: values[name] for name, spec in space["params"].items() if isinstance(spec, dict)}


def open_storage(url: str | None, folder: Path, heartbeat: Heartbeat = Heartbeat()) -> optuna.storages.BaseStorage:
    """The journal file in `folder`, or a database with a heartbeat; a bad URL is one line."""
    if url is None:
        return JournalStorage(JournalFileBackend(str(folder / JOURNAL)))
    import sqlalchemy

    for attempt in range(3):  # workers started at once on a fresh database race to create its tables
        try:
            return RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat.interval,
                grace_period=heartbeat.grace,
                heartbeat_stale_trial_callback=heartbeat.retry,
            )
        except sqlalchemy.exc.IntegrityError:
            time.sleep(1 + attempt)
        except (sqlalchemy.exc.SQLAlchemyError, ValueError, ImportError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SweepError(f"--storage {shown(url)}: cannot open it ({reason[:200]})") from None
    raise SweepError(f"--storage {shown(url)}: its tables could not be created")


def shown(url: str) -> str:
    """The URL without its password."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def create(storage: optuna.storages.BaseStorage, study: str, settings: dict) -> optuna.Study:
    """Create the study, or load it and check the settings given, before any worker starts.
    The settings (space, train_images, dataset) live in the study, so a machine joining it needs none."""
    if study not in optuna.get_all_study_names(storage):
        if settings["space"] is None:
            raise SweepError(f"no study {study!r} here yet: give --space NAME or FILE")
        s = optuna.create_study(study_name=study, storage=storage, direction="maximize", load_if_exists=True)
        for key, value in settings.items():
            s.set_user_attr(key, value)
        return s
    s = optuna.load_study(study_name=study, storage=storage)
    if any(s.user_attrs.get(k) != v for k, v in settings.items() if v is not None):
        raise SweepError(f"study {study!r} exists with other settings ({s.user_attrs}); choose another --study")
    return s


@contextmanager
def sweeping(folder: Path) -> Iterator[bool]:
    """Mark `folder` as in use by this process (a shared lock, held throughout); yields whether no
    other process (a command or a worker, even one whose command was killed) was using it."""
    with open(folder / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(f, fcntl.LOCK_SH)
        yield alone


def retry_abandoned(study: optuna.Study, heartbeat: Heartbeat) -> None:
    """Journal storage has no heartbeat: when no other command runs in this folder, a trial still
    RUNNING was killed with its worker; fail it and queue its design again, as the database does."""
    for t in study.get_trials(states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        print(f"trial {t.number} was left running by a killed sweep: failed, {requeue(study, t, heartbeat)}")


def requeue(study: optuna.Study, failed: FrozenTrial, heartbeat: Heartbeat) -> str:
    """Queue a failed trial's design again (at most heartbeat.retries times); says which it did."""
    tries = len(failed.system_attrs.get("retry_history", [])) + 1  # before retry(), which appends to it
    heartbeat.retry(study, failed)
    return "queued again" if tries <= heartbeat.retries else f"its design was tried {tries} times: left failed"


def study_dataset(s: optuna.Study) -> str:
    """The dataset a study searches; studies made before datasets were recorded searched MNIST."""
    return s.user_attrs.get("dataset") or data.DEFAULT


def judged(epoch: int, epochs: int) -> bool:
    """Whether the pruner may stop a trial after this epoch: only in the second half of its one-cycle
    schedule. Earlier, the learning rate is near its peak and validation accuracy swings by points: in
    the tiny8k and tiny4k sweeps, epoch 1's ranking of the trials that ran all 5 epochs agreed
    poorly with their final ranking (Spearman 0.50 and 0.66), and tiny4k's trial 28, pruned at epoch 1,
    had the design and nearly the recipe of its second best. A finished trial counts: never judged."""
    return epochs // 2 < epoch < epochs


def objective(trial: optuna.Trial, mnist: data.MNIST, folder: Path, deadline: float | None = None) -> float:
    """Train one design on the validation split; its value is the final epoch's accuracy. It stops early
    when pruned, or when `deadline` (time.time()) has passed at the end of an epoch other than the last."""
    space = trial.study.user_attrs["space"]
    recipe = recipe_of(space, suggest(trial, space))
    size = count(recipe.model)
    trial.set_user_attr("model", recipe.model)
    trial.set_user_attr("parameters", size)
    trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
    if size > space["budget"]:
        reason = f"{size:,} parameters > budget {space['budget']:,}"
        trial.set_user_attr("rejected", reason)
        raise optuna.TrialPruned(reason)

    def report(record: dict) -> None:
        if "val_accuracy" in record:  # a recipe may skip evaluations (eval_every)
            trial.report(record["val_accuracy"], record["epoch"])
        if judged(record["epoch"], recipe.epochs) and trial.should_prune():
            raise optuna.TrialPruned(f"epoch {record['epoch']}")
        if deadline is not None and time.time() >= deadline and record["epoch"] < recipe.epochs:
            raise OutOfTime(trial.number, record["epoch"])

    final = train(
        recipe, mnist, folder / "trials" / f"{trial.number:04d}", split="val", progress=False,
        log=lambda line: None, on_epoch=report,
    )  # fmt: skip
    return final["final"]["val_accuracy"]


def describe(t: FrozenTrial) -> str:
    """One line per finished trial."""
    design = f"{t.user_attrs.get('model')} ({t.user_attrs.get('parameters', 0):,} parameters)"
    if "rejected" in t.user_attrs:
        return f"trial {t.number:3d} REJECTED  {design}: {t.user_attrs['rejected']}"
    queued = f" [enqueued: {t.user_attrs['enqueued']}]" if "enqueued" in t.user_attrs else ""
    rest = f"{design}{queued}  {knobs(t.params)}  {trial_seconds(t):.0f}s"
    if t.state == TrialState.PRUNED:
        last = max(t.intermediate_values, default=0)
        acc = f"val {t.intermediate_values[last]:.2%}" if last else ""
        return f"trial {t.number:3d} PRUNED at epoch {last} {acc}  {rest}"
    value = f"val {t.value:.2%}" if t.value is not None else ""
    return f"trial {t.number:3d} {t.state.name} {value}  {rest}"


def knobs(params: dict) -> str:
    """The recipe fields a trial sampled (the widths are in the model's name)."""
    return " ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items() if k[0] != "w")


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that count towards --trials: trained to the end or pruned, not rejected by the budget."""
    return sum(t.state in FINISHED and "rejected" not in t.user_attrs for t in trials)


@quiet_optuna()
def work(
    folder: Path, storage_url: str | None, study: str, trials: int, pruner: str, data_dir: str | None, device: str,
    heartbeat: Heartbeat = Heartbeat(), index: int = 0, deadline: float | None = None,
) -> None:  # fmt: skip
    """One worker: run trials until the study has `trials` counted ones and none running or queued, or
    until `deadline` (time.time()): then its trial stops after its epoch, failed, and is queued again.
    Worker `index` runs on GPU index mod the number of GPUs, or on one CPU thread."""
    torch.set_num_threads(1)
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", index % torch.cuda.device_count())
    storage = open_storage(storage_url, folder, heartbeat)
    s = optuna.load_study(study_name=study, storage=storage, pruner=PRUNER[pruner]())
    with sweeping(folder):  # so that a rerun never takes this worker's trials for abandoned ones
        mnist = data.validation_split(data.load(data_dir, dataset=study_dataset(s)).to(dev), data.VALIDATION_IMAGES)
        n = s.user_attrs.get("train_images")
        if n:
            mnist = replace(mnist, train_images=mnist.train_images[:n], train_labels=mnist.train_labels[:n])

        def line(_: optuna.Study, t: FrozenTrial) -> None:
            print(describe(t), flush=True)

        while deadline is None or time.time() < deadline:
            fail_stale_trials(s)  # databases: a killed worker's trial -> FAIL, and queued again (bounded)
            now = s.get_trials(deepcopy=False)
            states = [t.state for t in now]
            if TrialState.WAITING in states or counted(now) + states.count(TrialState.RUNNING) < trials:
                try:
                    s.optimize(lambda t: objective(t, mnist, folder, deadline), n_trials=1, callbacks=[line])
                except OutOfTime as e:  # Optuna has failed the trial
                    number, epoch = e.args
                    then = requeue(s, s.get_trials(deepcopy=False)[number], heartbeat)
                    print(f"trial {number:3d} STOPPED at epoch {epoch}: out of time (--timeout); {then}", flush=True)
            elif TrialState.RUNNING in states and storage_url:  # wait: another worker's, or a stale one
                time.sleep(WAIT_SECONDS)
            else:
                return


@quiet_optuna()
def run(
    folder: Path, space: str | None, trials: int, workers: int, storage_url: str | None, study: str | None,
    train_images: int | None, pruner: str, data_dir: str | None, device: str, dataset: str | None = None,
    heartbeat: Heartbeat = Heartbeat(), epochs: int | None = None, timeout: float | None = None,
    enqueue: Sequence[str] = (),
) -> dict:  # fmt: skip
    """Create or continue the sweep in `folder` with `workers` processes, its trials trained `epochs`
    epochs (default: the space's), the designs of the recipes in `enqueue` first, and no trial running
    past `timeout` seconds from now; returns its summary."""
    deadline = time.time() + timeout if timeout else None
    checkpoint.check_folder(folder, is_sweep, "a tinymnist sweep folder")
    saved = read_json(folder / "sweep.json", "sweep folder") if (folder / "sweep.json").is_file() else {}
    study = study or saved.get("study") or folder.resolve().name
    chosen = load_space(space) if space else None
    if chosen and epochs:
        chosen = with_epochs(chosen, epochs)
    settings = {"space": chosen, "train_images": train_images, "dataset": dataset}
    folder.mkdir(parents=True, exist_ok=True)
    s = create(open_storage(storage_url, folder, heartbeat), study, settings)
    trained = s.user_attrs["space"]["params"].get("epochs")
    if epochs and trained != epochs:
        raise SweepError(f"--epochs {epochs}: study {study!r} trains {trained} epochs a trial; choose another --study")
    queued = [design_params(s.user_attrs["space"], recipes.resolve(r), f"--enqueue {r}") for r in enqueue]
    for name, params in zip(enqueue, queued, strict=True):  # all checked first; none queued twice
        s.enqueue_trial(params, user_attrs={"enqueued": name}, skip_if_exists=True)
    checkpoint.save_json(folder / "sweep.json", {"study": study})  # the rest lives in the study
    start = time.perf_counter()
    with sweeping(folder) as alone:
        if alone and storage_url is None:
            retry_abandoned(s, heartbeat)
        if trials and workers == 1:
            work(folder, storage_url, study, trials, pruner, data_dir, device, heartbeat, 0, deadline)
        elif trials:
            # spawn, not fork: a forked child of a process that has used OpenMP threads can hang
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                jobs = [
                    pool.submit(
                        work, folder, storage_url, study, trials, pruner, data_dir, device, heartbeat, i, deadline
                    )
                    for i in range(workers)
                ]
                for job in jobs:
                    job.result()
    return summarize(folder, s, time.perf_counter() - start)


def is_sweep(folder: Path) -> bool:
    """Whether `folder` is a sweep's (it has the study's name or the journal), so a sweep may write into it."""
    return (folder / "sweep.json").is_file() or (folder / JOURNAL).is_file()


def summarize(folder: Path, s: optuna.Study, wall_seconds: float) -> dict:
    """summary.json, the best-trials table, the plots and the best design as a recipe file."""
    trials = s.get_trials(deepcopy=False)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: -(t.value or 0.0))
    epoch_seconds = [r["seconds"] for t in trials for r in metrics(folder, t)]
    summary = {
        "study": s.study_name,
        "dataset": study_dataset(s),
        "space": s.user_attrs["space"],
        "train_images": s.user_attrs.get("train_images") or 60_000 - data.VALIDATION_IMAGES,
        "val_images": data.VALIDATION_IMAGES,
        "states": {state.name: sum(t.state == state for t in trials) for state in TrialState},
        "rejected_by_budget": sum("rejected" in t.user_attrs for t in trials),
        "counted": counted(trials),  # towards --trials
        "trial_seconds": sum(trial_seconds(t) for t in trials),
        "epochs_trained_here": len(epoch_seconds),
        "mean_epoch_seconds_here": sum(epoch_seconds) / len(epoch_seconds) if epoch_seconds else None,
        "this_command_wall_seconds": wall_seconds,
        "trials": [row(t) for t in trials],
        "best": [row(t) for t in complete[:BEST_SHOWN]],
        "machine": results.machine(),
        "load_average": os.getloadavg(),
        "command": "tinymnist " + " ".join(sys.argv[1:]),  # as the command line ran it
    }
    checkpoint.save_json(folder / "summary.json", summary)
    if complete:
        best = complete[0]
        recipe = trial_recipe(s.user_attrs["space"], best.params)
        origin = {"study": s.study_name, "trial": best.number, "val_accuracy": best.value}
        origin["dataset"] = summary["dataset"]
        checkpoint.save_json(folder / "best-recipe.json", {"recipe": recipes.to_dict(recipe), "sweep": origin})
        save_plots(s, folder)
    return summary


def row(t: FrozenTrial) -> dict:
    return {
        "number": t.number,
        "state": t.state.name,
        "val_accuracy": t.value,
        "epochs": max(t.intermediate_values, default=0),
        "model": t.user_attrs.get("model"),
        "parameters": t.user_attrs.get("parameters"),
        "params": t.params,
        "seconds": trial_seconds(t),
        **({"rejected": t.user_attrs["rejected"]} if "rejected" in t.user_attrs else {}),
        **({"enqueued": t.user_attrs["enqueued"]} if "enqueued" in t.user_attrs else {}),
        **({"retry_of": t.system_attrs["failed_trial"]} if "failed_trial" in t.system_attrs else {}),
    }


def trial_seconds(t: FrozenTrial) -> float:
    return (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else 0.0


def metrics(folder: Path, t: FrozenTrial) -> list[dict]:
    """The epochs of a trial that trained on this machine (its run folder is here)."""
    path = folder / "trials" / f"{t.number:04d}" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def table(summary: dict) -> str:
    """The best trials, best first."""
    counts = {**summary["states"], "PRUNED": summary["states"]["PRUNED"] - summary["rejected_by_budget"]}
    counts["REJECTED (over budget)"] = summary["rejected_by_budget"]
    lines = [f"{summary['study']}: " + ", ".join(f"{n} {k.lower()}" for k, n in counts.items() if n)]
    lines.append(f"{'trial':>5}  {'val acc':>7}  {'parameters':>10}  {'model':<22} recipe")
    for r in summary["best"]:
        head = f"{r['number']:>5}  {r['val_accuracy']:>7.2%}  {r['parameters']:>10,}  {r['model']:<22}"
        lines.append(f"{head} {knobs(r['params'])}")
    return "\n".join(lines)


def save_plots(s: optuna.Study, folder: Path) -> None:
    """history.png and importances.png, Optuna's matplotlib plots (importances need 2+ complete trials)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from optuna.visualization import matplotlib as vis

    drawings: dict[str, Callable[[optuna.Study], Any]] = {
        "history.png": vis.plot_optimization_history,
        "importances.png": vis.plot_param_importances,
    }
    for name, draw in drawings.items():
        try:
            fig = draw(s).figure
        except (ValueError, RuntimeError):
            continue
        plots.save(fig, folder / name)
        pyplot.close(fig)
