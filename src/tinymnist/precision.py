"""Precision, memory format and threads, decided per machine by measuring.

A default measured on one chip is a guess, and CPU flags do not predict the winner: bf16 autocast
trained 1.5-1.9x faster than float32 on a Xeon with AMX, gained nothing on a Xeon with AVX512-BF16
but no AMX, and was 7-8x slower on an AMD EPYC with AVX2 only. So on a CPU (and on MPS) a run times
a few dozen real training steps of its own model and batch size in each candidate setting — bf16
autocast or float32, channels_last or contiguous, all of the torch threads or half of them — and
trains in the fastest. The timings are cached per (CPU model, torch version, device, model, batch
size, threads) in the user cache, so a machine pays the seconds once; the decision and the timings
go into the run's config.json and its final checkpoint (and so into results files).

What a recipe decides and what the machine decides: a recipe's `bf16` field says that its
numerics allow bf16 autocast (its accuracy was measured with it); the machine then uses bf16 only
if it measures faster. A recipe without `bf16` trains in float32 everywhere, unless the user forces
bf16. The memory format and the thread count change no result, only speed: the machine alone
decides them. `--precision` and `--memory-format` force a choice; forcing both skips measuring.
On CUDA nothing is measured: bf16 where the compute capability is 8.0 or newer, channels_last. The
CPU-feature rule (bf16 where AMX or AVX512-BF16 is present) remains only as the fallback when
measuring fails.
"""

import hashlib
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tinymnist.errors import TinyMnistError

CHOICES = ("auto", "bf16", "fp32")
FORMATS = ("auto", "channels_last", "contiguous")
WARMUP, ROUNDS, STEPS_PER_ROUND = 2, 5, 3  # per setting: up to 15 timed steps, interleaved over 5 rounds
DROP = 1.5  # after a round, a setting this many times slower than the fastest so far is timed no more

# torch's own probes of the CPU features its kernels dispatch on (private, hence looked up by name).
_CPU_PROBES = {
    "avx2": "_is_avx2_supported",
    "avx512": "_is_avx512_supported",
    "avx512_bf16": "_is_avx512_bf16_supported",
    "amx_tile": "_is_amx_tile_supported",
}
BF16_CPU_FEATURES = ("amx_tile", "avx512_bf16")  # either gives bf16 matrix units to oneDNN


THREADS = torch.get_num_threads()  # the process's at start: `apply` changes torch's, candidates must not shrink


def cpu_features() -> dict[str, bool]:
    """The CPU features that decide precision, as torch reports them (absent probes count as no)."""
    return {name: bool(getattr(torch.cpu, probe, lambda: False)()) for name, probe in _CPU_PROBES.items()}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively by its features, and the fact that says so (the fallback rule)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor} ({'>=' if major >= 8 else '<'} 8.0)"
    if device.type == "cpu":
        have = [name for name, present in cpu_features().items() if present and name in BF16_CPU_FEATURES]
        if have:
            return True, f"CPU with {' and '.join(have)}"
        return False, "CPU without AMX or AVX512-BF16 (bf16 would be emulated)"
    return False, f"{device.type}: bf16 speed not known without measuring"


