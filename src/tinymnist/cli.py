"""The command line: `tinymnist train`, `tinymnist evaluate`, ...

Each subcommand is a small function over the library (`tinymnist.api` and the modules under it).
Problems with the user's input raise TinyMnistError, which `main` prints as one line
(`tinymnist: error: ...`) with exit code 2. Heavy modules (torch, matplotlib) are imported inside
the subcommands, so that `--help` and `--version` answer at once.
"""

import argparse
import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinymnist import __version__, recipes
from tinymnist.errors import TinyMnistError

RUN_HELP = (
    "a run folder, a checkpoint file, or the name of a shipped model (see `tinymnist models`); "
    "a path that exists wins over a name"
)


DATASETS = ("mnist", "fashion-mnist")  # tinymnist.data.DATASETS, named here so that --help imports no torch


def add_data_args(p: argparse.ArgumentParser, device: bool = True, default: str | None = "mnist") -> None:
    """--dataset (unless `default` is None: MNIST only), --data-dir, --no-download and --device."""
    if default:
        p.add_argument("--dataset", help=f"one of: {', '.join(DATASETS)} (default: {default})")
    p.add_argument(
        "--data-dir",
        help="the only folder to look in for the IDX files (default: $TINYMNIST_DATA for mnist, "
        "$TINYMNIST_FASHION_DATA for fashion-mnist, else the cache)",
    )
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")
    if device:
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")


def dataset_of(args: argparse.Namespace, ckpt: dict) -> str:
    """The dataset a checkpoint was trained on; a --dataset given must be the same."""
    from tinymnist import data

    trained = data.trained_on(ckpt, args.run)
    asked = getattr(args, "dataset", None)
    if asked and data.get(asked) != trained:
        raise TinyMnistError(
            f"{args.run}: a model trained on {trained.title}, not {data.get(asked).title}; "
            f"drop --dataset or pass --dataset {trained.name}"
        )
    return trained.name


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="set any recipe field, type-checked (repeatable): e.g. --set lr=0.05 --set bf16=true",
    )
    p.add_argument("--epochs", type=int, help="the recipe's epochs (same as --set epochs=N)")


def recipe_changes(args: argparse.Namespace, **shortcuts: object) -> dict:
    """The recipe fields that --set, --epochs and the given shortcut options change."""
    fields = dict(recipes.parse_setting(s) for s in args.set or [])
    fields.update((k, v) for k, v in {"epochs": args.epochs, **shortcuts}.items() if v is not None)
    return fields


def check_options(args: argparse.Namespace, **rules: recipes.Rule) -> None:
    """The integer options named (those given) within their rules, e.g. --jobs from 1 to 256."""
    for name, rule in rules.items():
        if getattr(args, name) is not None:
            recipes.check(f"--{name.replace('_', '-')}", getattr(args, name), int, rule)


def cmd_train(args: argparse.Namespace) -> None:
    fields = recipe_changes(args, model=args.model, batch_size=args.batch_size, lr=args.lr)
    if args.resume:
        if (
            fields
            or args.recipe
            or args.out
            or args.val
            or args.seed is not None
            or args.precision
            or args.engine
            or args.memory_format
        ):
            raise TinyMnistError("--resume continues a run with its own settings; drop the other training options")
        with continue_hint(args, Path(args.resume)):  # without a completed epoch: started again
            resume(args)
        return
    from tinymnist import api
    from tinymnist.training import new_run_dir

    recipe = recipes.resolve(args.recipe or "seed")
    # the run folder is named here, so that a stopped run's message can name it
    out = Path(args.out) if args.out else new_run_dir(str(fields.get("model", recipe.model)))
    with continue_hint(args, out):
        api.train(
            recipe,
            out=out,
            seed=1 if args.seed is None else args.seed,
            val=args.val,
            data_dir=args.data_dir,
            dataset=args.dataset,
            download=not args.no_download,
            device=args.device,
            precision=args.precision or "auto",
            memory_format=args.memory_format or "auto",
            engine=args.engine or "auto",
            verbose=True,
            **fields,
        )


