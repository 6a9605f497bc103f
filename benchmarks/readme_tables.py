"""Regenerate the README's results tables from the JSON files in results/.

    python benchmarks/readme_tables.py            # rewrites the marked blocks of README.md

Every figure in the tables comes from a results file that `tinymnist repeat` (or another
benchmark in this folder) wrote from a real run; nothing is typed in by hand.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine_line(m: dict) -> str:
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return f"{m['cpu']} ({m['cores']} cores{gpu}), torch {m['torch']}, device {m['device']}"


def accuracy_table(files: list[Path]) -> str:
    rows = [
        "| recipe | model | parameters | epochs | seeds | final test accuracy, mean ± std | min | seeds ≥ 99.40% "
        "| train time per run | machine | reproduce |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for path in files:
        r = json.loads(path.read_text())
        s, runs = r.get("summary"), r["runs"]
        if not s:
            continue
        seconds = sum(x["train_seconds"] for x in runs) / len(runs)
        params = runs[0]["parameters"]
        rows.append(
            f"| `{r['name']}` | `{r['recipe']['model']}` | {params:,} | {r['recipe']['epochs']} | {s['seeds']} "
            f"| {s['mean']:.2%} ± {s['std']:.2%} | {s['min']:.2%} | {s['at_least_99_40']}/{s['seeds']} "
            f"| {seconds:.0f} s | {machine_line(r['machine'])} "
            f"| `tinymnist repeat --recipe {r['name']} --seeds {s['seeds']}` |"
        )
    return "\n".join(rows)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> None:
    readme = ROOT / "README.md"
    files = sorted((ROOT / "results").glob("*.json"))
    accuracy = [p for p in files if "runs" in json.loads(p.read_text())]
    text = replace_block(readme.read_text(), "accuracy", accuracy_table(accuracy))
    readme.write_text(text)
    print(f"README.md: accuracy table from {len(accuracy)} results files")


if __name__ == "__main__":
    main()
