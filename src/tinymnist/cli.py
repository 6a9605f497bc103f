"""The command line: `tinymnist train`, `tinymnist evaluate`, ...

Each subcommand is a small function over the library. Problems with the user's input raise
TinyMnistError, which `main` prints as one line (`tinymnist: error: ...`) with exit code 2.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from tinymnist import checkpoint, data, models, plots, precision, recipes
from tinymnist.errors import TinyMnistError
from tinymnist.evaluation import evaluate
from tinymnist.repeat import repeat
from tinymnist.training import ENGINES, new_run_dir, pick_device, resume_settings, train


def add_dataset_args(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--dataset", help=f"one of: {', '.join(data.DATASETS)} (default: {default})")
    p.add_argument(
        "--data-dir",
        help="the only folder to look in for the IDX files (default: $TINYMNIST_DATA for mnist, "
        "$TINYMNIST_FASHION_DATA for fashion-mnist, else the cache)",
    )
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")


def add_data_args(p: argparse.ArgumentParser, default: str = data.DEFAULT) -> None:
    add_dataset_args(p, default)
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")


def dataset_of(args: argparse.Namespace, ckpt: dict) -> str:
    """The dataset a checkpoint was trained on; a --dataset given must be the same."""
    trained = data.trained_on(ckpt, args.run)
    asked = getattr(args, "dataset", None)
    if asked and data.get(asked) != trained:
        raise TinyMnistError(
            f"{args.run}: a model trained on {trained.title}, not {data.get(asked).title}; "
            f"drop --dataset or pass --dataset {trained.name}"
        )
    return trained.name


def check_model(name: str) -> None:
    if name not in models.MODELS:
        raise TinyMnistError(f"--model {name!r}: unknown model; choose from: {', '.join(models.MODELS)}")


def load_data(args: argparse.Namespace, device: torch.device, dataset: str | None = None) -> data.MNIST:
    name = dataset or args.dataset or data.DEFAULT
    return data.load(args.data_dir, download=not args.no_download, dataset=name).to(device)


def cmd_train(args: argparse.Namespace) -> None:
    overrides = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    device = pick_device(args.device)
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
        if given or args.recipe or args.out or args.val or args.seed is not None or args.precision or args.engine:
            raise TinyMnistError("--resume continues a run with its own settings; drop the other training options")
        out = Path(args.resume)
        recipe, config = resume_settings(out)
        trained = data.trained_on(config, out / "config.json").name
        if args.dataset and data.get(args.dataset).name != trained:
            raise TinyMnistError(f"--resume {out}: a run on {trained}, not {args.dataset}; drop --dataset")
        mnist = load_data(args, device, trained)
        if config.get("split") == "val":
            mnist = data.validation_split(mnist, config["eval_images"])
        train(recipe, mnist, out, seed=config["seed"], split=config.get("split", "test"), resume=True)
        return
    recipe = recipes.override(recipes.get(args.recipe or "seed"), **overrides)
    check_model(recipe.model)
    for name in ("epochs", "batch_size"):
        if getattr(recipe, name) < 1:
            raise TinyMnistError(f"--{name.replace('_', '-')} {getattr(recipe, name)}: must be at least 1")
    if recipe.lr <= 0:
        raise TinyMnistError(f"--lr {recipe.lr}: must be positive")
    out = Path(args.out) if args.out else new_run_dir(recipe.model)
    if (out / "config.json").exists():
        raise TinyMnistError(f"--out {out}: already holds a run; use --resume {out} or another folder")
    mnist = load_data(args, device)
    split = "test"
    if args.val:
        mnist, split = data.validation_split(mnist, args.val), "val"
    seed = 1 if args.seed is None else args.seed
    train(
        recipe,
        mnist,
        out,
        seed=seed,
        split=split,
        precision_request=args.precision or "auto",
        engine=args.engine or "auto",
    )


def plots_dir(run: str) -> Path:
    """The run folder of a run folder or checkpoint file: where evaluate's plots go by default."""
    path = Path(run)
    return path if path.is_dir() else path.parent