@contextmanager
def continue_hint(args: argparse.Namespace, out: Path | None) -> Iterator[None]:
    """On Ctrl-C or a failed write while training into `out`, say which command continues the run."""
    from tinymnist.checkpoint import WriteError

    try:
        yield
    except (KeyboardInterrupt, WriteError) as e:
        again = "run the command again"
        if out is not None and (out / "config.json").is_file():
            words = ["tinymnist", "train", "--resume", str(out)]
            words += ["--data-dir", args.data_dir] if args.data_dir else []
            words += ["--device", args.device] if args.device != "auto" else []
            again = f"continue with: {shlex.join(words)}"
        if isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt(again) from None
        raise WriteError(f"{e}; when that is fixed, {again}") from None


def resume(args: argparse.Namespace) -> None:
    from tinymnist import data
    from tinymnist.training import pick_device, resume_settings, train

    out = Path(args.resume)
    recipe, config = resume_settings(out)
    trained = data.trained_on(config, out / "config.json").name
    if args.dataset and data.get(args.dataset).name != trained:
        raise TinyMnistError(f"--resume {out}: a run on {trained}, not {args.dataset}; drop --dataset")
    mnist = data.load(args.data_dir, download=not args.no_download, dataset=trained).to(pick_device(args.device))
    if config.get("split") == "val":
        mnist = data.validation_split(mnist, config["eval_images"])
    train(recipe, mnist, out, seed=config["seed"], split=config.get("split", "test"), resume=True)


PLOTS = ("confusion.png", "mistakes.png")  # what `evaluate` writes


def cmd_evaluate(args: argparse.Namespace) -> None:
    from tinymnist import checkpoint, data, plots, pretrained
    from tinymnist.evaluation import evaluate
    from tinymnist.training import is_run, pick_device

    device = pick_device(args.device)
    model, info = pretrained.load_model(args.run, device)
    spec = data.get(dataset_of(args, info))
    if args.out:
        out = Path(args.out)
    elif pretrained.is_shipped(args.run):
        out = None
    else:
        out = Path(info["source"]).parent  # the run folder (or the folder of a checkpoint file)
    if out is not None:  # a run's own plots are redrawn; files of the same name elsewhere are the user's
        checkpoint.check_folder(out)
        for name in PLOTS if not is_run(out) else ():
            checkpoint.check_file(out / name, args.overwrite)
    mnist = data.load(args.data_dir, download=not args.no_download, dataset=spec.name).to(device)
    result = evaluate(model, mnist.test_images, mnist.test_labels, dataset=spec.name)
    print(f"{info['model']} ({spec.title}) from {info['source']}")
    print(f"test loss {result.loss:.4f}  accuracy {result.accuracy:.2%}  ({len(mnist.test_labels):,} images)")
    print("per-class accuracy:")
    for label, acc in zip(spec.classes, result.per_class, strict=True):
        print(f"  {label}: {acc:.2%}")
    if out is None:
        print("(no plots: a shipped model has no run folder; --out DIR writes confusion.png and mistakes.png)")
        return
    out.mkdir(parents=True, exist_ok=True)
    confusion, mistakes = (out / name for name in PLOTS)
    plots.confusion_matrix(mnist.test_labels, result.predictions, confusion)
    shown = plots.mistakes(mnist.test_images, mnist.test_labels.cpu(), result.probabilities, mistakes)
    print(f"wrote {confusion} and {mistakes} ({shown} most confident mistakes)")


