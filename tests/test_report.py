"""The README's and docs' tables say what the committed results files say."""

import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import ROOT


def report_module():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tables_match_the_results_files():
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_results_of_a_model_whose_widths_changed_are_refused(tmp_path):
    made = {"recipe": {"model": "tiny4k"}, "runs": [{"parameters": 3_780}], "summary": {}}
    (tmp_path / "tiny4k.json").write_text(json.dumps(made))  # the hand-made tiny4k, before its sweep
    with pytest.raises(SystemExit, match="tiny4k.json: made with a tiny4k of 3,780 parameters, 3,617 now"):
        report_module().repeat_results(tmp_path)
