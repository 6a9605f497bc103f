"""The PNGs: training curves after each epoch, confusion matrix and mistakes from evaluate."""

import pytest
import torch
from PIL import Image

from helpers import subset
from tinymnist import plots, training
from tinymnist.cli import main
from tinymnist.recipes import get, override


def is_png(path, min_side=300) -> bool:
    with Image.open(path) as img:
        return img.format == "PNG" and min(img.size) >= min_side


def test_training_writes_curves_after_each_epoch(mnist, tmp_path, monkeypatch):
    drawn = []
    real = plots.training_curves
    monkeypatch.setattr(plots, "training_curves", lambda h, s, p: (drawn.append(len(h)), real(h, s, p)))
    recipe = override(get("seed"), epochs=2, batch_size=100)
    training.train(recipe, subset(mnist, 200, 100), tmp_path / "run", log=lambda line: None)
    assert drawn == [1, 2]
    assert is_png(tmp_path / "run" / "curves.png")


def test_confusion_counts_and_mistakes_order(tmp_path):
    labels = torch.tensor([0, 1, 2, 2, 3])
    probs = torch.full((5, 10), 0.01)
    for i, (p, conf) in enumerate([(0, 0.9), (7, 0.6), (2, 0.9), (5, 0.8), (3, 0.9)]):
        probs[i, p] = conf
    counts = plots.confusion_matrix(labels, probs.argmax(1), tmp_path / "c.png")
    assert counts.sum() == 5 and counts.trace() == 3 and counts[1, 7] == counts[2, 5] == 1
    images = torch.zeros(5, 28, 28, dtype=torch.uint8)
    assert plots.mistakes(images, labels, probs, tmp_path / "m.png") == 2
    assert plots.mistakes(images[:1], labels[:1], probs[:1], tmp_path / "none.png") == 0
    assert all(is_png(tmp_path / name, 100) for name in ("c.png", "m.png", "none.png"))


@pytest.mark.slow  # evaluates all 10,000 test images
def test_evaluate_writes_plots_and_per_class_accuracy(trained_checkpoint, mnist_dir, tmp_path, capsys):
    assert main(["evaluate", str(trained_checkpoint), "--data-dir", str(mnist_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "per-class accuracy" in out and "  9: " in out
    assert is_png(tmp_path / "confusion.png") and is_png(tmp_path / "mistakes.png")
