"""Real image files to 28x28 network inputs, the way the dataset itself was made.

Digits (MNIST, framing "digit"): the ink is separated from the paper (either polarity: dark ink
on light paper is detected from the border and inverted), cropped to its bounding box, scaled
to fit 20x20 keeping the aspect ratio, and placed in a 28x28 field with its centre of mass at
the centre. Articles (Fashion-MNIST, framing "product"), as its authors converted Zalando's
product photos: the background is trimmed, the longest side scaled to 28, the box centred and
the intensities negated (a light background becomes black), with the article's own shading
kept rather than stretched, since a grey coat and a white shirt differ by it. `predict` and
`serve` share this one code path (`to_input`).
"""

import io
import os
import re
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from tinymnist.errors import TinyMnistError

MAX_BYTES = 20 * 1024 * 1024  # larger files are refused before decoding
MAX_PIXELS = 40_000_000  # declared width x height above this is refused (decompression bombs)
MAX_DECODED_BYTES = 64 * 1024 * 1024  # memory the decoded pixels may take (mode and bit depth count)
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # the only decoders Pillow may try
WORK_SIDE = 512  # images are downscaled to at most this side before any processing
MIN_CONTRAST = 32  # ink must differ from the paper by this much (of 255) to count as ink
INK_THRESHOLD = 0.25  # fraction of the strongest ink that counts for the bounding box
TRIM_THRESHOLD = 0.05  # articles: differing from the background by 5% counts (Fashion-MNIST's trim)
SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
PILLOW = os.path.dirname(Image.__file__)  # warnings from files here are Pillow's
WARNINGS = threading.Lock()  # warnings.catch_warnings swaps process-wide state: one thread at a time
MAX_JPEG_SEGMENTS = 4096  # a real JPEG has a few dozen (ICC profiles in up to 255 parts); floods are refused
JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # the marker that ends a scan's entropy-coded data


class ImageError(TinyMnistError):
    pass


def decoded_bytes(img: Image.Image) -> int:
    """The memory Pillow needs for the pixels: 1 byte a pixel for 1/L/P, 2 for 16-bit, else 4 (RGB is padded)."""
    per_pixel = 1 if img.mode in ("1", "L", "P") else 2 if img.mode.startswith("I;16") else 4
    return img.width * img.height * per_pixel


def open_image(data: bytes, name: str = "image") -> Image.Image:
    """The image's header, checked against the limits; no pixels are decoded yet (see `load`).

    JPEGs are set to decode at reduced size (1/2 to 1/8), which is what their limits are checked against.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name}: file of {len(data):,} bytes is over the {MAX_BYTES:,}-byte limit")
    try:
        with pillow_warnings_as_errors(name):
            img = Image.open(io.BytesIO(jpeg_to_decode(data, name)), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image ({', '.join(FORMATS)} expected)") from None
    except Image.DecompressionBombError:  # PIL's own limit, far above ours, is checked on open
        raise ImageError(f"{name}: over the {MAX_PIXELS:,}-pixel limit") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: corrupt image header ({e})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name}: {w}x{h} pixels is over the {MAX_PIXELS:,}-pixel limit")
    img.draft("L", (WORK_SIDE, WORK_SIDE))  # JPEG: decode at reduced size, cheaply
    if decoded_bytes(img) > MAX_DECODED_BYTES:
        raise ImageError(
            f"{name}: {img.width}x{img.height} {img.mode} pixels need {decoded_bytes(img):,} bytes decoded, "
            f"over the {MAX_DECODED_BYTES:,}-byte limit"
        )
    return img


def load(img: Image.Image, name: str = "image") -> Image.Image:
    """Decode the pixels of an image from `open_image`: a truncated or corrupt file is an error."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # set by other code in this process: Pillow would fill in what is missing
        raise ImageError(
            f"{name}: not decoded: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set in this process, "
            "so a truncated file could not be told from a whole one"
        )
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: truncated or corrupt image ({e})") from None
    return img