def candidates(device: torch.device) -> list[dict]:
    """Every setting worth timing on `device`: precision x memory format (x threads on a CPU)."""
    n = THREADS
    threads = sorted({max(1, n // 2), n}) if device.type == "cpu" else [n]
    return [
        {"bf16": bf16, "channels_last": cl, "threads": t}
        for bf16 in (False, True)
        for cl in (True, False)
        for t in threads
    ]


def measure(model_name: str, batch_size: int, device: torch.device, settings: list[dict]) -> list[float | None]:
    """Seconds per training step (forward, loss, backward, SGD step on a random batch) of each setting;
    None for a setting that fails. Settings take turns in rounds and each keeps its fastest round, so
    that a burst of other work on a shared machine hurts one round, not one setting; a setting far
    behind the fastest after a round is not timed again (on a busy machine a slow setting's steps
    would otherwise cost most of the measurement)."""
    from tinymnist import models  # models imports nothing from here, but keep import cost off --help

    threads = torch.get_num_threads()
    runs = []
    for s in settings:
        fmt = torch.channels_last if s["channels_last"] else torch.contiguous_format
        torch.manual_seed(0)
        model = models.create(model_name).to(device).to(memory_format=fmt)  # type: ignore[call-overload]  # not in the stubs
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        x = torch.randn(batch_size, 1, 28, 28, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, 10, (batch_size,), device=device)
        runs.append((s, model, opt, x, y))

    def steps(run: tuple, n: int) -> float | None:
        s, model, opt, x, y = run
        torch.set_num_threads(s["threads"])
        try:
            start = time.perf_counter()
            for _ in range(n):
                loss = F.cross_entropy(forward(model, x, s["bf16"]), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            loss.item()  # waits for the device
            return (time.perf_counter() - start) / n
        except RuntimeError:  # e.g. bf16 autocast unsupported on this device or torch
            return None
        finally:
            torch.set_num_threads(threads)

    works = [steps(run, WARMUP) is not None for run in runs]
    rounds: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        fastest = min((min(r) for r in rounds if r), default=float("inf"))
        for i, run in enumerate(runs):
            if not works[i] or (rounds[i] and min(rounds[i]) > DROP * fastest):
                continue
            t = steps(run, STEPS_PER_ROUND)
            works[i] = t is not None
            rounds[i] += [t] if t is not None else []
    return [min(r) if ok else None for r, ok in zip(rounds, works, strict=True)]


def cache_file(device: torch.device, model: str, batch_size: int) -> tuple[Path, dict]:
    """Where the timings for this machine, model and batch size are cached, and the key they answer."""
    from tinymnist.data import cache_root

    key = {
        "cpu": cpu_model(),
        "device": device.type,
        "torch": torch.__version__,
        "model": model,
        "batch_size": batch_size,
        "threads": THREADS,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "decisions" / f"{digest}.json", key


def timings(device: torch.device, model: str, batch_size: int, log=print) -> tuple[list[dict], str]:
    """Each candidate setting with its measured seconds per step, from the cache or measured now."""
    from tinymnist.checkpoint import save_json

    path, key = cache_file(device, model, batch_size)
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["timings"], f"measured earlier on this machine ({path})"
    except (OSError, ValueError, AttributeError):
        pass
    settings = candidates(device)
    log(f"timing {len(settings)} settings of {model} at batch {batch_size} on this machine (once; cached in {path})")
    seconds = measure(model, batch_size, device, settings)
    found = [s | {"seconds_per_step": t} for s, t in zip(settings, seconds, strict=True)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        save_json(path, {"key": key, "timings": found, "measured": when, "load_average": os.getloadavg()})
    except (OSError, TinyMnistError) as e:  # a read-only cache costs the measurement next time, nothing else
        log(f"note: could not cache the timings in {path} ({e})")
    return found, "measured now"


def choose(
    recipe_bf16: bool,
    requested: str,
    device: torch.device,
    model: str = "seed",
    batch_size: int = 128,
    memory_format: str = "auto",
    log=print,
) -> dict:
    """The setting a run uses: {"requested", "memory_format_requested", "bf16", "channels_last",
    "threads", "reason", "timings"} (timings: every candidate measured, or None if not measured)."""
    if requested not in CHOICES:
        raise TinyMnistError(f"--precision {requested!r}: choose {', '.join(CHOICES)}")
    if memory_format not in FORMATS:
        raise TinyMnistError(f"--memory-format {memory_format!r}: choose {', '.join(FORMATS)}")
    chosen = {"requested": requested, "memory_format_requested": memory_format, "threads": torch.get_num_threads()}
    forced = [f"--precision {requested}"] * (requested != "auto") + [f"--memory-format {memory_format}"] * (
        memory_format != "auto"
    )
    allowed = {
        "bf16": [requested == "bf16"] if requested != "auto" else [False, True] if recipe_bf16 else [False],
        "channels_last": [memory_format == "channels_last"] if memory_format != "auto" else [True, False],
    }
    if len(forced) == 2 or device.type == "cuda":
        native, why = native_bf16(device)
        bf16 = allowed["bf16"][-1] and (requested == "bf16" or native)
        reason = " and ".join(forced) if forced else why
        return chosen | {"bf16": bf16, "channels_last": allowed["channels_last"][0], "reason": reason, "timings": None}
    try:
        found, source = timings(device, model, batch_size, log)
    except RuntimeError as e:  # measuring impossible here: the CPU-feature rule
        native, why = native_bf16(device)
        bf16 = allowed["bf16"][-1] and native
        reason = f"measuring failed ({str(e).splitlines()[0][:100]}); {why}"
        return chosen | {"bf16": bf16, "channels_last": allowed["channels_last"][0], "reason": reason, "timings": None}
    usable = [
        t
        for t in found
        if t["seconds_per_step"] is not None
        and t["bf16"] in allowed["bf16"]
        and t["channels_last"] in allowed["channels_last"]
    ]
    if not usable:
        raise TinyMnistError(f"no setting allowed by {' and '.join(forced) or 'the recipe'} runs on {device.type}")
    best = min(usable, key=lambda t: t["seconds_per_step"])
    if not recipe_bf16 and requested == "auto":
        forced.append("the recipe trains in float32")
    reason = f"fastest of {len(usable)} measured settings ({source}){'; ' + ', '.join(forced) if forced else ''}"
    setting = {k: best[k] for k in ("bf16", "channels_last", "threads")}
    return chosen | setting | {"reason": reason, "timings": found}


def apply(model: nn.Module, setting: dict) -> nn.Module:
    """`model` in the setting's memory format; torch's thread count set to the setting's."""
    torch.set_num_threads(setting["threads"])
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs if setting["channels_last"] else model


def forward(model: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Float32 logits; with `bf16`, the layers run under bfloat16 autocast (weights stay float32).
    The autocast cache is off: it only saves re-casting a weight used twice in one pass, and a
    captured CUDA graph must not keep its casts alive between replays."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
        return model(x).float()
