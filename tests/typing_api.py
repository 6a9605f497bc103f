"""The public API as type checkers see it: checked by mypy in `make test` (not a pytest module).

`import tinymnist` imports no torch, so the API is reached lazily; without the TYPE_CHECKING import
in tinymnist/__init__.py mypy would see `tinymnist.load` as `object` and fail here.
"""

from pathlib import Path

from typing_extensions import assert_type

import tinymnist
from tinymnist.inference import Prediction

model = tinymnist.load("seed")
assert_type(model, tinymnist.Model)
assert_type(tinymnist.predict(model, Path("digit.png")), list[Prediction])
assert_type(tinymnist.train(recipe="tiny3k", epochs=1, out="runs/try"), tinymnist.Run)
