"""The networks: a registry of small MNIST classifiers, each returning logits.

`seed` is the network of the seed document, module for module (19,712 trainable
parameters). Models take normalised images of shape (N, 1, 28, 28) and return (N, 10)
logits; the loss lives outside the model.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

MODELS: dict[str, Callable[[], nn.Module]] = {}


def register(name: str) -> Callable:
    """Add a model constructor to the registry under `name`."""

    def wrap(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        MODELS[name] = fn
        return fn

    return wrap


def create(name: str) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; choose from: {', '.join(MODELS)}")
    return MODELS[name]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Network(nn.Module):
    """The seed document's network, kept exactly: same modules, same order, same names."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()

        def block(cin: int, cout: int, padding: int = 0, drop: bool = True) -> list[nn.Module]:
            layers = [nn.Conv2d(cin, cout, 3, padding=padding, bias=False), nn.ReLU(), nn.BatchNorm2d(cout)]
            return layers + [nn.Dropout2d(dropout)] if drop else layers

        self.conv1 = nn.Sequential(*block(1, 16), *block(16, 16, drop=False), *block(16, 32))
        self.transition_layer = nn.Sequential(nn.Conv2d(32, 16, 1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.conv2 = nn.Sequential(*block(16, 16), *block(16, 16, padding=1), *block(16, 16), *block(16, 32))
        self.conv_final = nn.Conv2d(32, 10, 1, bias=False)
        self.gap = nn.AvgPool2d(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.transition_layer(self.conv1(x)))
        return self.gap(self.conv_final(x)).flatten(1)


@register("seed")
def seed() -> nn.Module:
    return Network()


class TinyNet(nn.Module):
    """The zoo's design: three stages of two Conv-BN-ReLU layers (3x3, padded), max-pooling
    down to 14x14 and 7x7 between them, global average pooling and one linear classifier.
    Downsampling early keeps multiply-accumulates low; BatchNorm right after each convolution
    can be folded into it for inference.
    """

    def __init__(self, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        a, b, c, d = widths

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *conv(1, a), *conv(a, b), nn.MaxPool2d(2),
            *conv(b, c), *conv(c, c), nn.MaxPool2d(2),
            *conv(c, d), *conv(d, d),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


# The zoo: one model per parameter budget (the budget is in the name; a test enforces it).
ZOO = {
    "tiny20k": (10, 10, 20, 28),
    "tiny8k": (8, 8, 12, 17),
    "tiny4k": (6, 6, 8, 12),
    "tiny1k5": (4, 4, 5, 6),
}
BUDGETS = {"seed": 20_000, "tiny20k": 20_000, "tiny8k": 8_000, "tiny4k": 4_000, "tiny1k5": 1_500}

MODELS.update({name: partial(TinyNet, widths) for name, widths in ZOO.items()})
