"""Does an exponential moving average (EMA) of the weights pay at the final epoch? A paired probe.

    python benchmarks/ema_probe.py --recipe fast --seeds 3

Trains the recipe on the fixed validation split (the 5,000 held-out images of scripts/validate.py)
while keeping EMA copies of the weights (and of the batch-norm statistics) at several decays,
updated after every optimizer step. At the end the trained model and each copy are evaluated on
the same held-out images: the comparison is paired (same run, same seed), so seed-to-seed noise,
larger than the effect sought, cancels. Nothing here touches the test set. Writes
results/probes/ema-<recipe>.json with the machine, command and commit.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from tinymnist import checkpoint, data, engines, models, results
from tinymnist.evaluation import evaluate
from tinymnist.recipes import get
from tinymnist.training import train

DECAYS = (0.99, 0.995, 0.998)  # horizons of 100, 200 and 500 steps


def probe(recipe_name: str, seed: int, mnist: data.MNIST) -> dict:
    """One run with EMA copies: final validation accuracy of the model and of each copy."""
    created: list[nn.Module] = []
    averages: list[AveragedModel] = []
    real_create, real_optimizer = models.create, engines.make_optimizer

    def create(name: str) -> nn.Module:
        created.append(real_create(name))
        return created[-1]

    def update(*_: object) -> None:
        if not averages:  # copies made at the first step, after precision.apply set the memory format
            averages.extend(
                AveragedModel(created[-1], multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in DECAYS
            )
        for average in averages:
            average.update_parameters(created[-1])

    def make_optimizer(*args: object, **kwargs: object) -> tuple:
        opt, sched = real_optimizer(*args, **kwargs)  # type: ignore[arg-type]
        opt.register_step_post_hook(update)
        return opt, sched

    models.create, engines.make_optimizer = create, make_optimizer  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            final = train(get(recipe_name), mnist, Path(tmp) / "run", seed=seed, split="val", log=lambda _: None)
    finally:
        models.create, engines.make_optimizer = real_create, real_optimizer  # type: ignore[assignment]
    channels_last = final["precision"]["channels_last"]
    row = {"seed": seed, "model": final["final"]["val_accuracy"]}
    for decay, average in zip(DECAYS, averages, strict=True):
        row[f"ema {decay}"] = evaluate(average.module, mnist.test_images, mnist.test_labels, channels_last).accuracy
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="fast")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data-dir")
    p.add_argument("--out", default="results/probes")
    args = p.parse_args()
    mnist = data.validation_split(data.load(args.data_dir), data.VALIDATION_IMAGES)
    rows = []
    for seed in range(1, args.seeds + 1):
        rows.append(probe(args.recipe, seed, mnist))
        print(json.dumps(rows[-1]), flush=True)
    means = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0] if k != "seed"}
    record = {
        "what": f"EMA of the weights against the trained weights, {args.recipe}, final epoch, validation split",
        "recipe": args.recipe,
        "decays": list(DECAYS),
        "runs": rows,
        "mean": means,
        "command": "python benchmarks/ema_probe.py " + " ".join(sys.argv[1:]),
        "machine": results.machine(),
        **results.git_state(),
    }
    out = Path(args.out) / f"ema-{args.recipe}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save_json(out, record)
    print(json.dumps(means, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
