"""`tinymnist serve`: a digit-recognition HTTP API (FastAPI on uvicorn) and a draw-a-digit page.

`POST /predict` runs an uploaded image through the same preprocessing as `tinymnist predict`
(`tinymnist.images`) and through the model, which is loaded once at start. Each request is
handled in memory: the body is limited to `MAX_BODY` bytes and uploads are never spooled to disk.
The page (`GET /`) is plain HTML/CSS/JS from `tinymnist/static`, and the API docs (`/docs`) use
the Swagger UI files bundled by fastapi-offline: nothing is fetched from elsewhere.

The server stays up and bounded under hostile clients (docs/serve.md): every bound is in `Limits`.
uvicorn lacks a deadline for request headers and a connection cap that sheds idle connections,
so `GuardedH11` adds them to its HTTP/1.1 protocol; `Guard` (ASGI middleware) bounds request
bodies in size, time and memory; `Budget`s bound the memory, the decoder threads and the large
decodes of all requests at once. Everything that parses an upload runs in the decoder threads,
under a time limit, so the event loop (and with it `/health` and the page) never waits on it.
"""

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import ipaddress
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import h11
import torch
import uvicorn
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers
from starlette.formparsers import MultiPartException, MultiPartParser, parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from torch import nn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tinymnist import images, pretrained
from tinymnist.data import normalize, trained_on
from tinymnist.errors import TinyMnistError
from tinymnist.inference import probabilities as class_probabilities
from tinymnist.models import count_parameters

MAX_BODY = images.MAX_BYTES + 64 * 1024  # the largest image file plus room for the multipart framing
TOO_LARGE = f"request body over the {MAX_BODY:,}-byte limit (images: {images.MAX_BYTES:,})"
FIELD = "file"  # the multipart form field that carries the image
STATIC = Path(__file__).parent / "static"
DOCS_STATIC = "/static-offline-docs"  # where fastapi-offline serves Swagger UI's files
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Every bound the server keeps, in one place; the defaults are those of `tinymnist serve`."""

    connections: int = 1000  # open connections; at the cap, the one idle longest is closed (or a 503 if none is)
    backlog: int = 32  # connections waiting to be accepted; asyncio accepts up to this many at a time
    receive_buffer: int = 256 * 1024  # bytes the kernel holds per connection before the server reads (nginx: rcvbuf)
    fd_reserve: int = 64  # file descriptors kept for the process's own files, besides 3 x backlog being accepted
    header_timeout: float = 10  # seconds for a request's headers to arrive, from connect or the previous response
    keep_alive: int = 5  # seconds an idle connection stays open after a response
    body_timeout: float = 10  # seconds an upload may send nothing while the server waits for it
    upload_timeout: float = 60  # seconds a whole upload may take
    memory: int = 128 * MiB  # bytes all requests in progress may hold: uploads (2 copies) and decoded pixels
    large_decode: int = 4 * MiB  # decoded pixels over this make a large decode ...
    large_decodes: int = 1  # ... and this many run at once (each takes a core for a while) ...
    large_decode_nice: int = 10  # ... at this lower priority (Linux), so that small requests go first
    decoders: int = 4  # threads that parse and decode uploads (besides the large decodes' own)
    decode_timeout: float = 10  # seconds a request waits for its image to be parsed and decoded, then 503
    wait: float = 2  # seconds a request waits for its share of `memory`, `decoders` or `large_decodes`, then 503
    log_lines: int = 30  # log lines a minute at most; the rest are counted, and the count is logged


class InMemoryParser(MultiPartParser):
    spool_max_size = MAX_BODY  # Starlette spools parts over 1 MiB to a temporary file: keep every upload in memory


class InMemoryRequest(Request):
    """A request whose multipart form is parsed by `InMemoryParser`; the rest as Starlette does."""

    async def _get_form(self, **options) -> FormData:
        content_type, _ = parse_options_header(self.headers.get("content-type"))
        if self._form is None and content_type == b"multipart/form-data":
            try:
                async with aclosing(self.stream()) as stream:
                    self._form = await InMemoryParser(self.headers, stream, **options).parse()
            except MultiPartException as e:
                raise HTTPException(400, e.message) from None
        return await super()._get_form(**options)


class InMemoryRoute(APIRoute):
    """The app's routes get an `InMemoryRequest`: the uploads of this app alone are kept in memory."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[None, None, Response]]:
        handler = super().get_route_handler()

        async def in_memory(request: Request) -> Response:
            return await handler(InMemoryRequest(request.scope, request.receive))

        return in_memory


