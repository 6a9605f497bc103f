"""Fashion-MNIST results: a validation run that chooses the recipes, then 5 seeds of each row.

    OMP_NUM_THREADS=1 python scripts/fashion_results.py [ROW ...]   # resumable: run it again to continue

1. The cheapest row (tiny3k) with its MNIST recipe and without rotation (`fashion-tiny3k`), each
   trained once on the validation split (55,000 training images, evaluated on the 5,000 held out;
   the test set is never looked at): results/fashion-mnist/validation/<recipe>.json.
2. If rotation helps (it did: 89.20% against 88.84%), every row (ROWS: the seed network and the
   zoo, or the ROWs named) with its MNIST recipe, 5 seeds each with `tinymnist repeat --dataset
   fashion-mnist`: results/fashion-mnist/<recipe>.json. Stopped and run again, it trains only what
   is missing. Two processes given different ROWs share a 2-core machine one thread each.
"""

import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import torch

from tinymnist import checkpoint, data, results
from tinymnist.cli import main as tinymnist

DATASET = "fashion-mnist"
VAL = 5000
CHECKED = "tiny3k"  # the row whose two variants the validation split compares
ROWS = ("seed", "tiny20k", "tiny8k", "tiny4k", "tiny3k")  # the seed network and the zoo (models.ZOO)
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / data.subfolder(DATASET)
RUNS = ROOT / "runs" / "fashion-validation"


def run(argv: list[str]) -> None:
    print("$ tinymnist " + shlex.join(argv), flush=True)
    if tinymnist(argv) != 0:
        sys.exit(f"tinymnist {shlex.join(argv)} failed")


def validation(recipe: str) -> float:
    """Final validation accuracy of `recipe`, from its record (trained first if it has none)."""
    record = OUT / "validation" / f"{recipe}.json"
    if record.is_file():
        return json.loads(record.read_text())["final_val_accuracy"]
    argv = ["train", "--dataset", DATASET, "--recipe", recipe, "--val", str(VAL), "--device", "cpu"]
    folder = RUNS / recipe
    if (folder / checkpoint.LAST).is_file():
        run(["train", "--resume", str(folder), "--device", "cpu"])
    else:
        shutil.rmtree(folder, ignore_errors=True)  # this script's own folder, killed before an epoch ended
        run([*argv, "--out", str(folder)])
    final = checkpoint.read(folder / checkpoint.FINAL)
    value = {
        "what": f"validation run on {DATASET}: trained on {60000 - VAL:,} training images, "
        f"evaluated on the {VAL:,} held out",
        "config": json.loads((folder / "config.json").read_text()),
        "history": final["history"],
        "final_val_accuracy": final["final"]["val_accuracy"],
        "command": "tinymnist " + shlex.join(argv),
        "machine": {**results.machine(torch.device("cpu")), "load_average": os.getloadavg()},
    }
    record.parent.mkdir(parents=True, exist_ok=True)
    results.write(record, value)
    return value["final_val_accuracy"]


def main(rows: list[str]) -> None:
    unknown = set(rows) - set(ROWS)
    if unknown:
        sys.exit(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")
    scores = {name: validation(name) for name in (CHECKED, f"fashion-{CHECKED}")}
    print(f"validation: {scores}", flush=True)
    if scores[CHECKED] <= scores[f"fashion-{CHECKED}"]:  # a tie keeps the simpler recipe
        sys.exit("without rotation is as good: register rotation-free recipes for the rows (recipes.py) first")
    for row in rows or ROWS:  # the MNIST recipes, unchanged
        run(["repeat", "--dataset", DATASET, "--recipe", row, "--seeds", "5", "--device", "cpu"])


if __name__ == "__main__":
    main(sys.argv[1:])
