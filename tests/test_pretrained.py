"""Shipped weights: each one loads (without pickle), fits its model and reproduces its card's test
accuracy; every recipe with 5-seed results ships one; commands take a shipped model's name."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load_file

from conftest import ROOT
from drawing import draw_digit
from helpers import LOCAL
from tinymnist import checkpoint, models, pretrained, recipes
from tinymnist.cli import main
from tinymnist.evaluation import evaluate
from tinymnist.serve import create_app


def test_every_recipe_with_5_seed_results_ships_weights():
    missing = set(pretrained.eligible(ROOT / "results")) - set(pretrained.names())
    assert not missing, f"no shipped weights for {sorted(missing)}: run scripts/make_pretrained.py"


@pytest.mark.slow  # evaluates all 10,000 test images
@pytest.mark.parametrize("name", pretrained.names())
def test_shipped_model_reproduces_its_card(name, mnist):
    card = json.loads((pretrained.WEIGHTS / f"{name}.json").read_text())
    assert recipes.same(card["recipe"], recipes.get(name)), "the card's recipe is the registered one, field by field"
    tensors = load_file(pretrained.WEIGHTS / f"{name}.safetensors")
    expected = models.create(card["model"]).state_dict()
    assert {k: v.shape for k, v in tensors.items()} == {k: v.shape for k, v in expected.items()}
    model, info = pretrained.load(name)
    result = evaluate(model, mnist.test_images, mnist.test_labels)
    correct, recorded = (round(a * len(mnist.test_labels)) for a in (result.accuracy, card["test_accuracy"]))
    assert abs(correct - recorded) <= 1  # within 0.01 point: one of the 10,000 test images
    assert info["source"].endswith(f"{name}.safetensors")


@pytest.fixture
def shipped(tmp_path, monkeypatch, trained_checkpoint):
    """A weights folder holding one model, `fixture2` (the 2-epoch seed network), used instead of the package's."""
    ckpt = checkpoint.read(trained_checkpoint)
    recipe = recipes.to_dict(recipes.override(recipes.get("seed"), epochs=2))
    card = {"name": "fixture2", "model": "seed", "recipe": recipe, "test_accuracy": ckpt["final"]["test_accuracy"]}
    folder = tmp_path / "weights"
    pretrained.write(folder, card, ckpt["state_dict"])
    monkeypatch.setattr(pretrained, "WEIGHTS", folder)
    monkeypatch.chdir(tmp_path)
    return folder


@pytest.mark.slow  # evaluates all 10,000 test images
def test_commands_take_a_shipped_name(shipped, tmp_path, mnist_dir, capsys):
    draw_digit(7, (120, 160)).save(tmp_path / "seven.png")
    assert main(["predict", "fixture2", "seven.png", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digit"] == 7
    assert main(["evaluate", "fixture2", "--data-dir", str(mnist_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fixture2.safetensors" in out and "accuracy 99." in out and "no plots" in out
    assert sorted(p.name for p in shipped.iterdir()) == ["fixture2.json", "fixture2.safetensors"]  # nothing written
    assert main(["export", "fixture2", "--format", "torchscript", "--data-dir", str(mnist_dir)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["export", "fixture2", "--format", "torchscript", "--out", "f.pt", "--data-dir", str(mnist_dir)]) == 0
    assert (tmp_path / "f.pt").is_file()
    client = TestClient(create_app("fixture2"), base_url=LOCAL)
    assert client.get("/health").json()["model"] == "seed"


def test_a_path_that_exists_wins_over_a_name(shipped, tmp_path, trained_checkpoint):
    (tmp_path / "fixture2").mkdir()
    (tmp_path / "fixture2" / "model.pt").write_bytes(trained_checkpoint.read_bytes())
    _, info = pretrained.load_model("fixture2")
    assert info["source"] == str(Path("fixture2", "model.pt"))


def test_unknown_name_and_damaged_weights_are_one_line(shipped, capsys):
    assert main(["predict", "nosuch", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run folder or checkpoint file, nor a shipped model" in err
    assert "fixture2" in err  # the names that would work
    (shipped / "fixture2.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}junk")
    assert main(["predict", "fixture2", "x.png"]) == 2
    assert "damaged shipped weights" in capsys.readouterr().err


def test_weights_are_plain_safetensors(shipped):
    raw = (shipped / "fixture2.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert header["__metadata__"] == {"model": "seed", "recipe": "fixture2"}
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F32", "I64"}  # plain tensors


def test_models_reads_accuracy_from_the_cards(shipped, trained_checkpoint, capsys):
    state = checkpoint.read(trained_checkpoint)["state_dict"]
    summary = {"seeds": 5, "mean": 0.9953, "std": 0.0005, "min": 0.9948, "max": 0.9959, "at_least_99_40": 5}
    for name, recipe in (("seed", recipes.get("seed")), ("notebook", recipes.override(recipes.get("notebook"), lr=1))):
        card = {"name": name, "model": "seed", "recipe": recipes.to_dict(recipe), "results_summary": summary}
        pretrained.write(shipped, card, state)
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("seed ") and "99.53% ± 0.05% (5 seeds); weights shipped" in line for line in lines)
    assert any(line.startswith("notebook ") and "not measured" in line for line in lines)  # another recipe's card
