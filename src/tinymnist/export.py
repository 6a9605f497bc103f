"""Export a trained model to ONNX, torch.export (.pt2) or TorchScript, checked against PyTorch before
it is kept.

The exported model has a dynamic batch dimension and takes what the PyTorch model takes:
float32 images (N, 1, 28, 28), normalised as `tinymnist.data.normalize` does with the constants
of the dataset it was trained on ((x / 255 - mean) / std: 0.1307, 0.3081 for MNIST; see
`tinymnist.data.DATASETS`), and returns (N, 10) logits. Each file says so itself (`metadata`: ONNX
metadata_props, a metadata.json extra file in the others). The serialised model is loaded back (ONNX
with onnxruntime), run on the test images shipped in samples/ (no dataset needed), and written
(atomically) only if its logits are within TOLERANCE of the PyTorch model's and its predictions identical.
"""

import gzip
import importlib.util
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import tinymnist
from tinymnist.checkpoint import atomic_write
from tinymnist.data import DEFAULT, get, normalize
from tinymnist.errors import TinyMnistError
from tinymnist.evaluation import logits_of
from tinymnist.fold import fold_batchnorm

FORMATS = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".torchscript.pt"}  # format: default file suffix
EXTRAS = {"onnx": ("onnx", "onnxscript", "onnxruntime")}  # format: the packages of its extra
TOLERANCE = 1e-4  # max abs difference of logits allowed
CHECK_IMAGES = 500  # test images the exported model is checked on
SAMPLES = Path(__file__).parent / "samples"  # the first CHECK_IMAGES test images of each dataset
ONNX_OPSET = 18
EXAMPLE = torch.zeros(2, 1, 28, 28)
BATCH = ({0: torch.export.Dim("batch")},)  # the dynamic batch dimension of the one input


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


def require(fmt: str) -> None:
    """Refuse `fmt` at once if a package of its extra is missing (before any other work)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: choose {', '.join(FORMATS)}")
    missing = [m for m in EXTRAS.get(fmt, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"--format {fmt} needs {', '.join(missing)}: pip install 'tinymnist[{fmt}]'")


def shipped_images(dataset: str = DEFAULT) -> torch.Tensor:
    """The first CHECK_IMAGES test images of `dataset`, uint8 (N, 28, 28), shipped with the package."""
    with gzip.open(SAMPLES / f"{get(dataset).name}.npy.gz") as f:
        return torch.from_numpy(np.load(f, allow_pickle=False))


def metadata(name: str, dataset: str) -> dict[str, str]:
    """What a user of the file needs to feed it: the preprocessing, the classes, where it comes from."""
    spec = get(dataset)
    return {
        "model": name,
        "dataset": spec.name,
        "classes": json.dumps(list(spec.classes)),
        "mean": repr(spec.mean),
        "std": repr(spec.std),
        "input": f"images: float32 (N, 1, 28, 28), 28x28 {spec.title} images, white on black, (x / 255 - mean) / std",
        "output": f"logits: float32 (N, {len(spec.classes)}), one per class",
        "tinymnist_version": tinymnist.__version__,
    }


def onnx_bytes(model: nn.Module, meta: dict[str, str]) -> bytes:
    """The ONNX model (torch.export-based exporter), batch dimension dynamic, `meta` in metadata_props."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # no notes about a missing torchvision
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notes internal to torch.export
        program = torch.onnx.export(
            model,
            (EXAMPLE,),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=BATCH,
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None, "dynamo=True returns the program"
    proto = program.model_proto
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def onnx_logits(model: bytes, images: torch.Tensor) -> torch.Tensor:
    """Logits of an ONNX model run by onnxruntime on float images (N, 1, 28, 28)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def pt2_bytes(model: nn.Module, meta: dict[str, str]) -> bytes:
    """A torch.export program (load it with torch.export.load), batch dimension dynamic."""
    buffer = io.BytesIO()
    program = torch.export.export(model, (EXAMPLE,), dynamic_shapes=BATCH)
    torch.export.save(program, buffer, extra_files={"metadata.json": json.dumps(meta)})
    return buffer.getvalue()


def pt2_logits(model: bytes, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.export.load(io.BytesIO(model)).module()(images)


def torchscript_bytes(model: nn.Module, meta: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(model, EXAMPLE), buffer, _extra_files={"metadata.json": json.dumps(meta)})
    return buffer.getvalue()


def torchscript_logits(model: bytes, images: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return torch.jit.load(io.BytesIO(model))(images)


WRITERS = {
    "onnx": (onnx_bytes, onnx_logits),
    "pt2": (pt2_bytes, pt2_logits),
    "torchscript": (torchscript_bytes, torchscript_logits),
}  # format: (serialise, run the serialised model)


def export(
    model: nn.Module,
    fmt: str,
    path: Path,
    check_images: torch.Tensor | None = None,
    fold_bn: bool = False,
    dataset: str = DEFAULT,
    name: str = "",
) -> Parity:
    """Write `model` (registered as `name`) as `fmt` to `path` if it matches PyTorch on `check_images`
    (uint8 (N, 28, 28); default: the shipped test images of `dataset`)."""
    require(fmt)
    check_images = shipped_images(dataset) if check_images is None else check_images
    model = model.cpu().eval()
    reference = logits_of(model, check_images.cpu(), dataset=dataset)
    exported = fold_batchnorm(model) if fold_bn else model
    to_bytes, run = WRITERS[fmt]
    data = to_bytes(exported, metadata(name, dataset))
    parity = compare(reference, run(data, normalize(check_images.cpu(), dataset)))
    if not parity.ok:
        raise ExportError(
            f"{path}: not written, the {fmt} model differs from PyTorch (max abs difference of "
            f"logits {parity.max_abs_diff:.2e}, identical predictions: {parity.same_predictions})"
        )
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return parity
