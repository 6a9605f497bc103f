"""Complete the recipes recorded in results files written before a Recipe field existed.

Recorded recipes are read whole (`recipes.from_dict` refuses a missing field rather than fill in
today's default), so files written before a field was added need that field, with the value the
code of the time used. Two fields were added after results were recorded:

- `nesterov` (commit 8c66256): before it, SGD always used Nesterov momentum, so `true`;
- `bf16` (commit 63eaea4): before it, the forward pass always ran in float32, so `false`.

This script adds exactly those values where the field is absent and lists what it added under
`"migrated"` in the file; a file with nothing missing is left untouched, so rerunning changes nothing.

    python scripts/migrate_results.py [results]
"""

import argparse
import json
from pathlib import Path

from tinymnist.checkpoint import save_json

ADDED = {  # field: (value every run before it had, where that is seen)
    "nesterov": (True, "added in 8c66256; until then SGD was always Nesterov (nesterov=True)"),
    "bf16": (False, "added in 63eaea4; until then the forward pass was always float32"),
}
RECIPE_KEYS = ("recipe", "recipe_fields", "seed_network_recipe")  # where results files record a recipe


def recorded_recipes(value: dict) -> list[dict]:
    """The recipe tables in a results file: at the top level, or in a validation record's config."""
    tables = [value[k] for k in RECIPE_KEYS if isinstance(value.get(k), dict)]
    config = value.get("config")
    return tables + ([config["recipe"]] if isinstance(config, dict) and isinstance(config.get("recipe"), dict) else [])


def migrate(path: Path) -> list[str]:
    """Add the missing fields to the recipes of one results file; returns the fields added."""
    value = json.loads(path.read_text())
    added = []
    for table in recorded_recipes(value):
        for field, (default, why) in ADDED.items():
            if field not in table:
                table[field] = default
                added.append(field)
                value.setdefault("migrated", {})[field] = f"{json.dumps(default)}: {why}"
    if added:
        save_json(path, value)
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="results", help="folder of results files (default: results)")
    args = parser.parse_args()
    for path in sorted(Path(args.folder).rglob("*.json")):
        added = migrate(path)
        if added:
            print(f"{path}: added {', '.join(sorted(set(added)))}")


if __name__ == "__main__":
    main()
