"""The frontier on a GPU in one call (issue #22): for each zoo row still short of its goal, a sweep at
full length, its finalists over fresh validation seeds, and a 5-seed test repeat of a new winner.

    python benchmarks/gpu_frontier.py --rows ROW... --sweep-seconds S --validation-seconds S ...

benchmarks/gpu_frontier.sh sets the machine up and holds the budgets, then runs this (docs/sweeps.md,
"A frontier run on a GPU"). Three stages, each a set of tinymnist commands running at once:

1. sweep: `tinymnist sweep` of each row's space (recipes.SPACES) at the row's own length (18
   epochs, not the spaces' 5), several workers sharing the GPU, the zoo's design first, then an
   earlier sweep's winner and the public claims' designs where the space's family can build them;
2. validation: the finalists (the zoo design's trial and the best other trials, on the sweep's
   own seed-1 value) trained on fresh validation seeds with scripts/validate.py; the highest mean
   wins, the zoo design on a tie. Seed 1 picked the finalists, so it does not decide (its luck
   would favour them);
3. repeat: `tinymnist repeat` of a winner other than the zoo's design, 5 seeds on the test set.

Only the validation split decides; the test set is used by stage 3 alone, after the choice. The
stages end by deadlines counted from the script's start (time a stage leaves goes to the next); a
command still running then is stopped as Ctrl-C stops it. Everything finished is kept, and the same
command continues every stage. Results go to results/gpu-frontier/ (report.py does not read it:
nothing reaches the README unvetted), with summary.json saying what was chosen on which numbers.
"""

import argparse
import json
import os
import runpy
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tinymnist import checkpoint, claims, data, models, recipes, results, sweep

ROOT = Path(__file__).resolve().parents[1]
GRACE = 15  # seconds a stopped command has to save its epoch and exit before it is killed
POLL = 0.5  # seconds between looks at the running commands
SMOKE_RUN = "--smoke-run"  # this file's entry that runs one command on the smoke subset
# --smoke: the pipeline on the CPU, tiny: 1-epoch trials on 512 images, and validation and test runs on
# the first 5,512 training images (5,000 of them held out for validation) and 500 test images.
SMOKE_EPOCHS, SMOKE_TRAIN_IMAGES, SMOKE_SUBSET = 1, 512, (5_512, 500)
SWEEP_FILES = ("summary.json", "best-recipe.json", "history.png", "importances.png")  # as in results/sweeps/
RULE = (
    "finalists: the complete trial of the zoo's design and the best --finalists other complete trials by "
    "their sweep value (seed 1); winner: the highest mean final validation accuracy over the validation "
    "seeds (fresh: seed 1 chose the finalists), the zoo's design on a tie; only a winner other than the "
    "zoo's design is trained on the test set (tinymnist repeat)"
)


@dataclass
class Job:
    """One tinymnist command of a stage, its output in `log`."""

    name: str
    argv: list[str]
    log: Path
    status: str = "not started: out of time"
    process: subprocess.Popen | None = None


