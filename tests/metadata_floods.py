"""Image files whose metadata is out of all proportion to their pixels, in every format that
`tinymnist.images.FORMATS` accepts (issue 20): each kind repeats a unit `n` times around a valid
8x8 image. The tests use `n` just past the bounds of `images.check_metadata`; the attack benchmark
(benchmarks/serve_attack.py) makes files of about 19 MB with `sized`.
"""

import io
import struct
import zlib
from collections.abc import Callable

from PIL import Image

KiB = 1024


def saved(fmt: str, **options) -> bytes:
    img = Image.new("L", (8, 8), 255)
    img.putpixel((4, 4), 0)
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


JPEG, PNG, GIF = saved("JPEG"), saved("PNG"), saved("GIF")
WEBP = saved("WEBP", lossless=True, icc_profile=b"\x00" * 128)  # with a profile: the extended (VP8X) layout


APP0_END = 4 + int.from_bytes(JPEG[4:6], "big")  # after the JFIF segment that follows the start of image


def png_chunk(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def after_gif_header(flood: bytes) -> bytes:
    """`flood` between the GIF's header (with its colour table) and its first block."""
    at = 13 + (3 << ((GIF[10] & 7) + 1) if GIF[10] & 0x80 else 0)
    return GIF[:at] + flood + GIF[at:]


def webp_with(chunks: bytes) -> bytes:
    """`chunks` after the VP8X chunk, the RIFF size updated."""
    body = WEBP[12:30] + chunks + WEBP[30:]
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def tiff(rows: int = 1, tags: list[tuple[int, int, int, bytes]] = (), values: bytes = b"") -> bytes:
    """A 1-pixel-wide 8-bit grey TIFF of `rows` strips of one row, plus `tags` (tag, type, count,
    4-byte field); `values` is placed after the directory and fields may point into it (`VALUES`)."""
    entries = sorted(
        [
            (256, 4, 1, struct.pack("<I", 1)),
            (257, 4, 1, struct.pack("<I", rows)),
            (258, 3, 1, struct.pack("<HH", 8, 0)),
            (259, 3, 1, struct.pack("<HH", 1, 0)),
            (262, 3, 1, struct.pack("<HH", 1, 0)),
            (273, 4, rows, b"OFFS"),
            (278, 4, 1, struct.pack("<I", 1)),
            (279, 4, rows, b"CNTS"),
            *tags,
        ]
    )
    directory = 8 + 2 + 12 * len(entries) + 4
    offsets_at = directory + len(values)
    counts_at = offsets_at + 4 * rows
    pixels_at = counts_at + 4 * rows
    fields = {b"OFFS": struct.pack("<I", offsets_at), b"CNTS": struct.pack("<I", counts_at)}
    if rows == 1:
        fields = {b"OFFS": struct.pack("<I", pixels_at), b"CNTS": struct.pack("<I", 1)}
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + fields.get(field, field) for tag, kind, count, field in entries
    )
    offsets = struct.pack(f"<{rows}I", *range(pixels_at, pixels_at + rows))
    counts = struct.pack(f"<{rows}I", *[1] * rows)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4 + values + offsets + counts + bytes(rows)


VALUES = struct.pack("<I", 8 + 2 + 12 * 9 + 4)  # where `values` starts in a TIFF of 9 tags


def bmp(codes: bytes = b"", gap: int = 0) -> bytes:
    """A 1x1 8-bit BMP: RLE8 `codes` if given (else one raw pixel), after `gap` bytes of junk."""
    header = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 8, 1 if codes else 0, len(codes), 0, 0, 256, 0)
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    start = 14 + len(header) + len(palette) + gap
    pixels = codes or b"\x00\x00\x00\x00"
    return b"BM" + struct.pack("<IHHI", start + len(pixels), 0, 0, start) + header + palette + bytes(gap) + pixels


# kind: (format, bytes a unit, the file with n units)
FLOODS: dict[str, tuple[str, int, Callable[[int], bytes]]] = {
    "jpeg comment segments": ("JPEG", 4, lambda n: JPEG[:2] + b"\xff\xfe\x00\x02" * n + JPEG[2:]),
    "jpeg APPn segments": ("JPEG", 4, lambda n: JPEG[:2] + b"\xff\xef\x00\x02" * n + JPEG[2:]),
    "jpeg junk before a marker": ("JPEG", 1, lambda n: JPEG[:APP0_END] + b"\x00" * n + JPEG[APP0_END:]),
    "jpeg large APP1 segments": ("JPEG", KiB, lambda n: JPEG[:2] + (b"\xff\xe1\x04\x02" + bytes(KiB)) * n + JPEG[2:]),
    "png private chunks": ("PNG", 12, lambda n: PNG[:33] + png_chunk(b"prVt") * n + PNG[33:]),
    "png private chunks after the image": ("PNG", 12, lambda n: PNG[:-12] + png_chunk(b"prVt") * n + PNG[-12:]),
    "png empty image data chunks": ("PNG", 12, lambda n: PNG[:33] + png_chunk(b"IDAT") * n + PNG[33:]),
    "png one large private chunk": ("PNG", KiB, lambda n: PNG[:33] + png_chunk(b"prVt", bytes(n * KiB)) + PNG[33:]),
    "gif comment extensions": ("GIF", 3, lambda n: after_gif_header(b"\x21\xfe\x00" * n)),
    "gif one-byte sub-blocks": ("GIF", 2, lambda n: after_gif_header(b"\x21\xfe" + b"\x01x" * n + b"\x00")),
    "tiff private tags": ("TIFF", 12, lambda n: tiff(tags=[(32768 + i, 3, 1, bytes(4)) for i in range(n)])),
    "tiff one-row strips": ("TIFF", 9, lambda n: tiff(rows=n)),
    "tiff one large tag value": (
        "TIFF",
        KiB,
        lambda n: tiff(tags=[(40000, 1, n * KiB, VALUES)], values=bytes(n * KiB)),
    ),
    "bmp RLE end-of-line codes": ("BMP", 2, lambda n: bmp(b"\x00\x00" * n + b"\x01\x05\x00\x01")),
    "bmp junk before the pixels": ("BMP", KiB, lambda n: bmp(gap=n * KiB)),
    "webp unknown chunks": ("WEBP", 8, lambda n: webp_with(b"ZZZZ\x00\x00\x00\x00" * n)),
}


def sized(kind: str, size: int) -> bytes:
    """A flood of this kind of about `size` bytes."""
    _, unit, build = FLOODS[kind]
    return build(size // unit)
