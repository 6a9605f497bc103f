"""Time to 99.40% final-epoch test accuracy: a recipe against the naive baseline, same run.

    python benchmarks/time_to_accuracy.py --recipe seed --seeds 3

For each seed the recipe is trained to its end (final epoch, never the best one); reported are
wall time, final test accuracy, epochs, training images/s and peak memory, and their median.
In the same invocation, on the same machine, one epoch of the seed network through tinymnist's
engine measures like-for-like throughput, and the naive baseline trains the seed network the
notebook way — a per-sample Dataset that normalises each item, a DataLoader of batch 128, SGD
lr 0.01 momentum 0.9, no augmentation — until its epoch's test accuracy first reaches 99.40% or
20 epochs pass. Results go to results/speed-<recipe>-<device>.json.

Each seed runs as its own `tinymnist train` process, timed from process start to exit (imports,
data from the local files, CUDA set-up and graph capture included): that is the "whole command"
time. The training time is the sum of the epochs' step times, which leave out evaluation, saving
and the one-time graph capture (reported on its own).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from tinymnist import checkpoint, data, models, results
from tinymnist.evaluation import evaluate
from tinymnist.recipes import get, override, to_dict
from tinymnist.training import pick_device, train


class NotebookMNIST(Dataset):
    """MNIST served one normalised image at a time, as tutorials do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, dataset: str) -> None:
        self.images, self.labels, self.dataset = images, labels, dataset

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return data.normalize(self.images[i][None], self.dataset)[0], self.labels[i]  # (1, 28, 28)


def baseline(mnist: data.MNIST, device: torch.device, max_epochs: int, log) -> dict:
    torch.manual_seed(1)
    model = models.create("seed").to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = NotebookMNIST(mnist.train_images.cpu(), mnist.train_labels.cpu(), mnist.dataset)
    loader = DataLoader(images, batch_size=128, shuffle=True)
    start, train_seconds, history = time.perf_counter(), 0.0, []
    for epoch in range(1, max_epochs + 1):
        model.train()
        t = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_seconds += time.perf_counter() - t
        acc = evaluate(model, mnist.test_images, mnist.test_labels, dataset=mnist.dataset).accuracy
        history.append({"epoch": epoch, "test_accuracy": acc, "seconds": time.perf_counter() - t})
        log(f"baseline epoch {epoch}: test accuracy {acc:.2%} ({history[-1]['seconds']:.0f}s)")
        if acc >= models.TARGET:
            break
    return {
        "reached_99_40": history[-1]["test_accuracy"] >= models.TARGET,
        "epochs": len(history),
        "final_test_accuracy": history[-1]["test_accuracy"],
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": train_seconds,
        "images_per_second": len(history) * len(mnist.train_labels) / train_seconds,
        "history": history,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", default="auto", help="auto (graph on CUDA, else eager), eager or graph")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (for a quick check of the script)")
    p.add_argument("--baseline-epochs", type=int, default=20, help="the baseline's epoch limit (default: 20)")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline (its figures are then absent)")
    p.add_argument("--dataset", default=data.DEFAULT, choices=list(data.DATASETS), help="(99.40%% is MNIST's target)")
    p.add_argument("--out", default="results", help="results folder (other datasets: a subfolder named after it)")
    args = p.parse_args()
    device = pick_device(args.device)
    recipe = override(get(args.recipe), epochs=args.epochs)
    mnist = data.load(args.data_dir, dataset=args.dataset).to(device)
    load_before = os.getloadavg()  # other work on the machine, before and after

    def log(line: str) -> None:
        print(line, flush=True)

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            out = Path(tmp) / f"seed{seed}"
            command = [sys.executable, "-m", "tinymnist", "train", "--recipe", args.recipe, "--seed", str(seed)]
            command += ["--out", str(out), "--device", device.type, "--engine", args.engine]
            command += ["--epochs", str(recipe.epochs)] + (["--data-dir", args.data_dir] if args.data_dir else [])
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=sys.stdout, stderr=sys.stderr)
            wall = time.perf_counter() - start
            final = checkpoint.read(out / checkpoint.FINAL)
            h = final["history"]
            runs.append(
                {
                    "seed": seed,
                    "wall_seconds": wall,
                    "train_seconds": final["train_seconds"],
                    "capture_seconds": final["capture_seconds"],
                    "final_test_accuracy": h[-1]["test_accuracy"],
                    "epochs": len(h),
                    "images_per_second": statistics.median(r["images_per_second"] for r in h),
                    "peak_memory_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                    "engine": final["engine"],
                    "precision": final["precision"],
                }
            )
    numbers = [k for k, v in runs[0].items() if k != "seed" and isinstance(v, int | float)]
    median = {k: statistics.median(r[k] for r in runs) for k in numbers}
    report = {
        "recipe": args.recipe,
        "recipe_fields": to_dict(recipe),
        "dataset": args.dataset,
        "parameters": models.count_parameters(models.create(recipe.model)),
        "command": " ".join(["python", "benchmarks/time_to_accuracy.py", *sys.argv[1:]]),
        "machine": results.machine(device),
        "load_average_before": load_before,
        "load_average": os.getloadavg(),
        "runs": runs,
        "median": median,
        "every_seed_reached_99_40": all(r["final_test_accuracy"] >= models.TARGET for r in runs),
    }
    if not args.no_baseline:
        # The same network as the baseline, one epoch through tinymnist's engine (with the recipe's
        # bf16 setting as this machine resolves it; batch 128 as the baseline's): like for like.
        seed_recipe = override(get("seed"), epochs=1, bf16=recipe.bf16)
        with tempfile.TemporaryDirectory() as tmp:
            seed_epoch = train(seed_recipe, mnist, Path(tmp), progress=False, log=log, engine=args.engine)
        report["seed_network_recipe"] = to_dict(seed_recipe)
        report["seed_network_images_per_second"] = seed_epoch["history"][0]["images_per_second"]
        report["baseline"] = b = baseline(mnist, device, args.baseline_epochs, log)
        report["speedup"] = {
            "wall_time": b["wall_seconds"] / median["wall_seconds"],
            "images_per_second": median["images_per_second"] / b["images_per_second"],
            "seed_network_images_per_second": report["seed_network_images_per_second"] / b["images_per_second"],
        }
    report["load_average_after"] = os.getloadavg()  # "load_average": after the recipe's seeds
    out = Path(args.out) / data.subfolder(args.dataset) / f"speed-{args.recipe}-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results.write(out, report)
    log(
        f"{args.recipe}: median {median['train_seconds']:.1f}s of training, {median['wall_seconds']:.1f}s for the "
        f"whole command, final accuracy {median['final_test_accuracy']:.2%}"
    )
    if "speedup" in report:
        s = report["speedup"]
        log(
            f"baseline: {b['wall_seconds']:.0f}s; speed-up {s['wall_time']:.1f}x in wall time, "
            f"{s['images_per_second']:.1f}x in images/s "
            f"({s['seed_network_images_per_second']:.1f}x for the same network)"
        )
    log(f"results: {out}")


if __name__ == "__main__":
    main()
