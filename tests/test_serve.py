"""The HTTP API of `tinymnist serve`, through FastAPI's test client: answers on drawn digits,
4xx JSON errors for every kind of bad upload (and the server still serving after each), the
page and the OpenAPI docs (offline), and the serve command's one-line errors. Then the server
as a real process with small limits: idle, silent, slow and stalled clients, the memory budget,
the connection cap (with a low `ulimit -n`) and rate-limited logs.
"""

import io
import re
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from tempfile import SpooledTemporaryFile

import httpx2
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


@pytest.mark.parametrize("missing", ["fastapi", "h11"])  # h11: what uvicorn needs, unknown to most users
def test_serve_without_the_extra_says_what_to_install(trained_checkpoint, monkeypatch, capsys, missing):
    import tinymnist

    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "tinymnist.serve")
    monkeypatch.delattr(tinymnist, "serve")
    assert cli.main(["serve", str(trained_checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "FastAPI and uvicorn" in err and "pip install 'tinymnist[serve]'" in err and "h11" not in err, err


def test_get_predict_is_405_with_allow(client):
    answer = client.get("/predict")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"


def test_docs_work_offline(client):
    """/docs loads Swagger UI from the package: every script and stylesheet is served here."""
    page = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(assets) >= 2 and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 1000, asset
    assert "https://" not in page and "http://" not in page


def sixteen_bit(digit: int | None, side: int, fmt: str) -> bytes:
    """A 16-bit greyscale file (mode I;16) of side `side`: the drawn digit, or blank."""
    ink = np.asarray(Image.open(io.BytesIO(render(digit, side=side))).convert("L")) if digit is not None else None
    values = (255 - ink).astype(np.uint16) * 257 if ink is not None else np.zeros((side, side), np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_large_16_bit_images(client, fmt):
    answer = upload(client, sixteen_bit(3, 2048, fmt), name=f"three.{fmt.lower()}")
    assert answer.status_code == 200 and answer.json()["digit"] == 3
    answer = upload(client, sixteen_bit(None, 2100, fmt), name="blank")
    assert answer.status_code == 422 and "no ink" in answer.json()["detail"]


def test_decoded_size_counts_the_mode(client):
    """Under the pixel limit, but 4 bytes a pixel: refused from the header, before decoding."""
    answer = upload(client, png(Image.new("RGBA", (4100, 4100))), name="wide.png")
    assert answer.status_code == 422
    assert "RGBA" in answer.json()["detail"] and f"{images.MAX_DECODED_BYTES:,}-byte limit" in answer.json()["detail"]


# The server as a real process, with small limits, on 127.0.0.1.


@contextmanager
def server(checkpoint, open_files: int | None = None, **limits) -> Iterator[tuple[str, subprocess.Popen]]:
    """`serve.serve` in a process of its own with these `Limits`, optionally under `ulimit -n open_files`."""
    code = f"from tinymnist import serve; serve.serve({str(checkpoint)!r}, port=0, limits=serve.Limits(**{limits!r}))"

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_files if open_files else None,
    )
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, line + process.stderr.read()
        yield line.split(" at ")[1].split()[0], process
    finally:
        process.terminate()
        process.wait(timeout=30)


def connect(url: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", int(url.rstrip("/").rsplit(":", 1)[1])), timeout=30)
    return s


def until_closed(s: socket.socket) -> bytes:
    """What the server sends until it closes the connection (waiting at most the socket's timeout)."""
    received = b""
    try:
        while chunk := s.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def predict_seven(url: str) -> int:
    answer = httpx2.post(f"{url}predict", files={"file": ("7.png", render(7), "image/png")}, timeout=30)
    return answer.json()["digit"]


def upload_head(length: int) -> bytes:
    """The start of an upload of `length` bytes, up to the file's first byte."""
    return (
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    ).encode()


@pytest.mark.slow  # a server process
def test_more_idle_sockets_than_open_files(trained_checkpoint):
    """With `ulimit -n 256`, 300 connections that send nothing: the server closes the idle ones
    to make room, answers every request, and logs nothing."""
    with server(trained_checkpoint, open_files=256) as (url, process):
        sockets = [connect(url) for _ in range(300)]
        for _ in range(3):
            assert httpx2.get(f"{url}health", timeout=30).status_code == 200
        assert predict_seven(url) == 7
        for s in sockets:
            s.close()
    assert process.stderr.read() == ""


@pytest.mark.slow  # a server process
def test_silent_and_slow_clients_are_cut_off(trained_checkpoint):
    with server(trained_checkpoint, header_timeout=1, body_timeout=1) as (url, _):
        silent, slow, stalled = connect(url), connect(url), connect(url)
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
        stalled.sendall(upload_head(100_000) + bytes(10_000))  # the body stops
        assert until_closed(silent) == until_closed(slow) == b""
        answer = until_closed(stalled)
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"detail":"the upload stalled' in answer
        assert predict_seven(url) == 7


@pytest.mark.slow  # a server process
def test_memory_budget_answers_503(trained_checkpoint):
    """A 1 MiB budget: an upload of 400 KB holds 800 KB of it until it ends; a second one waits,
    then gets 503 with Retry-After; a small drawn digit fits beside and is answered."""
    with server(trained_checkpoint, memory=1 << 20, wait=0.5, body_timeout=30) as (url, _):
        holder = connect(url)
        holder.sendall(upload_head(400_000))
        assert httpx2.get(f"{url}health", timeout=30).status_code == 200  # the holder is being served
        second = connect(url)
        second.sendall(upload_head(400_000))
        answer = until_closed(second)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer.lower()
        assert b"busy" in answer
        assert predict_seven(url) == 7
        holder.close()


@pytest.mark.slow  # a server process
def test_connection_cap_answers_503_when_every_connection_is_busy(trained_checkpoint):
    with server(trained_checkpoint, connections=4, body_timeout=30) as (url, _):
        uploads = [connect(url) for _ in range(4)]
        for s in uploads:  # a request in progress, not idle: its body is being read
            s.sendall(upload_head(10_000).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1))
            assert s.recv(65536).startswith(b"HTTP/1.1 100 ")
        extra = connect(url)
        extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"limit of 4 connections" in answer
        for s in uploads:
            s.close()


@pytest.mark.slow  # a server process
def test_logs_are_rate_limited(trained_checkpoint):
    with server(trained_checkpoint, log_lines=5) as (url, process):
        for _ in range(40):
            s = connect(url)
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")  # uvicorn logs a warning for each
            until_closed(s)
        assert httpx2.get(f"{url}health", timeout=30).status_code == 200
    warnings = [line for line in process.stderr.read().splitlines() if "Invalid HTTP request" in line]
    assert len(warnings) == 5
