"""benchmarks/gpu_frontier.sh in its smoke mode: every stage on the CPU, tiny, then run again to continue."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


def frontier(out: Path, mnist_dir: Path, bin_dir: Path) -> dict:
    """Run the script's smoke mode into `out`; returns its summary.json."""
    env = {
        **os.environ,
        "GPU_FRONTIER_SMOKE": "1",
        "TINYMNIST_DATA": str(mnist_dir),
        "OMP_NUM_THREADS": "1",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",  # its `python` is this one
    }
    script = ROOT / "benchmarks" / "gpu_frontier.sh"
    done = subprocess.run(["bash", str(script), str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "results" / "summary.json").read_text())


@pytest.mark.slow  # trains, in processes
def test_the_smoke_run_sweeps_validates_and_tests_only_a_new_winner_and_continues(tmp_path, mnist_dir):
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # a link would lose the venv
    (bin_dir / "python").chmod(0o755)
    first = frontier(out, mnist_dir, bin_dir)
    assert first["settings"]["smoke"] and first["settings"]["sweep_seconds"] > 0 and "commit" in first
    assert first["machine"]["device"] == "cpu" and "--smoke" in first["command"]
    row = first["rows"]["tiny4k"]
    assert row["enqueued"] == ["tiny4k"] and row["epochs"] == 1
    assert row["not_enqueued"]["ours-3762"] == "model claim-3762 is not a tinynet design"
    states = row["sweep"]["states"]  # 1-epoch trials: none pruned, but designs over budget are rejected
    assert states["COMPLETE"] == 2 and states.get("PRUNED", 0) == row["sweep"]["rejected_by_budget"]
    zoo, challenger = row["finalists"]  # the zoo's design, queued first, and the sweep's best other trial
    assert (zoo["trial"], zoo["zoo_design"], zoo["model"]) == (0, True, "tinynet-8-4-9-11")
    assert not challenger["zoo_design"]
    for f in (zoo, challenger):  # decided on a fresh validation seed, recorded by scripts/validate.py
        record = json.loads((out / "results" / "validation" / f"tiny4k-t{f['trial']}-seed2.json").read_text())
        assert record["config"]["split"] == "val" and record["final_val_accuracy"] == f["validation"]["2"]
    assert all(c["status"] == "done" for stage in first["stages"].values() for c in stage["commands"].values())
    tested = out / "results" / f"tiny4k-t{challenger['trial']}.json"
    assert tested.exists() == (row["decision"]["winner"] == challenger["trial"])  # the test set: a new winner only

    record = out / "results" / "validation" / "tiny4k-t0-seed2.json"  # now the zoo's design loses
    record.write_text(json.dumps({**json.loads(record.read_text()), "final_val_accuracy": 0.0}))
    again = frontier(out, mnist_dir, bin_dir)
    assert again["rows"]["tiny4k"]["sweep"]["states"] == states  # nothing trained twice
    assert again["stages"]["validation"]["commands"] == {}
    assert again["rows"]["tiny4k"]["decision"]["winner"] == challenger["trial"]
    assert [r["seed"] for r in json.loads(tested.read_text())["runs"]] == [1]
    assert again["rows"]["tiny4k"]["repeat"]["summary"]["seeds"] == 1
