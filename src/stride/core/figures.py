"""Images side by side at the same scale, with their measurements drawn over them, as one SVG.

The before/after view of a page and the figure downloaded for a case report are
the same SVG; only the pictures' addresses differ (a URL in the page, the PNG
itself as a data URI in the download). When both images have a pixel spacing
they are drawn at one scale — a millimetre is as long in both — with a scale
bar under each; when either lacks one the figure says it is not to scale.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from stride.core.charts import FONT, PALETTE

#: The largest a panel is drawn, in figure pixels.
PANEL_WIDTH = 560
PANEL_HEIGHT = 520
GAP = 28
HEAD = 52
MARK = "#FFB000"  # the measurement colour (amber), legible over grey images
NOTE_COLOUR = PALETTE[5]  # the annotation colour (sky blue)


@dataclass(frozen=True)
class Shape:
    """A measurement or a mark in the original's pixels."""

    tool: str  # line, ratio, angle, ellipse, polygon; arrow, circle, text
    points: tuple[tuple[float, float], ...]
    label: str = ""  # "1", "2" … for measurements (the legend explains them); the text of a text mark
    kind: str = "measurement"  # or "annotation"


@dataclass(frozen=True)
class Panel:
    title: str  # "Before · 12 Mar 2026"
    width: int  # the original's pixels
    height: int
    spacing: tuple[float, float] | None  # (row mm, column mm), None when uncalibrated
    href: str  # the picture: a URL, or a data URI
    shapes: tuple[Shape, ...] = ()
    legend: tuple[str, ...] = ()  # "1 Interosseous muscle thickness 2.1 mm"
    subtitle: str = ""  # "Ultrasound, left, 3rd intermetatarsal space"
    masks: tuple[tuple[int, int, int, int], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Placed:
    panel: Panel
    x: float
    y: float
    width: float  # drawn size in figure pixels
    height: float


@dataclass(frozen=True)
class Layout:
    placed: tuple[Placed, ...]
    width: float
    height: float
    same_scale: bool
    pixels_per_mm: float | None  # figure pixels per millimetre when same_scale


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def layout(
    panels: Sequence[Panel], *, max_width: float = PANEL_WIDTH, max_height: float = PANEL_HEIGHT
) -> Layout:
    """Where each panel goes: one scale for all when every panel has a spacing, else each fitted alone."""
    same = all(p.spacing for p in panels)
    sizes: list[tuple[float, float]] = []
    per_mm = None
    if same:
        extents = [(p.width * p.spacing[1], p.height * p.spacing[0]) for p in panels]  # type: ignore[index]
        per_mm = min(min(max_width / w, max_height / h) for w, h in extents)
        sizes = [(w * per_mm, h * per_mm) for w, h in extents]
    else:
        for p in panels:
            fit = min(max_width / p.width, max_height / p.height)
            sizes.append((p.width * fit, p.height * fit))
    placed, x = [], 0.0
    tallest = max(h for _, h in sizes) if sizes else 0
    legend_rows = max((len(p.legend) for p in panels), default=0)
    for panel, (w, h) in zip(panels, sizes, strict=True):
        placed.append(Placed(panel, x, HEAD, w, h))
        x += max(w, 220) + GAP
    height = HEAD + tallest + 40 + 18 * legend_rows + 24
    return Layout(tuple(placed), max(x - GAP, 1), height, same, per_mm)


def _nice_bar(mm_wide: float) -> float:
    """A round scale-bar length, about a quarter of the panel's width."""
    target = mm_wide / 4
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500):
        if step >= target:
            return float(step)
    return 1000.0


def _shape_svg(shape: Shape, sx: float, sy: float) -> str:
    pts = [(x * sx, y * sy) for x, y in shape.points]
    colour = MARK if shape.kind == "measurement" else NOTE_COLOUR
    style = f'fill="none" stroke="{colour}" stroke-width="2" stroke-linecap="round"'
    out = []
    tool = shape.tool
    if tool in ("line", "ratio") and len(pts) >= 2:
        for a, b in zip(pts[::2], pts[1::2], strict=False):
            out.append(f'<line x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" y2="{b[1]:.1f}" {style}/>')
            for end in (a, b):
                out.append(f'<circle cx="{end[0]:.1f}" cy="{end[1]:.1f}" r="2.5" fill="{colour}"/>')
    elif tool == "angle" and len(pts) == 3:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" {style}/>')
    elif tool == "ellipse" and len(pts) == 3:
        (cx, cy), (ax, ay), (bx, by) = pts
        rx = math.hypot(ax - cx, ay - cy)
        angle = math.degrees(math.atan2(ay - cy, ax - cx))
        ux, uy = (ax - cx) / (rx or 1), (ay - cy) / (rx or 1)
        ry = abs((bx - cx) * -uy + (by - cy) * ux)
        out.append(
            f'<ellipse cx="{cx:.1f}" cy="{cy:.1f}" rx="{rx:.1f}" ry="{ry:.1f}" '
            f'transform="rotate({angle:.2f} {cx:.1f} {cy:.1f})" {style}/>'
        )
    elif tool == "polygon" and len(pts) >= 3:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polygon points="{path}" {style}/>')
    elif tool == "circle" and len(pts) == 2:
        (cx, cy), (ex, ey) = pts
        out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{math.hypot(ex - cx, ey - cy):.1f}" {style}/>')
    elif tool == "arrow" and len(pts) == 2:
        (x1, y1), (x2, y2) = pts
        heading = math.atan2(y2 - y1, x2 - x1)
        wing = [
            (x2 - 12 * math.cos(heading - s * 0.45), y2 - 12 * math.sin(heading - s * 0.45)) for s in (1, -1)
        ]
        out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" {style}/>')
        out.append(
            f'<polygon points="{x2:.1f},{y2:.1f} {wing[0][0]:.1f},{wing[0][1]:.1f} '
            f'{wing[1][0]:.1f},{wing[1][1]:.1f}" fill="{colour}"/>'
        )
    if shape.label and pts:
        x, y = pts[0]
        size = 15 if shape.tool == "text" else 13
        where = f'x="{x + 5:.1f}" y="{y - 5:.1f}" font-size="{size}" font-weight="bold"'
        label = escape(shape.label)
        # A dark outline drawn first, then the letters over it (CairoSVG ignores paint-order).
        out.append(f'<text {where} fill="#000" stroke="#000" stroke-width="3">{label}</text>')
        out.append(f'<text {where} fill="{colour}">{label}</text>')
    return "".join(out)


