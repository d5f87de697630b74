"""A small horizontal bar chart written as PNG with zlib and struct only.

No matplotlib: the figures fit bars with a spread whisker and a target
line, and labels need only a 5x7 bitmap font (letters print as capitals).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

RGB = tuple[int, int, int]

WHITE: RGB = (255, 255, 255)
BLACK: RGB = (20, 20, 20)
GREY: RGB = (150, 150, 150)
LIGHT: RGB = (225, 225, 225)
RED: RGB = (200, 40, 40)
PALETTE: tuple[RGB, ...] = (
    (70, 110, 180),
    (230, 140, 40),
    (80, 160, 90),
    (170, 80, 160),
    (120, 120, 120),
)

# 5x7 glyphs, one 5-bit row per entry, most significant bit on the left.
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    "A": (0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    ".": (0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C),
    ",": (0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08),
    ":": (0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00),
    "-": (0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00),
    "+": (0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00),
    "/": (0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    "[": (0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E),
    "]": (0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "=": (0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00),
    "_": (0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F),
    "<": (0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02),
    ">": (0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    "*": (0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00),
    "×": (0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00),
    "|": (0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "?": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04),
}
GLYPH_W, GLYPH_H, ADVANCE = 5, 7, 6


def glyph(ch: str) -> tuple[int, ...]:
    """The rows of ``ch``; lower case prints as capitals, unknown as ``?``."""
    return _FONT.get(ch) or _FONT.get(ch.upper()) or _FONT["?"]


def text_width(text: str, scale: int = 1) -> int:
    return max(0, len(text) * ADVANCE * scale - scale)


class Canvas:
    """An RGB pixel buffer; drawing outside it is clipped silently."""

    def __init__(self, width: int, height: int, bg: RGB = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(bg) * (width * height))

    def rect(self, x: int, y: int, w: int, h: int, color: RGB) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes(color) * (x1 - x0)
        for yy in range(y0, y1):
            start = (yy * self.width + x0) * 3
            self.pixels[start : start + len(row)] = row

    def get(self, x: int, y: int) -> RGB:
        i = (y * self.width + x) * 3
        return (self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])

    def text(self, x: int, y: int, text: str, color: RGB = BLACK, scale: int = 1) -> None:
        for k, ch in enumerate(text):
            gx = x + k * ADVANCE * scale
            for r, bits in enumerate(glyph(ch)):
                for c in range(GLYPH_W):
                    if bits & (0x10 >> c):
                        self.rect(gx + c * scale, y + r * scale, scale, scale, color)

    def png(self) -> bytes:
        return encode_png(self.width, self.height, bytes(self.pixels))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """8-bit RGB, no interlace, filter 0 on every row."""
    if len(rgb) != width * height * 3:
        raise ValueError(f"{len(rgb)} bytes is not {width}x{height} RGB")
    stride = width * 3
    raw = b"".join(b"\0" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    lo: float | None = None  # spread whisker, e.g. the 25th percentile
    hi: float | None = None
    color: RGB | None = None
    note: str = ""  # printed after the value


@dataclass(frozen=True)
class Panel:
    title: str
    bars: Sequence[Bar]
    unit: str = "ms"
    target: float | None = None  # a dashed vertical line, e.g. 3x the reference
    target_label: str = ""
    digits: int = 0


@dataclass
class Layout:
    width: int = 1000
    scale: int = 2
    label_w: int = 330
    value_w: int = 190
    bar_h: int = 22
    gap: int = 8
    margin: int = 16
    bars_drawn: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def line_h(self) -> int:
        return GLYPH_H * self.scale + 6

    def panel_height(self, panel: Panel) -> int:
        return self.line_h + len(panel.bars) * (self.bar_h + self.gap) + self.line_h + self.margin


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def _scale_max(panel: Panel) -> float:
    top = [b.value for b in panel.bars] + [b.hi or 0.0 for b in panel.bars]
    if panel.target is not None:
        top.append(panel.target)
    biggest = max(top, default=0.0)
    return biggest * 1.05 if biggest > 0 and math.isfinite(biggest) else 1.0


def draw_panel(c: Canvas, y: int, panel: Panel, lay: Layout) -> int:
    """Draw one panel at ``y``; returns the y below it."""
    s = lay.scale
    c.text(lay.margin, y, f"{panel.title} ({panel.unit})", BLACK, s)
    y += lay.line_h + 4
    x0 = lay.margin + lay.label_w
    span = lay.width - x0 - lay.value_w - lay.margin
    vmax = _scale_max(panel)
    top = y
    bottom = y + len(panel.bars) * (lay.bar_h + lay.gap)
    xt = None
    if panel.target is not None and 0 < panel.target <= vmax:
        xt = x0 + round(span * panel.target / vmax)
        for yy in range(top - 2, bottom, 8):  # under the bars and their labels
            c.rect(xt - 1, yy, 2, 5, RED)
    for i, bar in enumerate(panel.bars):
        color = bar.color or PALETTE[i % len(PALETTE)]
        c.text(lay.margin, y + (lay.bar_h - GLYPH_H * s) // 2, bar.label[:26], BLACK, s)
        w = max(1, round(span * min(bar.value, vmax) / vmax)) if bar.value > 0 else 0
        c.rect(x0, y, w, lay.bar_h, color)
        lay.bars_drawn.append((x0, y, w, lay.bar_h))
        if bar.lo is not None and bar.hi is not None:
            xl = x0 + round(span * min(bar.lo, vmax) / vmax)
            xh = x0 + round(span * min(bar.hi, vmax) / vmax)
            mid = y + lay.bar_h // 2
            c.rect(xl, mid - 1, max(1, xh - xl), 2, BLACK)
            c.rect(xl, y + 4, 2, lay.bar_h - 8, BLACK)
            c.rect(xh - 1, y + 4, 2, lay.bar_h - 8, BLACK)
        end = x0 + w
        if bar.lo is not None and bar.hi is not None:
            end = max(end, x0 + round(span * min(bar.hi, vmax) / vmax))
        label = _fmt(bar.value, panel.digits) + (f" {bar.note}" if bar.note else "")
        c.text(end + 8, y + (lay.bar_h - GLYPH_H * s) // 2, label, BLACK, s)
        y += lay.bar_h + lay.gap
    c.rect(x0, top - 2, 1, y - top, GREY)  # the zero axis
    if panel.target_label and xt is not None:
        c.text(xt + 4, y, panel.target_label, RED, s)
    return y + lay.line_h + lay.margin


def render(panels: Sequence[Panel], title: str = "", layout: Layout | None = None) -> bytes:
    lay = layout or Layout()
    head = lay.line_h + lay.margin if title else 0
    height = lay.margin + head + sum(lay.panel_height(p) for p in panels) + lay.margin
    c = Canvas(lay.width, height)
    y = lay.margin
    if title:
        c.text(lay.margin, y, title, BLACK, lay.scale)
        y += head
        c.rect(lay.margin, y - lay.margin // 2, lay.width - 2 * lay.margin, 1, LIGHT)
    for panel in panels:
        y = draw_panel(c, y, panel, lay)
    return c.png()
