"""What a model is made of: a per-layer table (output shape, parameters, receptive field,
multiply-accumulates) with totals, and the listing of the registered models and recipes.

Shapes, parameters and MACs come from `torchinfo`; the receptive field, which it lacks, is
added here. Memory is estimated with the `torchsummary` convention the seed document quotes
("model size 1.35 MB"): input, plus every layer's output twice (forward and backward), plus
the parameters, all float32, in MiB.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torchinfo
from torch import nn

from tinymnist import models, pretrained, recipes, results

INPUT_SIZE = (1, 1, 28, 28)  # one MNIST image
FLOAT_BYTES = 4
MB = 1024**2  # torchsummary's "MB"


@dataclass
class Layer:
    name: str  # dotted module name, as in the state dict
    kind: str  # class name
    output_shape: tuple[int, ...]  # for one image, batch dimension included
    parameters: int  # trainable
    receptive_field: int  # side of the input square one output pixel sees
    jump: int  # input pixels between neighbouring output pixels
    macs: int  # multiply-accumulates per image, as torchinfo counts them


@dataclass
class Summary:
    layers: list[Layer]
    trainable: int
    non_trainable: int
    macs: int
    input_mb: float
    forward_backward_mb: float
    params_mb: float

    @property
    def total_mb(self) -> float:
        return self.input_mb + self.forward_backward_mb + self.params_mb


def _pair(value: int | tuple[int, ...]) -> int:
    """The first element of a square kernel's size, stride or dilation."""
    return value[0] if isinstance(value, tuple) else value


def window(module: nn.Module, input_side: int, output_side: int) -> tuple[int, int] | None:
    """(kernel, stride) of a layer that slides a window over the image; None if it does not.

    A Linear layer after a flatten sees the whole last feature map: one window of its side.
    """
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        dilation = _pair(getattr(module, "dilation", 1))
        return dilation * (_pair(module.kernel_size) - 1) + 1, _pair(module.stride or module.kernel_size)
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        stride = input_side // output_side
        return input_side - (output_side - 1) * stride, stride
    if isinstance(module, nn.Linear):
        return input_side, input_side
    return None


def summarize(model: nn.Module) -> Summary:
    """The layer table of `model` for one 28x28 image.

    The receptive field is accumulated along the layers in the order they run, which is exact
    for networks that are a chain of layers (every model in the registry is one).
    """
    stats = torchinfo.summary(model, input_size=INPUT_SIZE, verbose=0, device="cpu")
    names = {id(module): name for name, module in model.named_modules()}
    layers, field, jump, side = [], 1, 1, INPUT_SIZE[-1]
    for info in stats.summary_list:
        if not info.is_leaf_layer:
            continue
        out_side = info.output_size[-1] if len(info.output_size) == 4 else 1
        kernel_stride = window(info.module, side, out_side)
        if kernel_stride:
            kernel, stride = kernel_stride
            field, jump = field + (kernel - 1) * jump, jump * stride
        side = out_side
        layers.append(
            Layer(
                names[id(info.module)],
                info.class_name,
                tuple(info.output_size),
                info.trainable_params,
                field,
                jump,
                info.macs,
            )
        )
    outputs = sum(math.prod(layer.output_shape) for layer in layers)
    return Summary(
        layers=layers,
        trainable=stats.trainable_params,
        non_trainable=stats.total_params - stats.trainable_params,
        macs=stats.total_mult_adds,
        input_mb=math.prod(INPUT_SIZE) * FLOAT_BYTES / MB,
        forward_backward_mb=2 * outputs * FLOAT_BYTES / MB,
        params_mb=stats.total_params * FLOAT_BYTES / MB,
    )


def format_summary(name: str, summary: Summary) -> str:
    header = f"{'layer':<20} {'type':<12} {'output shape':<18} {'params':>8} {'RF':>4} {'jump':>4} {'MACs':>11}"
    lines = [f"model {name!r}, input {list(INPUT_SIZE)}", header, "-" * len(header)]
    for layer in summary.layers:
        lines.append(
            f"{layer.name:<20} {layer.kind:<12} {str(list(layer.output_shape)):<18} {layer.parameters:>8,} "
            f"{layer.receptive_field:>4} {layer.jump:>4} {layer.macs:>11,}"
        )
    final = summary.layers[-1]
    lines += [
        "-" * len(header),
        f"trainable parameters:      {summary.trainable:,}",
        f"non-trainable parameters:  {summary.non_trainable:,}",
        f"MACs per image:            {summary.macs:,}",
        f"receptive field:           {final.receptive_field}x{final.receptive_field} input pixels",
        f"input size:                {summary.input_mb:.2f} MB",
        f"forward/backward pass:     {summary.forward_backward_mb:.2f} MB",
        f"parameters size:           {summary.params_mb:.2f} MB",
        f"estimated total size:      {summary.total_mb:.2f} MB (torchsummary convention, float32, MB = 2^20 bytes)",
    ]
    return "\n".join(lines)


def accuracy_line(s: dict) -> str:
    return f"{s['mean']:.2%} ± {s['std']:.2%} ({s['seeds']} seeds)"


def measured(name: str, recipe: recipes.Recipe, results_dir: Path | None = None) -> str:
    """The recipe's final-epoch test accuracy over seeds, from its shipped model's card (the same
    answer anywhere), or with `results_dir` from its `repeat` results file there, else its speed
    benchmark. Only results made with exactly this recipe, every field as recorded, count."""
    if results_dir is None:
        shipped = name in pretrained.names() and pretrained.card(name)
        if shipped and recipes.same(shipped["recipe"], recipe):
            return accuracy_line(shipped["results_summary"]) + "; weights shipped"
        return "not measured (no shipped card)"
    found = results.read(results_dir / f"{name}.json")
    if found and not results.mismatch(found, recipe):
        return accuracy_line(found["summary"])
    for path in sorted(results_dir.glob(f"speed-{name}-*.json")):
        speed = results.read(path)
        if speed and recipes.same(speed.get("recipe_fields"), recipe):
            accuracies = [r["final_test_accuracy"] for r in speed["runs"]]
            return accuracy_line(results.summarize(accuracies)) + ", speed benchmark"
    return "not measured"


def format_listing(results_dir: Path | None = None) -> str:
    """The registered models (budget, parameters, MACs) and the recipes with their measured accuracy."""
    lines = [f"{'model':<16} {'budget':>8} {'params':>8} {'MACs':>11}  receptive field"]
    for name in models.MODELS:
        s = summarize(models.create(name))
        rf = s.layers[-1].receptive_field
        budget = f"{models.GOALS[name].budget:,}" if name in models.GOALS else "-"
        lines.append(f"{name:<16} {budget:>8} {s.trainable:>8,} {s.macs:>11,}  {rf}x{rf}")
    source = f"from {results_dir}" if results_dir else "from the shipped cards"
    lines += [
        "",
        f"{'recipe':<16} {'model':<16} {'epochs':>6}  {'optimizer':<9}  {'lr':<16}  final test accuracy ({source})",
    ]
    for name, r in recipes.RECIPES.items():
        lr = f"{r.lr:g} ({r.schedule})"
        lines.append(
            f"{name:<16} {r.model:<16} {r.epochs:>6}  {r.optimizer:<9}  {lr:<16}  {measured(name, r, results_dir)}"
        )
    return "\n".join(lines)
