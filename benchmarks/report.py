"""Regenerate the results tables of the README and the docs pages, and the Pareto plot, from the
JSON files in results/.

    python benchmarks/report.py           # rewrites the marked blocks of README.md and docs/*.md, and the plots
    python benchmarks/report.py --check   # exits 1 if a table is out of date (a test runs this)

Every figure in the tables comes from a results file that `tinymnist repeat` (or another
benchmark in this folder) wrote from a real run; nothing is typed in by hand.
"""

import json
import re
import statistics
import sys
from pathlib import Path

from tinymnist import claims, models, summary

ROOT = Path(__file__).resolve().parents[1]


def machine_line(m: dict) -> str:
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    threads = f", {m['torch_threads']} torch thread{'s' if m['torch_threads'] > 1 else ''}"
    return f"{m['cpu']} ({m['cores']} cores{threads}{gpu}), torch {m['torch']}, device {m['device']}"


def front_table(results: list[dict], anchors: list[tuple]) -> str:
    """The README's one table: each recipe's final-epoch test accuracy per dataset, then other
    people's figures (anchors: dataset, what, parameters as stated, accuracy), the machine said once."""
    rows = [
        "| dataset | recipe | model | parameters | epochs | final test accuracy, mean ± std (seeds) | min "
        "| seeds ≥ 99.40% |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for dataset in dict.fromkeys([r.get("dataset", "mnist") for r in results] + [a[0] for a in anchors]):
        for r in [r for r in results if r.get("dataset", "mnist") == dataset]:
            s, params = r["summary"], r["runs"][0]["parameters"]
            reached = f"{s['at_least_99_40']}/{s['seeds']}" if dataset == "mnist" else "—"  # MNIST's target
            rows.append(
                f"| {dataset} | `{r['name']}` | `{r['recipe']['model']}` | {params:,} | {r['recipe']['epochs']} "
                f"| {s['mean']:.2%} ± {s['std']:.2%} ({s['seeds']}) | {s['min']:.2%} | {reached} |"
            )
        for _, what, parameters, accuracy in [a for a in anchors if a[0] == dataset]:
            rows.append(f"| {dataset} | anchor: {what} | — | {parameters} | — | {accuracy:.2%} as stated | — | — |")
    machines = sorted({machine_line(r["machine"]) for r in results})
    return "\n".join(rows) + f"\n\nMachine: {'; '.join(machines)}."


def front_anchors(mnist: dict, fashion: dict) -> list[tuple]:
    """Other people's figures for the README's table: MNIST's public single runs, and the
    Fashion-MNIST benchmark's networks that state a parameter count under a million."""
    rows = [("mnist", a["what"], f"{a['parameters']:,}", a["test_accuracy"]) for a in mnist["rows"]]
    small = [a for a in fashion["rows"] if a["parameters"] is not None and a["parameters"] < 1_000_000]
    for a in sorted(small, key=lambda a: a["parameters"]):
        what = f"{a['classifier']} ({a['submitter']})"
        rows.append(("fashion-mnist", what, a["parameters_as_stated"], a["fashion_test_accuracy"]))
    return rows


def accuracy_table(results: list[dict]) -> str:
    rows = [
        "| recipe | model | parameters | epochs | seeds | final test accuracy, mean ± std | min | seeds ≥ 99.40% "
        "| train time per run | machine | reproduce |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        s, runs = r["summary"], r["runs"]
        seconds = sum(x["train_seconds"] for x in runs) / len(runs)
        params = runs[0]["parameters"]
        rows.append(
            f"| `{r['name']}` | `{r['recipe']['model']}` | {params:,} | {r['recipe']['epochs']} | {s['seeds']} "
            f"| {s['mean']:.2%} ± {s['std']:.2%} | {s['min']:.2%} | {s['at_least_99_40']}/{s['seeds']} "
            f"| {seconds:.0f} s | {machine_line(r['machine'])} "
            f"| `tinymnist repeat --recipe {r['name']} --seeds {s['seeds']}` |"
        )
    return "\n".join(rows)


def goals_table(results: list[dict]) -> str:
    rows = [
        "| recipe | budget | parameters | goal: mean | goal: every seed | measured: mean (seeds) | min | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r["name"] not in models.GOALS:
            continue
        goal, s = models.GOALS[r["name"]], r["summary"]
        mean, every = goal.mean, goal.every_seed
        short = [f"mean {s['mean'] - mean:+.2%}"] if s["mean"] < mean else []
        if every is not None and s["min"] < every:
            short.append(f"{sum(x['test_accuracy'] < every for x in r['runs'])} seed(s) below {every:.2%}")
        met = "yes" if not short else "no: " + ", ".join(short)
        if s["seeds"] < 5:
            met = f"not judged yet ({s['seeds']} of 5 seeds)"
        rows.append(
            f"| `{r['name']}` | {goal.budget:,} | {r['runs'][0]['parameters']:,} | {mean:.2%} "
            f"| {f'{every:.2%}' if every else '—'} | {s['mean']:.2%} ({s['seeds']}) | {s['min']:.2%} | {met} |"
        )
    return "\n".join(rows)


def speed_headline(fast: dict, seed: dict) -> str:
    """The README's speed figures: `fast` against the naive baseline, and `make train` (the seed recipe)."""
    f, s = fast["median"], seed["median"]
    every = "every seed" if fast["every_seed_reached_99_40"] else "not every seed"
    return (
        f'On {machine_line(fast["machine"])}: `make train ARGS="--recipe fast"` trains to '
        f"{f['final_test_accuracy']:.2%} final test accuracy (median of {len(fast['runs'])} seeds; {every} "
        f"≥ 99.40%) in {f['wall_seconds']:.0f} s for the whole command, {fast['speedup']['wall_time']:.1f}x faster "
        f"than the naive baseline's {fast['baseline']['wall_seconds']:.0f} s in the same run; `make train` "
        f"(the seed recipe, 15 epochs) takes {s['wall_seconds']:.0f} s "
        f"(`results/speed-fast-cpu.json`, `results/speed-seed-cpu.json`)."
    )


def speed_table(results: list[dict]) -> str:
    rows = [
        "| recipe | parameters | seeds | median wall time to final epoch | median training time "
        "| final test accuracy (median; all seeds ≥ 99.40%?) "
        "| epochs | train images/s | precision (seed 1) | naive baseline: time, epochs, accuracy, images/s "
        "| speed-up (time, images/s) | machine | command |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in results:
        m, b, s = r["median"], r.get("baseline"), r.get("speedup")
        bf16 = r["runs"][0]["precision"]["bf16"]
        base = "—"
        if b:
            reached = "reached 99.40%" if b["reached_99_40"] else "never reached 99.40%"
            base = (
                f"{b['wall_seconds']:.0f} s, {b['epochs']} epochs ({reached}), {b['final_test_accuracy']:.2%}, "
                f"{b['images_per_second']:.0f}/s"
            )
        speedup = "—"
        if s:
            speedup = (
                f"{s['wall_time']:.1f}x, {s['images_per_second']:.1f}x "
                f"(seed network: {s['seed_network_images_per_second']:.1f}x)"
            )
        rows.append(
            f"| `{r['recipe']}` | {r['parameters']:,} | {len(r['runs'])} | {m['wall_seconds']:.0f} s "
            f"| {m['train_seconds']:.0f} s "
            f"| {m['final_test_accuracy']:.2%} ({'yes' if r['every_seed_reached_99_40'] else 'no'}) "
            f"| {m['epochs']:.0f} | {m['images_per_second']:.0f} | {'bf16' if bf16 else 'float32'} "
            f"| {base} | {speedup} | {machine_line(r['machine'])} | `{r['command']}` |"
        )
    return "\n".join(rows)


def engine_table(results: list[dict]) -> str:
    rows = [
        "| model | threads | batch | memory format | bf16 autocast | torch.compile | training images/s | first step |",
        "|---|---:|---:|---|---|---|---:|---:|",
    ]
    yes = {True: "yes", False: "no"}
    for r in results:
        for x in r["runs"]:
            fmt = "channels_last" if x["channels_last"] else "contiguous"
            rows.append(
                f"| `{r['model']}` | {x['threads']} | {x['batch_size']} | {fmt} | {yes[x.get('bf16', False)]} "
                f"| {yes[x['compile']]} | {x['images_per_second']:.0f} | {x['first_step_seconds']:.2f} s |"
            )
        rows.append(f"\n{machine_line(r['machine'])}; `{r['command']}`")
    return "\n".join(rows)


def setting_words(s: dict) -> str:
    """A measured setting in words: precision, memory format, threads."""
    fmt = "channels_last" if s["channels_last"] else "contiguous"
    return f"{'bf16' if s['bf16'] else 'float32'}, {fmt}, {s['threads']} thread{'s' * (s['threads'] > 1)}"


def peak_table(results: list[dict]) -> str:
    """Each model's achieved training GFLOP/s against the machine's matmul peak (benchmarks/peak.py)."""
    rows = [
        "| recipe | model | batch | MACs per image | fastest setting (measured) | training images/s | GFLOP/s "
        "| of the matmul peak | float32 contiguous: images/s, GFLOP/s |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        peak = r["matmul_gflops"]
        for x in r["models"]:
            limit = peak["bfloat16" if x["best_setting"]["bf16"] else "float32"]
            rows.append(
                f"| `{x['recipe']}` | `{x['model']}` | {x['batch_size']} | {x['macs_per_image']:,} "
                f"| {setting_words(x['best_setting'])} | {x['images_per_second']:.0f} | {x['gflops']:.1f} "
                f"| {x['gflops'] / limit:.0%} | {x['float32_contiguous_images_per_second']:.0f}, "
                f"{x['float32_contiguous_gflops']:.1f} |"
            )
        load = f"load average {r['load_average_before'][0]:.1f} before, {r['load_average_after'][0]:.1f} after"
        rows.append(
            f"\nMatmul peak ({r['matmul_side']}x{r['matmul_side']}): float32 {peak['float32']:.0f} GFLOP/s, "
            f"bfloat16 {peak['bfloat16']:.0f} GFLOP/s. {machine_line(r['machine'])}; {load}; `{r['command']}`"
        )
    return "\n".join(rows)


def decision_table(results: list[dict]) -> str:
    """The setting each speed run trained in, as `tinymnist.precision` decided it on that machine."""
    rows = ["| recipe | seed | setting | why | machine | load average (1 min) before → after the benchmark |"]
    rows.append("|---|---:|---|---|---|---|")
    for r in results:
        before, after = r.get("load_average_before"), r.get("load_average_after")
        load = f"{before[0]:.1f} → {after[0]:.1f}" if before and after else "not recorded"
        for x in r["runs"]:
            p = x.get("precision") or {"reason": "not recorded (a run before the decision was recorded)"}
            setting = setting_words(p) if "channels_last" in p else {True: "bf16", False: "float32"}.get(p.get("bf16"))
            rows.append(
                f"| `{r['recipe']}` | {x['seed']} | {setting or '—'} | {p['reason']} | {machine_line(r['machine'])} "
                f"| {load} |"
            )
    return "\n".join(rows)


def tries_table(files: list[Path]) -> str:
    """The validation runs that shaped the `fast` recipe (the earlier `fast` first), with the pixels
    each trained on, in 28x28 epochs: an epoch at side s is (s/28)^2 of one."""
    rows = [
        "| run | model | parameters | epochs (first at low resolution) | pixels, in 28x28 epochs | batch | peak lr "
        "| label smoothing | augmentation: degrees, shift, zoom | final validation accuracy |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for path in files:
        r = json.loads(path.read_text())
        recipe = {"low_res": 28, "low_res_epochs": 0} | r["config"]["recipe"]
        low = recipe["low_res_epochs"]
        work = recipe["epochs"] - low + low * (recipe["low_res"] / 28) ** 2
        epochs = f"{recipe['epochs']}" + (f" ({low} at {recipe['low_res']}x{recipe['low_res']})" if low else "")
        rows.append(
            f"| {path.stem} | `{recipe['model']}` | {r['config']['parameters']:,} | {epochs} | {work:.1f} "
            f"| {recipe['batch_size']} | {recipe['lr']:g} | {recipe['label_smoothing']:g} "
            f"| {recipe['degrees']:g}, {recipe['translate']:g}, {recipe['scale']:g} | {r['final_val_accuracy']:.2%} |"
        )
    return "\n".join(rows)


def ema_table(files: list[Path]) -> str:
    """The paired EMA probes (benchmarks/ema_probe.py): per seed, the trained weights' final validation
    accuracy beside each moving average's, from the same run."""
    rows = []
    for path in files:
        r = json.loads(path.read_text())
        kinds = list(r["mean"])
        if not rows:
            rows += ["| recipe | seed | " + " | ".join(kinds) + " |", "|---|---|" + "---:|" * len(kinds)]
        for run in r["runs"]:
            rows.append(f"| `{r['recipe']}` | {run['seed']} | " + " | ".join(f"{run[k]:.2%}" for k in kinds) + " |")
        rows.append(f"| `{r['recipe']}` | mean | " + " | ".join(f"**{r['mean'][k]:.2%}**" for k in kinds) + " |")
        rows.append(f"\n{machine_line(r['machine'])}; `{r['command']}`")
    return "\n".join(rows)


def validation_table(files: list[Path]) -> str:
    """The validation records, with each model's size and the commit that ran: a recipe's name may
    have stood for another design then (the zoo's swept rows replaced hand-made ones)."""
    rows = [
        "| run | model | parameters | epochs | final validation accuracy | command | commit |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for path in files:
        r = json.loads(path.read_text())
        recipe = r["config"]["recipe"]
        commit = (r["machine"].get("git_commit") or "?")[:7]
        rows.append(
            f"| {path.stem} | `{recipe['model']}` | {r['config']['parameters']:,} | {recipe['epochs']} "
            f"| {r['final_val_accuracy']:.2%} | `{r['command']}` | {commit} |"
        )
    return "\n".join(rows)


LEVERS = {  # a validation record ROW-LEVER[-VARIANT][-seedN] tries a lever on the row's registered recipe
    "distilled": "knowledge distillation",
    "jitter": "brightness and contrast jitter",
    "lightaug": "lighter regularisation",
}
SEED_SUFFIXES = ("", "-seed2", "-seed3", "-seed4", "-seed5")  # a record's seed: scripts/validate.py names


def lever_table(files: list[Path]) -> str:
    """Each lever tried on a zoo row, paired by seed with the plain row on the validation split (records
    ROW-LEVER[-VARIANT][-seedN] against ROW[-seedN]), with what it changed in the recipe; a distilled
    row's teacher with its size, validation accuracy and training time."""
    found = {path.stem: json.loads(path.read_text()) for path in files}
    rows = [
        "| row | lever | what changed | seeds | plain | with the lever | change |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for name, r in sorted(found.items()):
        row, _, suffix = name.partition("-")
        lever = suffix.split("-")[0]
        if lever not in LEVERS or re.search(r"-seed\d+$", name):  # the seed-1 record names each pair
            continue
        pairs = [(found[row + s], found[name + s]) for s in SEED_SUFFIXES if row + s in found and name + s in found]
        if not pairs:
            continue
        plain = statistics.fmean(a["final_val_accuracy"] for a, _ in pairs)
        tried = statistics.fmean(b["final_val_accuracy"] for _, b in pairs)
        recipe, base = r["config"]["recipe"], found.get(row, {}).get("config", {}).get("recipe", {})
        taught = ("teacher", "distill", "temperature")  # shown together below
        changed = ", ".join(f"{k}={v}" for k, v in recipe.items() if base.get(k, v) != v and k not in taught)
        teacher = r["config"].get("teacher")
        if teacher:
            changed = ", ".join(filter(None, [
                f"teacher: `{teacher['model']}` ({teacher['parameters']:,} parameters, {teacher['accuracy']:.2%} "
                f"validation; trained in {teacher['train_seconds']:.0f} s, holding out the same "
                f"{teacher['held_out']:,} images)",
                f"distill={recipe['distill']:g}, temperature={recipe['temperature']:g}",
                changed,
            ]))  # fmt: skip
        seeds = ", ".join(str(b["config"]["seed"]) for _, b in pairs)
        rows.append(
            f"| `{row}` | {LEVERS[lever]} | {changed} | {seeds} | {plain:.2%} | {tried:.2%} | {tried - plain:+.2%} |"
        )
    return "\n".join(rows)


def serve_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lat, before, after = r["latency_ms"], r["server_memory_before"], r["server_memory_after"]
    return "\n".join(
        [
            "| requests | of them bad | clients | requests/s | p50 | p99 | 5xx or connection errors | wrong digits "
            "| server memory before → after | machine | command |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
            f"| {r['requests']:,} | {r['bad_requests']:,} | {r['clients']} | {r['requests_per_second']:.0f} "
            f"| {lat['p50']:.0f} ms | {lat['p99']:.0f} ms | {r['server_errors_5xx_or_connection']} "
            f"| {len(r['wrong_answers'])} | {before['rss_kib'] / 1024:.0f} → {after['rss_kib'] / 1024:.0f} MiB "
            f"| {machine_line(r['machine'])}, load average {r['load_average_1min_before']:.1f} before "
            f"| `{r['command']}` |",
        ]
    )


def serve_attack_table(path: Path) -> str:
    r = json.loads(path.read_text())
    quiet = r["phases"]["quiet"]["good_requests_per_second"]
    rows = [
        "| phase | attack | good requests/s (of quiet) | good p50 | good p99 | good answered right | /health answered "
        "| /health slowest | server memory before → peak → after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in r["phases"].items():
        lat, mem, health = p["good_latency_ms"], p["server_rss_mib"], p["health"]
        rows.append(
            f"| {name} | {r['attacks'].get(name, 'none')} | {p['good_requests_per_second']:.1f} "
            f"({p['good_requests_per_second'] / quiet:.0%}) | {lat['p50']:.0f} ms | {lat['p99']:.0f} ms "
            f"| {p['good_requests'] - p['wrong_or_failed']:,} of {p['good_requests']:,} "
            f"| {health['answered']} of {health['asked']} | {health['slowest_ms']:.0f} ms "
            f"| {mem['before']} → {mem['peak']} → {mem['after']} MiB |"
        )
    mem, load = r["server_rss_mib"], r["load_average_before"]
    met = ", ".join(f"{k.replace('_', ' ')}: {'yes' if v else 'NO'}" for k, v in r["targets"].items())
    rows += [
        "",
        f"Server memory over the whole run: {mem['start']} MiB at the start, {mem['peak']} MiB at the peak "
        f"(VmHWM), {mem['end']} MiB at the end. Targets: {met}. {r['seconds_per_phase']:.0f} s a phase, "
        f"{r['good_clients']} good clients, server under `ulimit -n {r['server_open_files_limit']}`; "
        f"{machine_line(r['machine'])}, commit {r['machine'].get('git_commit')}, load average {load[0]:.1f} before "
        f"(the machine was shared); `{r['command']}`.",
    ]
    return "\n".join(rows)


def fashion_table(results: list[dict], anchors: dict) -> str:
    """tinymnist's Fashion-MNIST rows beside the anchors that state a parameter count."""
    rows = [
        "| dataset | what | parameters | epochs | seeds | final test accuracy, mean ± std | min "
        "| train time per run | machine | reproduce |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        s, runs = r["summary"], r["runs"]
        seconds = sum(x["train_seconds"] for x in runs) / len(runs)
        pending = "" if s["seeds"] >= 5 else f" ({5 - s['seeds']} pending)"
        rows.append(
            f"| {r['dataset']} | tinymnist `{r['name']}` (`{r['recipe']['model']}`) | {runs[0]['parameters']:,} "
            f"| {r['recipe']['epochs']} | {s['seeds']}{pending} | {s['mean']:.2%} ± {s['std']:.2%} | {s['min']:.2%} "
            f"| {seconds:.0f} s | {machine_line(r['machine'])} "
            f"| `tinymnist repeat --dataset {r['dataset']} --recipe {r['name']} --seeds 5` |"
        )
    if not results:
        rows.append("| fashion-mnist | tinymnist: no results yet (`python scripts/fashion_results.py`) |" + " — |" * 8)
    for a in sorted(anchors["rows"], key=lambda a: a["parameters"] or 0):
        if a["parameters"] is not None:
            rows.append(
                f"| fashion-mnist | anchor: {a['classifier']} ({a['submitter']}; submitted to the dataset's README) "
                f"| {a['parameters_as_stated']} | — | — | {a['fashion_test_accuracy']:.1%} | — | — | — "
                "| `python scripts/fashion_anchors.py` |"
            )
    return "\n".join(rows)


def claim_results(folders: list[Path]) -> dict[str, dict]:
    """The `repeat` results files of `folders`, by recipe name: a claim's rows may be in any of them
    (the seed document's claim is the `notebook` row of results/)."""
    return {r["name"]: r for folder in folders if folder.is_dir() for r in repeat_results(folder)}


def claim_cells(claim: claims.Claim, found: dict | None) -> str:
    """Seeds, mean ± std, min and seeds at or above the claim, for one recipe's results file."""
    if not found:
        return "0 (not run yet) | — | — | —"
    s, accuracies = found["summary"], [r["test_accuracy"] for r in found["runs"]]
    reached = sum(a >= claim.accuracy - 1e-9 for a in accuracies)  # counts of 10,000: no float's last bit decides
    of = "" if s["seeds"] >= 5 else " of 5"
    return f"{s['seeds']}{of} | {s['mean']:.2%} ± {s['std']:.2%} | {s['min']:.2%} | {reached}/{s['seeds']}"


def claims_table(table: dict[str, claims.Claim], found: dict[str, dict]) -> str:
    """Each public claim beside its reproduction under the protocol (final epoch, seeds 1..5): with
    the recipe its source describes, and with tinymnist's recipe for the same design; then what the
    transcription of each had to assume."""
    rows = [
        "| claim | parameters | claimed | how it was picked | recipe | seeds | final test accuracy, mean ± std "
        "| min | seeds ≥ claim |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    notes = []
    for label, c in table.items():
        source = f"[{label}]({c.source})" if c.source.startswith("http") else f"{label} ({c.source})"
        for i, (whose, name) in enumerate((("theirs", c.recipe), ("ours", c.ours))):
            head = f"{source} | {c.parameters:,} | {c.accuracy:.2%} | {c.picked}" if i == 0 else " | | |"
            rows.append(f"| {head} | {whose}: `{name}` | {claim_cells(c, found.get(name))} |")
        notes += [f"- {label}: {a}" for a in c.assumed]
    return (
        "\n".join(rows)
        + "\n\nWhat the transcriptions assumed (designs are exact; see `tinymnist.claims`):\n\n"
        + ("\n".join(notes))
    )


def claim_points(table: dict[str, claims.Claim], found: dict[str, dict]) -> list[tuple]:
    """(parameters, claimed accuracy, reproduced mean with their recipe or None, label, seeds) per claim."""
    points = []
    for label, c in table.items():
        s = found[c.recipe]["summary"] if c.recipe in found else {"mean": None, "seeds": 0}
        points.append((c.parameters, c.accuracy, s["mean"], label, s["seeds"]))
    return points


SMALL_RIGHT = {"textcoords": "offset points", "xytext": (5, -3), "fontsize": 7}


def draw_claims(ax, points: list[tuple]) -> None:
    """Each claim as an open black diamond at its claimed accuracy, joined to a filled one at the mean
    of its reproduction (its own recipe, final epoch) where there is one."""
    for parameters, claimed, reproduced, label, seeds in points:
        ax.plot(parameters, 100 * claimed, "D", color="black", fillstyle="none", markersize=5)
        ax.annotate(label, (parameters, 100 * claimed), textcoords="offset points", xytext=(4, 5), fontsize=7)
        if reproduced is not None:
            ax.plot([parameters] * 2, [100 * claimed, 100 * reproduced], "-", color="black", linewidth=1)
            ax.plot(parameters, 100 * reproduced, "D", color="black", markersize=5)
            ax.annotate(f"{seeds} seed{'s' * (seeds > 1)}", (parameters, 100 * reproduced), **SMALL_RIGHT)


def pareto_plot(
    results: list[dict],
    out: Path,
    title: str,
    target: float | None = None,
    anchors: list[tuple] = (),
    claimed: list[tuple] = (),
) -> None:
    """Final-epoch test accuracy (mean ± std over seeds) against parameters and against MACs.

    Anchors (other people's networks: parameters, accuracy, label) are grey crosses on the left;
    public claims (`claim_points`) black diamonds, claimed and reproduced.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    for r in results:
        s = summary.summarize(models.create(r["recipe"]["model"]))
        mean, std = 100 * r["summary"]["mean"], 100 * r["summary"]["std"]
        for ax, x in zip(axes, (s.trainable, s.macs), strict=True):
            ax.errorbar(x, mean, yerr=std, fmt="o", capsize=4)
            ax.annotate(
                f"{r['name']} ({r['summary']['seeds']} seeds)",
                (x, mean),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
            )
    for parameters, accuracy, label in anchors:
        axes[0].plot(parameters, 100 * accuracy, "x", color="grey")
        axes[0].annotate(
            label, (parameters, 100 * accuracy), textcoords="offset points", xytext=(-4, 5), ha="right", fontsize=7
        )
    draw_claims(axes[0], claimed)
    for ax, label in zip(axes, ("trainable parameters", "multiply-accumulates per image"), strict=True):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # major labels only: no overlap
        ax.set_xlabel(label)
        if target is not None:
            ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("final-epoch test accuracy (%), mean ± std")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def replace_block(text: str, name: str, body: str, file: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"{file} has no <!-- {name}:start --> ... <!-- {name}:end --> block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def load(paths: list[Path]) -> list[dict]:
    return [json.loads(p.read_text()) for p in paths]


def repeat_results(folder: Path) -> list[dict]:
    """The `repeat` results files in `folder`, largest model first. Each must have been made with the
    model its name stands for now: a zoo row whose widths changed needs its seeds trained again."""
    found = []
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        if "summary" not in r:
            continue
        model = r["recipe"]["model"]
        size = models.count_parameters(models.create(model))
        recorded = sorted({run["parameters"] for run in r["runs"]})
        if recorded != [size]:
            made = " and ".join(f"{n:,}" for n in recorded)
            sys.exit(f"{path}: made with a {model} of {made} parameters, {size:,} now; run its `repeat` again")
        found.append(r)
    return sorted(found, key=lambda r: -r["runs"][0]["parameters"])


def main(check: bool = False) -> None:
    folder = ROOT / "results"
    speed = load(sorted(folder.glob("speed-*.json")))
    engine = load(sorted(folder.glob("engine-*.json")))
    accuracy = repeat_results(folder)
    fashion = repeat_results(folder / "fashion-mnist")
    anchors = json.loads((folder / "fashion-mnist" / "anchors.json").read_text())
    mnist_anchors = json.loads((folder / "anchors.json").read_text())
    found = claim_results([folder, folder / "claims"])
    blocks = {  # file: {block: its generated body}
        "README.md": {
            "accuracy": front_table(accuracy + fashion, front_anchors(mnist_anchors, anchors)),
            "speed-headline": speed_headline(*load([folder / "speed-fast-cpu.json", folder / "speed-seed-cpu.json"])),
        },
        "docs/results.md": {
            "accuracy-detail": accuracy_table(accuracy),
            "goals": goals_table(accuracy),
            "claims": claims_table(claims.CLAIMS, found),
            "validation": validation_table(sorted((folder / "validation").glob("*.json"))),
            "levers": lever_table(sorted((folder / "validation").glob("*.json"))),
        },
        "docs/speed.md": {
            "speed": speed_table(speed),
            "decisions": decision_table(speed),
            "peak": peak_table(load(sorted(folder.glob("peak-*.json")))),
            "tries": tries_table(
                [folder / "validation" / "fast.json", *sorted(folder.glob("validation/speed-*.json"))]
            ),
            "engine": engine_table(engine),
            "ema": ema_table(sorted((folder / "probes").glob("ema-*.json"))),
        },
        "docs/serve.md": {
            "serve": serve_table(folder / "serve_load.json"),
            "serve-attack": serve_attack_table(folder / "serve_attack.json"),
        },
        "docs/datasets.md": {
            "fashion": fashion_table(fashion, anchors),
            "fashion-validation": validation_table(sorted((folder / "fashion-mnist" / "validation").glob("*.json"))),
        },
    }
    stale = []
    for file, bodies in blocks.items():
        old = text = (ROOT / file).read_text()
        for name, body in bodies.items():
            text = replace_block(text, name, body, file)
        stale += [file] if text != old else []
        if not check:
            (ROOT / file).write_text(text)
    if check:  # the tables only: the plots' bytes vary with matplotlib's version
        sys.exit(f"out of date: {', '.join(stale)}; run python benchmarks/report.py" if stale else 0)
    pareto_plot(
        accuracy,
        ROOT / "docs" / "pareto.png",
        "tinymnist on MNIST: final epoch, 5 seeds (dashed: 99.40%; grey: public single runs, best test epoch;\n"
        "black diamonds: public claims, open as claimed, filled: their recipe's final-epoch mean here)",
        target=models.TARGET,
        anchors=[
            (a["parameters"], a["test_accuracy"], a["label"])
            for a in mnist_anchors["rows"]
            if a["parameters"] not in {c.parameters for c in claims.CLAIMS.values()}  # drawn as claims
        ],
        claimed=claim_points(claims.CLAIMS, found),
    )
    pareto_plot(
        fashion,
        ROOT / "docs" / "pareto-fashion-mnist.png",
        "tinymnist on Fashion-MNIST (grey crosses: networks submitted to the dataset's README, as stated)",
        anchors=[
            (a["parameters"], a["fashion_test_accuracy"], a["parameters_as_stated"])
            for a in anchors["rows"]
            if a["parameters"] is not None
        ],
    )
    print(
        f"{', '.join(blocks)}: tables from {len(accuracy)} accuracy, {len(speed)} speed, {len(engine)} engine "
        f"and 1 serve results files; {len(fashion)} Fashion-MNIST results files"
    )


if __name__ == "__main__":
    main(check=sys.argv[1:] == ["--check"])
