"""BatchNorm folding and ONNX / TorchScript export, each checked against PyTorch."""

import pytest
import torch
from torch import nn

from tinymnist import checkpoint, export, fold, models
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


@pytest.mark.parametrize("fmt, fold_bn", [("onnx", False), ("onnx", True), ("torchscript", False)])
def test_export_matches_pytorch(trained_checkpoint, mnist, tmp_path, fmt, fold_bn):
    model, _ = checkpoint.load_model(trained_checkpoint)
    path = tmp_path / f"model{export.FORMATS[fmt]}"
    parity = export.export(model, fmt, path, mnist.test_images[:1000], fold_bn=fold_bn)
    assert parity.images == 1000 and parity.max_abs_diff < 1e-4 and parity.same_predictions
    # The batch dimension is dynamic: other batch sizes run on the file as written.
    run = export.onnx_logits if fmt == "onnx" else export.torchscript_logits
    x = normalize(mnist.test_images[1000:1003])
    with torch.no_grad():
        assert export.compare(model(x), run(path.read_bytes(), x)).ok
        assert run(path.read_bytes(), x[:1]).shape == (1, 10)


def test_refuses_a_model_that_differs(trained_checkpoint, mnist, tmp_path, monkeypatch):
    model, _ = checkpoint.load_model(trained_checkpoint)
    broken = fold.fold_batchnorm(model)
    broken.conv_final.weight.data.mul_(1.01)
    monkeypatch.setattr(export, "fold_batchnorm", lambda m: broken)
    with pytest.raises(export.ExportError, match="differs from PyTorch"):
        export.export(model, "onnx", tmp_path / "m.onnx", mnist.test_images[:200], fold_bn=True)
    assert not (tmp_path / "m.onnx").exists()


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
