"""`tinymnist serve`: a digit-recognition HTTP API (FastAPI on uvicorn) and a draw-a-digit page.

`POST /predict` runs an uploaded image through the same preprocessing as `tinymnist predict`
(`tinymnist.images`) and through the model, which is loaded once at start. Each request is
handled in memory: the body is limited to `MAX_BODY` bytes and uploads are never spooled to disk.
The page (`GET /`) is plain HTML/CSS/JS from `tinymnist/static`, with nothing fetched from elsewhere.
"""

import socket
from pathlib import Path
from typing import Annotated

import torch
import uvicorn
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from torch import nn

from tinymnist import images, pretrained
from tinymnist.data import normalize
from tinymnist.errors import TinyMnistError
from tinymnist.inference import probabilities as class_probabilities
from tinymnist.models import count_parameters

MAX_BODY = images.MAX_BYTES + 64 * 1024  # the largest image file plus room for the multipart framing
FIELD = "file"  # the multipart form field that carries the image

# Starlette spools uploads over 1 MiB to a temporary file; keep every allowed upload in memory.
MultiPartParser.spool_max_size = MAX_BODY


class Prediction(BaseModel):
    digit: int = Field(description="the predicted digit, 0-9")
    probabilities: list[float] = Field(description="softmax probability of each digit 0-9, in order")
    image: list[list[int]] = Field(description="the 28x28 image the network saw: rows of ink values 0-255")
    feature_maps: list[list[list[int]]] | None = Field(
        None, description="with ?feature_maps=true: each output channel of the first convolution, scaled to 0-255"
    )
    model: str = Field(description="the network's name")
    parameters: int = Field(description="the network's trainable parameter count")


class Health(BaseModel):
    status: str
    model: str
    parameters: int


class Problem(BaseModel):
    detail: str = Field(description="what is wrong with the request")


class BodyLimit:
    """Refuse request bodies over MAX_BODY with a JSON 413, without reading more than that.

    A declared Content-Length over the limit is refused before any of the body is read; a body
    without one (chunked) is counted as it arrives.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        too_large = HTTPException(413, f"request body over the {MAX_BODY:,}-byte limit (images: {images.MAX_BYTES:,})")
        counted = 0

        async def limited() -> Message:
            nonlocal counted
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise too_large
            message = await receive()
            counted += len(message.get("body", b""))
            if counted > MAX_BODY:
                raise too_large
            return message

        await self.app(scope, limited, send)


def scaled_to_bytes(maps: torch.Tensor) -> list[list[list[int]]]:
    """Each map stretched to 0-255 on its own, so weak and strong channels are both visible."""
    low = maps.amin((1, 2), keepdim=True)
    span = (maps.amax((1, 2), keepdim=True) - low).clamp_min(1e-6)
    return ((maps - low) / span * 255).round().to(torch.uint8).tolist()


def create_app(run: str | Path) -> FastAPI:
    """The app serving the model of a run folder, checkpoint file or shipped model (loaded here, once)."""
    model, ckpt = pretrained.load_model(run)
    name, parameters = ckpt["model"], count_parameters(model)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    app = FastAPI(
        title="tinymnist",
        summary=f"Handwritten digit recognition with the {name} network ({parameters:,} parameters).",
    )
    app.add_middleware(BodyLimit)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One readable line instead of the framework's list of error objects."""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        hint = f"send the image as multipart/form-data in the field {FIELD!r}"
        return JSONResponse({"detail": f"{problems} ({hint})"}, status_code=422)

    @app.get("/health", summary="Liveness")
    def health() -> Health:
        return Health(status="ok", model=name, parameters=parameters)

    @app.post(
        "/predict",
        summary="Recognise the digit in an image file",
        responses={413: {"model": Problem}, 422: {"model": Problem}},
    )
    def predict(
        file: Annotated[UploadFile, File(description="PNG, JPEG or BMP; any size, dark-on-light or light-on-dark")],
        feature_maps: Annotated[bool, Query(description="also return the first convolution's feature maps")] = False,
    ) -> Prediction:
        """The image is preprocessed exactly as by `tinymnist predict` (tinymnist.images)."""
        data = file.file.read(images.MAX_BYTES + 1)
        try:
            digit_image = images.to_mnist(images.decode(data, file.filename or "upload"), file.filename or "upload")
        except images.ImageError as e:
            raise HTTPException(413 if len(data) > images.MAX_BYTES else 422, str(e)) from None
        batch = digit_image.unsqueeze(0)
        probabilities = class_probabilities(model, batch)[0]
        maps = None
        if feature_maps:
            with torch.inference_mode():
                maps = scaled_to_bytes(first_conv(normalize(batch))[0])
        return Prediction(
            digit=int(probabilities.argmax()),
            probabilities=probabilities.tolist(),
            image=digit_image.tolist(),
            feature_maps=maps,
            model=name,
            parameters=parameters,
        )

    app.mount("/", StaticFiles(packages=[("tinymnist", "static")], html=True), name="page")
    return app


def listen(host: str, port: int) -> socket.socket:
    """The bound listening socket, so that a busy port is a one-line error and port 0 works."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise TinyMnistError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Load the model, print the URL to open, and serve until interrupted."""
    app = create_app(run)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
    print(f"tinymnist: serving {run} at {url} (API docs: {url}docs); Ctrl+C stops", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
