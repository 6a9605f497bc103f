"""Digits drawn programmatically as pen strokes, the way a person draws them (not MNIST images).

Strokes are polylines in a unit square (x right, y down). `render` draws them into an image
file; the browser test moves the mouse along the same strokes on the page's canvas.
"""

import io
import math

from PIL import Image, ImageDraw

Stroke = list[tuple[float, float]]


def ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, turn: float = 1.0) -> Stroke:
    """Points along an ellipse, from angle `start` (radians, 0 = right, clockwise on screen)."""
    angles = [start + 2 * math.pi * turn * i / 36 for i in range(37)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


STROKES: dict[int, list[Stroke]] = {
    0: [ellipse(0.5, 0.5, 0.28, 0.4)],
    1: [[(0.38, 0.24), (0.52, 0.1), (0.52, 0.9)]],
    2: [[(0.25, 0.3), (0.35, 0.15), (0.5, 0.1), (0.65, 0.15), (0.72, 0.3), (0.65, 0.45), (0.25, 0.9), (0.78, 0.9)]],
    3: [
        [
            (0.25, 0.15),
            (0.5, 0.1),
            (0.7, 0.2),
            (0.7, 0.35),
            (0.48, 0.48),
            (0.72, 0.6),
            (0.72, 0.8),
            (0.5, 0.9),
            (0.25, 0.85),
        ]
    ],
    4: [[(0.55, 0.1), (0.2, 0.62), (0.8, 0.62)], [(0.62, 0.35), (0.62, 0.9)]],
    5: [[(0.72, 0.1), (0.32, 0.1), (0.28, 0.45), (0.5, 0.4), (0.7, 0.5), (0.72, 0.72), (0.55, 0.9), (0.25, 0.85)]],
    6: [
        [
            (0.65, 0.1),
            (0.42, 0.3),
            (0.3, 0.6),
            (0.35, 0.85),
            (0.55, 0.9),
            (0.7, 0.75),
            (0.62, 0.55),
            (0.45, 0.52),
            (0.3, 0.62),
        ]
    ],
    7: [[(0.2, 0.12), (0.8, 0.12), (0.45, 0.9)]],
    8: [ellipse(0.5, 0.29, 0.17, 0.19), ellipse(0.5, 0.69, 0.22, 0.21)],
    9: [ellipse(0.5, 0.32, 0.2, 0.21, start=0.0), [(0.7, 0.32), (0.66, 0.9)]],
}


def render(
    digit: int, side: int = 200, pen: float = 0.09, dark_on_light: bool = True, fmt: str = "PNG", margin: float = 0.0
) -> bytes:
    """An image file of `digit`: `pen` is the stroke width as a fraction of the digit's height."""
    full = round(side * (1 + 2 * margin))
    ink, paper = (20, 245) if dark_on_light else (250, 10)
    img = Image.new("L", (full, full), paper)
    draw = ImageDraw.Draw(img)
    width = max(1, round(pen * side))
    for stroke in STROKES[digit]:
        points = [((margin + x) * side, (margin + y) * side) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=ink)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()
