"""The multi-seed protocol: train one recipe with seeds 1..N and report final-epoch test
accuracy per seed and over seeds, into one results file per recipe.

Each finished seed is written to the results file at once (atomically), so a stopped sweep
keeps what it finished; running the same command again trains only the missing seeds, and a
seed interrupted mid-run resumes from its run folder's last completed epoch (after checking that
the folder was made with the same recipe and seed). Each seed's row records the machine and
commit of the call that trained it, and its wall time over all the processes that trained it.
"""

import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from tinymnist import checkpoint, claims, data, results
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import Recipe, to_dict
from tinymnist.training import is_run, pick_device, resume_settings, train


def train_seed(
    recipe: Recipe,
    seed: int,
    run_dir: Path,
    data_dir: str | None,
    device: str,
    threads: int,
    dataset: str = data.DEFAULT,
) -> dict:
    """Train one seed (resuming its run folder if it was interrupted); returns its result row."""
    if threads:
        torch.set_num_threads(threads)
    if (run_dir / "config.json").is_file():
        config = resume_settings(run_dir)[1]
        recorded = {**config["recipe"], "seed": config.get("seed"), "split": config.get("split")}
        wanted = {**to_dict(recipe), "seed": seed, "split": "test"}
        if recorded != wanted:
            raise TinyMnistError(
                f"{run_dir}: a run of another recipe or seed ({results.differences(recorded, wanted)}); "
                "move it away to start over"
            )
    resume = (run_dir / checkpoint.LAST).is_file()  # without a completed epoch, start again
    mnist = data.load(data_dir, dataset=dataset).to(pick_device(device))
    final = train(
        recipe,
        mnist,
        run_dir,
        seed=seed,
        resume=resume,
        progress=False,
        log=lambda line: print(f"[seed {seed}] {line}", flush=True),
    )
    history = final["history"]
    best = max((r for r in history if "test_accuracy" in r), key=lambda r: r["test_accuracy"])
    return {
        "seed": seed,
        "parameters": final["parameters"],
        "test_accuracy": history[-1]["test_accuracy"],
        "test_loss": history[-1]["test_loss"],
        "epochs": len(history),
        "best_epoch": best["epoch"],  # shown for information only, never used to report
        "train_seconds": final["train_seconds"],
        "wall_seconds": final["wall_seconds"],
        "images_per_second": statistics.fmean(r["images_per_second"] for r in history),
        "engine": final["engine"],
        **{k: final[k] for k in ("engine_fallback", "teacher") if k in final},  # a failed capture; distillation
        "run_dir": str(run_dir),
    }


def repeat(
    recipe_name: str,
    recipe: Recipe,
    seeds: int,
    out: Path,
    runs: Path,
    data_dir: str | None = None,
    device: str = "auto",
    jobs: int = 1,
    dataset: str = data.DEFAULT,
    log=print,
) -> dict:
    """Train the seeds that `out` lacks and return the updated results."""
    existing = results.read(out)
    why = existing and results.mismatch(existing, recipe)
    if why:
        raise TinyMnistError(f"{out}: made with a different {recipe_name!r} recipe ({why}); move it away to start over")
    if existing and existing.get("dataset", data.DEFAULT) != dataset:
        raise TinyMnistError(
            f"{out}: results on {existing.get('dataset', data.DEFAULT)}, not {dataset}; use another --out"
        )
    done = {r["seed"] for r in existing["runs"]} if existing else set()
    todo = [s for s in range(1, seeds + 1) if s not in done]
    state = existing or {"name": recipe_name, "dataset": dataset, "recipe": to_dict(recipe), "runs": []}
    if claims.of_recipe(recipe_name):
        state["claim"] = claims.of_recipe(recipe_name)  # the public claim these seeds reproduce or try to beat
    state["machine"] = results.machine(pick_device(device))
    log(f"{recipe_name}: {len(done)} of {seeds} seeds already in {out}; training {todo or 'none'}")
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    if threads:
        state["machine"]["torch_threads"] = threads  # per job
    state["machine"]["jobs"] = jobs
    args = [(recipe, s, runs / f"{recipe_name}-seed{s}", data_dir, device, threads, dataset) for s in todo]
    for a in args:  # before any seed trains: a seed's folder is new, empty or a run (resumed if it matches)
        checkpoint.check_folder(a[2], is_run, "a tinymnist run folder")

    def record(row: dict) -> None:
        row["machine"] = state["machine"]  # rows may come from several calls, on several machines
        state["runs"] = sorted([r for r in state["runs"] if r["seed"] != row["seed"]] + [row], key=lambda r: r["seed"])
        state["summary"] = results.summarize([r["test_accuracy"] for r in state["runs"]])
        out.parent.mkdir(parents=True, exist_ok=True)
        results.write(out, state)
        log(f"seed {row['seed']}: final test accuracy {row['test_accuracy']:.2%} ({row['wall_seconds']:.0f}s)")

    if jobs > 1 and len(args) > 1:
        # spawn, not fork: a forked child of a process that has used OpenMP threads can hang
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in as_completed([pool.submit(train_seed, *a) for a in args]):
                record(future.result())
    else:
        for a in args:
            record(train_seed(*a))
    return state
