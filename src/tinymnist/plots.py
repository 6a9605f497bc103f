"""PNG plots of a run: training curves, the confusion matrix, and a gallery of mistakes.

Figures are built with matplotlib's object API (no pyplot, no global state, no display
needed) and written atomically.
"""

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from tinymnist.checkpoint import atomic_write


def save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def training_curves(history: list[dict], split: str, path: Path) -> None:
    """Loss and accuracy per epoch, train and `split` ("test" or "val"), from a run's metrics."""
    fig = Figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for part in ("train", split):
            shown = [r for r in history if f"{part}_{metric}" in r]  # a recipe may skip evaluations
            values = [r[f"{part}_{metric}"] * (100 if metric == "accuracy" else 1) for r in shown]
            ax.plot([r["epoch"] for r in shown], values, marker="o", label=part)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (%)" if metric == "accuracy" else metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    final = history[-1]
    evaluated = (
        f"{split} accuracy {final[f'{split}_accuracy']:.2%}" if f"{split}_accuracy" in final else "not evaluated"
    )
    fig.suptitle(f"epoch {final['epoch']}: {evaluated}")
    save(fig, path)


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, path: Path) -> np.ndarray:
    """Counts of (true, predicted) pairs, drawn with the counts written in each cell; returned too."""
    counts = np.zeros((10, 10), dtype=np.int64)
    np.add.at(counts, (labels.cpu().numpy(), predictions.cpu().numpy()), 1)
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    image = ax.imshow(np.log1p(counts), cmap="Blues")
    for true in range(10):
        for pred in range(10):
            if counts[true, pred]:
                light = np.log1p(counts[true, pred]) > 0.6 * np.log1p(counts.max())
                ax.text(
                    pred,
                    true,
                    str(counts[true, pred]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if light else "black",
                )
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    errors = int(counts.sum() - np.trace(counts))
    ax.set_title(f"confusion matrix: {errors} errors in {int(counts.sum()):,} images")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    save(fig, path)
    return counts


def mistakes(
    images: torch.Tensor, labels: torch.Tensor, probabilities: torch.Tensor, path: Path, limit: int = 64
) -> int:
    """A grid of the misclassified images, most confident mistakes first; returns how many are shown."""
    confidence, predicted = probabilities.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    total = len(wrong)
    wrong = wrong[confidence[wrong].argsort(descending=True)][:limit]
    cols = 8
    rows = max(1, -(-len(wrong) // cols))
    fig = Figure(figsize=(cols * 1.3, rows * 1.5 + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, wrong.tolist(), strict=False):
        ax.imshow(images[i].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"true {labels[i]} pred {predicted[i]}\n{confidence[i]:.0%}", fontsize=8)
    fig.suptitle(
        f"the {len(wrong)} most confident of {total} mistakes (true label, predicted, probability)"
        if total
        else "no mistakes"
    )
    save(fig, path)
    return len(wrong)