def run_jobs(jobs: list[Job], deadline: float, parallel: int) -> None:
    """Run `jobs` in order, `parallel` at a time, until they end or `deadline` (time.monotonic()) passes
    (or this process is interrupted): then each one still running gets SIGINT (a tinymnist command keeps
    its finished epochs and seeds, and continues when run again), and SIGKILL GRACE seconds later."""
    waiting: list[Job] = list(jobs)
    running: list[Job] = []
    try:
        while (waiting or running) and time.monotonic() < deadline:
            while waiting and len(running) < parallel:
                job = waiting.pop(0)
                job.log.parent.mkdir(parents=True, exist_ok=True)
                with open(job.log, "a") as log:
                    log.write(f"$ {shlex.join(job.argv)}\n")
                    log.flush()  # a process group of its own: a signal reaches the command's workers too
                    job.process = subprocess.Popen(
                        job.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                job.status = "running"
                running.append(job)
            for job in list(running):
                code = job.process.poll() if job.process else None
                if code is not None:
                    job.status = "done" if code == 0 else f"failed: exit code {code}, see {job.log}"
                    running.remove(job)
            time.sleep(POLL)
    finally:
        stop(running)


def stop(running: list[Job]) -> None:
    """SIGINT to each job's process group, then SIGKILL to what is left GRACE seconds later."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        for job in running:
            signal_group(job, sig)
        end = time.monotonic() + GRACE
        while any(j.process and j.process.poll() is None for j in running) and time.monotonic() < end:
            time.sleep(POLL)
    for job in running:
        job.status = "done" if job.process and job.process.returncode == 0 else "stopped"


def signal_group(job: Job, sig: signal.Signals) -> None:
    if job.process and job.process.poll() is None:
        try:
            os.killpg(job.process.pid, sig)
        except ProcessLookupError:
            pass


class Frontier:
    """One call: the settings, where things go, and the summary it keeps writing."""

    def __init__(self, args: argparse.Namespace, argv: list[str]) -> None:
        self.args, self.results, self.runs = args, Path(args.results), Path(args.runs)
        self.start = time.monotonic() - (time.time() - args.started if args.started else 0)
        machine = results.machine(args.device)
        self.summary: dict = {
            "what": "issue #22's frontier run: sweeps at full length, finalists on the validation split, "
            "test repeats of new winners; not in the README until vetted",
            "command": shlex.join(["python", "benchmarks/gpu_frontier.py", *argv]),
            "commit": machine["git_commit"] or os.environ.get("GPU_FRONTIER_COMMIT"),
            "machine": machine,
            "settings": {k: v for k, v in vars(args).items() if k not in ("results", "runs", "started")},
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(args.started or time.time())),
            "rule": RULE,
            "stages": {},
            "rows": {row: {} for row in args.rows},
        }

    def python(self, *argv: str) -> list[str]:
        """A command in a new Python process; under --smoke, on the smoke subset."""
        smoke = [str(Path(__file__).resolve()), SMOKE_RUN] if self.args.smoke else []
        return [sys.executable, *smoke, *argv]

    def tinymnist(self, *argv: str) -> list[str]:
        return self.python("-m", "tinymnist", *argv, "--device", self.args.device, "--no-download")

    def deadline(self, stage: int) -> float:
        """When stage 1, 2 or 3 must end: the budgets add up from --started."""
        budgets = (self.args.sweep_seconds, self.args.validation_seconds, self.args.repeat_seconds)
        return self.start + sum(budgets[:stage])

    def stage(self, name: str, jobs: list[Job], deadline: float, parallel: int, backstop: float = 0) -> None:
        """Run a stage's commands until `deadline`, or `backstop` seconds later for commands that stop
        themselves at the deadline (the sweeps' --timeout) and then write their summaries."""
        began = time.monotonic()
        print(f"{name}: {len(jobs)} command(s), {max(0, deadline - began):.0f}s left; logs in {self.runs / 'logs'}")
        run_jobs(jobs, deadline + backstop, parallel)
        self.summary["stages"][name] = {
            "seconds": round(time.monotonic() - began, 1),
            "ended_after_start_seconds": round(time.monotonic() - self.start, 1),
            "commands": {j.name: {"status": j.status, "argv": j.argv} for j in jobs},
        }
        self.save()

    def save(self) -> None:
        self.results.mkdir(parents=True, exist_ok=True)
        checkpoint.save_json(self.results / "summary.json", self.summary)

    def space(self, row: str) -> dict:
        epochs = SMOKE_EPOCHS if self.args.smoke else recipes.RECIPES[row].epochs
        return sweep.with_epochs(recipes.SPACES[row], epochs)

    def sweeps(self) -> None:
        """Stage 1: every row's sweep at once, each ended by --timeout at the stage's deadline."""
        jobs = []
        for row in self.args.rows:
            space = self.space(row)
            queued, refused = starting_designs(row, space)
            self.summary["rows"][row].update(
                {
                    "budget": space["budget"],
                    "epochs": space["params"]["epochs"],
                    "enqueued": queued,
                    "not_enqueued": refused,
                }
            )
            argv = [
                "sweep", str(self.runs / "sweeps" / row), "--space", row, "--epochs", str(space["params"]["epochs"]),
                "--trials", str(self.args.trials), "--workers", str(self.args.workers),
                "--timeout", str(max(1, round(self.deadline(1) - time.monotonic()))),
                *[a for name in queued for a in ("--enqueue", name)],
                *(["--train-images", str(SMOKE_TRAIN_IMAGES)] if self.args.smoke else []),
            ]  # fmt: skip
            jobs.append(Job(f"sweep {row}", self.tinymnist(*argv), self.runs / "logs" / f"sweep-{row}.log"))
        self.stage("sweep", jobs, self.deadline(1), len(jobs), backstop=2 * GRACE)
        for row in self.args.rows:
            folder, kept = self.runs / "sweeps" / row, self.results / "sweeps" / row
            if (folder / "summary.json").is_file():
                kept.mkdir(parents=True, exist_ok=True)
                for name in SWEEP_FILES:
                    if (folder / name).is_file():
                        shutil.copy2(folder / name, kept / name)
                self.summary["rows"][row]["sweep"] = sweep_facts(json.loads((folder / "summary.json").read_text()))
                self.summary["rows"][row]["sweep"]["results"] = str(kept)
        self.save()

    def validation(self) -> None:
        """Stage 2: each row's finalists on the validation seeds, row after row (so that time running out
        leaves whole rows decided), `--jobs` runs at once."""
        jobs = []
        for row in self.args.rows:
            path = self.runs / "sweeps" / row / "summary.json"
            summary = json.loads(path.read_text()) if path.is_file() else {"trials": []}
            picked = finalists(summary, row, self.args.finalists)
            self.summary["rows"][row]["finalists"] = picked
            for f in picked:
                f["recipe"] = str(self.recipe_file(row, summary, f, f.pop("params")))
                f["validation"] = {}
                for seed in self.seeds(picked):
                    name = f"{row}-t{f['trial']}-seed{seed}"
                    if not self.record(name, f, seed):
                        argv = self.python(
                            "scripts/validate.py", name, "--device", self.args.device,
                            "--runs", str(self.runs / "validation"), "--results", str(self.results / "validation"),
                            "--", "--recipe", f["recipe"], "--seed", str(seed),
                        )  # fmt: skip
                        jobs.append(Job(f"validate {name}", argv, self.runs / "logs" / f"validate-{name}.log"))
        self.stage("validation", jobs, self.deadline(2), self.args.jobs)
        for row in self.args.rows:
            picked = self.summary["rows"][row]["finalists"]
            for f in picked:
                for seed in self.seeds(picked):
                    self.record(f"{row}-t{f['trial']}-seed{seed}", f, seed)
            self.summary["rows"][row]["decision"] = decide(picked, len(self.seeds(picked)))
        self.save()

    def seeds(self, picked: list[dict]) -> list[int]:
        """The validation seeds finalists train: none where there is only one, as nothing is to be decided."""
        return self.args.validation_seeds if len(picked) > 1 else []

    def recipe_file(self, row: str, summary: dict, finalist: dict, params: dict) -> Path:
        """The finalist's recipe as a file, as the sweep's best-recipe.json is for its best trial."""
        recipe = sweep.trial_recipe(summary["space"], params)
        origin = {"study": summary["study"], "trial": finalist["trial"], "val_accuracy": finalist["sweep_val_accuracy"]}
        value = {"recipe": recipes.to_dict(recipe), "sweep": origin}
        path = self.results / "recipes" / f"{row}-t{finalist['trial']}.json"
        if path.is_file() and json.loads(path.read_text()) != value:
            sys.exit(f"{path}: the recipe of another trial {finalist['trial']} (another study?); move it away")
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.save_json(path, value)
        return path

    def record(self, name: str, finalist: dict, seed: int) -> bool:
        """Whether the validation record `name` exists; its final accuracy goes into the finalist. A record
        of another recipe or seed is refused, never used."""
        path = self.results / "validation" / f"{name}.json"
        if not path.is_file():
            return False
        made = json.loads(path.read_text())
        wanted = recipes.load_file(Path(finalist["recipe"]))
        if recipes.from_dict(made["config"]["recipe"]) != wanted or made["config"]["seed"] != seed:
            sys.exit(f"{path}: a validation record of another recipe or seed; move it away")
        finalist["validation"][str(seed)] = made["final_val_accuracy"]
        return True

    def repeats(self) -> None:
        """Stage 3: the test seeds of each row's new winner, all rows at once."""
        jobs = []
        for row in self.args.rows:
            winner = self.winner(row)
            if winner and not winner["zoo_design"]:
                argv = [
                    "repeat", "--recipe", winner["recipe"], "--seeds", str(self.args.seeds), "--jobs",
                    str(self.args.repeat_jobs), "--out", str(self.results), "--runs", str(self.runs / "repeat"),
                ]  # fmt: skip
                jobs.append(Job(f"repeat {row}", self.tinymnist(*argv), self.runs / "logs" / f"repeat-{row}.log"))
        self.stage("repeat", jobs, self.deadline(3), len(jobs))
        for row in self.args.rows:
            winner = self.winner(row)
            if winner and not winner["zoo_design"]:
                path = self.results / f"{Path(winner['recipe']).stem}.json"
                made = results.read(path)
                self.summary["rows"][row]["repeat"] = {
                    "results": str(path),
                    "summary": made.get("summary") if made else None,
                    "goal": asdict(models.GOALS[row]),
                }
        self.save()

    def winner(self, row: str) -> dict | None:
        """The finalist the validation stage chose for `row`, if any."""
        facts = self.summary["rows"][row]
        trial = facts.get("decision", {}).get("winner")
        return next((f for f in facts.get("finalists", []) if f["trial"] == trial), None)

    def report(self) -> None:
        """A few lines per row, for the caller's terminal (everything is in summary.json)."""
        for row, facts in self.summary["rows"].items():
            sweep = facts.get("sweep", {})
            print(f"{row}: sweep {sweep.get('states', 'not run')}; decision: {facts.get('decision', {}).get('why')}")
            for f in facts.get("finalists", []):
                seeds = ", ".join(f"{a:.2%}" for a in f["validation"].values())
                print(f"  trial {f['trial']} {f['model']} ({f['parameters']:,}): sweep {f['sweep_val_accuracy']:.2%}; "
                      f"validation {seeds or '-'}{'  [zoo design]' if f['zoo_design'] else ''}")  # fmt: skip
            made = facts.get("repeat", {}).get("summary")
            if made:
                print(f"  test, {made['seeds']} seeds: {made['mean']:.2%} +- {made['std']:.2%} (min {made['min']:.2%})")
        print(f"summary: {self.results / 'summary.json'} ({time.monotonic() - self.start:.0f}s)")


def starting_designs(row: str, space: dict) -> tuple[list[str], dict[str, str]]:
    """What a row's sweep trains first, and what it could not: the zoo's recipe (the incumbent), the
    earlier 5-epoch sweep's winner if it is another design, and each public claim's design within the
    budget with our recipe for it (claims.Claim.ours) where the space's family can build it."""
    earlier = f"results/sweeps/{row}/best-recipe.json"
    names = [row]
    if (ROOT / earlier).is_file() and models.design(recipes.resolve(earlier).model) != models.design(row):
        names.append(earlier)
    names += [c.ours for c in claims.CLAIMS.values() if c.parameters <= space["budget"]]
    queued, refused = [], {}
    for name in names:
        try:
            sweep.design_params(space, recipes.resolve(name), name)
            queued.append(name)
        except sweep.SweepError as e:
            refused[name] = str(e).removeprefix(f"{name}: ")
    return queued, refused


def sweep_facts(summary: dict) -> dict:
    """What summary.json says of a sweep, in brief."""
    return {
        "study": summary["study"],
        "states": {k: n for k, n in summary["states"].items() if n},
        "rejected_by_budget": summary["rejected_by_budget"],
        "failed": sum(t["state"] == "FAIL" for t in summary["trials"]),  # stopped by --timeout (or killed)
        "epochs_trained_here": summary["epochs_trained_here"],
        "best": summary["best"][:5],
    }


def finalists(summary: dict, row: str, others: int) -> list[dict]:
    """The complete trial of the zoo's design (if any) and the `others` best other complete trials."""
    complete = sorted((t for t in summary["trials"] if t["state"] == "COMPLETE"), key=lambda t: -t["val_accuracy"])
    zoo = [t for t in complete if t.get("enqueued") == row][:1]
    picked = zoo + [t for t in complete if t not in zoo][:others]
    return [
        {
            "trial": t["number"],
            "zoo_design": t in zoo,
            "model": t["model"],
            "parameters": t["parameters"],
            "sweep_val_accuracy": t["val_accuracy"],
            "params": t["params"],
        }
        for t in picked
    ]


def decide(picked: list[dict], seeds: int) -> dict:
    """The winner by RULE over `seeds` validation seeds each, or why there is none yet."""
    if not picked:
        return {"winner": None, "why": "no complete trial: run again"}
    if len(picked) == 1:
        return {"winner": picked[0]["trial"], "why": f"trial {picked[0]['trial']} is the only finalist"}
    lacking = [f["trial"] for f in picked if len(f["validation"]) < seeds]
    if lacking:
        return {"winner": None, "why": f"trials {lacking} lack validation seeds (out of time): run again"}
    for f in picked:
        f["validation_mean"] = statistics.fmean(f["validation"].values())
    best = max(picked, key=lambda f: (f["validation_mean"], f["zoo_design"]))
    means = ", ".join(f"trial {f['trial']} {f['validation_mean']:.3%}" for f in picked)
    kept = " (the zoo's design stays)" if best["zoo_design"] else ""
    return {"winner": best["trial"], "why": f"trial {best['trial']} has the highest validation mean{kept}: {means}"}


def smoke_run(argv: list[str]) -> None:
    """Run one command (`-m tinymnist ...` or a script) with MNIST cut to SMOKE_SUBSET: --smoke only."""
    full, (train, test) = data.load, SMOKE_SUBSET

    def cut(*args, **kwargs) -> data.MNIST:
        d = full(*args, **kwargs)
        return replace(
            d, train_images=d.train_images[:train], train_labels=d.train_labels[:train],
            test_images=d.test_images[:test], test_labels=d.test_labels[:test],
        )  # fmt: skip

    data.load = cut
    if argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--started", type=float, help="when the budgets began, in seconds since 1970 (default: now)")
    parser.add_argument("--rows", nargs="+", required=True, choices=recipes.SPACES, help="rows, most wanted first")
    for stage in ("sweep", "validation", "repeat"):
        parser.add_argument(f"--{stage}-seconds", type=int, required=True, help=f"the {stage} stage's budget")
    parser.add_argument("--trials", type=int, required=True, help="trials each row's sweep should reach, over calls")
    parser.add_argument("--workers", type=int, required=True, help="sweep workers per row, sharing the device")
    parser.add_argument("--finalists", type=int, required=True, help="best trials besides the zoo's design")
    parser.add_argument("--validation-seeds", type=int, nargs="+", required=True, help="seeds deciding finalists")
    parser.add_argument("--jobs", type=int, required=True, help="validation runs at once")
    parser.add_argument("--seeds", type=int, required=True, help="test seeds of a new winner (tinymnist repeat)")
    parser.add_argument("--repeat-jobs", type=int, required=True, help="of those, trained at once per row")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for --smoke")
    parser.add_argument("--results", default="results/gpu-frontier", help="results folder (report.py ignores it)")
    parser.add_argument("--runs", default="runs/gpu-frontier", help="folder of the sweeps and run folders")
    parser.add_argument("--smoke", action="store_true", help="1-epoch trials and runs on a subset of MNIST")
    args = parser.parse_args(argv)
    if 1 in args.validation_seeds:
        parser.error("--validation-seeds: seed 1 is the sweep's own run, which picked the finalists")
    return args


def main(argv: list[str]) -> None:
    if argv[:1] == [SMOKE_RUN]:
        return smoke_run(argv[1:])
    os.chdir(ROOT)  # the paths the commands are given and record are the repository's
    frontier = Frontier(parse(argv), argv)
    frontier.sweeps()
    frontier.validation()
    frontier.repeats()
    frontier.report()


if __name__ == "__main__":
    main(sys.argv[1:])
