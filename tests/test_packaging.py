"""The wheel as pip builds it: the licence files, py.typed and the package data are in it."""

import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow  # builds a wheel (pip fetches setuptools for its isolated build)


def test_the_wheel_holds_the_licences_py_typed_and_the_package_data(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("tinymnist-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        assert "License-Expression: MIT" in z.read(metadata).decode()
    info = metadata.removesuffix("METADATA")
    assert {f"{info}licenses/LICENSE", f"{info}licenses/src/tinymnist/samples/NOTICE"} <= names, names
    assert {"tinymnist/py.typed", "tinymnist/samples/mnist.npy.gz", "tinymnist/samples/fashion-mnist.npy.gz",
            "tinymnist/weights/seed.safetensors", "tinymnist/static/index.html"} <= names, names  # fmt: skip
