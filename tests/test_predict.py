"""`predict` on real image files: hand-drawn digits in many formats, and broken or special files."""

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import tinymnist
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


def rounded_corners(img: Image.Image, radius: int = 30) -> Image.Image:
    """`img` as a screenshot with transparent rounded corners (their hidden colour black)."""
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, img.width - 1, img.height - 1), radius, fill=255)
    return Image.composite(img.convert("RGBA"), Image.new("RGBA", img.size, (0, 0, 0, 0)), mask)


def transparent_border(img: Image.Image) -> Image.Image:
    a = np.asarray(img.convert("RGBA")).copy()
    for edge in (a[0], a[-1], a[:, 0], a[:, -1]):
        edge[:] = 0
    return Image.fromarray(a)


def with_alpha(img: Image.Image, alpha: int) -> Image.Image:
    out = img.convert("RGBA")
    out.putalpha(alpha)
    return out


def on_a_canvas(img: Image.Image) -> Image.Image:
    """`img` pasted in the middle of a transparent canvas twice its size (a sticker, a window shot)."""
    canvas = Image.new("RGBA", (img.width * 2, img.height * 2), (0, 0, 0, 0))
    canvas.paste(img, (img.width // 2, img.height // 2))
    return canvas


def soft_strokes(digit: int) -> Image.Image:
    """Anti-aliased, semi-transparent (alpha at most 150) blue strokes on transparency."""
    coverage = draw_digit(digit, (800, 800)).resize((100, 100), Image.LANCZOS)
    out = Image.new("RGBA", coverage.size, (10, 10, 200, 0))
    out.putalpha(coverage.point(lambda v: v * 150 // 255))
    return out


def palette_with_transparent_corners(digit: int) -> Image.Image:
    """Palette image (index 0 transparent, PNG tRNS / GIF transparency) with transparent corners."""
    a = np.asarray(draw_digit(digit, (64, 64), mode="P", ink=1, paper=2)).copy()
    a[:4, :4] = a[-4:, -4:] = a[:4, -4:] = a[-4:, :4] = 0
    out = Image.fromarray(a, "P")
    out.putpalette([0, 0, 0, 10, 10, 120, 250, 250, 250])
    out.info["transparency"] = 0
    return out


def dark_on_light(digit: int) -> Image.Image:
    return draw_digit(digit, ink=(20, 20, 60), paper=(245, 245, 245), mode="RGB")


def light_on_dark(digit: int) -> Image.Image:
    return draw_digit(digit, ink=(255, 255, 255), paper=(30, 30, 30), mode="RGB")


TRANSPARENCY = {  # pictures with transparent pixels: (make(digit), format)
    "black strokes on transparency": (lambda d: draw_digit(d, mode="RGBA", ink=(0, 0, 0, 255), paper=0), "PNG"),
    "white strokes on white transparency": (
        lambda d: draw_digit(d, mode="RGBA", ink=(255,) * 4, paper=(255, 255, 255, 0)),
        "PNG",
    ),
    "soft semi-transparent strokes": (soft_strokes, "PNG"),
    "soft strokes as WebP": (soft_strokes, "WEBP"),
    "LA strokes on transparency": (lambda d: Image.merge("LA", [Image.new("L", (200, 200)), draw_digit(d)]), "PNG"),
    "rounded corners, dark on light": (lambda d: rounded_corners(dark_on_light(d)), "PNG"),
    "rounded corners, light on dark": (lambda d: rounded_corners(light_on_dark(d)), "PNG"),
    "rounded corners, LA": (lambda d: rounded_corners(draw_digit(d, ink=0, paper=255)).convert("LA"), "PNG"),
    "1-px transparent border": (lambda d: transparent_border(dark_on_light(d)), "PNG"),
    "alpha 254 everywhere, dark on light": (lambda d: with_alpha(dark_on_light(d), 254), "PNG"),
    "alpha 254 everywhere, light on dark": (lambda d: with_alpha(light_on_dark(d), 254), "WEBP"),
    "alpha 100 everywhere": (lambda d: with_alpha(dark_on_light(d), 100), "PNG"),
    "card on a transparent canvas": (lambda d: on_a_canvas(dark_on_light(d).resize((120, 120))), "PNG"),
    "palette with tRNS corners": (palette_with_transparent_corners, "PNG"),
    "GIF with transparent corners": (palette_with_transparent_corners, "GIF"),
}


@pytest.mark.parametrize("kind", TRANSPARENCY)
def test_transparent_pixels_are_ink_only_on_transparent_paper(trained_checkpoint, tmp_path, capsys, kind):
    """Alpha is the ink only for strokes on transparency; any other picture with transparent pixels is
    composited onto its own paper, so that it reads as the drawn digit in the API and in `predict`."""
    make, fmt = TRANSPARENCY[kind]
    digits = [2, 4, 7]
    files = []
    for d in digits:
        files.append(tmp_path / f"{d}.{fmt.lower()}")
        make(d).save(files[-1], fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    model = tinymnist.load(trained_checkpoint)
    assert [p.digit for p in tinymnist.predict(model, [Image.open(f) for f in files])] == digits
    assert main(["predict", str(trained_checkpoint), *map(str, files)]) == 0
    assert [int(line.split(": ")[1][0]) for line in capsys.readouterr().out.splitlines()] == digits


@pytest.mark.parametrize("picture", [rounded_corners, transparent_border, lambda img: with_alpha(img, 254)])
def test_blank_picture_with_transparent_pixels_has_no_ink(picture):
    with pytest.raises(images.ImageError, match="no ink found"):
        images.to_mnist(picture(Image.new("RGB", (200, 200), "white")))


# Names a user may have: bytes that are not UTF-8, a newline, a tab, terminal escapes, a bidi override, accents.
ODD_NAMES = {
    b"latin1-\xe9t\xe9.png": "latin1-\\xe9t\\xe9.png",
    b"new\nline.png": "new\\nline.png",
    b"tab\t.png": "tab\\t.png",
    b"esc\x1b[31m.png": "esc\\x1b[31m.png",
    "rtl\u202egnp.png".encode(): "rtl\\u202egnp.png",
    "caf\u00e9.png".encode(): "caf\u00e9.png",  # printable: shown as it is (escaped only where stdout lacks it)
}


def odd_folder(tmp_path: Path) -> Path:
    """A folder of digits under odd names, and one unreadable file under an odd name."""
    folder = tmp_path / "odd"
    folder.mkdir()
    for i, name in enumerate(ODD_NAMES):
        draw_digit(i + 1).save(os.fsdecode(os.fsencode(folder) + b"/" + name), "PNG")
    (folder / os.fsdecode(b"broken\xff\n.png")).write_bytes(b"not an image")
    return folder


def test_cli_odd_file_names_are_printed_escaped_and_no_answer_is_lost(trained_checkpoint, tmp_path, capsys):
    folder = odd_folder(tmp_path)
    assert main(["predict", str(trained_checkpoint), str(folder)]) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == len(ODD_NAMES), captured.out  # one line per file: no name split a line
    assert sorted(line.rsplit(": ", 1)[0] for line in lines) == sorted(f"{folder}/{n}" for n in ODD_NAMES.values())
    assert all(line.isprintable() for line in lines)
    err = captured.err.splitlines()
    assert err[0].startswith(f"tinymnist: error: {folder}/broken\\xff\\n.png: ") and len(err) == 2, err

    assert main(["predict", str(trained_checkpoint), str(folder), "--json"]) == 2
    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines()]
    assert out.isascii() and len(records) == len(ODD_NAMES) + 1
    assert {r["file"] for r in records} == {f"{folder}/{n}" for n in [*ODD_NAMES.values(), "broken\\xff\\n.png"]}
    assert sum("error" in r for r in records) == 1


@pytest.mark.parametrize("encoding", ["ascii", "utf-8", "latin-1"])
def test_cli_odd_file_names_on_any_stdout_encoding(trained_checkpoint, tmp_path, encoding):
    """A terminal whose encoding lacks a character (LANG=C, PYTHONIOENCODING=ascii) gets it escaped."""
    folder = odd_folder(tmp_path)
    env = {**os.environ, "PYTHONIOENCODING": encoding, "LC_ALL": "C"}
    argv = [sys.executable, "-m", "tinymnist", "predict", str(trained_checkpoint), str(folder)]
    done = subprocess.run(argv, capture_output=True, env=env)
    assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
    lines = done.stdout.decode(encoding).splitlines()
    assert len(lines) == len(ODD_NAMES), lines
    cafe = "caf\\xe9.png" if encoding == "ascii" else "caf\u00e9.png"
    assert any(line.startswith(f"{folder}/{cafe}: ") for line in lines), lines


def test_cli_a_decoder_crash_costs_only_its_file(trained_checkpoint, tmp_path, capsys, monkeypatch):
    """An exception the decoder was not expected to raise on a damaged file is that file's error."""
    good, odd = tmp_path / "good.png", tmp_path / "odd.png"
    draw_digit(5).save(good)
    draw_digit(6).save(odd)
    real = images.decode

    def decode(data, name="image"):
        if name.endswith("odd.png"):
            raise struct.error("unpack requires a buffer of 4 bytes")
        return real(data, name)

    monkeypatch.setattr(images, "decode", decode)
    assert main(["predict", str(trained_checkpoint), str(odd), str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{good}: 5 ") and f"{odd}: cannot read this image (error: unpack" in captured.err


@pytest.mark.parametrize("name", ["new\nline", "undecodable\udcff", "esc\x1b[2J"])
def test_every_error_naming_a_file_is_one_line(name, tmp_path, capsys):
    for argv in (["predict", name, "x.png"], ["evaluate", str(tmp_path / name)], ["train", "--recipe", name]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinymnist: error: ") and err.count("\n") == 1 and err[:-1].isprintable(), err
