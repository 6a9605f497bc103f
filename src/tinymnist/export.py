"""Export a trained model to ONNX or TorchScript, checked against PyTorch before it is kept.

The exported model has a dynamic batch dimension and takes what the PyTorch model takes:
float32 images (N, 1, 28, 28), normalised as `tinymnist.data.normalize` does with the constants
of the dataset it was trained on ((x / 255 - mean) / std: 0.1307, 0.3081 for MNIST; see
`tinymnist.data.DATASETS`), and returns (N, 10) logits. The serialised model is loaded
back (ONNX with onnxruntime), run on a batch of test images, and written (atomically) only if
its logits are within TOLERANCE of the PyTorch model's and its predictions identical.
"""

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tinymnist.checkpoint import atomic_write
from tinymnist.data import DEFAULT, normalize
from tinymnist.errors import TinyMnistError
from tinymnist.evaluation import logits_of
from tinymnist.fold import fold_batchnorm

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}  # format: default file suffix
TOLERANCE = 1e-4  # max abs difference of logits allowed
CHECK_IMAGES = 1000  # test images the exported model is checked on
ONNX_OPSET = 18


class ExportError(TinyMnistError):
    pass


@dataclass
class Parity:
    images: int
    max_abs_diff: float
    same_predictions: bool

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < TOLERANCE and self.same_predictions


def compare(reference: torch.Tensor, logits: torch.Tensor) -> Parity:
    return Parity(
        len(reference), (reference - logits).abs().max().item(), bool((reference.argmax(1) == logits.argmax(1)).all())
    )


def onnx_bytes(model: nn.Module) -> bytes:
    """The ONNX model (torch.export-based exporter), batch dimension dynamic."""
    try:
        import onnxscript  # noqa: F401  (the exporter needs it)
    except ImportError:
        raise ExportError("--format onnx needs the onnx extra: pip install 'tinymnist[onnx]'") from None
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # no notes about a missing torchvision
    example = torch.zeros(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notes internal to torch.export
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None, "dynamo=True returns the program"
    return program.model_proto.SerializeToString()


def onnx_logits(model: bytes, images: torch.Tensor) -> torch.Tensor:
    """Logits of an ONNX model run by onnxruntime on float images (N, 1, 28, 28)."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("checking the ONNX file needs onnxruntime: pip install 'tinymnist[onnx]'") from None
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def torchscript_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, torch.zeros(2, 1, 28, 28)), buffer)
    return buffer.getvalue()


def torchscript_logits(model: bytes, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.jit.load(io.BytesIO(model))(images)


def export(
    model: nn.Module, fmt: str, path: Path, check_images: torch.Tensor, fold_bn: bool = False, dataset: str = DEFAULT
) -> Parity:
    """Write `model` as `fmt` to `path` if it matches PyTorch on `check_images` (uint8 (N, 28, 28))."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    model = model.cpu().eval()
    reference = logits_of(model, check_images.cpu(), dataset=dataset)
    exported = fold_batchnorm(model) if fold_bn else model
    to_bytes, run = (onnx_bytes, onnx_logits) if fmt == "onnx" else (torchscript_bytes, torchscript_logits)
    data = to_bytes(exported)
    parity = compare(reference, run(data, normalize(check_images.cpu(), dataset)))
    if not parity.ok:
        raise ExportError(
            f"{path}: not written, the {fmt} model differs from PyTorch (max abs difference of "
            f"logits {parity.max_abs_diff:.2e}, identical predictions: {parity.same_predictions})"
        )
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return parity