def _fit(text: str, width: float, size: float) -> str:
    """``text`` cut with an ellipsis to about ``width`` pixels at ``size`` (DejaVu Sans averages 0.55 em)."""
    room = max(int(width / (size * 0.55)), 4)
    return text if len(text) <= room else text[: room - 1].rstrip() + "…"


def pair_svg(
    panels: Sequence[Panel], *, title: str = "", footnote: str = "", panel_size: float = PANEL_WIDTH
) -> str:
    """The panels side by side as one SVG, each at most ``panel_size`` figure pixels wide."""
    plan = layout(panels, max_width=panel_size, max_height=panel_size * PANEL_HEIGHT / PANEL_WIDTH)
    width = plan.width
    height = plan.height + (22 if title else 0)
    top = 22 if title else 0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="{FONT}" role="img">',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>',
    ]
    if title:
        parts.append(
            f'<text x="0" y="16" font-size="16" font-weight="bold" fill="#222">{escape(title)}</text>'
        )
    for spot in plan.placed:
        panel, x, y = spot.panel, spot.x, spot.y + top
        sx, sy = spot.width / panel.width, spot.height / panel.height
        clip = f"panel-{len(parts)}"
        room = max(spot.width, 220)
        parts.append(
            f'<defs><clipPath id="{clip}"><rect width="{spot.width:.1f}" height="{spot.height:.1f}"/>'
            f"</clipPath></defs>"
        )
        parts.append(f'<g transform="translate({x:.1f},{y:.1f})">')
        title = escape(_fit(panel.title, room, 15))
        parts.append(f'<text x="0" y="-30" font-size="15" font-weight="bold" fill="#222">{title}</text>')
        if panel.subtitle:
            subtitle = escape(_fit(panel.subtitle, room, 12))
            parts.append(f'<text x="0" y="-12" font-size="12" fill="#444">{subtitle}</text>')
        parts.append(
            f'<image x="0" y="0" width="{spot.width:.1f}" height="{spot.height:.1f}" '
            'preserveAspectRatio="none" '
            f'href="{escape(panel.href)}" xlink:href="{escape(panel.href)}"/>'
        )
        parts.append(f'<rect width="{spot.width:.1f}" height="{spot.height:.1f}" fill="none" stroke="#444"/>')
        parts.append(f'<g clip-path="url(#{clip})">')
        parts.extend(_shape_svg(shape, sx, sy) for shape in panel.shapes)
        parts.append("</g>")
        below = spot.height + 22
        if panel.spacing and plan.pixels_per_mm:
            mm_wide = panel.width * panel.spacing[1]
            bar = _nice_bar(mm_wide)
            length = bar * plan.pixels_per_mm
            parts.append(
                f'<line x1="0" y1="{below - 8:.1f}" x2="{length:.1f}" y2="{below - 8:.1f}" stroke="#222" '
                f'stroke-width="3"/><text x="{length + 6:.1f}" y="{below - 4:.1f}" font-size="12" '
                f'fill="#222">{bar:g} mm</text>'
            )
        elif not panel.spacing:
            parts.append(
                f'<text x="0" y="{below - 4:.1f}" font-size="12" fill="#b00">Not calibrated: '
                f"measurements in pixels</text>"
            )
        for row, line in enumerate(panel.legend):
            parts.append(
                f'<text x="0" y="{below + 18 * (row + 1):.1f}" font-size="13" fill="#222">'
                f"{escape(_fit(line, room, 13))}</text>"
            )
        parts.append("</g>")
    scale = (
        "Same scale: 1 mm is equally long in each image."
        if plan.same_scale
        else "Not to the same scale: an image has no pixel spacing."
    )
    note = f"{scale} {footnote}".strip()
    if note:
        parts.append(f'<text x="0" y="{height - 6:.0f}" font-size="12" fill="#555">{escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)
