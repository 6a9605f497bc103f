"""Fashion-MNIST through every command, on the real files of Debian's dataset-fashion-mnist:
loading and its constants, a short training that records the dataset, evaluate/predict/serve/
export of that model with its normalisation and class names, and the mismatches refused.
"""

import io
import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from helpers import LOCAL, subset
from tinymnist import checkpoint, data, images, training
from tinymnist.cli import main
from tinymnist.evaluation import evaluate
from tinymnist.recipes import get, override
from tinymnist.serve import create_app

FASHION = data.DATASETS["fashion-mnist"]


def test_fashion_loads_with_its_own_constants(fashion):
    assert fashion.dataset == "fashion-mnist"
    assert fashion.train_images.shape == (60000, 28, 28) and fashion.test_images.shape == (10000, 28, 28)
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10
    pixels = fashion.train_images.float().div(255)
    assert abs(pixels.mean().item() - FASHION.mean) < 1e-3 and abs(pixels.std().item() - FASHION.std) < 1e-3
    assert len(FASHION.classes) == 10 and FASHION.classes[9] == "Ankle boot"


@pytest.fixture(scope="module")
def fashion_run(fashion, tmp_path_factory):
    """fashion-tiny3k trained for 2 epochs on 4,000 Fashion-MNIST images."""
    out = tmp_path_factory.mktemp("fashion") / "run"
    recipe = override(get("fashion-tiny3k"), epochs=2, batch_size=64)
    training.train(recipe, subset(fashion, 4000, 1000), out, seed=1, log=lambda line: None)
    return out


def test_training_records_the_dataset_and_learns(fashion_run):
    config = json.loads((fashion_run / "config.json").read_text())
    final = checkpoint.read(fashion_run / checkpoint.FINAL)
    assert config["dataset"] == final["dataset"] == checkpoint.read(fashion_run / checkpoint.LAST)["dataset"]
    assert config["dataset"] == "fashion-mnist" and config["recipe"]["degrees"] == 0.0
    assert final["final"]["test_accuracy"] > 0.5  # chance is 0.1