@contextmanager
def pillow_warnings_as_errors(name: str) -> Iterator[None]:
    """Pillow's warnings in the block (corrupt TIFF tags or EXIF, a broken APNG or MPO) raise an
    ImageError once it ends; the process's warning filters are left as they were.

    `warnings.catch_warnings` is process-wide while it lasts, so it is held by one thread at a
    time, around header parsing only, and warnings that other code gives meanwhile are given again
    afterwards. (Pillow's pixel decoders give no warnings: it silences libjpeg's and libtiff's in C;
    see `jpeg_to_decode`.)
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with WARNINGS, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            if not w.filename.startswith(PILLOW):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    pillow = [w for w in caught if w.filename.startswith(PILLOW)]
    if pillow:
        raise ImageError(f"{name}: corrupt image ({pillow[0].message})")


def jpeg_to_decode(data: bytes, name: str) -> bytes:
    """The bytes to decode; for a JPEG, made so that image data missing from a scan is an error.

    libjpeg fills what a scan lacks with grey and only warns (Pillow hides its warnings), so a
    header claiming 6000x6000 pixels over 200x200 pixels of data, or a file cut short and closed
    with an end marker, would decode without an error. So a scan shorter than its fewest bits is
    refused (2 per 8x8 block in a sequential scan: a DC code and an end-of-block code; 1 in a
    progressive DC scan; AC scans and arithmetic coding have no such floor), and a sequential JPEG
    with one scan (Pillow's default, most cameras) is decoded from that scan's data followed by
    zeros instead of the end marker: if the scan ends before the image does, the decoder runs out
    of data, an error. What does not parse is left to Pillow.
    """
    if not data.startswith(b"\xff\xd8"):
        return data
    frame, scans, pos = None, [], 2
    for _ in range(MAX_JPEG_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] == 0xD9:  # the (first) end marker
            break
        marker = data[pos + 1]
        if marker == 0xFF or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # fill byte, markers without a length
            pos += 1 if marker == 0xFF else 2
            continue
        segment = data[pos + 4 : pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")]
        pos += 4 + len(segment)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header (SOFn)
            frame = (marker, segment)
        elif marker == 0xDA:  # a scan: its header, then entropy-coded data up to the next marker
            end = JPEG_MARKER.search(data, pos)
            scans.append((segment, pos, end.start() if end else len(data)))
            pos = scans[-1][2]
    else:
        raise ImageError(f"{name}: corrupt JPEG: over {MAX_JPEG_SEGMENTS:,} segments before its end")
    if frame is None or frame[0] not in (0xC0, 0xC1, 0xC2) or len(frame[1]) < 6:  # lossless, arithmetic, broken
        return data
    height, width = int.from_bytes(frame[1][1:3], "big"), int.from_bytes(frame[1][3:5], "big")
    sampling = {c: (f >> 4, f & 15) for c, f in zip(frame[1][6::3], frame[1][7::3], strict=False)}
    for scan, start, end in scans:
        need = scan_floor_bits(frame[0] == 0xC2, width, height, sampling, scan)
        if (end - start) * 8 < need:
            raise ImageError(
                f"{name}: corrupt JPEG: its header's {width}x{height} pixels need at least "
                f"{need // 8:,} bytes of image data in a scan that holds {end - start:,}"
            )
    if frame[0] != 0xC2 and len(scans) == 1:
        return data[: scans[0][2]] + bytes(8)  # 8 bytes: more than the decoder reads ahead at the end
    return data


def scan_floor_bits(progressive: bool, width: int, height: int, sampling: dict, scan: bytes) -> int:
    """The fewest bits a Huffman-coded JPEG scan can take (0 where its header does not parse)."""
    ids = scan[1 : 1 + 2 * scan[0] : 2] if scan else b""
    if (
        not ids
        or len(scan) < 2 + 2 * scan[0]
        or not all(c in sampling for c in ids)
        or min(h * v for h, v in sampling.values()) == 0
        or (progressive and scan[1 + 2 * scan[0]] != 0)  # an AC scan: end-of-band runs span many blocks
    ):
        return 0
    hmax, vmax = max(h for h, _ in sampling.values()), max(v for _, v in sampling.values())
    if len(ids) == 1:  # one component: its own blocks
        h, v = sampling[ids[0]]
        blocks = ceil(ceil(width * h / hmax) / 8) * ceil(ceil(height * v / vmax) / 8)
    else:  # interleaved: whole MCUs, each of every component's h x v blocks
        blocks = ceil(width / (8 * hmax)) * ceil(height / (8 * vmax)) * sum(h * v for h, v in map(sampling.get, ids))
    return blocks * (1 if progressive else 2)


def decode(data: bytes, name: str = "image") -> Image.Image:
    """Decode image bytes safely: size limits checked before pixels are decoded."""
    return load(open_image(data, name), name)


def read_file(path: Path) -> bytes:
    """A regular file's bytes, its type and size checked first; never more than MAX_BYTES + 1 read.

    Opened without blocking (a FIFO would wait for a writer) and checked on the open file, so it
    cannot be swapped between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
            raise ImageError(f"{path}: not a regular file ({kind})")
        if info.st_size > MAX_BYTES:
            raise ImageError(f"{path}: file of {info.st_size:,} bytes is over the {MAX_BYTES:,}-byte limit")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_BYTES + 1)  # the file may have grown since fstat: decode() refuses more


def read(path: Path) -> Image.Image:
    if "\0" in str(path):  # the OS cannot take it (Python raises ValueError)
        shown = str(path).replace("\0", "\\0")
        raise ImageError(f"{shown}: not a valid file name (it holds a NUL character)")
    try:
        return decode(read_file(path), str(path))
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None


