"""Anchors for the Fashion-MNIST results: the benchmark table that ships with the dataset.

    python scripts/fashion_anchors.py    # writes results/fashion-mnist/anchors.json

Debian's dataset-fashion-mnist ships the dataset's README, whose "Benchmark" table collects
test accuracies submitted by users ("we haven't yet tested these results"), and
`benchmark/baselines.json`, which is the parameter grid of the authors' scikit-learn benchmark
(129 classifiers) and holds no accuracies. Each row is kept as published, with its parameter
count where the row states one; their protocols (best or final epoch, seeds) are unknown.
"""

import gzip
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tinymnist import results

DOC = Path("/usr/share/doc/dataset-fashion-mnist")
OUT = Path(__file__).resolve().parents[1] / "results" / "fashion-mnist" / "anchors.json"
SCALE = {"K": 1e3, "M": 1e6}


def parameters(classifier: str) -> tuple[int | None, str | None]:
    """The parameter count a row's classifier text states ("~113K parameters", "<100K"), and its text."""
    found = re.search(r"([<~]?)\s*([\d.]+)\s*([KM])\s*param", classifier)
    if not found:
        return None, None
    return round(float(found[2]) * SCALE[found[3]]), f"{found[1]}{found[2]}{found[3]}"


def rows(readme: str) -> list[dict]:
    table = readme.split("## Benchmark", 1)[1].split("###", 1)[0]
    out = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not re.fullmatch(r"0\.\d+", cells[2]):
            continue
        count, stated = parameters(cells[0])
        out.append(
            {
                "classifier": cells[0],
                "preprocessing": cells[1],
                "parameters": count,
                "parameters_as_stated": stated,  # "<100K" is a bound, "~113K" an estimate
                "fashion_test_accuracy": float(cells[2]),
                "mnist_test_accuracy": float(cells[3]) if re.fullmatch(r"0\.\d+", cells[3]) else None,
                "submitter": re.sub(r"\[([^]]*)\].*", r"\1", cells[4]),
            }
        )
    return out


def main() -> None:
    readme = gzip.decompress((DOC / "README.md.gz").read_bytes()).decode()
    grid = json.loads((DOC / "benchmark" / "baselines.json").read_text())
    version = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "dataset-fashion-mnist"], capture_output=True, text=True
    ).stdout
    value = {
        "what": "Fashion-MNIST test accuracies submitted to the dataset's README (not verified by its authors; "
        "protocols unknown)",
        "source": f"{DOC}/README.md.gz, Debian dataset-fashion-mnist {version}",
        "baselines_json": f"{DOC}/benchmark/baselines.json: the scikit-learn benchmark's grid of "
        f"{len(grid['classifiers'])} classifier families, no accuracies",
        "rows": rows(readme),
        "command": shlex.join(["python", *sys.argv]),
        "git_commit": results.git_commit(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    results.write(OUT, value)
    print(
        f"{OUT}: {len(value['rows'])} rows, {sum(r['parameters'] is not None for r in value['rows'])} with parameters"
    )


if __name__ == "__main__":
    main()
