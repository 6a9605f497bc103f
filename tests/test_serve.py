"""The HTTP API of `tinymnist serve`, through FastAPI's test client: answers on drawn digits,
4xx JSON errors for every kind of bad upload (and the server still serving after each), the
page and the OpenAPI docs, and the serve command's one-line errors.
"""

import io
import socket
import sys
from tempfile import SpooledTemporaryFile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from drawn_digits import render
from tinymnist import cli, images
from tinymnist.serve import MAX_BODY, create_app


@pytest.fixture(scope="module")
def client(trained_checkpoint) -> TestClient:
    return TestClient(create_app(trained_checkpoint))


def upload(client: TestClient, data: bytes, name: str = "digit.png", field: str = "file", query: str = ""):
    return client.post(f"/predict{query}", files={field: (name, data, "application/octet-stream")})


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_health(client):
    assert client.get("/health").json() == {"status": "ok", "model": "seed", "parameters": 19_712}


# Each digit in three styles: dark on light PNG, small light-on-dark BMP, large JPEG with a wide margin.
STYLES = {
    "png-dark-on-light": dict(side=200),
    "bmp-light-on-dark-small": dict(side=40, pen=0.12, dark_on_light=False, fmt="BMP"),
    "jpeg-large-margin": dict(side=600, pen=0.08, fmt="JPEG", margin=0.6),
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("digit", range(10))
def test_reads_drawn_digits(client, digit, style):
    answer = upload(client, render(digit, **STYLES[style]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["digit"] == digit, body["probabilities"]
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert max(body["probabilities"]) == body["probabilities"][digit]
    assert (body["model"], body["parameters"], body["feature_maps"]) == ("seed", 19_712, None)


def test_the_image_seen_is_the_one_predict_makes(client):
    """One preprocessing code path: the API's 28x28 image is exactly tinymnist.images' output."""
    data = render(5, side=300, fmt="JPEG", margin=0.3)
    body = upload(client, data).json()
    assert body["image"] == images.to_mnist(images.decode(data)).tolist()
    assert np.array(body["image"]).shape == (28, 28)


def test_feature_maps_on_request(client):
    maps = np.array(upload(client, render(2), query="?feature_maps=true").json()["feature_maps"])
    assert maps.shape == (16, 26, 26) and maps.min() >= 0 and maps.max() == 255


def truncated_png() -> bytes:
    data = render(3, side=300)
    return data[: len(data) // 2]


def decompression_bomb() -> bytes:
    """A small file that declares 64 million pixels."""
    return png(Image.new("1", (8_000, 8_000)))


def faint_ink() -> bytes:
    """A stroke too close to the paper's colour to count as ink."""
    img = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(img).line([(50, 10), (50, 90)], fill=240, width=8)
    return png(img)


BAD_UPLOADS = {
    "not an image": (b"hello, this is text", "not an image"),
    "empty": (b"", "empty file"),
    "truncated": (truncated_png(), "truncated or corrupt"),
    "no ink": (png(Image.new("L", (100, 100), 255)), "no ink"),
    "faint ink": (faint_ink(), "no ink"),
    "decompression bomb": (decompression_bomb(), "pixel limit"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_a_4xx_json_error_and_the_server_goes_on(client, case):
    data, message = BAD_UPLOADS[case]
    answer = upload(client, data, name="upload.png")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/json"
    assert message in answer.json()["detail"] and "upload.png" in answer.json()["detail"]
    assert upload(client, render(7)).json()["digit"] == 7


def test_wrong_field_name(client):
    answer = upload(client, render(1), field="image")
    assert answer.status_code == 422
    assert "field 'file'" in answer.json()["detail"]


def test_no_body(client):
    answer = client.post("/predict")
    assert answer.status_code == 422 and "field 'file'" in answer.json()["detail"]


def test_file_over_the_size_limit(client):
    answer = upload(client, b"\x89PNG" + bytes(images.MAX_BYTES))
    assert answer.status_code == 413
    assert "limit" in answer.json()["detail"]


def test_declared_body_over_the_limit_is_refused_unread(client):
    answer = client.post(
        "/predict",
        content=b"x" * (MAX_BODY + 1),
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_streamed_body_over_the_limit_is_cut_off(client):
    chunks = (bytes(1 << 20) for _ in range(MAX_BODY // (1 << 20) + 2))  # chunked: no Content-Length
    answer = client.post("/predict", content=chunks, headers={"content-type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_large_uploads_stay_in_memory(client, monkeypatch):
    """A multi-megabyte upload is never spooled to a temporary file."""

    def written_to_disk(self):
        pytest.fail("the upload was spooled to disk")

    monkeypatch.setattr(SpooledTemporaryFile, "rollover", written_to_disk)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8))
    data = png(noise)
    assert len(data) > 2 << 20
    assert upload(client, data).status_code == 200


def test_page_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for asset in ("static/app.js", "static/style.css"):
        answer = client.get(f"/{asset}")
        assert answer.status_code == 200
        assert "http://" not in answer.text and "https://" not in answer.text  # works offline
    assert "swagger" in client.get("/docs").text.lower()
    schema = client.get("/openapi.json").json()
    assert "/predict" in schema["paths"] and "Prediction" in schema["components"]["schemas"]


def test_serve_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "nothing.pt")]) == 2
    assert "no such run folder or checkpoint" in capsys.readouterr().err


def test_serve_refuses_a_busy_port(trained_checkpoint, capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert cli.main(["serve", str(trained_checkpoint), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_serve_without_the_extra_says_what_to_install(trained_checkpoint, monkeypatch, capsys):
    import tinymnist

    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "tinymnist.serve")
    monkeypatch.delattr(tinymnist, "serve")
    assert cli.main(["serve", str(trained_checkpoint)]) == 2
    assert "pip install 'tinymnist[serve]'" in capsys.readouterr().err
