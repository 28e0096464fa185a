"""Score-over-time charts as self-contained SVG (no JavaScript, printable, accessible).

One chart per instrument scale: the patient's scores as a line over dates,
the treatments as marked vertical lines on the time axis, and the MCID as a
band around the baseline score, so a clinician sees at a glance whether a
change is bigger than what matters clinically. Each point carries a
``<title>`` tooltip; the chart has a text description for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 18, 34


@dataclass(frozen=True)
class Point:
    date: dt.date
    value: float
    label: str = ""  # e.g. the time point, shown in the tooltip
    flagged: bool = False  # late or after the index: drawn hollow


@dataclass(frozen=True)
class Marker:
    date: dt.date
    label: str
    index: bool = False  # the index treatment is drawn stronger


def score_chart(
    title: str,
    points: Sequence[Point],
    *,
    low: float,
    high: float,
    markers: Sequence[Marker] = (),
    band: tuple[float, float] | None = None,
    higher_is_better: bool = True,
    unit: str = "",
) -> str:
    """An SVG line chart of ``points`` on a fixed ``low``–``high`` axis (the instrument's range)."""
    dates = [p.date for p in points] + [m.date for m in markers]
    if not dates:
        return ""
    start, end = min(dates), max(dates)
    if start == end:
        start, end = start - dt.timedelta(days=15), end + dt.timedelta(days=15)
    span = (end - start).days
    start, end = start - dt.timedelta(days=max(3, span // 25)), end + dt.timedelta(days=max(3, span // 25))
    span = (end - start).days
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: dt.date) -> float:
        return LEFT + plot_w * (day - start).days / span

    def y(value: float) -> float:
        clamped = min(max(value, low), high)
        return TOP + plot_h * (1 - (clamped - low) / (high - low))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="score-chart" '
        f'role="img" aria-label="{escape(_description(title, points, band, higher_is_better))}">',
        f"<title>{escape(title)}</title>",
    ]
    if band is not None:
        top, bottom = y(max(band)), y(min(band))
        parts.append(
            f'<rect class="mcid" x="{LEFT}" y="{top:.1f}" width="{plot_w}" height="{bottom - top:.1f}">'
            f"<title>Within the MCID of the baseline: {min(band):g}–{max(band):g}{unit}</title></rect>"
        )
    for tick in _ticks(low, high):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
            f'<text class="ytick" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for tick in _date_ticks(start, end):
        parts.append(
            f'<text class="xtick" x="{x(tick):.1f}" y="{HEIGHT - 12}" '
            f'text-anchor="middle">{tick:%b %Y}</text>'
        )
    for marker in markers:
        cls = "marker index" if marker.index else "marker"
        parts.append(
            f'<g class="{cls}"><line x1="{x(marker.date):.1f}" x2="{x(marker.date):.1f}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"/><path d="M{x(marker.date) - 5:.1f},{TOP} l5,8 l5,-8 z"/>'
            f"<title>{escape(marker.label)} — {marker.date:%d %b %Y}</title></g>"
        )
    if points:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(p.date):.1f},{y(p.value):.1f}" for i, p in enumerate(points)
        )
        parts.append(f'<path class="line" d="{path}"/>')
        for p in points:
            cls = "point flagged" if p.flagged else "point"
            tip = f"{p.label + ': ' if p.label else ''}{p.value:g}{unit} on {p.date:%d %b %Y}"
            parts.append(
                f'<circle class="{cls}" cx="{x(p.date):.1f}" cy="{y(p.value):.1f}" r="4.5">'
                f"<title>{escape(tip)}</title></circle>"
            )
    direction = "higher is better" if higher_is_better else "lower is better"
    parts.append(
        f'<text class="direction" x="{WIDTH - RIGHT}" y="{TOP - 5}" text-anchor="end">{direction}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    span = high - low
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50) if span / s <= 6)
    first = low if low % step == 0 else low + (step - low % step)
    ticks, value = [], first
    while value <= high:
        ticks.append(value)
        value += step
    return ticks


def _date_ticks(start: dt.date, end: dt.date) -> list[dt.date]:
    months = (end.year - start.year) * 12 + end.month - start.month
    step = max(1, -(-months // 6))
    ticks = []
    year, month = start.year, start.month + 1
    while True:
        if month > 12:
            year, month = year + 1, month - 12
        day = dt.date(year, month, 1)
        if day > end:
            break
        ticks.append(day)
        month += step
    return ticks


def _description(
    title: str, points: Sequence[Point], band: tuple[float, float] | None, better_up: bool
) -> str:
    if not points:
        return f"{title}: no scores yet."
    first, last = points[0], points[-1]
    count = f"{len(points)} score{'s' if len(points) != 1 else ''}"
    text = f"{title}: {count}, from {first.value:g} on {first.date:%d %b %Y}"
    if len(points) > 1:
        text += f" to {last.value:g} on {last.date:%d %b %Y}"
        if band is not None:
            outside = last.value > max(band) or last.value < min(band)
            improved = (last.value > first.value) == better_up
            if outside:
                text += f", a change beyond the MCID ({'better' if improved else 'worse'})"
            else:
                text += ", within the MCID of the baseline"
    return text + "."
