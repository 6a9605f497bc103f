"""Predict the class (a digit, or a Fashion-MNIST article) of real images with a trained model
(`tinymnist predict`, `tinymnist.predict`).

Each image goes through `tinymnist.images` (the dataset's own preprocessing, shared with `serve`);
files that could not be read are reported one by one and the rest are predicted in one batch.
(Not named `predict.py`: that would shadow the function `tinymnist.predict`.)
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
    """(N, 10) class probabilities of uint8 (N, 28, 28) inputs prepared as `dataset`'s images. Logits that
    overflowed (finite weights can still reach infinity) count as the largest float, NaN as 0, so that
    no answer is ever NaN (nor JSON's invalid `NaN`)."""
    return logits_of(model, digits, dataset=dataset).nan_to_num(0.0).softmax(1)


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
        except Exception as e:  # whatever a damaged file makes the decoder raise: that file's answer, not all
            results.append(images.ImageError(f"{path}: cannot read this image ({type(e).__name__}: {e})"))
    if digits:
        names = [str(files[i]) for i in read]
        for i, prediction in zip(read, top_digits(model, torch.stack(digits), names, top, dataset), strict=True):
            results[i] = prediction
    return results  # type: ignore[return-value]  # every None is filled in by now


def top_digits(
    model: nn.Module, digits: torch.Tensor, names: list[str], top: int = 1, dataset: str = DEFAULT
) -> list[Prediction]:
    """The `top` most probable classes of each uint8 (N, 28, 28) input, named by `names`."""
    values, indices = probabilities(model, digits, dataset).topk(top, dim=1)
    classes = get(dataset).classes
    return [
        Prediction(name, list(zip(d, v, strict=True)), classes)
        for name, v, d in zip(names, values.tolist(), indices.tolist(), strict=True)
    ]
