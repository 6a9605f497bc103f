"""Hand-drawn digits as PIL images of any size, colour mode and polarity, and photo-like
versions of them, so that `predict` is checked on real image files that are not from MNIST.

The pen strokes are those of `drawn_digits` (shared with the serve tests), scaled to the canvas.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from drawn_digits import STROKES


def draw_digit(
    digit: int,
    size: tuple[int, int] = (200, 200),
    ink: int | tuple = 255,
    paper: int | tuple = 0,
    mode: str = "L",
    width: float = 0.09,
) -> Image.Image:
    """`digit` drawn with strokes `width` (of the canvas's shorter side) thick, centred in `size`."""
    w, h = size
    side = min(w, h)
    ox, oy = (w - side) / 2, (h - side) / 2
    img = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(img)
    thick = max(1, round(width * side))

    for stroke in STROKES[digit]:
        points = [(ox + x * side, oy + y * side) for x, y in stroke]
        pen.line(points, fill=ink, width=thick, joint="curve")
        for x, y in (points[0], points[-1]):  # round the ends, as a pen does
            pen.ellipse((x - thick / 2, y - thick / 2, x + thick / 2, y + thick / 2), fill=ink)
    return img


def photo_of(digit: int, size: tuple[int, int] = (900, 1200), seed: int = 0) -> Image.Image:
    """`digit` in dark blue ink on unevenly lit, noisy light-grey paper, like a phone photo:
    RGB, off-centre, slightly blurred (save it as JPEG for the compression artefacts too).
    """
    rng = np.random.default_rng(seed)
    w, h = size
    light = np.linspace(215, 185, w)[None, :, None] + np.linspace(0, -15, h)[:, None, None]
    paper = light + rng.normal(0, 6, (h, w, 3))
    mask = np.asarray(draw_digit(digit, (w // 2, h // 2)), dtype=np.float32)[..., None] / 255
    ink = np.array([35, 45, 95], dtype=np.float32)
    top, left = h // 5, w // 3
    patch = paper[top : top + h // 2, left : left + w // 2]
    paper[top : top + h // 2, left : left + w // 2] = patch * (1 - mask) + ink * mask
    img = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8), "RGB")
    return img.filter(ImageFilter.GaussianBlur(2))
