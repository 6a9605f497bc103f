"""Make the pretrained weights that ship in the package: seed 1 of each recipe with 5-seed results.

For every recipe that has a results file of 5 seeds (`results/<recipe>.json`, written by
`tinymnist repeat`), seed 1 is trained again exactly as `repeat` trained it (one torch thread,
all 60,000 training images, final epoch kept) into `runs/pretrained/<recipe>-seed1` (resumable:
rerunning continues or reuses it), then written as `src/tinymnist/weights/<recipe>.safetensors`
(no pickle) with a JSON card beside it: model, recipe, seed, final test accuracy, the validation
protocol, machine, commit and command. Seed 1 is chosen before looking at any result.

    python scripts/make_pretrained.py [--recipes seed tiny3k] [--jobs 2]
"""

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from tinymnist import checkpoint, pretrained, recipes, results
from tinymnist.repeat import train_seed

ROOT = Path(__file__).resolve().parents[1]
SEED = 1
PROTOCOL = (
    "Trained on all 60,000 MNIST training images with the recipe as registered (nothing tuned on the "
    "test set: recipes were chosen on a fixed 5,000-image validation split, see the README's protocol); "
    "these are the weights of the final epoch, whose accuracy on the 10,000 test images is reported."
)


def train(name: str, runs: Path, data_dir: str | None) -> Path:
    run_dir = runs / f"{name}-seed{SEED}"
    if not (run_dir / checkpoint.FINAL).is_file():
        train_seed(recipes.RECIPES[name], SEED, run_dir, data_dir, "cpu", threads=1)
    return run_dir


def write(name: str, run_dir: Path, command: str) -> None:
    ckpt = checkpoint.read(run_dir / checkpoint.FINAL)
    recorded = results.read(ROOT / "results" / f"{name}.json")
    seed_row = next(r for r in recorded["runs"] if r["seed"] == SEED)
    final = ckpt["final"]
    card = {
        "name": name,
        "model": ckpt["model"],
        "parameters": ckpt["parameters"],
        "recipe": ckpt["recipe"],
        "seed": ckpt["seed"],
        "epochs": len(ckpt["history"]),
        "test_accuracy": final["test_accuracy"],
        "test_loss": final["test_loss"],
        "test_images": 10_000,
        "results_file": f"results/{name}.json",
        "results_seed_accuracy": seed_row["test_accuracy"],
        "results_summary": recorded["summary"],
        "chosen": f"seed {SEED} of the recipe's 5-seed run (chosen before any result was seen)",
        "protocol": PROTOCOL,
        "train_seconds": ckpt["train_seconds"],
        "machine": {**results.machine("cpu"), "torch_threads": 1},
        "command": command,
    }
    pretrained.write(pretrained.WEIGHTS, card, ckpt["state_dict"])
    print(
        f"{name}: {pretrained.WEIGHTS / name}.safetensors ({ckpt['model']}, test accuracy {final['test_accuracy']:.2%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="*", help="default: every recipe with 5-seed results")
    parser.add_argument("--jobs", type=int, default=2, help="recipes trained at once, one thread each")
    parser.add_argument("--runs", default="runs/pretrained", help="folder of the run folders")
    parser.add_argument("--data-dir", help="MNIST folder (default: $TINYMNIST_DATA, then the cache)")
    args = parser.parse_args()
    names = args.recipes or pretrained.eligible(ROOT / "results")
    runs = Path(args.runs)
    command = ("python scripts/make_pretrained.py " + " ".join(sys.argv[1:])).strip()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train, name, runs, args.data_dir): name for name in names}
        for future in as_completed(futures):  # each recipe is written as soon as it is trained
            write(futures[future], future.result(), command)
    print(json.dumps({"written": names, "folder": os.path.relpath(pretrained.WEIGHTS)}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
