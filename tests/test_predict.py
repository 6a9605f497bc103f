"""`predict` on real image files: hand-drawn digits in many formats, and broken or special files."""

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from drawing import draw_digit, photo_of
from tinymnist import checkpoint, images, inference
from tinymnist.cli import main


@pytest.fixture(scope="module")
def model(trained_checkpoint):
    return checkpoint.load_model(trained_checkpoint)[0]


def predicted(model, img: Image.Image, fmt: str = "PNG", **save) -> int:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **save)
    digit = images.to_mnist(images.decode(buffer.getvalue()))
    return int(inference.probabilities(model, digit[None]).argmax())


@pytest.mark.parametrize("digit", range(10))
def test_hand_drawn_digits(model, digit):
    assert predicted(model, draw_digit(digit)) == digit  # white on black, like MNIST
    assert predicted(model, draw_digit(digit, (120, 300), ink=20, paper=235), "BMP") == digit  # dark on light
    assert predicted(model, photo_of(digit, seed=digit), "JPEG", quality=70) == digit  # photo-like, RGB


def test_other_colour_modes(model):
    on_transparent = draw_digit(7, mode="RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))  # ink only in alpha
    assert predicted(model, on_transparent) == 7
    palette = draw_digit(3, (64, 48), mode="P", ink=1, paper=0)
    palette.putpalette([250, 250, 250, 10, 10, 120])  # paper light grey, ink dark blue
    assert predicted(model, palette, "GIF") == 3
    sixteen_bit = Image.fromarray(np.asarray(draw_digit(4), dtype=np.uint16) * 200)  # mode I;16
    assert predicted(model, sixteen_bit) == 4
    assert predicted(model, draw_digit(2, mode="RGB", ink=(200, 30, 30), paper=(255, 255, 240)), "JPEG") == 2


def test_preprocessing_keeps_mnist_digits(model, mnist):
    """MNIST test digits put through the file pipeline are classified (almost) as well as raw."""
    raw, labels = mnist.test_images[:500], mnist.test_labels[:500]
    again = torch.stack([images.to_mnist(Image.fromarray(x.numpy())) for x in raw])
    accuracy = [(inference.probabilities(model, x).argmax(1) == labels).float().mean().item() for x in (raw, again)]
    assert accuracy[1] >= accuracy[0] - 0.01, accuracy


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (a decompression bomb's first bytes)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "PNG")
    raw = bytearray(buffer.getvalue())
    raw[16:24] = struct.pack(">II", width, height)  # in the IHDR chunk, after its length and type
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def write_files(folder):
    folder.mkdir()
    draw_digit(0).save(folder / "zero.png")
    photo_of(7, seed=1).save(folder / "seven.jpg", quality=80)
    (folder / "notes.txt").write_text("not an image, and not picked up by the folder walk")
    (folder / "sub").mkdir()
    draw_digit(1, ink=0, paper=255).save(folder / "sub" / "one.bmp")
    return folder


def test_cli_walks_folders_and_prints_top_k(trained_checkpoint, tmp_path, capsys):
    folder = write_files(tmp_path / "digits")
    assert main(["predict", str(trained_checkpoint), str(folder), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        str(folder / n) for n in ("seven.jpg", "sub/one.bmp", "zero.png")
    ]
    assert [line.split(": ")[1][0] for line in lines] == ["7", "1", "0"]
    assert all(line.count("%") == 3 for line in lines)

    assert main(["predict", str(trained_checkpoint), str(folder / "zero.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["digit"] == 0 and record["probability"] > 0.5 and len(record["top"]) == 1


def test_cli_bad_files_fail_one_by_one(trained_checkpoint, tmp_path, capsys):
    good = tmp_path / "good.png"
    draw_digit(5).save(good)
    bad = {"text.png": b"hello, not an image", "empty.png": b"", "truncated.png": good.read_bytes()[:200]}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    (tmp_path / "huge.png").write_bytes(png_declaring(9000, 9000))  # over our limit
    (tmp_path / "bomb.png").write_bytes(png_declaring(30000, 30000))  # over PIL's limit too
    names = ["text.png", "empty.png", "truncated.png", "blank.png", "huge.png", "bomb.png", "missing.png"]
    argv = ["predict", str(trained_checkpoint), str(good), *(str(tmp_path / n) for n in names)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: 5 ")
    err = captured.err.splitlines()
    reasons = ["not an image", "empty file", "truncated", "no ink", "pixel limit", "pixel limit", "cannot read"]
    for name, reason in zip(names, reasons, strict=True):
        assert any(str(tmp_path / name) in line and reason in line for line in err), (name, err)
    assert err[-1] == "tinymnist: error: 7 of 8 files could not be predicted"

    assert main([*argv, "--json"]) == 2
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["digit"] == 5 and [r["file"] for r in records[1:]] == [str(tmp_path / n) for n in names]
    assert all("error" in r for r in records[1:])


def test_cli_argument_errors(trained_checkpoint, tmp_path, capsys):
    assert main(["predict", str(trained_checkpoint), str(tmp_path)]) == 2
    assert "no image files found" in capsys.readouterr().err
    assert main(["predict", str(trained_checkpoint), str(tmp_path), "--top", "11"]) == 2
    assert "--top 11" in capsys.readouterr().err


def test_read_checks_the_file_before_reading(tmp_path):
    """Only regular files are read, and only up to the size limit: never a device, FIFO or folder."""
    fifo = tmp_path / "digit.png"
    os.mkfifo(fifo)  # opening it for reading would wait forever for a writer
    sparse = tmp_path / "sparse.png"
    with open(sparse, "wb") as f:
        f.truncate(50 << 30)  # 50 GB that take no disk space
    cases = {Path("/dev/zero"): "not a regular file", fifo: "not a regular file", tmp_path: "not a regular file"}
    cases[sparse] = f"file of {50 << 30:,} bytes is over the"
    for path, reason in cases.items():
        with pytest.raises(images.ImageError, match=reason):
            images.read(path)


def test_cli_special_files_fail_one_by_one(trained_checkpoint, tmp_path, capsys):
    good = tmp_path / "good.png"
    draw_digit(5).save(good)
    fifo, sparse = tmp_path / "fifo.png", tmp_path / "sparse.png"
    os.mkfifo(fifo)
    with open(sparse, "wb") as f:
        f.truncate(3 << 30)
    bad = ["/dev/zero", str(fifo), str(sparse)]
    assert main(["predict", str(trained_checkpoint), "/dev/zero", str(good), *bad[1:]]) == 2
    captured = capsys.readouterr()
    assert captured.out == f"{good}: 5 " + captured.out.split(": 5 ", 1)[1] and captured.out.count("\n") == 1
    err = captured.err.splitlines()
    assert [line.split(": ")[2] for line in err[:3]] == bad
    assert err[-1] == "tinymnist: error: 3 of 4 files could not be predicted"


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_large_16_bit_greyscale(model, tmp_path, fmt):
    """16-bit images of side >= 2048 (which Pillow cannot `reduce`) are read, scaled from 0-65535."""
    digit = np.asarray(draw_digit(6, (2048, 2304)), dtype=np.uint16) * 257
    path = tmp_path / f"six.{fmt.lower()}"
    Image.fromarray(digit).save(path, fmt)
    assert Image.open(path).mode == "I;16"
    assert int(inference.probabilities(model, images.to_mnist(images.read(path))[None]).argmax()) == 6
