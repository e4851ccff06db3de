"""Render the example drawings shipped in tinydiff/examples (run once; the PNG/JPEG files are committed).

Each is a digit drawn as pen strokes in a different style a user might upload: dark ink on paper,
chalk on a board, strokes on a transparent sheet, a phone photo saved as JPEG.
"""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "tinydiff" / "examples"


def arc(cx, cy, rx, ry, start, end, n=24):
    """Points on an ellipse from angle `start` to `end` (degrees, clockwise on screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in (start + (end - start) * i / n for i in range(n + 1))]


# Strokes in a 100 x 100 box.
DIGITS = {
    "two": [arc(50, 32, 24, 20, 200, 380) + [(72, 45), (26, 86), (78, 86)]],
    "three": [arc(48, 30, 22, 17, 200, 450), arc(48, 64, 26, 21, 270, 520)],
    "five": [[(72, 14), (34, 14), (30, 46)], arc(48, 62, 26, 23, 230, 500)],
    "seven": [[(22, 16), (78, 16), (44, 88)], [(36, 52), (66, 52)]],
}


def draw(strokes, size, width, ink, paper, mode="RGB"):
    image = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(image)
    sx, sy = size[0] / 100, size[1] / 100
    for stroke in strokes:
        points = [(x * sx, y * sy) for x, y in stroke]
        pen.line(points, fill=ink, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=ink)
    return image


def main():
    OUT.mkdir(exist_ok=True)
    draw(DIGITS["two"], (400, 400), 34, (25, 30, 80), (250, 247, 238)).save(OUT / "two_ink_on_paper.png")
    draw(DIGITS["three"], (300, 360), 32, (235, 235, 225), (40, 60, 50)).filter(
        ImageFilter.GaussianBlur(2)).save(OUT / "three_chalk_on_board.png")
    draw(DIGITS["five"], (512, 512), 44, (0, 0, 0, 255), (0, 0, 0, 0), "RGBA").save(OUT / "five_transparent.png")
    draw(DIGITS["seven"], (640, 480), 40, (40, 40, 40), (200, 195, 185)).save(OUT / "seven_photo.jpg", quality=80)


if __name__ == "__main__":
    main()
