"""Recipe fields for speed: progressive resizing (early epochs at a lower resolution), and recorded
recipes from before these fields (or with the retired `channels_last`) still read as they ran."""

import json
from dataclasses import asdict

import pytest
import torch

from helpers import die_in_second_epoch, subset
from tinymnist import checkpoint, precision, recipes, training
from tinymnist.augment import random_affine
from tinymnist.recipes import RecipeError, get, override


def test_an_old_recorded_recipe_reads_as_it_ran():
    old = asdict(get("seed"))
    for name in ("low_res", "low_res_epochs"):  # recorded before progressive resizing existed
        del old[name]
    old["channels_last"] = False  # the retired memory-format field: read, then ignored
    assert recipes.from_dict(old) == get("seed") and recipes.same(old, get("seed"))
    with pytest.raises(RecipeError, match="lacks field"):
        recipes.from_dict({k: v for k, v in old.items() if k != "lr"})
    with pytest.raises(RecipeError, match="unknown recipe field"):
        recipes.from_dict(old | {"channels_first": True})


@pytest.mark.parametrize(
    "changes, problem",
    [({"low_res": 4}, "low_res=4"), ({"low_res": 40}, "low_res=40"), ({"low_res_epochs": -1}, "low_res_epochs=-1")],
)
def test_progressive_resizing_fields_are_checked(changes, problem):
    with pytest.raises(RecipeError, match=problem):
        recipes.validate(override(get("seed"), **changes))


@pytest.mark.parametrize("degrees", [0.0, 10.0])
def test_augmentation_resamples_to_the_side_asked(degrees):
    images = torch.rand(5, 1, 28, 28)
    small = random_affine(images, degrees, 0.0, 0.0, side=14)
    assert small.shape == (5, 1, 14, 14)
    if not degrees:  # without augmentation, a 2x2 average
        assert torch.allclose(small, images.view(5, 1, 14, 2, 14, 2).mean((3, 5)), atol=1e-6)
    assert random_affine(images, degrees, 0.0, 0.0, side=28).shape == images.shape


@pytest.mark.parametrize("engine", ["eager", "graph"])
def test_the_first_epochs_train_at_low_resolution(mnist, tmp_path, monkeypatch, engine):
    sides = []
    recipe = override(get("fast"), epochs=3, low_res=20, low_res_epochs=5, batch_size=64)  # the last: 28x28
    real = torch.nn.Conv2d.forward

    def forward(self, x):
        if self.in_channels == 1:
            sides.append(x.shape[-1])
        return real(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", forward)
    final = training.train(recipe, subset(mnist, 128, 64), tmp_path / "run", engine=engine, log=lambda line: None)
    assert set(sides) == {20, 28} and sides[0] == 20 and sides[-1] == 28  # evaluation is at 28x28
    assert len(final["history"]) == 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["low_res_epochs"] == 5 and sides.count(20) == 4  # 2 batches in each of 2 epochs


def test_a_run_stopped_before_these_fields_resumes_with_its_own_settings(mnist, tmp_path, monkeypatch):
    run = tmp_path / "old"
    restore = die_in_second_epoch(monkeypatch, training.EagerEngine)
    with pytest.raises(KeyboardInterrupt):
        training.train(override(get("seed"), epochs=2, batch_size=64), subset(mnist, 256, 64), run, log=print)
    restore()
    config = json.loads((run / "config.json").read_text())  # as the code before this change wrote it
    old = {k: v for k, v in config["recipe"].items() if k not in ("low_res", "low_res_epochs")}
    config["recipe"] = old | {"channels_last": False}
    config["precision"] = {"requested": "auto", "bf16": False, "reason": "the recipe trains in float32"}
    (run / "config.json").write_text(json.dumps(config))
    last = checkpoint.read(run / checkpoint.LAST)
    torch.save(last | {"recipe": config["recipe"]}, run / checkpoint.LAST)
    monkeypatch.setattr(precision, "measure", lambda *args: pytest.fail("a resumed run keeps its settings"))
    recipe, config = training.resume_settings(run)
    final = training.train(recipe, subset(mnist, 256, 64), run, resume=True, log=print)
    assert len(final["history"]) == 2 and final["precision"]["channels_last"] is False


@pytest.mark.parametrize("every, evaluated", [(0, [3]), (2, [2, 3])])
def test_a_recipe_can_evaluate_only_some_epochs(mnist, tmp_path, every, evaluated):
    lines = []
    recipe = override(get("tiny3k"), epochs=3, batch_size=64, eval_every=every)
    final = training.train(recipe, subset(mnist, 128, 64), tmp_path / "run", log=lines.append)
    assert [r["epoch"] for r in final["history"] if "test_accuracy" in r] == evaluated
    assert "test_accuracy" in final["final"] and (tmp_path / "run" / "curves.png").is_file()
    assert sum("test not evaluated" in line for line in lines) == 3 - len(evaluated)
    assert any("best epoch, for information only" in line for line in lines)
    with pytest.raises(RecipeError, match="eval_every=-1"):
        recipes.validate(override(recipe, eval_every=-1))
