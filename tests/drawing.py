"""Hand-drawn digits for the tests: strokes drawn with PIL on a canvas of any size, so that
predictions are checked on real image files that are not from MNIST.

Strokes are given in a unit box (x right, y down, both 0..1) and scaled to the canvas.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Each digit is a list of strokes; a stroke is a polyline, or ("arc", box, start, end) in degrees.
STROKES = {
    0: [("ellipse", (0.25, 0.1, 0.75, 0.9))],
    1: [[(0.45, 0.25), (0.58, 0.1), (0.55, 0.9)]],
    2: [("arc", (0.25, 0.1, 0.75, 0.5), 180, 360), [(0.74, 0.33), (0.25, 0.9), (0.78, 0.9)]],
    3: [("arc", (0.28, 0.1, 0.72, 0.5), 200, 450), ("arc", (0.25, 0.5, 0.75, 0.9), 270, 520)],
    4: [[(0.55, 0.1), (0.22, 0.62), (0.8, 0.62)], [(0.62, 0.35), (0.62, 0.9)]],
    5: [[(0.72, 0.1), (0.32, 0.1), (0.28, 0.45)], ("arc", (0.25, 0.38, 0.75, 0.9), 215, 500)],
    6: [[(0.65, 0.1), (0.3, 0.6)], ("ellipse", (0.28, 0.48, 0.72, 0.9))],
    7: [[(0.22, 0.12), (0.78, 0.12), (0.4, 0.9)]],
    8: [("ellipse", (0.32, 0.1, 0.68, 0.48)), ("ellipse", (0.27, 0.48, 0.73, 0.9))],
    9: [("ellipse", (0.28, 0.1, 0.72, 0.5)), [(0.72, 0.3), (0.68, 0.9)]],
}


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

    def box(b: tuple) -> tuple:
        return (ox + b[0] * side, oy + b[1] * side, ox + b[2] * side, oy + b[3] * side)

    for stroke in STROKES[digit]:
        if stroke[0] == "ellipse":
            pen.ellipse(box(stroke[1]), outline=ink, width=thick)
        elif stroke[0] == "arc":
            pen.arc(box(stroke[1]), stroke[2], stroke[3], fill=ink, width=thick)
        else:
            points = [(ox + x * side, oy + y * side) for x, y in stroke]
            pen.line(points, fill=ink, width=thick, joint="curve")
            for x, y in points[:: len(points) - 1]:  # round the ends, as a pen does
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
