"""tinymnist: very small convolutional networks trained on MNIST, fast and honestly measured.

    import tinymnist
    model = tinymnist.load("seed")                            # shipped weights, or a run folder
    print(tinymnist.predict(model, "digit.png")[0].digit)
    run = tinymnist.train(recipe="fast", epochs=1, out="runs/try")

`load`, `predict`, `train` (tinymnist.api) import torch on first use, so that `import tinymnist`
and `tinymnist --help` stay fast; type checkers and editors see them through the TYPE_CHECKING import.
"""

from typing import TYPE_CHECKING

from tinymnist.errors import TinyMnistError

if TYPE_CHECKING:
    from tinymnist.api import Model, Run, load, predict, train

__version__ = "0.1.0"
__all__ = ["Model", "Run", "TinyMnistError", "__version__", "load", "predict", "train"]
API = ("Model", "Run", "load", "predict", "train")


def __getattr__(name: str) -> object:
    if name in API:
        from tinymnist import api

        return getattr(api, name)
    raise AttributeError(f"module 'tinymnist' has no attribute {name!r}")
