"""Public claims as data: each design has the claimed size, each recipe is registered, and the
results files of `repeat` say which claim they reproduce."""

import json

import pytest

from tinymnist import claims, models, recipes
from tinymnist import repeat as repeat_module
from tinymnist.recipes import override


@pytest.mark.parametrize("label", list(claims.CLAIMS))
def test_each_claimed_design_has_the_claimed_parameter_count(label):
    claim = claims.CLAIMS[label]
    assert models.count_parameters(models.create(claim.model)) == claim.parameters


@pytest.mark.parametrize("label", list(claims.CLAIMS))
def test_ours_trains_the_same_design_with_the_zoo_recipe_of_the_smallest_budget_holding_it(label):
    claim = claims.CLAIMS[label]
    ours = recipes.RECIPES[claim.ours]
    assert ours.model == claim.model
    if claim.ours == claim.model:  # the seed network: its own recipe is a zoo-like row of its own
        return
    budget = min((g.budget, name) for name, (_, g) in models.ZOO.items() if g.budget >= claim.parameters)[1]
    assert override(recipes.RECIPES[budget], model=claim.model) == ours


def test_the_keras_networks_norm_is_one_scale_and_shift_per_sample():
    norm = models.SampleNorm()
    import torch

    x = torch.randn(4, 3, 5, 5) * 7 + 2
    y = norm(x)
    assert models.count_parameters(norm) == 2
    assert torch.allclose(y.mean((1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.std((1, 2, 3), correction=0), torch.ones(4), atol=1e-3)


def test_repeat_records_the_claim_in_the_results_file(tmp_path, monkeypatch):
    row = {"seed": 1, "test_accuracy": 0.99, "parameters": 3_762, "wall_seconds": 1.0}
    monkeypatch.setattr(repeat_module, "train_seed", lambda *a: dict(row))
    out = tmp_path / "claim-3762.json"
    repeat_module.repeat("claim-3762", recipes.RECIPES["claim-3762"], 1, out, tmp_path / "runs", log=lambda s: None)
    recorded = json.loads(out.read_text())["claim"]
    assert recorded["label"] == "woolly-of-cv 3,762" and recorded["accuracy"] == 0.9952
    assert recorded["source"].endswith("MNIST_ALBUMENTATION_3762_99.52.ipynb")
