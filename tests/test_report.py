"""The README's and docs' tables say what the committed results files say."""

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from tinymnist import models


def report_module():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_match_the_results_files():
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_results_of_a_model_whose_widths_changed_are_refused(tmp_path):
    now = models.count_parameters(models.create("tinynet-8-4-9-11"))
    made = {"recipe": {"model": "tinynet-8-4-9-11"}, "runs": [{"parameters": 3_780}], "summary": {}}
    (tmp_path / "row.json").write_text(json.dumps(made))  # e.g. a zoo row's results, before its widths changed
    with pytest.raises(SystemExit, match=f"row.json: made with a tinynet-8-4-9-11 of 3,780 parameters, {now:,} now"):
        report_module().repeat_results(tmp_path)


def fake_results(folder, name: str, model: str, accuracies: list[float]) -> None:
    """A `repeat` results file of `name` with one row per accuracy (seeds 1..N)."""
    from tinymnist import results

    parameters = models.count_parameters(models.create(model))
    runs = [{"seed": i + 1, "test_accuracy": a, "parameters": parameters} for i, a in enumerate(accuracies)]
    made = {"name": name, "recipe": {"model": model}, "runs": runs, "summary": results.summarize(accuracies)}
    (folder / f"{name}.json").write_text(json.dumps(made))


def test_claims_table_counts_the_seeds_at_or_above_each_claim(tmp_path):
    from tinymnist import claims

    report = report_module()
    (tmp_path / "claims").mkdir()
    accuracies = [9952 / 10_000, 0.9950, 0.9960, 0.9940, 0.99519999999]  # a claim's equal counts, however computed
    fake_results(tmp_path / "claims", "claim-3762", "claim-3762", accuracies)
    fake_results(tmp_path / "claims", "ours-3762", "claim-3762", [0.9953, 0.9949])
    fake_results(tmp_path, "notebook", "seed", [0.994] * 5)  # the seed document's claim: results/, not claims/
    found = report.claim_results([tmp_path, tmp_path / "claims", tmp_path / "absent"])
    table = report.claims_table(claims.CLAIMS, found)
    lines = table.splitlines()
    theirs = next(line for line in lines if "`claim-3762`" in line)
    assert "99.52%" in theirs and "| 5 | 99.51% ± 0.07% | 99.40% | 3/5 |" in theirs
    assert "| ours: `ours-3762` | 2 of 5 | 99.51% ± 0.03% | 99.49% | 1/2 |" in table
    assert "| ours: `ours-4838` | 0 (not run yet) | — | — | — |" in table
    assert "| theirs: `notebook` | 5 | 99.40% ± 0.00% | 99.40% | 5/5 |" in table  # at the claim counts
    assert all(f"- {label}: {a}" in table for label, c in claims.CLAIMS.items() for a in c.assumed)

    points = {p[3]: p for p in report.claim_points(claims.CLAIMS, found)}
    assert points["woolly-of-cv 3,762"][:2] == (3_762, 0.9952) and abs(points["woolly-of-cv 3,762"][2] - 0.99508) < 1e-9
    assert points["woolly-of-cv 3,762"][4] == 5
    assert points["woolly-of-cv 4,838"][2::2] == (None, 0)  # claimed only: nothing reproduced yet