def cmd_repeat(args: argparse.Namespace) -> None:
    from tinymnist import checkpoint, data
    from tinymnist.repeat import repeat

    check_options(args, seeds=recipes.Rule(1, 1_000), jobs=recipes.Rule(1, 256))
    fields = recipe_changes(args)
    if fields and not args.name:
        raise TinyMnistError("--set/--epochs change the recipe: name its results with --name")
    recipe = recipes.validate(recipes.override(recipes.resolve(args.recipe), **fields))
    name = args.name or (args.recipe if args.recipe in recipes.RECIPES else Path(args.recipe).stem)
    if Path(name).name != name or name.startswith("."):
        raise TinyMnistError(f"--name {name!r}: a plain file name, without '/' or a leading '.'")
    spec = data.get(args.dataset or data.DEFAULT)
    out = Path(args.out or Path("results") / data.subfolder(spec.name)) / f"{name}.json"
    runs = Path(args.runs or Path("runs/repeat") / data.subfolder(spec.name))
    for folder in (out.parent, runs):
        checkpoint.check_folder(folder)
    data.load(args.data_dir, download=not args.no_download, dataset=spec.name)  # check (or download) it once
    try:
        state = repeat(name, recipe, args.seeds, out, runs, args.data_dir, args.device, args.jobs, spec.name)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(
            f"finished seeds are kept in {out}; the same command continues (an interrupted seed resumes)"
        ) from None
    s = state.get("summary")
    if s:
        print(
            f"{name}: final-epoch test accuracy over {s['seeds']} seeds: {s['mean']:.2%} +- {s['std']:.2%} "
            f"(min {s['min']:.2%}, max {s['max']:.2%})"
            + (f"; {s['at_least_99_40']} of {s['seeds']} >= 99.40%" if spec.name == data.DEFAULT else "")
        )
    print(f"results: {out}")


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        from tinymnist import serve
    except ModuleNotFoundError:  # whichever module it is (fastapi, or h11 under uvicorn), the fix is the extra
        raise TinyMnistError("serve needs FastAPI and uvicorn (its extra): pip install 'tinymnist[serve]'") from None
    serve.serve(args.run, args.host, args.port)


def cmd_summary(args: argparse.Namespace) -> None:
    from tinymnist import models, summary

    print(summary.format_summary(args.model, summary.summarize(models.create(args.model))))


def cmd_models(args: argparse.Namespace) -> None:
    from tinymnist import summary

    print(summary.format_listing(Path(args.results) if args.results else None))


def cmd_predict(args: argparse.Namespace) -> None:
    from tinymnist import data, images, inference, pretrained

    if not 1 <= args.top <= 10:
        raise TinyMnistError(f"--top {args.top}: must be between 1 and 10")
    model, info = pretrained.load_model(args.run)
    dataset = dataset_of(args, info)
    classes = data.get(dataset).classes
    files = images.image_files(args.images)
    if not files:
        raise TinyMnistError(f"{' '.join(args.images)}: no image files found ({', '.join(sorted(images.SUFFIXES))})")
    results = inference.predict_files(model, files, args.top, dataset)
    for file, r in zip(files, results, strict=True):
        if isinstance(r, images.ImageError) and args.json:
            print(json.dumps({"file": printable(str(file)), "error": printable(str(r))}))
        elif isinstance(r, images.ImageError):
            print(f"tinymnist: error: {printable(str(r))}", file=sys.stderr)
        elif args.json:
            print(json.dumps({**r.to_json(), "file": printable(r.file)}))
        else:
            print(f"{printable(r.file)}: " + "  ".join(f"{classes[d]} ({p:.1%})" for d, p in r.top))
    failed = sum(isinstance(r, images.ImageError) for r in results)
    if failed:
        raise TinyMnistError(f"{failed} of {len(results)} files could not be predicted")


def printable(text: str) -> str:
    """`text` (a file name, or a message naming one) as one line of printable text: bytes that are not
    UTF-8 (kept by Python as surrogates) as \\xNN, control characters (newline, tab, escape) escaped, so
    that a name can neither crash the printing nor split or forge a line of the output."""
    if text.isprintable():
        return text
    return "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
        else c if c.isprintable()
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )  # fmt: skip


