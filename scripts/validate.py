"""Validation records: train with the fixed validation split and record the run.

    python scripts/validate.py NAME [--data-dir DIR] [--device cpu] -- TRAIN_ARGS...

runs `tinymnist train TRAIN_ARGS --val 5000 --out runs/validation/NAME` (resuming the run folder
if it was interrupted, reusing it if it finished) and writes `results/validation/NAME.json`: the
run's config and per-epoch history, its final validation accuracy, the command, and the machine
and commit it ran on. Recipes are chosen from these records, never from the test set (README:
the protocol); `benchmarks/report.py` tables them.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from tinymnist import checkpoint, cli, data, results
from tinymnist.errors import TinyMnistError

ROOT = Path(__file__).resolve().parents[1]
VAL = data.VALIDATION_IMAGES  # the README's fixed validation split
ARGS_FILE = "validate-args.json"  # the TRAIN_ARGS a run folder was started with


def check_train_args(parser: argparse.ArgumentParser, train_args: list[str]) -> None:
    """TRAIN_ARGS set the recipe only: this script owns the split, the run folder and the data."""
    try:
        given = cli.build_parser().parse_args(["train", *train_args])
    except SystemExit:
        parser.error(f"TRAIN_ARGS {' '.join(train_args)!r}: not valid `tinymnist train` options (see above)")
    owned = {"val": given.val, "out": given.out, "resume": given.resume}
    owned |= {"data-dir": given.data_dir, "device": given.device != "auto", "no-download": given.no_download}
    taken = [f"--{k}" for k, v in owned.items() if v]
    if taken:
        parser.error(f"TRAIN_ARGS: {', '.join(taken)} are set by this script (data options go before --)")


def args_file(runs: Path, name: str) -> Path:
    """Where the TRAIN_ARGS of runs/NAME are recorded: beside the run folder, since `tinymnist train`
    writes only into a new, empty or run folder (inside it for folders started before that rule)."""
    inside = runs / name / ARGS_FILE
    return inside if inside.exists() else runs / f"{name}.{ARGS_FILE}"


def run(name: str, train_args: list[str], runs: Path, data_args: list[str]) -> Path:
    """Train, resume or reuse runs/NAME; returns the finished run folder."""
    run_dir = runs / name
    recorded = args_file(runs, name)
    if (run_dir / "config.json").exists() and not recorded.exists():
        raise TinyMnistError(f"{run_dir}: a run not started by this script; move it away to start over")
    if recorded.exists() and json.loads(recorded.read_text()) != train_args:
        raise TinyMnistError(
            f"{run_dir}: started with other TRAIN_ARGS ({' '.join(json.loads(recorded.read_text()))}); "
            "move it away to start over"
        )
    if (run_dir / checkpoint.FINAL).is_file():
        print(f"{name}: reusing the finished run {run_dir}")
        return run_dir
    if (run_dir / checkpoint.LAST).is_file():
        argv = ["train", "--resume", str(run_dir), *data_args]
    else:
        runs.mkdir(parents=True, exist_ok=True)
        checkpoint.save_json(recorded, train_args)
        argv = ["train", *train_args, "--val", str(VAL), "--out", str(run_dir), *data_args]
    code = cli.main(argv)
    if code:
        sys.exit(code)
    return run_dir


def record(name: str, train_args: list[str], run_dir: Path, folder: Path, command: str) -> Path:
    config = json.loads((run_dir / "config.json").read_text())
    history = checkpoint.read(run_dir / checkpoint.FINAL)["history"]
    value = {
        "what": (
            f"validation run: trained on {config['train_images']:,} training images, evaluated on the "
            f"{config['eval_images']:,} held out (tinymnist train --val {VAL})"
        ),
        "config": config,
        "history": history,
        "final_val_accuracy": history[-1]["val_accuracy"],
        "command": " ".join(["tinymnist train", *train_args, "--val", str(VAL)]),
        "script": command,
        "machine": results.machine(config["device"]),
        "load_average": os.getloadavg(),  # the history's timings ran beside this much other work
    }
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.save_json(folder / f"{name}.json", value)
    return folder / f"{name}.json"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage=__doc__.splitlines()[2].strip())
    parser.add_argument("name", help="name of the record: results/validation/NAME.json, runs/validation/NAME")
    parser.add_argument("--data-dir", help="MNIST folder (default: $TINYMNIST_DATA, then the cache)")
    parser.add_argument("--device", help="passed to tinymnist train (default: auto)")
    parser.add_argument("--runs", default="runs/validation", help="folder of the run folders")
    parser.add_argument("--results", default=str(ROOT / "results" / "validation"), help="folder of the records")
    split = argv.index("--") if "--" in argv else len(argv)
    args, train_args = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):
        parser.error(f"NAME {args.name!r}: letters, digits, '.', '_' and '-' only")
    check_train_args(parser, train_args)
    data_args = (["--data-dir", args.data_dir] if args.data_dir else []) + (
        ["--device", args.device] if args.device else []
    )
    try:
        run_dir = run(args.name, train_args, Path(args.runs), data_args)
    except TinyMnistError as e:
        parser.exit(2, f"validate.py: error: {e}\n")
    path = record(args.name, train_args, run_dir, Path(args.results), "python scripts/validate.py " + " ".join(argv))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
