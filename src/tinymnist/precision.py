"""Numeric precision, chosen per machine: does this chip run bfloat16 natively, and so does a run
use bf16 autocast or float32?

A default measured on one chip is a guess. bf16 autocast trained 1.5-1.9x faster on an Intel Xeon
with AMX, and 7-8x slower on an AMD EPYC with AVX2 only, which has no bf16 units and emulates it.
So a recipe's `bf16` means "bf16 where the chip runs it natively": on CUDA with compute capability
8.0 or newer, and on a CPU that torch sees with AMX or AVX512-BF16; everywhere else float32. A user
can force either (`--precision bf16|fp32`). The decision and the facts behind it go into the run's
config and the results files.
"""

import torch
from torch import nn

from tinymnist.errors import TinyMnistError

CHOICES = ("auto", "bf16", "fp32")

# torch's own probes of the CPU features its kernels dispatch on (private, hence looked up by name).
_CPU_PROBES = {
    "avx2": "_is_avx2_supported",
    "avx512": "_is_avx512_supported",
    "avx512_bf16": "_is_avx512_bf16_supported",
    "amx_tile": "_is_amx_tile_supported",
}
BF16_CPU_FEATURES = ("amx_tile", "avx512_bf16")  # either gives bf16 matrix units to oneDNN


def cpu_features() -> dict[str, bool]:
    """The CPU features that decide precision, as torch reports them (absent probes count as no)."""
    return {name: bool(getattr(torch.cpu, probe, lambda: False)()) for name, probe in _CPU_PROBES.items()}


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` runs bf16 natively, and the fact that says so."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor} ({'>=' if major >= 8 else '<'} 8.0)"
    if device.type == "cpu":
        have = [name for name, present in cpu_features().items() if present and name in BF16_CPU_FEATURES]
        if have:
            return True, f"CPU with {' and '.join(have)}"
        return False, "CPU without AMX or AVX512-BF16 (bf16 would be emulated)"
    return False, f"{device.type}: bf16 speed not measured here"


def choose(recipe_bf16: bool, requested: str, device: torch.device) -> dict:
    """The precision a run uses: {"requested", "bf16", "reason"}."""
    if requested not in CHOICES:
        raise TinyMnistError(f"--precision {requested!r}: choose {', '.join(CHOICES)}")
    if requested != "auto":
        return {"requested": requested, "bf16": requested == "bf16", "reason": f"forced with --precision {requested}"}
    if not recipe_bf16:
        return {"requested": "auto", "bf16": False, "reason": "the recipe trains in float32"}
    native, why = native_bf16(device)
    return {"requested": "auto", "bf16": native, "reason": f"{why}: {'bf16 autocast' if native else 'float32'}"}


def forward(model: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """Float32 logits; with `bf16`, the layers run under bfloat16 autocast (weights stay float32).
    The autocast cache is off: it only saves re-casting a weight used twice in one pass, and a
    captured CUDA graph must not keep its casts alive between replays."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
        return model(x).float()