def cmd_export(args: argparse.Namespace) -> None:
    from tinymnist import checkpoint, data, export, pretrained

    export.require(args.format)  # a missing extra is said first, before anything is loaded
    if not args.out and pretrained.is_shipped(args.run):
        raise TinyMnistError(f"{args.run} is a shipped model: say where to write it with --out FILE")
    model, info = pretrained.load_model(args.run)
    source = Path(info["source"])
    out = Path(args.out) if args.out else source.with_suffix(export.FORMATS[args.format])
    if out.resolve() == source.resolve():
        raise TinyMnistError(f"--out {out}: is the checkpoint being exported; choose another file")
    checkpoint.check_file(out, args.overwrite)
    dataset = dataset_of(args, info)
    check = None  # the test images shipped with tinymnist, unless a dataset folder is named
    if args.data_dir:
        check = data.load(args.data_dir, download=False, dataset=dataset).test_images[: export.CHECK_IMAGES]
    parity = export.export(model, args.format, out, check, args.fold_bn, dataset, info["model"])
    print(f"wrote {out} ({args.format}, {info['model']}{', BatchNorm folded' if args.fold_bn else ''})")
    print(
        f"checked on {parity.images} test images: max abs difference of logits {parity.max_abs_diff:.2e} "
        f"(< {export.TOLERANCE:g}), identical predictions"
    )


