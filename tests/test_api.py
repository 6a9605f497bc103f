"""The Python API: `tinymnist.load`, `tinymnist.predict`, `tinymnist.train`, and the README's example."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinymnist
from conftest import ROOT
from drawing import draw_digit
from helpers import subset
from tinymnist import data, training


@pytest.fixture(scope="module")
def model(trained_checkpoint):
    return tinymnist.load(trained_checkpoint)


def test_importing_tinymnist_is_light():
    code = "import sys, tinymnist; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_load_gives_a_model_ready_for_inference(model, trained_checkpoint):
    assert model.name == "seed" and not model.network.training
    assert model.info["source"] == str(trained_checkpoint) and "state_dict" not in model.info
    assert model.network(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_predict_takes_paths_pil_images_and_arrays(model, tmp_path):
    draw_digit(3, (90, 120), ink=20, paper=230).save(tmp_path / "three.png")  # dark ink on light paper
    seven = draw_digit(7, (200, 200))
    four = np.asarray(draw_digit(4, (64, 64)))
    batch = np.stack([four, np.asarray(draw_digit(2, (64, 64)))]).astype(np.float32) / 255  # floats in 0-1
    cases = [
        (tmp_path / "three.png", [3]),
        (str(tmp_path / "three.png"), [3]),
        (seven, [7]),
        (four, [4]),
        (torch.from_numpy(four), [4]),
        (batch, [4, 2]),
        ([seven, four, tmp_path / "three.png"], [7, 4, 3]),
    ]
    for images, digits in cases:
        assert [p.digit for p in tinymnist.predict(model, images)] == digits, type(images)
    (top,) = tinymnist.predict(model, seven, top=3)
    assert len(top.top) == 3 and top.top[0][0] == 7 and top.file == "images[0]"
    assert sum(p for _, p in top.top) <= 1.0
    assert tinymnist.predict(model.network, seven)[0].digit == 7  # a plain nn.Module works too


def test_bad_input_raises_tinymnist_errors(model, tmp_path):
    cases = [
        (tmp_path / "missing.png", "cannot read"),
        (np.zeros((2, 3, 28, 28)), "one greyscale image"),
        (np.zeros((28, 28)), "no ink found"),
        ([], "no images given"),
    ]
    for images, message in cases:
        with pytest.raises(tinymnist.TinyMnistError, match=message):
            tinymnist.predict(model, images)
    with pytest.raises(tinymnist.TinyMnistError, match="top=11"):
        tinymnist.predict(model, draw_digit(1), top=11)
    with pytest.raises(tinymnist.TinyMnistError, match="nor a shipped model"):
        tinymnist.load(tmp_path / "nothing")
    with pytest.raises(tinymnist.TinyMnistError, match="unknown recipe field"):
        tinymnist.train(recipe="tiny3k", learning_rate=0.1)
    from tinymnist import models

    with pytest.raises(tinymnist.TinyMnistError, match="unknown model 'nope'"):
        models.create("nope")


def test_train_is_quiet_and_returns_the_run(tmp_path, mnist, capsys):
    small = subset(mnist, 2000, 1000)
    run = tinymnist.train(recipe="tiny3k", epochs=1, val=500, mnist=small, out=tmp_path / "run", device="cpu")
    assert capsys.readouterr().out == ""
    assert run.path == tmp_path / "run" and (run.path / "model.pt").is_file()
    config = json.loads((run.path / "config.json").read_text())
    assert (config["split"], config["train_images"], config["eval_images"]) == ("val", 1500, 500)
    assert run.final["epoch"] == 1 and 0 <= run.final["val_accuracy"] <= 1
    assert run.model.name == "tiny3k" and run.model.info["recipe"]["epochs"] == 1
    assert len(tinymnist.predict(run.model, draw_digit(0))) == 1
    with pytest.raises(tinymnist.TinyMnistError, match="already holds a run"):
        tinymnist.train(recipe="tiny3k", out=run.path)


class Stop(Exception):
    pass


def test_on_epoch_gets_each_epochs_metrics_once_and_can_stop_the_run(tmp_path, mnist):
    small, seen = subset(mnist, 1000, 500), []

    def stop_after_the_first(metrics: dict) -> None:
        seen.append(metrics)
        raise Stop

    with pytest.raises(Stop):  # the callback's exception reaches the caller unchanged
        tinymnist.train(recipe="tiny3k", epochs=2, val=500, mnist=small, out=tmp_path / "run", device="cpu",
                        on_epoch=stop_after_the_first)  # fmt: skip
    run = tmp_path / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(seen) == 1 and [r["epoch"] for r in lines] == [1] and not (run / "model.pt").exists()
    assert set(seen[0]) == set(lines[0]) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"}

    def record_and_clear(metrics: dict) -> None:
        seen.append(dict(metrics))
        metrics.clear()  # the run's own records are not the callback's to change

    seen.clear()
    recipe, config = training.resume_settings(run)
    split = data.validation_split(small, config["eval_images"])
    final = training.train(recipe, split, run, seed=config["seed"], split="val", resume=True, log=lambda line: None,
                           on_epoch=record_and_clear)  # fmt: skip
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and seen == lines[1:]  # resumed: epoch 2 only, once
    assert final["history"] == lines


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"<!-- api-example:start -->\n```python\n(.*?)```\n<!-- api-example:end -->", readme, re.S)
    assert example, "README.md has no <!-- api-example:start --> python block"
    monkeypatch.chdir(tmp_path)
    draw_digit(7, (300, 400), ink=30, paper=240).save("digit.png")
    exec(compile(example.group(1), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "7" and lines[1].startswith("1 [(1, ")