class Prediction(BaseModel):
    digit: int = Field(description="the predicted class, 0-9 (for MNIST, the digit)")
    label: str = Field(description="the predicted class's name (for MNIST, the digit; for Fashion-MNIST, the article)")
    probabilities: list[float] = Field(description="softmax probability of each class 0-9, in order")
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


class Busy(Exception):
    """The server cannot take this request now: answered 503 with Retry-After."""


class Budget:
    """A resource that the requests in progress share: bytes of memory, or large decodes at once.

    A request reserves its share (before it reads its upload or decodes its pixels) and waits up
    to `wait` seconds for it; whenever some is released, the waiting requests whose shares fit go
    ahead, so small requests pass while large ones wait. Shares over the whole budget are refused
    at once. (One event loop: no lock is needed between the check and the update.)
    """

    def __init__(self, what: str, total: int, wait: float) -> None:
        self.what, self.total, self.free, self.wait = what, total, total, wait
        self.waiting: list[tuple[int, asyncio.Future]] = []

    @asynccontextmanager
    async def reserve(self, share: int) -> AsyncIterator[None]:
        if share > self.total:
            raise Busy(f"the request needs {share:,} {self.what}, over the server's {self.total:,}")
        if share <= self.free:
            self.free -= share
        else:
            granted = asyncio.get_running_loop().create_future()
            self.waiting.append((share, granted))
            try:
                await asyncio.wait([granted], timeout=self.wait)
            except BaseException:  # cancelled while waiting: give back the share if it was granted
                if not granted.cancel():
                    self.release(share)
                raise
            if granted.cancel():  # still pending: the wait is over
                raise Busy(f"the server is busy: no {self.what} free for this request within {self.wait:g} s")
        try:
            yield
        finally:
            self.release(share)

    def release(self, share: int) -> None:
        """Return a share, and hand the free memory to the waiting requests whose shares fit, in order."""
        self.free += share
        still = []
        for wanted, granted in self.waiting:
            if granted.done():  # gave up waiting
                continue
            if wanted <= self.free:
                self.free -= wanted
                granted.set_result(None)
            else:
                still.append((wanted, granted))
        self.waiting = still


def problem(status: int, detail: str, close: bool = False) -> JSONResponse:
    """A JSON error; `close` ends the connection, for answers sent before the upload was read."""
    headers = {"connection": "close"} if close else {}
    if status == 503:
        headers["retry-after"] = "1"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def adding(headers: list[tuple[bytes, bytes]], send: Send) -> Send:
    """`send`, with `headers` added to the response."""

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return send_with_headers


def host_name(header: str) -> str:
    """The name in a Host header, without the port: "[::1]:8000" is "::1", "Localhost:80" "localhost"."""
    name = header.split("]")[0][1:] if header.startswith("[") else header.rsplit(":", 1)[0]
    return name.lower()


