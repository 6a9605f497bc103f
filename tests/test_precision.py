"""Precision is decided per machine: bf16 autocast only where the chip runs bf16 natively."""

import json

import pytest
import torch

from helpers import subset
from tinymnist import precision, training
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import get, override

CPU = torch.device("cpu")


def features(**present: bool) -> dict[str, bool]:
    return {name: present.get(name, False) for name in ("avx2", "avx512", "avx512_bf16", "amx_tile")}


@pytest.mark.parametrize(
    "cpu, expected",
    [
        (features(avx2=True), False),  # an AMD EPYC or a laptop with AVX2 only: bf16 is emulated
        (features(avx2=True, avx512=True), False),
        (features(avx2=True, avx512=True, avx512_bf16=True), True),
        (features(avx2=True, avx512=True, avx512_bf16=True, amx_tile=True), True),  # a Xeon with AMX
        (features(), False),  # not x86, or torch cannot tell
    ],
)
def test_cpu_decision_follows_the_features(monkeypatch, cpu, expected):
    monkeypatch.setattr(precision, "cpu_features", lambda: cpu)
    chosen = precision.choose(True, "auto", CPU)
    assert chosen["bf16"] is expected
    named = [name for name in ("amx_tile", "avx512_bf16") if cpu[name]]
    assert all(name in chosen["reason"] for name in named) if expected else "without AMX" in chosen["reason"]


def test_cuda_decision_follows_compute_capability(monkeypatch):
    for capability, expected in [((7, 5), False), ((8, 0), True), ((9, 0), True)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device, c=capability: c)
        chosen = precision.choose(True, "auto", torch.device("cuda"))
        assert chosen["bf16"] is expected, capability
        assert f"{capability[0]}.{capability[1]}" in chosen["reason"]


def test_other_devices_and_float32_recipes_stay_float32(monkeypatch):
    monkeypatch.setattr(precision, "cpu_features", lambda: features(amx_tile=True, avx512_bf16=True))
    assert precision.choose(True, "auto", torch.device("mps"))["bf16"] is False
    assert precision.choose(False, "auto", CPU) == {
        "requested": "auto",
        "bf16": False,
        "reason": "the recipe trains in float32",
    }


def test_the_user_can_force_either(monkeypatch):
    monkeypatch.setattr(precision, "cpu_features", lambda: features(avx2=True))
    assert precision.choose(True, "bf16", CPU)["bf16"] is True
    assert precision.choose(False, "bf16", CPU)["bf16"] is True
    monkeypatch.setattr(precision, "cpu_features", lambda: features(amx_tile=True))
    assert precision.choose(True, "fp32", CPU)["bf16"] is False
    with pytest.raises(TinyMnistError, match="--precision 'half'"):
        precision.choose(True, "half", CPU)


def test_this_machine_is_reported():
    found = precision.cpu_features()
    assert set(found) == {"avx2", "avx512", "avx512_bf16", "amx_tile"}
    assert all(isinstance(v, bool) for v in found.values())


def test_the_run_records_its_decision(mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_features", lambda: features(avx2=True))
    small = subset(mnist, 512, 256)
    final = training.train(override(get("fast"), epochs=1), small, tmp_path / "run", log=lambda line: None)
    assert final["precision"]["bf16"] is False  # fast asks for bf16, this "CPU" has no bf16 units
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["precision"] == final["precision"] and config["engine"] == "eager"
    assert "cpu_features" in config["machine"]