def test_evaluate_uses_the_checkpoint_dataset(fashion_run, fashion_dir, tmp_path, capsys):
    code = main(
        ["evaluate", str(fashion_run), "--data-dir", str(fashion_dir), "--out", str(tmp_path), "--device", "cpu"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "(Fashion-MNIST)" in out and "10,000 images" in out
    assert "  Ankle boot: " in out and "  Trouser: " in out
    accuracy = float(out.split("accuracy ")[1].split("%")[0]) / 100
    assert accuracy > 0.5  # chance is 0.1


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "RUN", "--dataset", "mnist", "--device", "cpu"],
        ["export", "RUN", "--format", "torchscript", "--dataset", "mnist", "--out", "OUT/m.pt"],
        ["train", "--resume", "RUN", "--dataset", "mnist", "--device", "cpu"],
    ],
    ids=["evaluate", "export", "resume"],
)
def test_a_fashion_model_given_to_an_mnist_command(fashion_run, tmp_path, capsys, argv):
    before = {p.name: p.read_bytes() for p in fashion_run.iterdir()}
    code = main([a.replace("RUN", str(fashion_run)).replace("OUT", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tinymnist: error: ") and err.count("\n") == 1
    assert "Fashion-MNIST" in err or "fashion-mnist" in err
    assert {p.name: p.read_bytes() for p in fashion_run.iterdir()} == before and not list(tmp_path.iterdir())


def test_export_checks_on_fashion_images(fashion_run, fashion, fashion_dir, tmp_path):
    out = tmp_path / "model.pt"
    argv = ["export", str(fashion_run), "--format", "torchscript", "--data-dir", str(fashion_dir), "--out", str(out)]
    assert main(argv) == 0 and out.is_file()
    exported = torch.jit.load(out)
    x = data.normalize(fashion.test_images[:8], "fashion-mnist")
    model = checkpoint.load_model(fashion_run)[0]
    with torch.inference_mode():
        assert torch.allclose(exported(x), model(x), atol=1e-4)  # input normalised with Fashion-MNIST's constants


def product_photo(article: torch.Tensor, side: int = 224) -> bytes:
    """A Fashion-MNIST image as a product photo: dark article on white, large, in colour."""
    img = Image.fromarray(255 - article.numpy()).resize((side, side), Image.BICUBIC).convert("RGB")
    canvas = Image.new("RGB", (side + 60, side + 20), "white")
    canvas.paste(img, (30, 10))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def test_product_photos_become_fashion_images(fashion):
    originals = fashion.test_images[:40]

    def error(framing) -> float:  # mean absolute difference from the originals, of 255
        again = torch.stack([framing(images.decode(product_photo(x))) for x in originals])
        return (again.float() - originals.float()).abs().mean().item()

    assert error(images.to_fashion) < 15  # the photo's round trip (two resamplings), not a reframing
    assert error(images.to_mnist) > 2 * error(images.to_fashion)  # digit framing would move every article


def test_predict_and_serve_name_the_article(fashion_run, fashion, tmp_path, capsys):
    model = checkpoint.load_model(fashion_run)[0]
    direct = evaluate(model, fashion.test_images[:40], fashion.test_labels[:40], dataset="fashion-mnist")
    for i, x in enumerate(fashion.test_images[:40]):
        (tmp_path / f"{i:02d}.png").write_bytes(product_photo(x))
    assert main(["predict", str(fashion_run), str(tmp_path), "--json"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [a["label"] for a in answers] == [FASHION.classes[a["digit"]] for a in answers]
    agree = np.mean([a["digit"] == int(p) for a, p in zip(answers, direct.predictions, strict=True)])
    assert agree >= 0.75  # photos of test images are read as the images are (a weak model: some flip)

    client = TestClient(create_app(fashion_run), base_url=LOCAL)
    body = client.post("/predict", files={"file": ("coat.png", product_photo(fashion.test_images[0]))}).json()
    assert body["label"] == FASHION.classes[body["digit"]] == answers[0]["label"]


def test_repeat_writes_fashion_results_apart(fashion, tmp_path, monkeypatch, capsys):
    from tinymnist import repeat as repeat_module

    monkeypatch.setattr(repeat_module.data, "load", lambda *a, **k: subset(fashion, 2000, 500))
    monkeypatch.chdir(tmp_path)
    recipe = override(get("fashion-tiny3k"), epochs=1, batch_size=100)
    monkeypatch.setattr("tinymnist.recipes.RECIPES", {"fashion-tiny3k": recipe})
    assert main(["repeat", "--dataset", "fashion-mnist", "--recipe", "fashion-tiny3k", "--seeds", "1"]) == 0
    saved = json.loads((tmp_path / "results" / "fashion-mnist" / "fashion-tiny3k.json").read_text())
    assert saved["dataset"] == "fashion-mnist" and saved["runs"][0]["run_dir"].startswith("runs/repeat/fashion-mnist")
    out = "results/fashion-mnist"
    assert main(["repeat", "--dataset", "mnist", "--recipe", "fashion-tiny3k", "--seeds", "1", "--out", out]) == 2
    assert "results on fashion-mnist, not mnist" in capsys.readouterr().err


@pytest.mark.parametrize("recorded", ["cifar10", ["fashion-mnist"]], ids=["unknown", "list"])
def test_a_checkpoint_of_an_unknown_dataset_is_one_line(trained_checkpoint, tmp_path, capsys, recorded):
    crafted = tmp_path / "model.pt"
    torch.save({**checkpoint.read(trained_checkpoint), "dataset": recorded}, crafted)
    for argv in (["evaluate", str(crafted)], ["predict", str(crafted), str(crafted)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{crafted}: made on an unknown dataset" in err