def answers_to(host: str) -> frozenset[str] | None:
    """The Host names a server listening on `host` answers to: the loopback names and `host`
    itself; any (None) when it listens on every address, where its names are not known."""
    if host in ("", "0.0.0.0", "::"):
        return None
    return LOOPBACK_NAMES | {host.lower()}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def content_security_policy(docs: bytes) -> str:
    """Everything from this server only, nothing framing it; the API docs' one inline script by its hash."""
    scripts = re.findall(rb"<script>(.*?)</script>", docs, re.DOTALL)
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in scripts)
    return (
        f"default-src 'self'; script-src 'self'{hashes}; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class Secure:
    """Answer only requests for this server's host names (a web page that rebinds its own name to
    127.0.0.1 gets 400, not the answers), and send every answer with the headers that stop browsers
    from guessing content types and other sites from framing the page."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, policy: str) -> None:
        self.app, self.hosts = app, hosts
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", policy.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = adding(self.headers, send)
        name = host_name(Headers(scope=scope).get("host", ""))
        if self.hosts is not None and name and name not in self.hosts:  # no Host at all: HTTP/1.0, not a browser
            names = ", ".join(sorted(self.hosts))
            detail = f"this server answers to the host names {names}, not {name!r} (serve --host NAME adds one)"
            return await problem(400, detail, close=True)(scope, receive, send)
        await self.app(scope, receive, send)


class Guard:
    """Bound each request's upload: size (413, read no further), time (408) and memory (503).
    A request with both Content-Length and Transfer-Encoding (a smuggling attempt) closes the connection.

    A declared Content-Length over MAX_BODY is refused before any of the body is read; a body
    without one (chunked) is counted as it arrives. Before the body is read, twice its declared
    size (or MAX_BODY) is reserved from the memory budget: the upload and the copy decoded.
    """

    def __init__(self, app: ASGIApp, budget: Budget, limits: Limits) -> None:
        self.app, self.budget, self.limits = app, budget, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if "content-length" in headers and "transfer-encoding" in headers:  # RFC 9112 6.1: answer, then close
            send = adding([(b"connection", b"close")], send)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return await problem(413, TOO_LARGE, close=True)(scope, receive, send)
        chunked = "chunked" in headers.get("transfer-encoding", "")
        size = MAX_BODY if chunked else int(declared or 0)
        counted, deadline = 0, time.monotonic() + self.limits.upload_timeout

        async def limited() -> Message:
            nonlocal counted
            timeout = min(self.limits.body_timeout, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), max(timeout, 0))
            except asyncio.TimeoutError:
                raise HTTPException(408, "the upload stalled or took too long", {"connection": "close"}) from None
            counted += len(message.get("body", b""))
            if counted > MAX_BODY:
                raise HTTPException(413, TOO_LARGE, {"connection": "close"})
            return message

        try:
            async with self.budget.reserve(2 * size):
                await self.app(scope, limited, send)
        except Busy as e:
            await problem(503, str(e), close=True)(scope, receive, send)


def scaled_to_bytes(maps: torch.Tensor) -> list[list[list[int]]]:
    """Each map stretched to 0-255 on its own, so weak and strong channels are both visible."""
    low = maps.amin((1, 2), keepdim=True)
    span = (maps.amax((1, 2), keepdim=True) - low).clamp_min(1e-6)
    return ((maps - low) / span * 255).round().to(torch.uint8).tolist()


def lower_priority(nice: int) -> None:
    """Lower the calling thread's priority (Linux schedules threads on their own; elsewhere: no-op)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def digit_of(img: Image.Image, framing: str, name: str) -> torch.Tensor:
    """Decode and preprocess an opened image, then free its pixels at once (they are budgeted)."""
    try:
        return images.to_input(images.load(img, name), framing, name)
    finally:
        img.close()


def create_app(run: str | Path, limits: Limits = Limits(), host: str = "127.0.0.1") -> FastAPI:
    """The app serving the model of a run folder, checkpoint file or shipped model (loaded here, once),
    to requests for `host` (the address it listens on) or a loopback name."""
    model, ckpt = pretrained.load_model(run)
    name, parameters = ckpt["model"], count_parameters(model)
    spec = trained_on(ckpt, run)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    budget = Budget("bytes of memory", limits.memory, limits.wait)
    decoders = Budget("image decoders", limits.decoders, limits.wait)
    large_decodes = Budget("large decodes", limits.large_decodes, limits.wait)  # each takes a core
    pool = ThreadPoolExecutor(limits.decoders, "decode")
    large_pool = ThreadPoolExecutor(limits.large_decodes, "large-decode", lower_priority, (limits.large_decode_nice,))
    decoding: set[asyncio.Future] = set()  # decodes running, also those whose requests gave up waiting

    async def digit_in(data: bytes, filename: str) -> torch.Tensor:
        """Parse the upload, then decode and preprocess its pixels, in the decoder threads; the memory
        Pillow keeps of the metadata, then the decoded pixels, are reserved from the budget first."""
        kept = await in_thread(decoders, pool, images.check_metadata, data, filename)
        async with budget.reserve(kept):
            img = await in_thread(decoders, pool, images.open_image, data, filename)  # checks the limits
            size = images.decoded_bytes(img)
            slots, threads = (large_decodes, large_pool) if size > limits.large_decode else (decoders, pool)
            async with slots.reserve(1), budget.reserve(size):
                return await asyncio.get_running_loop().run_in_executor(threads, digit_of, img, spec.framing, filename)

    async def in_thread(slots: Budget, threads: ThreadPoolExecutor, work: Callable, *args) -> Any:
        """`work(*args)` in one of `threads`, once one of `slots` is free (a 503 if none is within `wait`)."""
        async with slots.reserve(1):
            return await asyncio.get_running_loop().run_in_executor(threads, work, *args)

    def finished(task: asyncio.Future) -> None:
        decoding.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, also when the request gave up waiting: nothing logged

    async def within_time_limit(work: Coroutine, filename: str) -> torch.Tensor:
        """`work`'s result, or Busy after `decode_timeout`; `work` then goes on to its end in the
        background, holding its thread and its shares of the budgets, so that they stay bounded."""
        task = asyncio.ensure_future(work)
        decoding.add(task)
        task.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.shield(task), limits.decode_timeout)
        except asyncio.TimeoutError:
            raise Busy(f"{filename}: not decoded within {limits.decode_timeout:g} s") from None

    app = FastAPIOffline(
        title="tinymnist",
        summary=f"Handwritten digit recognition with the {name} network ({parameters:,} parameters).",
        docs_url=None,  # below: the same page, known here, so that its inline script can be allowed by hash
        redoc_url=None,
        static_url=DOCS_STATIC,
    )
    docs = bytes(
        get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
        ).body
    )
    app.router.route_class = InMemoryRoute
    app.add_middleware(Guard, budget=budget, limits=limits)
    app.add_middleware(Secure, hosts=answers_to(host), policy=content_security_policy(docs))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One readable line instead of the framework's list of error objects."""
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        hint = f"send the image as multipart/form-data in the field {FIELD!r}"
        return JSONResponse({"detail": f"{problems} ({hint})"}, status_code=422)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return problem(503, str(exc))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:  # async, as /health: on the event loop, never behind busy threads
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(docs)

    @app.get("/health", summary="Liveness")
    async def health() -> Health:
        return Health(status="ok", model=name, parameters=parameters)

    @app.post(
        "/predict",
        summary="Recognise the digit in an image file",
        responses={408: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
    )
    async def predict(
        file: Annotated[UploadFile, File(description="PNG, JPEG or BMP; any size, dark-on-light or light-on-dark")],
        feature_maps: Annotated[bool, Query(description="also return the first convolution's feature maps")] = False,
    ) -> Prediction:
        """The image is preprocessed exactly as by `tinymnist predict` (tinymnist.images)."""
        filename = file.filename or "upload"
        data = await file.read(images.MAX_BYTES + 1)
        try:
            digit_image = await within_time_limit(digit_in(data, filename), filename)
        except images.ImageError as e:
            raise HTTPException(413 if len(data) > images.MAX_BYTES else 422, str(e)) from None
        batch = digit_image.unsqueeze(0)
        probabilities = (await run_in_threadpool(class_probabilities, model, batch, spec.name))[0]
        maps = None
        if feature_maps:
            with torch.inference_mode():
                maps = scaled_to_bytes(first_conv(normalize(batch, spec.name))[0])
        return Prediction(
            digit=int(probabilities.argmax()),
            label=spec.classes[int(probabilities.argmax())],
            probabilities=probabilities.tolist(),
            image=digit_image.tolist(),
            feature_maps=maps,
            model=name,
            parameters=parameters,
        )

    app.mount("/static", StaticFiles(packages=[("tinymnist", "static")]), name="page")
    return app


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol plus what it lacks (uvicorn issue #157): a deadline for each
    request's headers, and a cap on open connections that closes the connection idle longest
    (waiting for a request) to make room, or answers 503 if every connection is busy.
    """

    limits = Limits()  # `serve` sets these three on a subclass of its own
    max_connections = limits.connections
    idle: dict["GuardedH11", None] = {}  # the connections waiting for a request, longest first

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            if self.idle:
                oldest = next(iter(self.idle))
                self.idle.pop(oldest)
                oldest.transport.close()
            else:
                self.app = problem(503, f"the server is at its limit of {self.max_connections:,} connections", True)
        self.wait_for_request()

    def wait_for_request(self) -> None:
        """Start the clock for the next request's headers (and move to the end of the idle queue)."""
        self.idle.pop(self, None)
        self.idle[self] = None
        if self.header_timer:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self.headers_due)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request's headers are in
            self.idle.pop(self, None)

    def headers_due(self) -> None:
        if self in self.idle:
            self.transport.close()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:  # answered before the upload ended (an error): close
            self.transport.close()
        super().on_response_complete()  # may start on a pipelined request already received
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:  # only then is it idle
            self.wait_for_request()

    def send_400_response(self, msg: str) -> None:
        """A malformed request (say, a negative chunk size): uvicorn answers 400 and closes, and the
        app, if it is on this request, must not answer too (h11 would refuse, and uvicorn log a traceback)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() says so, and what it sends is dropped
            cycle.message_event.set()
            if cycle.response_started:  # too late for a 400
                self.transport.close()
                return
        super().send_400_response(msg)

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        if self.header_timer:
            self.header_timer.cancel()
        super().connection_lost(exc)


class RateLimited(logging.Filter):
    """At most `per_minute` log lines a minute; the next line let through says how many were dropped."""

    def __init__(self, per_minute: int) -> None:
        super().__init__()
        self.per_minute, self.minute_start, self.lines, self.dropped = per_minute, 0.0, 0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.minute_start >= 60:
            self.minute_start, self.lines = now, 0
        if self.lines >= self.per_minute:
            self.dropped += 1
            return False
        self.lines += 1
        if self.dropped:
            record.msg, record.args = f"{record.getMessage()} ({self.dropped:,} earlier lines not logged)", ()
            self.dropped = 0
        return True


def log_rate_limited(per_minute: int) -> None:
    """Warnings and errors of the server (uvicorn's, asyncio's) to stderr, rate-limited."""
    handler = logging.StreamHandler()
    handler.addFilter(RateLimited(per_minute))
    handler.setFormatter(logging.Formatter("tinymnist serve: %(levelname)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)


def connection_cap(limits: Limits) -> int:
    """Raise the soft limit on open files to the hard one (as nginx and Go do), and stay below it."""
    try:
        import resource
    except ImportError:  # not Unix: no limit to raise
        return limits.connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 1 << 16) if hard != resource.RLIM_INFINITY else 1 << 16
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (OSError, ValueError):
            pass
    return max(1, min(limits.connections, soft - 3 * limits.backlog - limits.fd_reserve))


def return_freed_memory() -> None:
    """glibc: allocations over 256 KiB get their own mappings, so freed pixels and uploads go back
    to the system instead of staying in the heap (glibc's threshold otherwise grows to 32 MiB).
    A threshold set in the environment (MALLOC_MMAP_THRESHOLD_) stands."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def listen(host: str, port: int, limits: Limits = Limits()) -> socket.socket:
    """The bound listening socket, so that a busy port is a one-line error and port 0 works.

    Its receive buffer size is inherited by the connections it accepts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=limits.backlog)
    except OSError as e:
        raise TinyMnistError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.receive_buffer)
    return sock


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits()) -> None:
    """Load the model, print the URL to open, and serve until interrupted."""
    app = create_app(run, limits, host)
    sock = listen(host, port, limits)
    bound = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
    guarded = {"limits": limits, "max_connections": connection_cap(limits), "idle": {}}
    protocol = type("Protocol", (GuardedH11,), guarded)
    log_rate_limited(limits.log_lines)
    return_freed_memory()
    if not is_loopback(host):
        print(
            f"tinymnist: warning: listening on {host}, open to other machines: put a reverse proxy in front "
            "(TLS, rate limits; docs/serve.md)",
            file=sys.stderr,
            flush=True,
        )
    print(f"tinymnist: serving {run} at {url} (API docs: {url}docs); Ctrl+C stops", flush=True)
    config = uvicorn.Config(
        app,
        http=protocol,
        backlog=limits.backlog,
        timeout_keep_alive=limits.keep_alive,
        log_config=None,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[sock])
