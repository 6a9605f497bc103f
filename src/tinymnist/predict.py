"""Predict the class (a digit, or a Fashion-MNIST article) of real image files with a trained model.

Each file goes through `tinymnist.images` (the dataset's own preprocessing, shared with
`serve`); the files that could not be read are reported one by one and the rest are
predicted in one batch.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinymnist import images
from tinymnist.data import DEFAULT, get
from tinymnist.evaluation import logits_of


@dataclass
class Prediction:
    file: str
    top: list[tuple[int, float]]  # (class, probability), most probable first
    classes: tuple[str, ...]  # the dataset's class names

    @property
    def digit(self) -> int:
        return self.top[0][0]

    @property
    def probability(self) -> float:
        return self.top[0][1]

    def to_json(self) -> dict:
        return {
            "file": self.file,
            "digit": self.digit,
            "label": self.classes[self.digit],
            "probability": round(self.probability, 6),
            "top": [{"digit": d, "label": self.classes[d], "probability": round(p, 6)} for d, p in self.top],
        }


def probabilities(model: nn.Module, digits: torch.Tensor, dataset: str = DEFAULT) -> torch.Tensor:
    """(N, 10) class probabilities of uint8 (N, 28, 28) inputs prepared as `dataset`'s images."""
    return logits_of(model, digits, dataset=dataset).softmax(1)


def predict_files(
    model: nn.Module, files: list[Path], top: int = 1, dataset: str = DEFAULT
) -> list[Prediction | images.ImageError]:
    """A prediction, or the error that stopped it, for each file, in order."""
    spec = get(dataset)
    results: list[Prediction | images.ImageError | None] = []
    read, digits = [], []
    for i, path in enumerate(files):
        try:
            digits.append(images.to_input(images.read(path), spec.framing, str(path)))
            read.append(i)
            results.append(None)  # filled in below, once the batch is predicted
        except images.ImageError as e:
            results.append(e)
    if digits:
        values, indices = probabilities(model, torch.stack(digits), dataset).topk(top, dim=1)
        for i, v, d in zip(read, values.tolist(), indices.tolist(), strict=True):
            results[i] = Prediction(str(files[i]), list(zip(d, v, strict=True)), spec.classes)
    return results
