"""BatchNorm folding and ONNX / torch.export / TorchScript export, each checked against PyTorch."""

import importlib.util
import json
import re

import pytest
import torch
from PIL import Image
from torch import nn

import tinymnist
from conftest import ROOT
from tinymnist import checkpoint, data, export, fold, models, pretrained
from tinymnist.cli import main
from tinymnist.data import normalize


def randomize_batchnorms(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, as training would."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1, generator=gen)
            m.running_var.uniform_(0.5, 2, generator=gen)
            m.weight.data.uniform_(-2, 2, generator=gen)
            m.bias.data.uniform_(-1, 1, generator=gen)
    return model.eval()


def test_folds_the_seed_except_before_padded_conv(trained_checkpoint, mnist):
    model, _ = checkpoint.load_model(trained_checkpoint)
    folded = fold.fold_batchnorm(model)
    assert fold.count_batchnorms(model) == 7 and fold.count_batchnorms(folded) == 1  # the one before conv2.4
    x = normalize(mnist.test_images[:500])
    with torch.no_grad():
        parity = export.compare(model(x), folded(x))
    assert parity.ok, parity
    assert fold.count_batchnorms(model) == 7  # the original is left alone


def test_folds_conv_bn_order_and_keeps_what_cannot_fold():
    model = randomize_batchnorms(
        nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),  # Conv -> BN: folds back
            nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),  # folds back into a bias-free conv
            nn.BatchNorm2d(8), nn.Dropout(0.1), nn.Conv2d(8, 8, 1),  # BN -> Conv without padding: folds forward
            nn.ReLU(), nn.BatchNorm2d(8), nn.MaxPool2d(2),  # BN -> pooling: stays
            nn.Conv2d(8, 10, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
    )  # fmt: skip
    folded = fold.fold_batchnorm(model)
    assert fold.count_batchnorms(folded) == 1
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - folded(x)).abs().max() < 1e-4


@pytest.mark.slow  # exports several times
@pytest.mark.parametrize("fmt, fold_bn", [("onnx", False), ("onnx", True), ("pt2", False), ("torchscript", False)])
def test_export_matches_pytorch(trained_checkpoint, mnist, tmp_path, fmt, fold_bn):
    model, _ = checkpoint.load_model(trained_checkpoint)
    path = tmp_path / f"model{export.FORMATS[fmt]}"
    parity = export.export(model, fmt, path, mnist.test_images[:1000], fold_bn=fold_bn)
    assert parity.images == 1000 and parity.max_abs_diff < 1e-4 and parity.same_predictions
    # The batch dimension is dynamic: other batch sizes run on the file as written.
    run = export.WRITERS[fmt][1]
    x = normalize(mnist.test_images[1000:1003])
    with torch.no_grad():
        assert export.compare(model(x), run(path.read_bytes(), x)).ok
        assert run(path.read_bytes(), x[:1]).shape == (1, 10)


@pytest.mark.slow  # an ONNX export
def test_refuses_a_model_that_differs(trained_checkpoint, mnist, tmp_path, monkeypatch):
    model, _ = checkpoint.load_model(trained_checkpoint)
    broken = fold.fold_batchnorm(model)
    broken.conv_final.weight.data.mul_(1.01)
    monkeypatch.setattr(export, "fold_batchnorm", lambda m: broken)
    with pytest.raises(export.ExportError, match="differs from PyTorch"):
        export.export(model, "onnx", tmp_path / "m.onnx", mnist.test_images[:200], fold_bn=True)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow  # exports several times