def ink(img: Image.Image, name: str = "image") -> np.ndarray:
    """Float array in [0, 255] with the ink bright and the paper at 0.

    A downscaled copy is made first (the caller's image is left as it was), so that every later
    step (rotation, mode conversions) works on a small image.
    """
    try:
        sixteen_bit = img.mode.startswith("I;16")
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)  # TIFF: in tags that a copy loses
        scale = min(1.0, WORK_SIDE / max(img.size))
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        gap = None if sixteen_bit else 2.0  # Pillow cannot `reduce` 16-bit images: resize them directly
        img = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=gap)
        img.getexif()[ExifTags.Base.Orientation] = orientation
        img = ImageOps.exif_transpose(img)
        if sixteen_bit:  # 0-65535 to 0-255 (Pillow's convert would clip at 255 instead)
            img = Image.fromarray((np.asarray(img, dtype=np.float32) / 257).round().astype(np.uint8))
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
            paper = transparent_paper(rgba)
            if paper is None:  # strokes on transparency: the alpha is the ink
                return rgba[..., 3]
            img = Image.alpha_composite(Image.new("RGBA", img.size, paper), img.convert("RGBA"))
        a = np.asarray(img.convert("L"), dtype=np.float32)
    except (OSError, ValueError) as e:  # a mode or variant Pillow cannot convert
        raise ImageError(f"{name}: cannot process this {img.mode} image ({e})") from None
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    paper = float(np.median(border))
    if paper > 127:  # dark ink on light paper: invert
        a, paper = 255 - a, 255 - paper
    return np.clip(a - paper, 0, None)


def transparent_paper(rgba: np.ndarray) -> tuple[int, int, int, int] | None:
    """None if the picture is ink on transparency (the alpha is the ink), else the colour of its
    own paper, onto which it is composited and read like any opaque picture.

    Ink on transparency: at least a quarter of the pixels are transparent (the paper) and what is
    drawn is all of one colour, so that only the alpha carries the digit. A screenshot with rounded
    corners or a transparent border, a picture with alpha 254 everywhere, or a card with a digit on
    a transparent canvas is read from its colours instead; its paper is the colour of the drawn
    pixels at the edge of what is drawn (at the image's border, or next to transparency).
    """
    alpha = rgba[..., 3]
    drawn = alpha >= alpha.max() / 2 if alpha.max() > 0 else alpha > 0
    if not drawn.any():  # fully transparent: nothing drawn
        return None
    inside = np.pad(drawn, 1)  # outside the image counts as not drawn
    inner = inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]
    edge = rgba[drawn & ~inner, :3]
    paper = np.median(edge, axis=0)
    lum = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Pillow's "L"
    uniform = np.abs((rgba[drawn, :3] - paper) @ lum).max() < MIN_CONTRAST
    if uniform and (~drawn).mean() >= 0.25:
        return None
    return (*(int(round(c)) for c in paper), 255)


def to_mnist(img: Image.Image, name: str = "image") -> torch.Tensor:
    """The 28x28 uint8 digit the network sees."""
    a = ink(img, name)
    if a.max() < MIN_CONTRAST:
        raise ImageError(f"{name}: no ink found (the image is blank or has too little contrast)")
    digit = crop_and_fit(a * (255 / a.max()), INK_THRESHOLD * 255, 20)
    total = digit.sum()
    cy = (digit.sum(1) * np.arange(digit.shape[0])).sum() / total
    cx = (digit.sum(0) * np.arange(digit.shape[1])).sum() / total
    top = int(np.clip(round(13.5 - cy), 0, 28 - digit.shape[0]))
    left = int(np.clip(round(13.5 - cx), 0, 28 - digit.shape[1]))
    return placed(digit, top, left)


def crop_and_fit(a: np.ndarray, threshold: float, side: int) -> np.ndarray:
    """The bounding box of the values >= threshold, scaled to fit side x side keeping its aspect ratio."""
    rows, cols = np.nonzero(a >= threshold)
    a = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = a.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(a.astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float32)


def placed(item: np.ndarray, top: int, left: int) -> torch.Tensor:
    """`item` in a black 28x28 uint8 field with its corner at (top, left)."""
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + item.shape[0], left : left + item.shape[1]] = item
    return torch.from_numpy(np.clip(out, 0, 255).round().astype(np.uint8))


def to_fashion(img: Image.Image, name: str = "image") -> torch.Tensor:
    """The 28x28 uint8 article the network sees, made as Fashion-MNIST's images were."""
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:  # a cut-out: put it on white
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    a = ink(img)
    if a.max() < MIN_CONTRAST:
        raise ImageError(f"{name}: no article found (the image is blank or has too little contrast)")
    item = crop_and_fit(a, TRIM_THRESHOLD * 255, 28)
    return placed(item, (28 - item.shape[0]) // 2, (28 - item.shape[1]) // 2)


FRAMINGS = {"digit": to_mnist, "product": to_fashion}  # tinymnist.data.Dataset.framing


def to_input(img: Image.Image, framing: str, name: str = "image") -> torch.Tensor:
    """The 28x28 uint8 input of a network trained on a dataset with this framing."""
    if 0 in img.size:
        raise ImageError(f"{name}: an empty image ({img.width}x{img.height} pixels)")
    return FRAMINGS[framing](img, name)


def image_files(paths: list[str | Path]) -> list[Path]:
    """Files as given, and directories walked (sorted) for files with an image suffix."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            files.append(p)
    return files
