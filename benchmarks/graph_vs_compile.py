"""A hand-captured CUDA graph against torch.compile(mode="reduce-overhead"), for the same step.

    python benchmarks/graph_vs_compile.py --recipe gpu --steps 100

Both run the graph engine's training step (`tinymnist.engines.GraphEngine.step`) on the recipe's
model and MNIST: once captured by hand (what `tinymnist train` does on CUDA), once compiled with
mode="reduce-overhead" (compilation and its own CUDA graphs count as its one-time cost). Reports
the one-time cost and milliseconds per step; writes results/graph-vs-compile-<recipe>.json.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from tinymnist import data, models, precision, results
from tinymnist.engines import GraphEngine
from tinymnist.recipes import get
from tinymnist.training import pick_device


def measure(way: str, recipe, mnist: data.MNIST, setting: dict, steps: int) -> dict:
    torch.manual_seed(0)
    model = precision.apply(models.create(recipe.model).to(mnist.train_images.device), setting)
    engine = GraphEngine(model, recipe, mnist, setting)
    engine.order.copy_(
        torch.randperm(engine.steps * recipe.batch_size, device=engine.order.device).view_as(engine.order)
    )
    model.train()
    start = time.perf_counter()
    if way == "graph":
        engine.capture()
        step = engine.graph.replay
    else:
        step = torch.compile(engine.step, mode="reduce-overhead")
        for _ in range(3):  # compilation, then the recordings reduce-overhead makes
            engine.i.zero_()
            step()
    torch.cuda.synchronize()
    once = time.perf_counter() - start
    times = []
    for _ in range(steps):
        engine.i.zero_()
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return {"way": way, "one_time_seconds": once, "ms_per_step": 1000 * statistics.median(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="gpu")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--device", default="cuda")
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    device = pick_device(args.device)
    recipe = get(args.recipe)
    mnist = data.load(args.data_dir).to(device)
    setting = precision.choose(recipe.bf16, "auto", device, recipe.model, recipe.batch_size)
    bf16 = setting["bf16"]
    rows = []
    for way in ("graph", "compile"):
        try:
            rows.append(measure(way, recipe, mnist, setting, args.steps))
        except Exception as e:  # a failure to compile is itself the finding
            rows.append({"way": way, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
        print(rows[-1], flush=True)
    report = {
        "recipe": args.recipe,
        "bf16": bf16,
        "steps": args.steps,
        "rows": rows,
        "command": " ".join(["python", "benchmarks/graph_vs_compile.py", *sys.argv[1:]]),
        "machine": results.machine(device),
        "load_average": os.getloadavg(),
    }
    out = Path(args.out) / f"graph-vs-compile-{args.recipe}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results.write(out, report)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
