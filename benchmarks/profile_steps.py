"""Where a training step's time goes: torch.profiler over a number of real training steps.

    python benchmarks/profile_steps.py --recipe fast --steps 100

Runs the recipe's own training step (augmentation included) on MNIST batches and writes the
operators sorted by their own CPU time to results/profile-<recipe>-<device>.txt.
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tinymnist import data, models, results
from tinymnist.recipes import get, override
from tinymnist.training import make_optimizer, pick_device, train_epoch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="fast")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    device = pick_device(args.device)
    recipe = get(args.recipe)
    mnist = data.load(args.data_dir).to(device)
    n = args.steps * recipe.batch_size
    mnist = data.MNIST(mnist.train_images[:n], mnist.train_labels[:n], mnist.test_images, mnist.test_labels)
    model = models.create(recipe.model).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt, sched = make_optimizer(model, override(recipe, epochs=2), 2 * args.steps)
    generator = torch.Generator(device).manual_seed(0)
    train_epoch(model, recipe, mnist, opt, sched, generator, progress=False)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        train_epoch(model, recipe, mnist, opt, sched, generator, progress=False)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    m = results.machine(device)
    header = (
        f"{args.recipe} ({recipe.model}), {args.steps} training steps of batch {recipe.batch_size}; "
        f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} threads, torch {m['torch']}\n"
        f"command: python benchmarks/profile_steps.py {' '.join(sys.argv[1:])}\n\n"
    )
    out = Path(args.out) / f"profile-{args.recipe}-{device.type}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
