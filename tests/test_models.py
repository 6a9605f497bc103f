import re
from pathlib import Path

from tinymnist import models

SEED_NETWORK = Path(__file__).resolve().parent / "fixtures" / "seed-network.txt"  # the seed document's print-out


def test_seed_has_19712_trainable_parameters():
    assert models.count_parameters(models.create("seed")) == 19_712


def test_seed_prints_like_the_seed_document():
    ours = re.sub(r", bias=True(?=, track_running_stats)", "", str(models.create("seed")))
    assert ours.strip() == SEED_NETWORK.read_text().strip()


def test_models_return_logits():
    import torch

    for name in models.MODELS:
        out = models.create(name).eval()(torch.zeros(3, 1, 28, 28))
        assert out.shape == (3, 10), name


def test_zoo_models_fit_their_budgets():
    from tinymnist.recipes import RECIPES

    for name, goal in models.GOALS.items():
        assert models.count_parameters(models.create(RECIPES[name].model)) <= goal.budget, name


def test_every_recipe_names_a_known_model():
    from tinymnist.recipes import RECIPES

    assert all(models.known(r.model) for r in RECIPES.values())  # registered, or a family name
    assert set(models.GOALS) <= set(RECIPES) and set(models.ZOO) <= set(models.GOALS)
