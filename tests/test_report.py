"""The README's and docs' tables say what the committed results files say."""

import subprocess
import sys

from conftest import ROOT


def test_tables_match_the_results_files():
    done = subprocess.run([sys.executable, "benchmarks/report.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
