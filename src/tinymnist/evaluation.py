"""Evaluation: loss, accuracy and per-class accuracy of a model on a set of images, in large
batches under `torch.inference_mode()`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinymnist.data import DEFAULT, normalize

BATCH = 2000  # images per forward pass; evaluation needs no gradients, so large is fine


@dataclass
class Evaluation:
    loss: float
    accuracy: float  # fraction correct, in [0, 1]
    per_class: list[float]  # accuracy of each class 0-9
    predictions: torch.Tensor  # (N,) predicted labels
    probabilities: torch.Tensor  # (N, 10)


@torch.inference_mode()
def logits_of(
    model: nn.Module, images: torch.Tensor, channels_last: bool = False, dataset: str = DEFAULT
) -> torch.Tensor:
    """Logits of uint8 images of `dataset`, normalised with its constants."""
    model.eval()
    out = []
    for start in range(0, len(images), BATCH):
        x = normalize(images[start : start + BATCH], dataset)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float())
    return torch.cat(out)


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, channels_last: bool = False, dataset: str = DEFAULT
) -> Evaluation:
    logits = logits_of(model, images, channels_last, dataset)
    predictions = logits.argmax(1)
    correct = predictions == labels
    per_class = [correct[labels == c].float().mean().item() if (labels == c).any() else float("nan") for c in range(10)]
    return Evaluation(
        loss=F.cross_entropy(logits, labels).item(),
        accuracy=correct.float().mean().item(),
        per_class=per_class,
        predictions=predictions.cpu(),
        probabilities=logits.softmax(1).cpu(),
    )