def test_cli_export(trained_checkpoint, mnist_dir, tmp_path, capsys):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(trained_checkpoint.read_bytes())
    assert main(["export", str(tmp_path), "--format", "torchscript", "--fold-bn", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "identical predictions" in out and "BatchNorm folded" in out
    assert torch.jit.load(tmp_path / "model.torchscript.pt")(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(ckpt)]) == 2
    assert "is the checkpoint being exported" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    assert "no such run folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(models.MODELS))
def test_folding_every_registered_model(name):
    model = randomize_batchnorms(models.create(name))
    folded = fold.fold_batchnorm(model)
    assert fold.count_batchnorms(folded) < fold.count_batchnorms(model) or not fold.count_batchnorms(model)
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (model(x) - folded(x)).abs().max() < 1e-4


def test_the_onnx_file_carries_its_preprocessing_read_as_docs_usage_shows(trained_checkpoint, mnist, tmp_path,
                                                                          monkeypatch, capsys):  # fmt: skip
    model, _ = checkpoint.load_model(trained_checkpoint)
    export.export(model, "onnx", tmp_path / "seed.onnx", name="seed")
    import onnxruntime

    meta = onnxruntime.InferenceSession(tmp_path / "seed.onnx").get_modelmeta().custom_metadata_map
    assert (float(meta["mean"]), float(meta["std"])) == (data.get("mnist").mean, data.get("mnist").std)
    assert json.loads(meta["classes"]) == list("0123456789") and meta["dataset"] == "mnist"
    assert meta["model"] == "seed" and meta["tinymnist_version"] == tinymnist.__version__
    assert "(N, 1, 28, 28)" in meta["input"] and "white on black" in meta["input"]

    usage = (ROOT / "docs" / "usage.md").read_text()
    example = re.search(r"<!-- onnx-example:start -->\n```python\n(.*?)```\n<!-- onnx-example:end -->", usage, re.S)
    assert example and len(example.group(1).splitlines()) <= 12, "docs/usage.md: the onnxruntime example"
    monkeypatch.chdir(tmp_path)
    Image.fromarray(mnist.test_images[0].numpy()).save("digit.png")
    exec(compile(example.group(1), "docs/usage.md", "exec"), {})
    with torch.no_grad():
        digit = model(normalize(mnist.test_images[:1])).argmax().item()
    assert capsys.readouterr().out.split() == [str(digit), "seed", tinymnist.__version__]


@pytest.mark.slow  # exports twice
@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_the_other_formats_carry_the_same_metadata(trained_checkpoint, tmp_path, fmt):
    model, _ = checkpoint.load_model(trained_checkpoint)
    path = tmp_path / f"m{export.FORMATS[fmt]}"
    export.export(model, fmt, path, name="seed")
    extra = {"metadata.json": ""}
    if fmt == "pt2":
        program = torch.export.load(path, extra_files=extra)
        assert program.module()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    else:
        torch.jit.load(path, _extra_files=extra)
    assert json.loads(extra["metadata.json"]) == export.metadata("seed", "mnist")


def test_exporting_a_shipped_model_needs_no_dataset(mnist, fashion, tmp_path, monkeypatch, capsys):
    assert torch.equal(export.shipped_images("mnist"), mnist.test_images[: export.CHECK_IMAGES])
    assert torch.equal(export.shipped_images("fashion-mnist"), fashion.test_images[: export.CHECK_IMAGES])
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("a dataset was loaded"))
    assert main(["export", "tiny1k5", "--format", "pt2", "--out", str(tmp_path / "t.pt2")]) == 0
    assert f"checked on {export.CHECK_IMAGES} test images" in capsys.readouterr().out


def test_a_missing_onnx_extra_is_said_before_anything_is_loaded(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    monkeypatch.setattr(pretrained, "load_model", lambda *a, **k: pytest.fail("the model was loaded first"))
    monkeypatch.setattr(data, "load", lambda *a, **k: pytest.fail("a dataset was loaded first"))
    assert main(["export", "seed", "--format", "onnx", "--out", str(tmp_path / "s.onnx")]) == 2
    err = capsys.readouterr().err
    assert err == "tinymnist: error: --format onnx needs onnxscript: pip install 'tinymnist[onnx]'\n", err
