"""Metadata out of all proportion to the pixels (issue 20): every kind of flood in every format
that `images.FORMATS` accepts is refused in one line before Pillow walks it, while pictures with
ordinary metadata (EXIF, ICC profiles, text, animation) still open; `serve` answers such uploads
422, and parses and decodes off its event loop under a time limit.
"""

import asyncio
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from drawn_digits import render
from helpers import LOCAL
from metadata_floods import FLOODS
from tinymnist import images
from tinymnist.serve import Limits, create_app

PAST_THE_BOUNDS = 2 * images.MAX_SEGMENTS  # units: also over MAX_METADATA_BYTES where a unit is 1 KiB


def test_every_format_has_floods():
    assert {fmt for fmt, _, _ in FLOODS.values()} == set(images.FORMATS)


@pytest.mark.parametrize("kind", FLOODS)
def test_a_few_units_are_a_valid_image(kind):
    """The floods are well-formed files: it is their size that is refused, not damage."""
    fmt, _, build = FLOODS[kind]
    assert images.decode(build(8), kind).format == fmt


@pytest.mark.parametrize("kind", FLOODS)
def test_floods_are_refused_in_one_line(kind):
    _, _, build = FLOODS[kind]
    with pytest.raises(images.ImageError, match=r"^flooded\.img: (metadata )?out of proportion: over [\d,]+ ") as e:
        images.open_image(build(PAST_THE_BOUNDS), "flooded.img")
    assert "\n" not in str(e.value)


def saved(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def ordinary_pictures() -> dict[str, bytes]:
    """A drawn 3 with the metadata cameras, editors and animations really carry."""
    three = Image.open(io.BytesIO(render(3, side=300))).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0112] = 1
    icc = bytes(500_000)  # a large ICC profile: APP2 segments of 64 KiB in a JPEG
    frames = [three.convert("P")] * 30
    return {
        "jpeg": saved(three, "JPEG", exif=exif, icc_profile=icc, comment=b"scanned"),
        "png": saved(three, "PNG", exif=exif, icc_profile=icc),
        "gif": saved(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"x" * 5000, loop=0),
        "tiff": saved(three, "TIFF", exif=exif, compression="tiff_lzw"),
        "webp": saved(three, "WEBP", exif=exif, icc_profile=icc),
        "bmp": saved(three.convert("P"), "BMP"),
    }


def test_ordinary_metadata_is_accepted():
    for name, data in ordinary_pictures().items():
        assert images.to_mnist(images.decode(data, name), name).shape == (28, 28)


@pytest.fixture(scope="module")
def client(trained_checkpoint) -> TestClient:
    return TestClient(create_app(trained_checkpoint), base_url=LOCAL)


def test_serve_refuses_floods_with_422(client):
    for kind, (fmt, _, build) in FLOODS.items():
        name = f"flood.{fmt.lower()}"
        answer = client.post("/predict", files={"file": (name, build(PAST_THE_BOUNDS), "application/octet-stream")})
        assert answer.status_code == 422, kind
        assert answer.json()["detail"].startswith(f"{name}: ") and "out of proportion" in answer.json()["detail"]


def test_serve_counts_what_pillow_keeps_of_metadata_against_its_budget(trained_checkpoint):
    """1,000 comments (within the bounds) need 512 KB of the budget: over a 256 KiB budget, 503;
    the same digit without them fits."""
    seven = render(7, fmt="JPEG")
    client = TestClient(create_app(trained_checkpoint, Limits(memory=256 * 1024)), base_url=LOCAL)
    answer = client.post("/predict", files={"file": ("7.jpg", seven, "image/jpeg")})
    assert answer.status_code == 200 and answer.json()["digit"] == 7
    commented = seven[:2] + b"\xff\xfe\x00\x02" * 1000 + seven[2:]
    answer = client.post("/predict", files={"file": ("7.jpg", commented, "image/jpeg")})
    assert answer.status_code == 503 and "over the server's 262,144" in answer.json()["detail"]


def test_serve_parses_uploads_off_the_event_loop(trained_checkpoint, monkeypatch):
    """The metadata check and `images.open_image` (the header) run where no event loop runs."""
    calls = []

    def on_a_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def spied(parse):
        def parse_and_note(data, name):
            calls.append(on_a_loop())
            return parse(data, name)

        return parse_and_note

    for parse in ("check_metadata", "open_image"):
        monkeypatch.setattr(images, parse, spied(getattr(images, parse)))
    client = TestClient(create_app(trained_checkpoint), base_url=LOCAL)
    answer = client.post("/predict", files={"file": ("7.png", render(7), "image/png")})
    assert answer.json()["digit"] == 7 and len(calls) >= 2 and not any(calls)


def test_serve_stops_waiting_for_a_decode_at_its_time_limit(trained_checkpoint):
    """With no time at all to decode: 503 with Retry-After, and the server goes on answering."""
    client = TestClient(create_app(trained_checkpoint, Limits(decode_timeout=0)), base_url=LOCAL)
    answer = client.post("/predict", files={"file": ("7.png", render(7), "image/png")})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["detail"] == "7.png: not decoded within 0 s"
    assert client.get("/health").status_code == 200
