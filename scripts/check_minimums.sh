#!/usr/bin/env bash
# The lowest versions pyproject.toml allows (each `>=X` taken as `==X`), installed in a throwaway
# virtual environment, then the fast tests run there. Run before each release (docs/development.md);
# it downloads several GB (torch). DRY_RUN=1 only checks that those versions resolve together.
#   scripts/check_minimums.sh            # TINYMNIST_DATA as for make test
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - > "$tmp/minimums.txt" <<'PY'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
    if found := re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?>=([^,;\s]+)", requirement):
        print(f"{found[1]}=={found[3]}")
PY
echo "the declared minimums:" $(cat "$tmp/minimums.txt")
python3 -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip)
"${pip[@]}" install -q --upgrade pip
if [ "${DRY_RUN:-}" = 1 ]; then
    "${pip[@]}" install --dry-run --ignore-installed -c "$tmp/minimums.txt" '.[dev]'
    exit
fi
"${pip[@]}" install -q -c "$tmp/minimums.txt" -e '.[dev]'
"$tmp/venv/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider
