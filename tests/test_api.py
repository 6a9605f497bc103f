"""The Python API: `tinymnist.load`, `tinymnist.predict`, `tinymnist.train`, and the README's example."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import tinymnist
from conftest import ROOT
from drawing import draw_digit
from helpers import subset


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
        (np.zeros((2, 5, 28, 28)), "is not an image or images"),
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


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"<!-- api-example:start -->\n```python\n(.*?)```\n<!-- api-example:end -->", readme, re.S)
    assert example, "README.md has no <!-- api-example:start --> python block"
    monkeypatch.chdir(tmp_path)
    draw_digit(7, (300, 400), ink=30, paper=240).save("digit.png")
    exec(compile(example.group(1), "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "7" and lines[1].startswith("1 [(1, ")


SEVEN = np.asarray(draw_digit(7, (60, 60)))  # uint8, white on black
THREE_RGB = np.asarray(draw_digit(3, (60, 80), ink=(20, 20, 80), paper=(240, 240, 230), mode="RGB"))
FOUR_RGBA = np.asarray(draw_digit(4, mode="RGBA", ink=(0, 0, 0, 255), paper=0))  # ink in the alpha only
GOOD_IMAGES = {  # what predict takes, and the digits it must read
    "(H, W) uint8": (SEVEN, [7]),
    "(H, W) int64": (SEVEN.astype(np.int64), [7]),
    "(H, W) bool": (SEVEN > 128, [7]),
    "(H, W, 1)": (SEVEN[..., None], [7]),
    "(H, W, 3) RGB is one image": (THREE_RGB, [3]),
    "(H, W, 4) RGBA is one image": (FOUR_RGBA, [4]),
    "(N, H, W)": (np.stack([SEVEN, SEVEN]), [7, 7]),
    "(N, H, W, 3)": (np.stack([THREE_RGB, THREE_RGB]), [3, 3]),
    "(N, 1, H, W)": (np.stack([SEVEN, SEVEN])[:, None], [7, 7]),
    "(N, 3, H, W)": (np.moveaxis(np.stack([THREE_RGB]), 3, 1), [3]),
    "RGB float tensor 0-1": (torch.tensor(THREE_RGB).float() / 255, [3]),
    "bfloat16 tensor": ((torch.tensor(SEVEN).float() / 255).bfloat16(), [7]),
    "list of mixed arrays": ([SEVEN, THREE_RGB, FOUR_RGBA], [7, 3, 4]),
}


@pytest.mark.parametrize("case", GOOD_IMAGES)
def test_predict_reads_arrays_of_every_shape_as_documented(model, case):
    images, digits = GOOD_IMAGES[case]
    assert [p.digit for p in tinymnist.predict(model, images)] == digits


def test_predict_takes_a_model_name_or_path_and_file_bytes(trained_checkpoint, tmp_path):
    draw_digit(2).save(tmp_path / "two.png")
    assert tinymnist.predict(trained_checkpoint, SEVEN)[0].digit == 7
    assert tinymnist.predict(str(trained_checkpoint), (tmp_path / "two.png").read_bytes())[0].digit == 2
    assert len(tinymnist.predict("seed", SEVEN, top=np.int64(3))[0].top) == 3


BAD_IMAGES = {  # (images, what the one-line message says)
    "0x0 array": (np.zeros((0, 0)), "empty image"),
    "0xW array": (np.zeros((0, 5), np.uint8), "empty image"),
    "0x0 PIL image": (Image.new("L", (0, 0)), "empty image"),
    "strings": (np.array([["a", "b"]]), "array of <U1 is not an image"),
    "objects": (np.array([[None, 1]], dtype=object), "array of object is not an image"),
    "complex": (np.zeros((5, 5), complex), "array of complex128 is not an image"),
    "complex tensor": (torch.zeros(5, 5, dtype=torch.complex64), "array of complex64 is not an image"),
    "NaN": (np.full((5, 5), np.nan), "NaN or infinite"),
    "inf": (np.full((5, 5), np.inf, np.float32), "NaN or infinite"),
    "floats 0-255": (SEVEN.astype(np.float32), "float values must be in 0-1, not 0 to 255"),
    "integers over 255": (SEVEN.astype(np.int32) * 4, "integer values must be in 0-255"),
    "negative integers": (SEVEN.astype(np.int16) - 300, "integer values must be in 0-255"),
    "1-D array": (np.zeros(5), "shape (5,) is not an image"),
    "5-D array": (np.zeros((1, 1, 2, 2, 2)), "is not an image"),
    "4-D without channels": (np.zeros((2, 5, 28, 28)), "is not an image"),
    "a batch inside a list": ([np.zeros((2, 28, 28))], "shape (2, 28, 28) is not one image"),
    "empty list": ([], "no images given"),
    "empty batch": (np.zeros((0, 28, 28)), "no images given"),
    "None": (None, "NoneType is not an image"),
    "a number": (5, "int is not an image"),
    "a list of lists": ([[0, 255]], "list is not an image"),
    "NUL in a path": ("digit\0.png", r"digit\0.png: not a valid file name"),
    "bytes that are not an image": (b"hello", "not an image"),
}


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_images_raise_one_line_tinymnist_errors(model, case):
    images, message = BAD_IMAGES[case]
    with pytest.raises(tinymnist.TinyMnistError, match=re.escape(message)) as error:
        tinymnist.predict(model, images)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("top", [1.5, 0, -1, True, 11, "3", None])
def test_bad_top_raises_a_tinymnist_error(model, top):
    with pytest.raises(tinymnist.TinyMnistError, match=f"top={top!r}: must be a whole number from 1 to 10"):
        tinymnist.predict(model, SEVEN, top=top)


@pytest.mark.parametrize("model_like", [None, 5, [1, 2]])
def test_predict_refuses_what_is_not_a_model(model_like):
    with pytest.raises(tinymnist.TinyMnistError, match="is not a model"):
        tinymnist.predict(model_like, SEVEN)


@pytest.mark.parametrize(
    ("device", "message"),
    [("gpu", "not a device"), (5, "not a device"), ("cuda:99", "not available"), ("cpu:1", "not available")]
    + [("cuda", "not available")] * (not torch.cuda.is_available())
    + [("mps", "not available")] * (not torch.backends.mps.is_available()),
)
def test_load_checks_the_device(trained_checkpoint, device, message):
    with pytest.raises(tinymnist.TinyMnistError, match=f"device={device!r}: {message}"):
        tinymnist.load(trained_checkpoint, device=device)
    assert tinymnist.load(trained_checkpoint, device="auto").network is not None
