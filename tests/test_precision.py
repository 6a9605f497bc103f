"""Precision, memory format and threads are decided per machine by timing real training steps;
the timings are cached; the user can force either choice; the run records what was decided."""

import json

import pytest
import torch

from helpers import fake_timings, subset
from tinymnist import precision, training
from tinymnist.errors import TinyMnistError
from tinymnist.recipes import get, override

CPU = torch.device("cpu")
THREADS = torch.get_num_threads()


def features(**present: bool) -> dict[str, bool]:
    return {name: present.get(name, False) for name in ("avx2", "avx512", "avx512_bf16", "amx_tile")}


def counting(monkeypatch, fastest: dict | None = None) -> list:
    """Fake timings in which `fastest` wins; returns the list of calls to `measure`."""
    calls, fake = [], fake_timings(fastest)

    def measure(*args):
        calls.append(args[:3])
        return fake(*args)

    monkeypatch.setattr(precision, "measure", measure)
    return calls


@pytest.fixture(autouse=True)
def keep_threads():
    yield
    torch.set_num_threads(THREADS)


@pytest.mark.parametrize(
    "fastest",
    [
        {"bf16": True, "channels_last": True, "threads": THREADS},  # a Xeon with AMX
        {"bf16": False, "channels_last": True, "threads": THREADS},  # a Xeon with AVX512-BF16 but no AMX
        {"bf16": False, "channels_last": False, "threads": max(1, THREADS // 2)},  # a busy machine
    ],
)
def test_the_fastest_measured_setting_wins_whatever_the_cpu_flags_say(monkeypatch, fastest):
    monkeypatch.setattr(precision, "cpu_features", lambda: features(avx2=True, avx512_bf16=True, amx_tile=True))
    counting(monkeypatch, fastest)
    chosen = precision.choose(True, "auto", CPU, "tiny20k", 128, log=lambda line: None)
    assert {k: chosen[k] for k in fastest} == fastest
    assert "fastest of" in chosen["reason"]
    assert len(chosen["timings"]) == len(precision.candidates(CPU))
    assert min(t["seconds_per_step"] for t in chosen["timings"]) == 1.0


def test_a_float32_recipe_never_gets_bf16_unless_forced(monkeypatch):
    counting(monkeypatch, {"bf16": True, "channels_last": False, "threads": THREADS})
    chosen = precision.choose(False, "auto", CPU, "seed", 128, log=lambda line: None)
    assert chosen["bf16"] is False and "the recipe trains in float32" in chosen["reason"]
    assert precision.choose(False, "bf16", CPU, "seed", 128, log=lambda line: None)["bf16"] is True


def test_forcing_one_choice_measures_the_other_and_forcing_both_measures_nothing(monkeypatch):
    calls = counting(monkeypatch, {"bf16": True, "channels_last": False, "threads": THREADS})
    chosen = precision.choose(True, "fp32", CPU, "seed", 128, log=lambda line: None)
    assert (chosen["bf16"], chosen["channels_last"]) == (False, False)
    chosen = precision.choose(True, "auto", CPU, "seed", 128, "channels_last", log=lambda line: None)
    assert (chosen["bf16"], chosen["channels_last"]) == (True, True)
    assert len(calls) == 1, "the second choice came from the cache"
    monkeypatch.setattr(precision, "measure", lambda *args: pytest.fail("measured although both were forced"))
    chosen = precision.choose(True, "bf16", CPU, "seed", 512, "contiguous")
    assert (chosen["bf16"], chosen["channels_last"], chosen["timings"]) == (True, False, None)
    assert chosen["reason"] == "--precision bf16 and --memory-format contiguous"


def test_timings_are_cached_per_model_and_batch_size(monkeypatch, tmp_path):
    calls = counting(monkeypatch)
    quiet = {"log": lambda line: None}
    first = precision.choose(True, "auto", CPU, "tiny20k", 128, **quiet)
    again = precision.choose(True, "auto", CPU, "tiny20k", 128, **quiet)
    assert len(calls) == 1 and "measured now" in first["reason"] and "measured earlier" in again["reason"]
    assert again["timings"] == first["timings"]
    precision.choose(True, "auto", CPU, "tiny20k", 512, **quiet)
    precision.choose(True, "auto", CPU, "seed", 128, **quiet)
    assert len(calls) == 3, "another batch size or model is measured anew"
    path, key = precision.cache_file(CPU, "tiny20k", 128)
    assert str(path).startswith(str(tmp_path / "cache")) and key["cpu"] == precision.cpu_model()
    path.write_text("{not json")  # a damaged cache entry is measured again, not trusted
    precision.choose(True, "auto", CPU, "tiny20k", 128, **quiet)
    assert len(calls) == 4 and json.loads(path.read_text())["key"] == key


def test_an_unwritable_cache_costs_only_the_next_measurement(monkeypatch, tmp_path):
    counting(monkeypatch)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    lines = []
    chosen = precision.choose(True, "auto", CPU, "tiny20k", 128, log=lines.append)
    assert chosen["timings"] and any("could not cache" in line for line in lines)


@pytest.mark.parametrize("cpu, expected", [(features(avx2=True), False), (features(avx512_bf16=True), True)])
def test_cpu_flags_decide_only_when_measuring_fails(monkeypatch, cpu, expected):
    def broken(*args):
        raise RuntimeError("no kernel for this\nsecond line")

    monkeypatch.setattr(precision, "measure", broken)
    monkeypatch.setattr(precision, "cpu_features", lambda: cpu)
    chosen = precision.choose(True, "auto", CPU, "seed", 128, log=lambda line: None)
    assert chosen["bf16"] is expected and chosen["timings"] is None
    assert chosen["reason"].startswith("measuring failed (no kernel for this)")


def test_cuda_decision_follows_compute_capability(monkeypatch):
    monkeypatch.setattr(precision, "measure", lambda *args: pytest.fail("CUDA is not measured"))
    for capability, expected in [((7, 5), False), ((8, 0), True), ((9, 0), True)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device, c=capability: c)
        chosen = precision.choose(True, "auto", torch.device("cuda"))
        assert chosen["bf16"] is expected and chosen["channels_last"] is True, capability
        assert f"{capability[0]}.{capability[1]}" in chosen["reason"]
        assert precision.choose(False, "auto", torch.device("cuda"))["bf16"] is False


def test_bad_requests_name_the_option():
    with pytest.raises(TinyMnistError, match="--precision 'half'"):
        precision.choose(True, "half", CPU)
    with pytest.raises(TinyMnistError, match="--memory-format 'nhwc'"):
        precision.choose(True, "auto", CPU, memory_format="nhwc")


def test_measuring_times_real_steps_of_each_setting():
    settings = [
        {"bf16": False, "channels_last": True, "threads": 1},
        {"bf16": True, "channels_last": False, "threads": 1},
    ]
    seconds = precision.measure("tiny3k", 4, CPU, settings)
    assert len(seconds) == 2 and all(s is None or s > 0 for s in seconds) and seconds[0] is not None
    assert torch.get_num_threads() == THREADS, "measuring leaves the thread count as it was"


def test_this_machine_is_reported():
    found = precision.cpu_features()
    assert set(found) == {"avx2", "avx512", "avx512_bf16", "amx_tile"}
    assert all(isinstance(v, bool) for v in found.values())
    assert precision.cpu_model()


def test_the_run_records_and_uses_its_decision(mnist, tmp_path, monkeypatch):
    fastest = {"bf16": True, "channels_last": False, "threads": 1}
    counting(monkeypatch, fastest)
    small, candidates = subset(mnist, 512, 256), precision.candidates(CPU)
    final = training.train(override(get("fast"), epochs=1), small, tmp_path / "run", log=lambda line: None)
    assert {k: final["precision"][k] for k in fastest} == fastest
    assert torch.get_num_threads() == 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["precision"] == final["precision"] and config["engine"] == "eager"
    assert [{k: t[k] for k in fastest} for t in config["precision"]["timings"]] == candidates
    assert "cpu_features" in config["machine"]