def cmd_evaluate(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    model, ckpt = checkpoint.load_model(args.run, device)
    spec = data.get(dataset_of(args, ckpt))
    mnist = load_data(args, device, spec.name)
    result = evaluate(model, mnist.test_images, mnist.test_labels, dataset=spec.name)
    print(f"{ckpt['model']} ({spec.title}) from {checkpoint.resolve(args.run)}")
    print(f"test loss {result.loss:.4f}  accuracy {result.accuracy:.2%}  ({len(mnist.test_labels):,} images)")
    print("per-class accuracy:")
    for label, acc in zip(spec.classes, result.per_class, strict=True):
        print(f"  {label}: {acc:.2%}")
    out = Path(args.out) if args.out else plots_dir(args.run)
    out.mkdir(parents=True, exist_ok=True)
    plots.confusion_matrix(mnist.test_labels, result.predictions, out / "confusion.png")
    shown = plots.mistakes(mnist.test_images, mnist.test_labels.cpu(), result.probabilities, out / "mistakes.png")
    print(f"wrote {out / 'confusion.png'} and {out / 'mistakes.png'} ({shown} most confident mistakes)")


def cmd_repeat(args: argparse.Namespace) -> None:
    if args.seeds < 1 or args.jobs < 1:
        raise TinyMnistError("--seeds and --jobs must be at least 1")
    recipe = recipes.get(args.recipe)
    spec = data.get(args.dataset or data.DEFAULT)
    out = Path(args.out or Path("results") / data.subfolder(spec.name)) / f"{args.recipe}.json"
    runs = Path(args.runs or Path("runs/repeat") / data.subfolder(spec.name))
    load_data(args, torch.device("cpu"))  # check (or download) the dataset once, before any seed starts
    state = repeat(args.recipe, recipe, args.seeds, out, runs, args.data_dir, args.device, args.jobs, spec.name)
    s = state.get("summary")
    if s:
        print(
            f"{args.recipe}: final-epoch test accuracy over {s['seeds']} seeds: {s['mean']:.2%} +- {s['std']:.2%} "
            f"(min {s['min']:.2%}, max {s['max']:.2%}); {s['at_least_99_40']} of {s['seeds']} >= 99.40%"
        )
    print(f"results: {out}")


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        from tinymnist import serve
    except ModuleNotFoundError as e:
        raise TinyMnistError(f"serve needs {e.name}, which is not installed: pip install 'tinymnist[serve]'") from None
    serve.serve(args.run, args.host, args.port)


def cmd_summary(args: argparse.Namespace) -> None:
    from tinymnist import summary

    check_model(args.model)
    print(summary.format_summary(args.model, summary.summarize(models.create(args.model))))


def cmd_models(args: argparse.Namespace) -> None:
    from tinymnist import summary

    print(summary.format_listing(Path(args.results)))


def cmd_predict(args: argparse.Namespace) -> None:
    from tinymnist import images, predict

    if not 1 <= args.top <= 10:
        raise TinyMnistError(f"--top {args.top}: must be between 1 and 10")
    model, ckpt = checkpoint.load_model(args.run)
    dataset = dataset_of(args, ckpt)
    classes = data.get(dataset).classes
    files = images.image_files(args.images)
    if not files:
        raise TinyMnistError(f"{' '.join(args.images)}: no image files found ({', '.join(sorted(images.SUFFIXES))})")
    results = predict.predict_files(model, files, args.top, dataset)
    for file, r in zip(files, results, strict=True):
        if isinstance(r, images.ImageError) and args.json:
            print(json.dumps({"file": str(file), "error": str(r)}))
        elif isinstance(r, images.ImageError):
            print(f"tinymnist: error: {r}", file=sys.stderr)
        elif args.json:
            print(json.dumps(r.to_json()))
        else:
            print(f"{r.file}: " + "  ".join(f"{classes[d]} ({p:.1%})" for d, p in r.top))
    failed = sum(isinstance(r, images.ImageError) for r in results)
    if failed:
        raise TinyMnistError(f"{failed} of {len(results)} files could not be predicted")


def cmd_export(args: argparse.Namespace) -> None:
    from tinymnist import export

    model, ckpt = checkpoint.load_model(args.run)
    source = checkpoint.resolve(args.run)
    out = Path(args.out) if args.out else source.with_suffix(export.FORMATS[args.format])
    if out.resolve() == source.resolve():
        raise TinyMnistError(f"--out {out}: is the checkpoint being exported; choose another file")
    dataset = dataset_of(args, ckpt)
    mnist = data.load(args.data_dir, download=not args.no_download, dataset=dataset)
    check = mnist.test_images[: export.CHECK_IMAGES]
    parity = export.export(model, args.format, out, check, args.fold_bn, dataset)
    print(f"wrote {out} ({args.format}, {ckpt['model']}{', BatchNorm folded' if args.fold_bn else ''})")
    print(
        f"checked on {parity.images} test images: max abs difference of logits {parity.max_abs_diff:.2e} "
        f"(< {export.TOLERANCE:g}), identical predictions"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinymnist", description="Tiny CNNs on MNIST, trained fast and honestly.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a recipe; writes a run folder")
    p.add_argument("--recipe", help=f"one of: {', '.join(recipes.RECIPES)} (default: seed)")
    p.add_argument("--model", help="override the recipe's model")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, help="override the recipe's (peak) learning rate")
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
        choices=precision.CHOICES,
        help="auto (default): bf16 autocast where the recipe asks for it and the chip runs bf16 natively "
        "(CUDA >= 8.0, a CPU with AMX or AVX512-BF16), else float32; bf16 or fp32 force one",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="auto (default): graph on CUDA (the whole step as one CUDA graph), eager elsewhere; "
        "eager forces the plain loop, e.g. for debugging",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last completed epoch")
    add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test loss, accuracy and per-class accuracy of a trained model")
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("--out", help="folder for confusion.png and mistakes.png (default: the run folder)")
    add_data_args(p, "the checkpoint's")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("repeat", help="train a recipe with seeds 1..N; final-epoch accuracy per seed and over seeds")
    p.add_argument("--recipe", default="seed", help=f"one of: {', '.join(recipes.RECIPES)} (default: seed)")
    p.add_argument("--seeds", type=int, default=5, help="train seeds 1..N (default: 5)")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes (default: 1)")
    p.add_argument(
        "--out", help="folder of the results file <recipe>.json (default: results, or results/<dataset> for others)"
    )
    p.add_argument(
        "--runs", help="folder of the per-seed run folders (default: runs/repeat, or runs/repeat/<dataset> for others)"
    )
    add_data_args(p)
    p.set_defaults(func=cmd_repeat)

    p = sub.add_parser("serve", help="a digit-recognition HTTP API and draw-a-digit page for a trained model")
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000; 0 picks a free one)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("summary", help="layer table: shapes, parameters, receptive field, MACs, memory")
    p.add_argument("--model", default="seed", help="a registered model (default: seed); see `tinymnist models`")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("models", help="list the registered models and recipes, with measured accuracy")
    p.add_argument("--results", default="results", help="folder of `repeat` results files (default: results)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="predict the digit in image files (PNG, JPEG, BMP, ...)")
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders to walk for them")
    p.add_argument("--top", type=int, default=1, help="show the K most probable digits (default: 1)")
    p.add_argument("--json", action="store_true", help="one JSON object per file: digit, probability, top; or error")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export to ONNX or TorchScript, checked against PyTorch on test images")
    p.add_argument("run", help="run folder or checkpoint file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", help="file to write (default: the checkpoint's name with .onnx or .torchscript.pt)")
    p.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into neighbouring convolutions first")
    add_dataset_args(p, "the checkpoint's")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TinyMnistError as e:
        print(f"tinymnist: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinymnist: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
