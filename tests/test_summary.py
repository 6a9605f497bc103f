"""The layer table: the seed's totals, its receptive field checked by hand and by gradients."""

import json

import torch
from torch import nn

from tinymnist import models, recipes, summary
from tinymnist.cli import main

# The seed's receptive field by hand: rf += (kernel - 1) * jump, then jump *= stride.
#   input                      rf  1  jump  1
#   conv1.0, .4, .7   3x3      rf  3,  5,  7
#   transition 1x1             rf  7
#   maxpool 2, stride 2        rf  7 + 1*1 = 8, jump 2
#   conv2.0, .4, .8, .12 3x3   rf 8 + 2*2 = 12, 16, 20, 24  (padding changes shapes, not rf)
#   conv_final 1x1             rf 24
#   gap: avgpool 5, stride 5   rf 24 + 4*2 = 32, jump 10
HAND = {"conv1.7": (7, 1), "transition_layer.2": (8, 2), "conv2.8": (20, 2), "conv_final": (24, 2), "gap": (32, 10)}


def test_seed_totals_and_receptive_field():
    s = summary.summarize(models.create("seed"))
    assert (s.trainable, s.non_trainable) == (19_712, 0)
    layers = {layer.name: layer for layer in s.layers}
    assert {name: (layers[name].receptive_field, layers[name].jump) for name in HAND} == HAND
    assert layers["conv1.4"].output_shape == (1, 16, 24, 24)
    assert layers["conv1.4"].macs == 3 * 3 * 16 * 16 * 24 * 24
    assert sum(layer.parameters for layer in s.layers) == 19_712
    assert round(s.total_mb, 2) == 1.35  # the seed document's "model size 1.35 MB" (torchsummary)


def measured_receptive_field(layers: nn.Sequential) -> int:
    """Side of the input square that reaches the centre output pixel: the support of its gradient
    through a linear, positive copy of `layers` (so that no path cancels or is cut off)."""
    probe = nn.Sequential(*[_linearized(m) for m in layers]).eval()
    x = torch.ones(1, 1, 28, 28, requires_grad=True)
    out = probe(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(1).nonzero()
    return int(rows.max() - rows.min() + 1)


def _linearized(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.ReLU):
        return nn.Identity()
    if isinstance(m, nn.MaxPool2d):
        return nn.AvgPool2d(m.kernel_size, m.stride)
    if isinstance(m, nn.Conv2d):
        nn.init.constant_(m.weight, 1.0)
    return m


def test_receptive_field_matches_gradient_support():
    net = models.create("seed")
    # conv2.8's output pixels see 20x20 input pixels: fits in the 28x28 image, so it is measurable.
    layers = nn.Sequential(*net.conv1, *net.transition_layer, *net.conv2[:9])
    assert measured_receptive_field(layers) == 20
    layers = nn.Sequential(*net.conv1)
    assert measured_receptive_field(layers) == 7


def test_summary_and_models_commands(capsys):
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "19,712" in out and "32x32" in out and "1.35 MB" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "seed" in out and "19,712" in out and "recipe" in out
    assert main(["summary", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_models_lists_budgets_and_measured_accuracy(capsys, tmp_path):
    summary = {"seeds": 5, "mean": 0.9951, "std": 0.0004, "min": 0.9945, "max": 0.9956, "at_least_99_40": 5}
    recipe = recipes.to_dict(recipes.get("tiny8k"))
    (tmp_path / "tiny8k.json").write_text(json.dumps({"recipe": recipe, "runs": [], "summary": summary}))
    older = recipes.to_dict(recipes.override(recipes.get("tiny4k"), epochs=3))
    (tmp_path / "tiny4k.json").write_text(json.dumps({"recipe": older, "runs": [], "summary": summary}))
    runs = [{"final_test_accuracy": a} for a in (0.9950, 0.9940)]
    speed = {"recipe_fields": recipes.to_dict(recipes.get("fast")), "runs": runs}
    (tmp_path / "speed-fast-cpu.json").write_text(json.dumps(speed))
    assert main(["models", "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split()[:2] == ["tiny8k", "8,000"] for line in lines)
    assert any(line.startswith("tiny8k ") and "99.51% ± 0.04% (5 seeds)" in line for line in lines)
    assert any(line.startswith("tiny4k ") and "not measured" in line for line in lines)  # another recipe's
    assert any(line.startswith("fast ") and "99.45% ± 0.07% (2 seeds), speed benchmark" in line for line in lines)