def command(sub, name: str, func, summary: str, description: str, example: str) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (in `tinymnist --help`), a description and an example."""
    p = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func)
    return p


def cmd_sweep(args: argparse.Namespace) -> None:
    from tinymnist import data

    try:
        from tinymnist import sweep
    except ModuleNotFoundError as e:
        raise TinyMnistError(f"sweep needs {e.name}, which is not installed: pip install 'tinymnist[sweep]'") from None
    check_options(
        args, trials=recipes.Rule(0, 100_000), workers=recipes.Rule(1, 256), train_images=recipes.Rule(1),
        epochs=recipes.RULES["epochs"], timeout=recipes.Rule(1),
    )  # fmt: skip
    if args.storage and args.storage.startswith("sqlite") and args.workers > 1:
        raise TinyMnistError(f"--storage {args.storage}: SQLite is unsafe with parallel workers; omit --storage")
    folder = Path(args.folder)
    given = {"interval": args.heartbeat, "grace": args.grace, "retries": args.retries}
    heartbeat = sweep.Heartbeat(**{k: v for k, v in given.items() if v is not None})  # checked before any loading
    dataset = data.get(args.dataset).name if args.dataset else None  # None: MNIST, or the study's
    if args.trials:  # check (or download) the data once, before any worker
        data.load(args.data_dir, download=not args.no_download, dataset=dataset or data.DEFAULT)
    summary = sweep.run(
        folder, args.space, args.trials, args.workers, args.storage, args.study, args.train_images, args.pruner,
        args.data_dir, args.device, dataset, heartbeat, epochs=args.epochs, timeout=args.timeout,
        enqueue=args.enqueue or [],
    )  # fmt: skip
    print(sweep.table(summary))
    if summary["best"]:
        print(f"best design as a recipe: {folder / 'best-recipe.json'}; plots and summary.json in {folder}")
    if args.timeout and summary["counted"] < args.trials:
        done = f"{summary['counted']} of {args.trials} trials"
        print(f"--timeout {args.timeout}: stopped at {done}; the same command continues")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinymnist",
        description="Tiny CNNs on MNIST, trained fast and measured honestly. `tinymnist COMMAND --help` for more.",
        epilog="example:\n  tinymnist predict seed digit.png     # a shipped model reads your image",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tinymnist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = ", ".join(recipes.RECIPES)

    p = command(
        sub,
        "train",
        cmd_train,
        "train a recipe; writes a run folder",
        "Train a recipe into a run folder (config.json, metrics.jsonl, model.pt, last.pt, curves.png): one line\n"
        "per epoch, then the verdict against the seed's constraints, judged on the final epoch. Any recipe field\n"
        "can be changed with --set NAME=VALUE; --recipe also takes a TOML or JSON file (a run's config.json too).",
        "tinymnist train --recipe fast --set lr=0.05 --epochs 4 --out runs/try",
    )
    p.add_argument("--recipe", metavar="NAME_OR_FILE", help=f"one of: {names}, or a .toml/.json file (default: seed)")
    add_recipe_args(p)
    p.add_argument("--model", help="the recipe's model (same as --set model=M)")
    p.add_argument("--batch-size", type=int, help="the recipe's batch size (same as --set batch_size=B)")
    p.add_argument("--lr", type=float, help="the recipe's (peak) learning rate (same as --set lr=LR)")
    p.add_argument("--seed", type=int, help="random seed (default: 1)")
    p.add_argument(
        "--val",
        type=int,
        metavar="N",
        help="hold out N training images as a validation set and evaluate on it, not on the test set",
    )
    p.add_argument("--out", help="run folder (default: runs/<model>-<timestamp>)")
    p.add_argument(
        "--precision",
        help="auto (default): bf16 autocast where the recipe allows it and it measures faster on this machine "
        "(CUDA: compute capability >= 8.0), else float32; bf16 or fp32 force one",
    )
    p.add_argument(
        "--memory-format",
        help="auto (default): whichever measures faster on this machine (CUDA: channels_last); "
        "channels_last or contiguous force one",
    )
    p.add_argument(
        "--engine",
        help="auto (default): graph on CUDA (the whole step as one CUDA graph; eager, saying why, if capture "
        "fails), eager elsewhere; eager forces the plain loop, e.g. for debugging",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last completed epoch")
    add_data_args(p)

    p = command(
        sub,
        "evaluate",
        cmd_evaluate,
        "test loss, accuracy and per-class accuracy of a trained model",
        "Evaluate a model on the 10,000 MNIST test images: loss, accuracy, per-class accuracy, and the plots\n"
        "confusion.png and mistakes.png (into the run folder, or --out; a shipped model needs --out for plots).",
        "tinymnist evaluate seed --out plots/",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--out", help="folder for confusion.png and mistakes.png (default: the run folder)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace confusion.png and mistakes.png outside a run folder"
    )
    add_data_args(p, default="the checkpoint's")

    p = command(
        sub,
        "repeat",
        cmd_repeat,
        "train a recipe with seeds 1..N; final-epoch accuracy per seed and over seeds",
        "The multi-seed protocol: train a registered recipe (or a recipe file) with seeds 1..N and write the\n"
        "final-epoch test accuracy of each seed, and their mean and spread, to <out>/<recipe>.json. Rerunning the\n"
        "same command trains only the seeds the file lacks.",
        "tinymnist repeat --recipe tiny8k --seeds 5 --jobs 2",
    )
    p.add_argument("--recipe", default="seed", help=f"one of: {names}, or a recipe file (default: seed)")
    p.add_argument("--name", help="the results' name, <out>/<name>.json (default: the recipe's, or its file's)")
    add_recipe_args(p)
    p.add_argument("--seeds", type=int, default=5, help="train seeds 1..N (default: 5)")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes (default: 1)")
    p.add_argument(
        "--out", help="folder of the results file <recipe>.json (default: results, or results/<dataset> for others)"
    )
    p.add_argument(
        "--runs", help="folder of the per-seed run folders (default: runs/repeat, or runs/repeat/<dataset> for others)"
    )
    add_data_args(p)

    p = command(
        sub,
        "serve",
        cmd_serve,
        "a digit-recognition HTTP API and draw-a-digit page for a trained model",
        "Serve a model over HTTP: POST /predict takes an image file, GET / is a page to draw digits on, /docs\n"
        "the API's documentation. Needs the serve extra: pip install 'tinymnist[serve]'.",
        "tinymnist serve seed --port 8000",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks a free one)")

    p = command(
        sub,
        "summary",
        cmd_summary,
        "layer table: shapes, parameters, receptive field, MACs, memory",
        "One row per layer of a registered model (output shape, parameters, receptive field, multiply-\n"
        "accumulates), then totals and memory in the torchsummary convention.",
        "tinymnist summary --model tiny3k",
    )
    p.add_argument("--model", default="seed", help="a registered model (default: seed); see `tinymnist models`")

    p = command(
        sub,
        "models",
        cmd_models,
        "list the registered models and recipes, with measured accuracy",
        "The registered models (budget, parameters, MACs, receptive field) and recipes, with the final-epoch\n"
        "test accuracy over 5 seeds recorded in the shipped models' cards, and which recipes ship weights.",
        "tinymnist models",
    )
    p.add_argument("--results", help="read accuracy from this folder of `repeat` results files instead of the cards")

    p = command(
        sub,
        "predict",
        cmd_predict,
        "predict the digit in image files (PNG, JPEG, BMP, ...)",
        "Read the digit in each image file (any size; dark ink on light paper or light on dark), prepared as\n"
        "MNIST was made. Folders are walked for image files. Exit code 2 if any file could not be read.",
        "tinymnist predict seed digit.png scans/ --top 3",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders to walk for them")
    p.add_argument("--top", type=int, default=1, help="show the K most probable digits (default: 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per file: digit, probability, top; or error")

    p = command(
        sub,
        "export",
        cmd_export,
        "export to ONNX, torch.export (pt2) or TorchScript, checked against PyTorch on test images",
        "Export a model with a free batch dimension and its preprocessing recorded in the file; it is kept only\n"
        "if its logits match PyTorch's on the 500 test images shipped with tinymnist. ONNX needs the onnx\n"
        "extra: pip install 'tinymnist[onnx]'.",
        "tinymnist export seed --format onnx --out seed.onnx",
    )
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--format", required=True, choices=["onnx", "pt2", "torchscript"])
    p.add_argument(
        "--out",
        help="file to write (default: beside the checkpoint, .onnx, .pt2 or .torchscript.pt; needed for a shipped one)",
    )
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into neighbouring convolutions first")
    p.add_argument("--dataset", help=f"one of: {', '.join(DATASETS)} (default: the checkpoint's)")
    p.add_argument("--data-dir", help="check on the first 500 test images of this dataset folder, not the shipped ones")
    p.add_argument("--overwrite", action="store_true", help="replace the file if it exists (default: refuse)")

    p = command(
        sub,
        "sweep",
        cmd_sweep,
        "search designs and recipes with Optuna on the validation split",
        "Search model widths and recipe fields (a space: recipes.SPACES or a JSON file) under a parameter budget,\n"
        "judged on the final epoch's accuracy on the 5,000-image validation split; rerunning continues. Many\n"
        "machines share one study with --storage postgresql+psycopg://... (docs/sweeps.md).",
        "tinymnist sweep runs/sweeps/tiny8k --space tiny8k --trials 40 --workers 2",
    )
    p.add_argument("folder", help="the sweep's folder: journal, trial runs, summary, plots, best recipe")
    p.add_argument("--space", help=f"search space: one of {', '.join(recipes.SPACES)}, or a JSON file (first run)")
    p.add_argument("--trials", type=int, default=20, help="trained or pruned trials the study should reach (20)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine, one thread each (1)")
    p.add_argument("--storage", help="database URL shared by many machines, e.g. postgresql+psycopg://user@host/db")
    p.add_argument("--study", help="study name (default: the folder's name)")
    p.add_argument("--train-images", type=int, help="train on the first N of the 55,000 images (default: all)")
    p.add_argument("--pruner", default="median", choices=["median", "halving", "none"], help="(default: median)")
    p.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="train every trial N epochs (default: the space's: 5 for the registered)",
    )
    p.add_argument(
        "--timeout",
        type=int,
        metavar="SECONDS",
        help="end after SECONDS: no trial starts later, and one still running stops after its epoch and is "
        "queued again for the next run (default: none)",
    )
    p.add_argument(
        "--enqueue",
        action="append",
        metavar="RECIPE",
        help="train this recipe's design first: a registered recipe or a recipe file whose model the space's "
        "family can build; its widths and the fields the space searches (repeatable; never queued twice)",
    )
    p.add_argument("--heartbeat", type=int, metavar="SECONDS", help="with --storage: workers beat this often (60)")
    p.add_argument("--grace", type=int, metavar="SECONDS", help="with --storage: a trial silent this long fails (120)")
    p.add_argument("--retries", type=int, help="times a killed trial's design is queued again, then left failed (3)")
    add_data_args(p, default="mnist, or the study's")
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a character the terminal's encoding lacks: escaped, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TinyMnistError as e:
        print(f"tinymnist: error: {printable(str(e))}", file=sys.stderr)  # a name in it may hold a newline
        return 2
    except OSError as e:  # a folder that cannot be made or read: the file and the reason, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"tinymnist: error: {printable(where + str(e.strerror or e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"tinymnist: interrupted{f'; {e}' if str(e) else ''}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
