"""Where a training step's time goes: torch.profiler over a number of real training steps.

    python benchmarks/profile_steps.py --recipe fast --steps 100

Runs the recipe's own training step (augmentation included) on batches of the dataset (MNIST;
`--dataset fashion-mnist`) and writes the operators sorted by their own CPU time to
results/[<dataset>/]profile-<recipe>-<device>.txt.
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tinymnist import data, engines, models, precision, results
from tinymnist.recipes import get, override
from tinymnist.training import pick_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="fast")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--device", default="auto")
    p.add_argument("--engine", default="auto", help="auto (graph on CUDA, else eager), eager or graph")
    p.add_argument("--dataset", default=data.DEFAULT, choices=list(data.DATASETS))
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    device = pick_device(args.device)
    recipe = get(args.recipe)
    mnist = data.load(args.data_dir, dataset=args.dataset).to(device)
    n = args.steps * recipe.batch_size
    mnist = replace(mnist, train_images=mnist.train_images[:n], train_labels=mnist.train_labels[:n])
    setting = precision.choose(recipe.bf16, "auto", device, recipe.model, recipe.batch_size)
    bf16 = setting["bf16"]
    model = precision.apply(models.create(recipe.model).to(device), setting)
    engine = engines.choose_engine(args.engine, device)
    two_epochs = override(recipe, epochs=2)
    runner, fallback = engines.create(engine, model, two_epochs, mnist, setting)
    engine = f"{runner.name} ({fallback})" if fallback else runner.name
    generator = torch.Generator(device).manual_seed(0)
    runner.epoch(generator)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        runner.epoch(generator)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    m = results.machine(device)
    header = (
        f"{args.recipe} ({recipe.model}), {args.steps} training steps of batch {recipe.batch_size} on {args.dataset}, "
        f"{engine} engine, {'bf16 autocast' if bf16 else 'float32'}, "
        f"{'channels_last' if setting['channels_last'] else 'contiguous'}; "
        f"{m['cpu']}, {m['cores']} cores, {m['torch_threads']} threads, torch {m['torch']}\n"
        f"command: python benchmarks/profile_steps.py {' '.join(sys.argv[1:])}\n\n"
    )
    out = Path(args.out) / data.subfolder(args.dataset) / f"profile-{args.recipe}-{device.type}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
