"""Which engine options make training faster here: a measurement, not a guess.

    python benchmarks/engine_options.py --model seed

Times training steps (forward, backward, SGD step on random batches shaped like MNIST) for
each combination of memory format, bfloat16 autocast, batch size and thread count, and
torch.compile once with its one-time compile cost reported apart. Writes results/engine-<model>-<device>.json.
"""

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tinymnist import models, results
from tinymnist.precision import forward
from tinymnist.training import pick_device

SECONDS = 4.0  # measured time per configuration, after warm-up


def throughput(
    model_name: str, device: torch.device, batch: int, channels_last: bool, bf16: bool, compiled: bool
) -> dict:
    torch.manual_seed(0)
    model = models.create(model_name).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    step_model = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, 1, 28, 28, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        loss = F.cross_entropy(forward(step_model, x, bf16), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = time.perf_counter()
    step()  # the first step compiles, if anything does
    first = time.perf_counter() - start
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < SECONDS:
        step()
        n += batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"images_per_second": n / (time.perf_counter() - start), "first_step_seconds": first}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="seed")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-sizes", default="128,256,512")
    p.add_argument("--threads", default="1,2", help="CPU thread counts to try (default: 1,2)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default="results")
    args = p.parse_args()
    device = pick_device(args.device)
    threads = [int(t) for t in args.threads.split(",")] if device.type == "cpu" else [torch.get_num_threads()]
    rows = []
    batches = map(int, args.batch_sizes.split(","))
    for t, batch, cl, bf16 in itertools.product(threads, batches, (False, True), (False, True)):
        torch.set_num_threads(t)
        row = {"threads": t, "batch_size": batch, "channels_last": cl, "bf16": bf16, "compile": False}
        row |= throughput(args.model, device, batch, cl, bf16, compiled=False)
        rows.append(row)
        print(row, flush=True)
    if not args.no_compile:
        best = max(rows, key=lambda r: r["images_per_second"])
        torch.set_num_threads(best["threads"])
        row = {k: best[k] for k in ("threads", "batch_size", "channels_last", "bf16")} | {"compile": True}
        row |= throughput(args.model, device, best["batch_size"], best["channels_last"], best["bf16"], compiled=True)
        rows.append(row)
        print(row, flush=True)
    out = Path(args.out) / f"engine-{args.model}-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python", "benchmarks/engine_options.py", *sys.argv[1:]])
    results.write(out, {"model": args.model, "command": command, "machine": results.machine(device), "runs": rows})
    print(f"results: {out}")


if __name__ == "__main__":
    main()
