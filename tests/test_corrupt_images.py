"""Corrupt and truncated image files are errors, never a guess: in `images.decode`, the Python API,
`tinymnist predict` (one line per bad file, the others still answered) and the server (422)."""

import io
import struct
import warnings

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

import tinymnist
from drawing import draw_digit, photo_of
from tinymnist import images
from tinymnist.cli import main
from tinymnist.serve import create_app


def jpeg(img: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", **save)
    return buffer.getvalue()


def claiming(width: int, height: int, data: bytes) -> bytes:
    """The JPEG `data` with its frame header claiming `width` x `height` pixels."""
    raw = bytearray(data)
    sof = next(i for i in range(len(raw) - 1) if raw[i] == 0xFF and raw[i + 1] in (0xC0, 0xC1, 0xC2))
    raw[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(raw)


def ended_early(data: bytes, fraction: float = 0.6) -> bytes:
    """A JPEG cut short inside its image data and closed with an end marker."""
    return data[: int(len(data) * fraction)] + b"\xff\xd9"


DIGIT, PHOTO = draw_digit(1), photo_of(3, (600, 800))
CORRUPT_JPEGS = {
    "claims 6000x6000 over 200x200 (grey)": claiming(6000, 6000, jpeg(DIGIT)),
    "claims 6000x6000 over 200x200 (colour)": claiming(6000, 6000, jpeg(DIGIT.convert("RGB"))),
    "claims 6000x6000, progressive": claiming(6000, 6000, jpeg(PHOTO, progressive=True)),
    "claims 16 more rows": claiming(600, 816, jpeg(PHOTO)),
    "claims twice the width, optimised tables": claiming(1200, 800, jpeg(PHOTO, optimize=True)),
    "claims more, restart markers": claiming(600, 1600, jpeg(PHOTO, restart_marker_blocks=4)),
    "end marker inside the image data": ended_early(jpeg(PHOTO)),
    "end marker inside the image data (grey)": ended_early(jpeg(DIGIT), 0.8),
}
WHOLE_JPEGS = {
    "baseline": jpeg(PHOTO),
    "progressive": jpeg(PHOTO, progressive=True),
    "optimised": jpeg(PHOTO, optimize=True, quality=30),
    "restart markers": jpeg(PHOTO, restart_marker_rows=1),
    "4:4:4": jpeg(PHOTO, subsampling=0, quality=100),
    "grey": jpeg(DIGIT),
    "flat grey 3000x2000": jpeg(Image.new("RGB", (3000, 2000), (128, 128, 128)), optimize=True),
    "CMYK": jpeg(Image.new("CMYK", (300, 300))),
    "data after the end marker": jpeg(PHOTO) + b"a phone's extra data",
}


@pytest.mark.parametrize("case", CORRUPT_JPEGS)
def test_jpeg_with_less_data_than_its_header_claims_is_refused(case):
    with pytest.raises(images.ImageError, match="^x.jpg: (corrupt JPEG|truncated or corrupt)"):
        images.decode(CORRUPT_JPEGS[case], "x.jpg")


@pytest.mark.parametrize("case", WHOLE_JPEGS)
def test_whole_jpegs_still_decode(case):
    images.decode(WHOLE_JPEGS[case])


@pytest.mark.parametrize("fmt", images.FORMATS)
def test_truncated_files_of_every_format_are_refused(fmt):
    buffer = io.BytesIO()
    draw_digit(6, (300, 300)).convert("RGB").save(buffer, fmt)
    with pytest.raises(images.ImageError, match="x: (truncated|corrupt)"):
        images.decode(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10], "x")


def tiff_with_a_bad_tag() -> bytes:
    """A TIFF whose ResolutionUnit tag has 2 values (Pillow warns, and uses the first)."""
    buffer = io.BytesIO()
    draw_digit(2).save(buffer, "TIFF", dpi=(72, 72))
    raw = bytearray(buffer.getvalue())
    (ifd,) = struct.unpack("<I", raw[4:8])
    (count,) = struct.unpack("<H", raw[ifd : ifd + 2])
    entry = next(ifd + 2 + 12 * i for i in range(count) if raw[ifd + 2 + 12 * i : ifd + 4 + 12 * i] == b"\x28\x01")
    raw[entry + 4 : entry + 8] = struct.pack("<I", 2)
    return bytes(raw)


def test_pillow_warnings_are_errors_and_the_warning_filters_are_left_as_they_were():
    before = list(warnings.filters)
    with pytest.raises(images.ImageError, match="x.tif: corrupt image .*tag 296"):
        images.decode(tiff_with_a_bad_tag(), "x.tif")
    assert warnings.filters == before


def test_load_truncated_images_set_elsewhere_is_refused(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library might
    with pytest.raises(images.ImageError, match="x.jpg: .*LOAD_TRUNCATED_IMAGES is set"):
        images.decode(jpeg(PHOTO)[:5000], "x.jpg")


def test_corrupt_files_in_the_api_cli_and_server(trained_checkpoint, tmp_path, capsys):
    good = tmp_path / "good.png"
    draw_digit(5).save(good)
    bad = {"claims.jpg": CORRUPT_JPEGS["claims 6000x6000 over 200x200 (grey)"], "early.jpg": ended_early(jpeg(PHOTO))}
    bad["tag.tif"] = tiff_with_a_bad_tag()
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(tinymnist.TinyMnistError, match=f"{name}: "):
            tinymnist.predict(tinymnist.load(trained_checkpoint), tmp_path / name)

    assert main(["predict", str(trained_checkpoint), *(str(tmp_path / n) for n in bad), str(good)]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: 5 ")
    lines = err.splitlines()
    assert len(lines) == len(bad) + 1 and all(str(tmp_path / n) in line for n, line in zip(bad, lines, strict=False))

    client = TestClient(create_app(trained_checkpoint))
    for name, data in bad.items():
        answer = client.post("/predict", files={"file": (name, data, "application/octet-stream")})
        assert answer.status_code == 422 and answer.json()["detail"].startswith(f"{name}: ")
        assert "\n" not in answer.json()["detail"]


def test_jpeg_with_a_flood_of_segments_is_refused_before_pillow_walks_them():
    data = jpeg(DIGIT)
    flood = data[:2] + b"\xff\xfe\x00\x02" * 5000 + data[2:]  # 5,000 empty comments
    with pytest.raises(images.ImageError, match="x.jpg: corrupt JPEG: over 4,096 segments"):
        images.decode(flood, "x.jpg")
    images.decode(data[:2] + b"\xff\xfe\x00\x02" * 100 + data[2:])  # a hundred are fine
