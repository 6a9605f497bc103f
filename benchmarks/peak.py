"""How close to the machine's limit each model trains: the matmul peak and each model's achieved
training GFLOP/s, measured in one run.

    python benchmarks/peak.py

First a square float32 and a bfloat16 matmul (2048x2048, best of several timed bursts) give the
machine's peak GFLOP/s at torch's thread count. Then, for each recipe's model and batch size,
training steps are timed in every setting `tinymnist.precision` chooses from (bf16 or float32,
channels_last or contiguous, all or half of the threads; measured now, not taken from the cache):
images/s in the fastest setting the recipe allows, and in plain float32/contiguous at all threads.
A training step is counted as 3x the forward pass's multiply-accumulates (forward, and the two
products of the backward pass), 2 FLOPs each, as `tinymnist summary` counts MACs for one image.
Writes results/peak-<device>.json.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from tinymnist import models, precision, recipes, results, summary
from tinymnist.training import pick_device

SIDE, SECONDS = 2048, 1.0  # matmul size; seconds per timed burst


def matmul_gflops(device: torch.device, dtype: torch.dtype, bursts: int = 5) -> float:
    a, b = (torch.randn(SIDE, SIDE, device=device, dtype=dtype) for _ in range(2))
    (a @ b).sum().item()  # warm-up
    best = 0.0
    for _ in range(bursts):
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < SECONDS:
            c = a @ b
            n += 1
        c.sum().item()
        best = max(best, 2 * SIDE**3 * n / (time.perf_counter() - start) / 1e9)
    return best


def model_row(name: str, recipe: recipes.Recipe, device: torch.device) -> dict:
    settings = precision.candidates(device)
    seconds = precision.measure(recipe.model, recipe.batch_size, device, settings)
    timed = [s | {"seconds_per_step": t} for s, t in zip(settings, seconds, strict=True) if t is not None]
    allowed = [t for t in timed if recipe.bf16 or not t["bf16"]]
    best = min(allowed, key=lambda t: t["seconds_per_step"])
    plain = next(
        t
        for t in timed
        if not t["bf16"] and not t["channels_last"] and t["threads"] == max(s["threads"] for s in settings)
    )
    macs = summary.summarize(models.create(recipe.model)).macs
    per_second = {k: recipe.batch_size / t["seconds_per_step"] for k, t in (("best", best), ("plain", plain))}
    return {
        "recipe": name,
        "model": recipe.model,
        "batch_size": recipe.batch_size,
        "macs_per_image": macs,
        "best_setting": {k: best[k] for k in ("bf16", "channels_last", "threads")},
        "images_per_second": per_second["best"],
        "gflops": 6 * macs * per_second["best"] / 1e9,
        "float32_contiguous_images_per_second": per_second["plain"],
        "float32_contiguous_gflops": 6 * macs * per_second["plain"] / 1e9,
        "timings": timed,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="fast,seed,tiny20k,tiny8k,tiny4k,tiny3k,tiny1k5")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    device = pick_device(args.device)
    load_before = os.getloadavg()
    peak = {
        str(dtype).removeprefix("torch."): matmul_gflops(device, dtype) for dtype in (torch.float32, torch.bfloat16)
    }
    print(f"matmul {SIDE}x{SIDE}: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()), flush=True)
    rows = []
    for name in args.recipes.split(","):
        rows.append(model_row(name, recipes.get(name), device))
        r = rows[-1]
        print(
            f"{name} ({r['model']}, batch {r['batch_size']}): {r['images_per_second']:.0f} images/s, "
            f"{r['gflops']:.1f} GFLOP/s in {r['best_setting']}; "
            f"float32 contiguous {r['float32_contiguous_gflops']:.1f}",
            flush=True,
        )
    report = {
        "command": " ".join(["python", "benchmarks/peak.py", *sys.argv[1:]]),
        "machine": results.machine(device),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "matmul_side": SIDE,
        "matmul_gflops": peak,
        "flops_per_training_image": "6 x forward MACs (forward + two backward products, 2 FLOPs per MAC)",
        "models": rows,
    }
    out = Path(args.out) / f"peak-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results.write(out, report)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
