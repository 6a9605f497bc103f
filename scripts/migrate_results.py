"""Complete the recipes recorded in results files written before a Recipe field existed.

Recorded recipes are read whole (`recipes.from_dict` refuses a missing field rather than fill in
today's default), except for the fields in `recipes.PAST`, added after results were recorded, which
it reads as the value the code of the time used. This script writes those values into the files,
so that each file says them itself: it adds exactly those values where the field is absent and lists what it added under
`"migrated"` in the file; a file with nothing missing is left untouched, so rerunning changes nothing.

    python scripts/migrate_results.py [results]
"""

import argparse
import json
from pathlib import Path

from tinymnist.checkpoint import save_json
from tinymnist.recipes import PAST

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
        for field, (default, why) in PAST.items():
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
