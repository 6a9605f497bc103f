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
