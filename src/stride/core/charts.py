"""Charts as self-contained SVG: a patient's scores over time, and the cohort analytics charts.

:func:`score_chart` — one chart per instrument scale: the patient's scores as a
line over dates, the treatments as marked vertical lines on the time axis, and
the MCID as a band around the baseline score, so a clinician sees at a glance
whether a change is bigger than what matters clinically. Each point carries a
``<title>`` tooltip; the chart has a text description for screen readers.

The cohort charts draw :mod:`stride.core.analysis` results:
:func:`outcome_chart` (score or change from baseline per time point, with
confidence bands and the N under the axis), :func:`responder_chart` (responder
rates with Wilson intervals and the missing-as-non-responder rate beside them)
and :func:`km_chart` (Kaplan–Meier durability with its at-risk table). Each is
one standalone SVG document (``xmlns``, ``width``/``height``, ``viewBox``, a
white background, presentation attributes rather than page CSS), so the same
text works inline in a page, as a ``.svg`` download, in a WeasyPrint PDF and
through :func:`to_png`. Cohorts differ by an Okabe–Ito colour *and* a dash
pattern, marker shape or hatching, so they stay apart in grey print and for
colour-blind readers. Every data point has a ``<title>`` tooltip with its exact
figures and ``data-*`` attributes; legend entries carry ``data-series`` so
``static/stride/charts.js`` can toggle a cohort — the charts read fully without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as xml_escape

from stride.core.errors import Invalid, StrideError
from stride.core.measure import INSTRUMENT_PREFIX

if TYPE_CHECKING:
    from stride.core.analysis import CohortResult, Durability, PointResult

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
    higher_is_better: bool | None = True,
    unit: str = "",
    origin: dt.date | None = None,
) -> str:
    """An SVG line chart of ``points`` on a fixed ``low``–``high`` axis (the instrument's range).

    With ``origin`` no calendar date appears: the axis counts months from that day and tooltips say
    "day +42" (de-identified case reports).
    """

    def when(day: dt.date) -> str:
        if origin is None:
            return f"{day:%d %b %Y}"
        days = (day - origin).days
        return f"day {days:+d}" if days else "day 0"

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
        f'role="img" aria-label="{escape(_description(title, points, band, higher_is_better, when))}">',
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
    ticks = _date_ticks(start, end) if origin is None else _month_ticks(start, end, origin)
    for tick, label in ticks:
        parts.append(
            f'<text class="xtick" x="{x(tick):.1f}" y="{HEIGHT - 12}" text-anchor="middle">{label}</text>'
        )
    for marker in markers:
        cls = "marker index" if marker.index else "marker"
        parts.append(
            f'<g class="{cls}"><line x1="{x(marker.date):.1f}" x2="{x(marker.date):.1f}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"/><path d="M{x(marker.date) - 5:.1f},{TOP} l5,8 l5,-8 z"/>'
            f"<title>{escape(marker.label)} — {when(marker.date)}</title></g>"
        )
    if points:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(p.date):.1f},{y(p.value):.1f}" for i, p in enumerate(points)
        )
        parts.append(f'<path class="line" d="{path}"/>')
        for p in points:
            cls = "point flagged" if p.flagged else "point"
            tip = f"{p.label + ': ' if p.label else ''}{p.value:g}{unit} on {when(p.date)}"
            parts.append(
                f'<circle class="{cls}" cx="{x(p.date):.1f}" cy="{y(p.value):.1f}" r="4.5">'
                f"<title>{escape(tip)}</title></circle>"
            )
    if higher_is_better is not None:
        direction = "higher is better" if higher_is_better else "lower is better"
        parts.append(
            f'<text class="direction" x="{WIDTH - RIGHT}" y="{TOP - 5}" text-anchor="end">{direction}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    """At most seven round values from ``low`` to ``high``: steps of 1, 2, 2.5 or 5 times a power of ten."""
    span = high - low
    if span <= 0:
        return [low]
    power = 10.0 ** math.floor(math.log10(span / 6))
    if span >= 1:
        power = max(power, 1.0)  # whole numbers on any axis that spans one or more
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if span / (m * power) <= 6)
    first = math.ceil(low / step - 1e-9) * step
    count = math.floor((high - first) / step + 1e-9) + 1
    return [round(first + n * step, 10) for n in range(count)]


def _date_ticks(start: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
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
        ticks.append((day, f"{day:%b %Y}"))
        month += step
    return ticks


def _month_ticks(start: dt.date, end: dt.date, origin: dt.date) -> list[tuple[dt.date, str]]:
    """Ticks every few months counted from ``origin`` ("0", "3 m", "−1 m"), within start … end."""
    from stride.core.schedule import add_months

    span = (end.year - start.year) * 12 + end.month - start.month
    step = next(s for s in (1, 2, 3, 6, 12, 24) if span / s <= 7)
    first = -((origin - start).days // 30 // step) * step - step
    ticks = []
    for k in range(first, span + step + 1, step):
        day = add_months(origin, k) if k >= 0 else origin - dt.timedelta(days=round(-k * 30.44))
        if start <= day <= end:
            ticks.append((day, "0" if k == 0 else f"{k} m".replace("-", "−")))
    return ticks


def _description(
    title: str,
    points: Sequence[Point],
    band: tuple[float, float] | None,
    better_up: bool,
    when: Callable[[dt.date], str] = lambda day: f"{day:%d %b %Y}",
) -> str:
    if not points:
        return f"{title}: no scores yet."
    first, last = points[0], points[-1]
    count = f"{len(points)} score{'s' if len(points) != 1 else ''}"
    text = f"{title}: {count}, from {first.value:g} on {when(first.date)}"
    if len(points) > 1:
        text += f" to {last.value:g} on {when(last.date)}"
        if band is not None:
            outside = last.value > max(band) or last.value < min(band)
            improved = (last.value > first.value) == better_up
            if outside:
                text += f", a change beyond the MCID ({'better' if improved else 'worse'})"
            else:
                text += ", within the MCID of the baseline"
    return text + "."


# =========================================================================== cohort charts

FONT = "'DejaVu Sans', 'Bitstream Vera Sans', Verdana, sans-serif"  # the widths text is measured with
INK, MUTED, GRID, AXIS = "#1f2a30", "#5f6b73", "#e3e8eb", "#8c979e"
#: Okabe–Ito, in the order that keeps the first cohorts most distinct on white (yellow left out).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
#: A dash pattern per cohort (the first solid), so lines differ without colour.
DASHES = ("", "8 4", "2 3", "10 3 2 3", "4 4", "12 3 2 3 2 3", "1 4")
MARKERS = ("circle", "square", "triangle", "diamond", "triangle-down", "plus")
#: Bar hatching per cohort (the first solid): stripe angle, or "cross" / "dots".
HATCHES: tuple[str | int | None, ...] = (None, 45, -45, 0, "cross", "dots", 90)

COHORT_WIDTH = 640
PLOT_HEIGHT = 220
LABEL_COLUMN = 150  # room left of the plot for the N and at-risk rows' cohort names

#: Only states that JavaScript sets (charts.js); nothing here changes the chart without it.
_STYLE = (
    ".stride-chart .series.is-off{display:none}"
    ".stride-chart .legend-item.is-off{opacity:.4}"
    ".stride-chart .legend-item[tabindex]{cursor:pointer}"
    ".stride-chart .legend-item:focus{outline:none}"
    ".stride-chart .legend-item:focus .legend-box{stroke:#1f2a30;stroke-width:1.5}"
    ".stride-chart .datum.is-hover{stroke:#1f2a30;stroke-width:2.5;fill-opacity:1}"
)

_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ChartError(StrideError, RuntimeError):
    """A chart cannot be rendered (the Cairo library is missing)."""


def _esc(text: object) -> str:
    """XML-escaped text for an element or a double- or single-quoted attribute; characters XML forbids
    (control characters someone pasted into a cohort name) are dropped so the document stays well formed."""
    return xml_escape(_XML_INVALID.sub("", str(text)), {'"': "&quot;", "'": "&apos;"})


#: Advance widths (em) of DejaVu Sans, the sans-serif Cairo and WeasyPrint fall back on: the widest common
#: one, so text measured with it fits in narrower fonts too. Other characters count 0.65 em.
_EM = {
    **dict.fromkeys(" ,.", 0.318),
    **dict.fromkeys("!:;|/", 0.337),
    **dict.fromkeys("'", 0.275),
    **dict.fromkeys("()[]", 0.39),
    **dict.fromkeys("-", 0.361),
    **dict.fromkeys("0123456789${}", 0.636),
    **dict.fromkeys("#+<=>", 0.838),
    **dict.fromkeys("%", 0.95),
    **dict.fromkeys("&", 0.78),
    **dict.fromkeys("@—…", 1.0),
    **dict.fromkeys('"*_–?', 0.5),
    **dict(
        zip(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            (
                0.684,
                0.686,
                0.698,
                0.77,
                0.632,
                0.575,
                0.775,
                0.752,
                0.295,
                0.295,
                0.656,
                0.557,
                0.863,
                0.748,
                0.787,
                0.603,
                0.787,
                0.695,
                0.635,
                0.611,
                0.732,
                0.684,
                0.989,
                0.685,
                0.611,
                0.685,
            ),
            strict=True,
        )
    ),
    **dict(
        zip(
            "abcdefghijklmnopqrstuvwxyz",
            (
                0.613,
                0.635,
                0.55,
                0.635,
                0.615,
                0.352,
                0.635,
                0.634,
                0.278,
                0.278,
                0.579,
                0.278,
                0.974,
                0.634,
                0.612,
                0.635,
                0.635,
                0.411,
                0.521,
                0.392,
                0.634,
                0.592,
                0.818,
                0.592,
                0.592,
                0.525,
            ),
            strict=True,
        )
    ),
}


def _width(text: str, size: float, *, bold: bool = False) -> float:
    """The width of ``text`` at ``size`` px, a little generous (hinting rounds each glyph up)."""
    return size * (1.12 if bold else 1.04) * sum(_EM.get(ch, 0.65) for ch in text)


def _fit(text: str, size: float, room: float, *, bold: bool = False) -> str:
    """``text`` shortened with an ellipsis to fit ``room`` px (the full text goes in a tooltip)."""
    if _width(text, size, bold=bold) <= room:
        return text
    while text and _width(text + "…", size, bold=bold) > room:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(text: str, size: float, room: float, *, bold: bool = False) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and _width(f"{lines[-1]} {word}", size, bold=bold) <= room:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _num(value: float, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _attr(value: float | None) -> str:
    """A number for a data-* attribute: plain, rounded, empty when missing."""
    return "" if value is None else f"{value:.6g}"


def _chart_id(kind: str, *parts: Any) -> str:
    """An id prefix unique to the chart's content, so several charts inline in one page never share
    the ids of their title, description and patterns, and the same chart always gets the same ids."""
    return f"{kind}-{hashlib.sha1(repr(parts).encode()).hexdigest()[:10]}"


def _open(cid: str, kind: str, width: float, height: float, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" class="stride-chart {kind}-chart" data-chart="{kind}" '
        f'role="img" aria-labelledby="{cid}-title {cid}-desc" font-family="{FONT}" font-size="12" '
        f'fill="{INK}">',
        f'<title id="{cid}-title">{_esc(title)}</title>',
        f'<desc id="{cid}-desc">{_esc(desc)}</desc>',
        f"<style>{_STYLE}</style>",
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#fff"/>',
    ]


def _heading(parts: list[str], title: str, subtitle: str, width: float) -> float:
    """The visible title (only when one is given) and a muted subtitle; returns where content starts."""
    top = 8.0
    if title:
        for line in _wrap(title, 15, width - 24, bold=True)[:2]:
            parts.append(
                f'<text x="12" y="{top + 16:.1f}" font-size="15" font-weight="600">{_esc(line)}</text>'
            )
            top += 20
        top += 2
    if subtitle:
        for line in _wrap(subtitle, 12, width - 24)[:3]:
            parts.append(f'<text x="12" y="{top + 13:.1f}" fill="{MUTED}">{_esc(line)}</text>')
            top += 16
        top += 4
    return top


def _nothing(results: Sequence[CohortResult], some_withheld: bool) -> str:
    """Why a chart has nothing to draw."""
    if all(result.withheld for result in results):
        return "withheld: every cohort is smaller than the small-cell minimum"
    return "withheld: too few patients at every time point" if some_withheld else "no answers yet"


def _message(kind: str, title: str, text: str) -> str:
    """A chart with nothing to draw: the reason, as a small standalone SVG (downloads and PDFs still work)."""
    cid = _chart_id(kind, title, text)
    parts: list[str] = []
    top = _heading(parts, title, "", COHORT_WIDTH)
    for line in _wrap(text, 12, COHORT_WIDTH - 24):
        parts.append(f'<text x="12" y="{top + 20:.1f}" fill="{MUTED}">{_esc(line)}</text>')
        top += 16
    height = top + 20
    return "".join([*_open(cid, kind, COHORT_WIDTH, height, title or text, text), *parts, "</svg>"])


# --------------------------------------------------------------------------- series looks and the legend


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _dash(i: int) -> str:
    dash = DASHES[i % len(DASHES)]
    return f' stroke-dasharray="{dash}"' if dash else ""


def _marker(i: int, cx: float, cy: float, size: float = 4.5, attrs: str = "", inner: str = "") -> str:
    """Cohort ``i``'s marker shape, filled in its colour with a white edge."""
    shape = MARKERS[i % len(MARKERS)]
    paint = f'fill="{_colour(i)}" stroke="#fff" stroke-width="1.2"'
    if shape == "circle":
        return f'<circle{attrs} cx="{cx:.1f}" cy="{cy:.1f}" r="{size:.1f}" {paint}>{inner}</circle>'
    s = size
    if shape == "square":
        d = f"M{cx - s * 0.9:.1f},{cy - s * 0.9:.1f}h{1.8 * s:.1f}v{1.8 * s:.1f}h{-1.8 * s:.1f}z"
    elif shape == "triangle":
        d = _poly((cx, cy - 1.2 * s), (cx + 1.1 * s, cy + 0.8 * s), (cx - 1.1 * s, cy + 0.8 * s))
    elif shape == "triangle-down":
        d = _poly((cx, cy + 1.2 * s), (cx + 1.1 * s, cy - 0.8 * s), (cx - 1.1 * s, cy - 0.8 * s))
    elif shape == "diamond":
        d = _poly((cx, cy - 1.3 * s), (cx + 1.1 * s, cy), (cx, cy + 1.3 * s), (cx - 1.1 * s, cy))
    else:  # plus
        a, b = 0.4 * s, 1.15 * s
        d = (
            f"M{cx - a:.1f},{cy - b:.1f}h{2 * a:.1f}v{b - a:.1f}h{b - a:.1f}v{2 * a:.1f}h{a - b:.1f}"
            f"v{b - a:.1f}h{-2 * a:.1f}v{a - b:.1f}h{a - b:.1f}v{-2 * a:.1f}h{b - a:.1f}z"
        )
    return f'<path{attrs} d="{d}" {paint}>{inner}</path>'


def _poly(*points: tuple[float, float]) -> str:
    return "M" + "L".join(f"{px:.1f},{py:.1f}" for px, py in points) + "z"


def _rule(x1: float, y1: float, x2: float, y2: float, stroke: str, extra: str = "") -> str:
    """A straight line (axis, grid, tick, whisker)."""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{extra}/>'


def _patterns(cid: str, count: int) -> str:
    """Hatching for the bars of cohorts 2 …: white stripes (or dots) over the cohort's colour."""
    defs = []
    for i in range(count):
        hatch = HATCHES[i % len(HATCHES)]
        if hatch is None:
            continue
        body = f'<rect width="6" height="6" fill="{_colour(i)}"/>'
        turn = ""
        if hatch == "dots":
            body += '<circle cx="3" cy="3" r="1.3" fill="#fff"/>'
        elif hatch == "cross":
            body += '<path d="M3,0V6M0,3H6" stroke="#fff" stroke-width="1.2"/>'
            turn = ' patternTransform="rotate(45)"'
        else:
            body += '<path d="M3,0V6" stroke="#fff" stroke-width="1.6"/>'
            turn = f' patternTransform="rotate({hatch})"'
        defs.append(
            f'<pattern id="{cid}-hatch{i}" patternUnits="userSpaceOnUse" width="6" height="6"{turn}>'
            f"{body}</pattern>"
        )
    return f"<defs>{''.join(defs)}</defs>" if defs else ""


def _bar_fill(cid: str, i: int) -> str:
    return _colour(i) if HATCHES[i % len(HATCHES)] is None else f"url(#{cid}-hatch{i})"


def _line_swatch(i: int, length: float = 28) -> Callable[[float, float], str]:
    def draw(x: float, cy: float) -> str:
        return (
            f'<line x1="{x:.1f}" x2="{x + length:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{_colour(i)}" '
            f'stroke-width="2.5"{_dash(i)}/>' + _marker(i, x + length / 2, cy, 4)
        )

    return draw


def _muted_swatch(x: float, cy: float) -> str:
    return (
        f'<line x1="{x:.1f}" x2="{x + 28:.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{AXIS}" '
        'stroke-width="2" stroke-dasharray="2 3"/>'
    )


@dataclass(frozen=True)
class _Entry:
    text: str
    tip: str
    swatch: Callable[[float, float], str]
    series: int | None = None  # None: a key to a mark, not a cohort (not toggled)
    name: str = ""  # the cohort's label, for data-label


def _cohort_entry(result: CohortResult, i: int, swatch: Callable[[float, float], str]) -> _Entry:
    if result.withheld:
        fewer = f"fewer than {result.minimum} patients" if result.minimum else "too few patients"
        return _Entry(
            f"{result.label} (withheld: {fewer})",
            f"{result.label}: withheld ({fewer})",
            swatch,
            i,
            result.label,
        )
    count = f"{result.n} index treatment{'s' if result.n != 1 else ''}"
    return _Entry(result.label, f"{result.label}: {count}", swatch, i, result.label)


def _legend(parts: list[str], entries: Sequence[_Entry], left: float, top: float, right: float) -> float:
    """Legend entries left to right, wrapping; returns the height used."""
    x, y = left, top
    for entry in entries:
        text = _fit(entry.text, 12, right - left - 40)
        w = 34 + _width(text, 12)
        if x > left and x + w > right:
            x, y = left, y + 20
        if entry.series is None:
            head = '<g class="legend-key">'
        else:
            head = (
                f'<g class="legend-item" data-series="{entry.series}" '
                f'data-label="{_esc(entry.name or entry.text)}">'
                f'<rect class="legend-box" x="{x - 4:.1f}" y="{y:.1f}" width="{w + 8:.1f}" height="20" '
                'rx="3" fill="#fff" fill-opacity="0" stroke="none"/>'
            )
        parts.append(
            f"{head}<title>{_esc(entry.tip)}</title>{entry.swatch(x, y + 10)}"
            f'<text x="{x + 34:.1f}" y="{y + 14:.1f}">{_esc(text)}</text></g>'
        )
        x += w + 20
    return y - top + 20


def _y_grid(
    parts: list[str],
    ticks: Sequence[float],
    y: Callable[[float], float],
    left: float,
    right: float,
    label: Callable[[float], str],
) -> None:
    for tick in ticks:
        parts.append(
            f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 6:.1f}" y="{y(tick) + 4:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{_esc(label(tick))}</text>"
        )


def _direction(parts: list[str], right: float, baseline: float, higher_is_better: bool | None) -> None:
    """'▲ higher is better' at the top right of the plot, with a drawn arrow (no font needed); nothing
    for a measure with no better direction (e.g. a neuroma's diameter)."""
    if higher_is_better is None:
        return
    text = "higher is better" if higher_is_better else "lower is better"
    ax, ay = right - 5, baseline - 4.5
    arrow = (
        f"M{ax - 4.5:.1f},{ay + 3:.1f}L{ax:.1f},{ay - 4:.1f}L{ax + 4.5:.1f},{ay + 3:.1f}z"
        if higher_is_better
        else f"M{ax - 4.5:.1f},{ay - 3:.1f}L{ax:.1f},{ay + 4:.1f}L{ax + 4.5:.1f},{ay - 3:.1f}z"
    )
    parts.append(
        f'<g class="direction"><path d="{arrow}" fill="{MUTED}"/>'
        f'<text x="{right - 14:.1f}" y="{baseline:.1f}" text-anchor="end" fill="{MUTED}">{text}</text></g>'
    )


def _scale_label(result: CohortResult) -> str:
    instrument, scale = result.instrument_name, result.scale_name
    return instrument if scale.lower() in instrument.lower() else f"{instrument} {scale}"


def _level(level: float) -> str:
    return f"{level:.0%}"


# --------------------------------------------------------------------------- outcome over time


@dataclass(frozen=True)
class _Cell:
    state: str  # "value" / "withheld" / "none"
    n: int = 0
    value: float = 0.0
    ci: tuple[float, float] | None = None
    level: float = 0.95
    name: str = ""
    code: str = ""
    coverage: float | None = None  # a median interval's exact coverage (at least the level)


def _cell(result: CohortResult, point: PointResult | None, measure: str, statistic: str) -> _Cell:
    if result.withheld:
        return _Cell("withheld")
    if point is None:
        return _Cell("none")
    summary = point.score if measure == "score" else point.change
    if summary is None:
        return _Cell("withheld", name=point.name, code=point.timepoint)
    value = summary.mean if statistic == "mean" else summary.median
    if summary.n == 0 or value is None:
        return _Cell("none", name=point.name, code=point.timepoint)
    if statistic == "mean":
        return _Cell("value", summary.n, value, summary.mean_ci, summary.level, point.name, point.timepoint)
    return _Cell(
        "value",
        summary.n,
        value,
        summary.median_ci,
        summary.level,
        point.name,
        point.timepoint,
        summary.median_ci_coverage,
    )


def outcome_chart(
    results: Sequence[CohortResult],
    *,
    measure: str = "score",
    statistic: str = "mean",
    title: str = "",
    y_range: tuple[float, float] | None = None,
) -> str:
    """Each cohort's score (or change from baseline) at each time point, with its confidence band.

    ``measure`` is ``"score"`` or ``"change"`` (the baseline has no change and is left out);
    ``statistic`` ``"mean"`` (t interval) or ``"median"`` (order-statistic interval). The x axis is
    months after the index treatment on a square-root scale, so the early time points (0, 1, 3, 6)
    stay apart next to 24 and 36. The y axis is ``y_range`` (give the instrument scale's range for
    scores); without it, the data's range (for change: symmetric around 0, with the MCID line in the
    better direction when the cohorts share one). Under the axis, the N behind each point per
    cohort; a point withheld by the small-cell rule is not drawn and its N reads "withheld".
    """
    if measure not in ("score", "change"):
        raise Invalid(f"Unknown measure {measure!r}; choose score or change.", "measure")
    if statistic not in ("mean", "median"):
        raise Invalid(f"Unknown statistic {statistic!r}; choose mean or median.", "statistic")
    results = list(results)
    kind = "outcome"
    if not results:
        return _message(kind, title, "No cohorts to show.")
    first = next((r for r in results if not r.withheld), results[0])
    what = f"{statistic} {'change in ' if measure == 'change' else ''}{_scale_label(first)}"
    if measure == "change":
        what += " from baseline"
    elif not first.instrument.startswith(INSTRUMENT_PREFIX):  # an image measurement is no score
        what += " score"
    higher_is_better = first.higher_is_better

    # The columns: every time point up to the last one with something to show.
    found: dict[int, tuple[str, str]] = {}
    for result in results:
        for point in result.points:
            if measure == "change" and point.timepoint == "baseline":
                continue
            found.setdefault(point.months, (point.timepoint, point.name))
    months = sorted(found)
    cells = [
        {m: _cell(r, next((p for p in r.points if p.months == m), None), measure, statistic) for m in months}
        for r in results
    ]
    # A cohort withheld as a whole says nothing about which time points exist.
    told = [row for result, row in zip(results, cells, strict=True) if not result.withheld]
    shown = [m for m in months if any(row[m].state != "none" for row in told)]
    if not any(row[m].state == "value" for row in told for m in months):
        return _message(kind, title, f"No {what} to show ({_nothing(results, bool(shown))}).")
    months = [m for m in months if m <= shown[-1]]
    level = next(row[m].level for row in cells for m in months if row[m].state == "value")

    # The y axis.
    values = [
        v
        for row in cells
        for m in months
        if row[m].state == "value"
        for v in (row[m].value, *(row[m].ci or ()))
    ]
    mcid = None
    if measure == "change" and len({r.mcid for r in results if not r.withheld}) == 1 and first.mcid:
        mcid = first.mcid if higher_is_better else -first.mcid
    if y_range is not None:
        low, high = float(min(y_range)), float(max(y_range))
    elif measure == "change":
        reach = max([abs(v) for v in values] + [abs(mcid) if mcid else 0.0, 1.0])
        step = next(s for s in (0.5, 1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500) if 2 * reach / s <= 6)
        high = math.ceil(reach / step) * step
        low = -high
    else:
        lo, hi = min(values), max(values)
        pad = max((hi - lo) * 0.1, 1.0)
        step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500) if (hi - lo + 2 * pad) / s <= 6)
        low, high = math.floor((lo - pad) / step) * step, math.ceil((hi + pad) / step) * step
    if high <= low:
        high = low + 1
    ticks = _ticks(low, high) if high - low >= 1 else [low, high]

    # Layout, top to bottom: heading, legend, axis label row, plot, x axis, N rows.
    width = COHORT_WIDTH
    left, right = LABEL_COLUMN, width - 18
    plot_w = right - left
    desc = _outcome_description(results, cells, months, found, what, level, higher_is_better)
    cid = _chart_id(kind, results, measure, statistic, title, y_range)
    parts: list[str] = []
    top = _heading(parts, title, "", width)
    entries = [_cohort_entry(r, i, _line_swatch(i)) for i, r in enumerate(results)]
    top += _legend(parts, entries, 12, top, width - 12) + 8
    axis_label = f"{what[0].upper()}{what[1:]} ({_level(level)} CI)"
    shown_label = _fit(axis_label, 12, width - 170, bold=True)
    parts.append(f'<text x="12" y="{top + 12:.1f}" font-weight="600">{_esc(shown_label)}</text>')
    _direction(parts, right, top + 12, higher_is_better)
    plot_top = top + 22
    plot_bottom = plot_top + PLOT_HEIGHT
    root = math.sqrt(max(months[-1], 1))
    inset = 24  # keeps the first and last points (and their N) off the plot's edges

    def x(m: float) -> float:
        return left + inset + (plot_w - 2 * inset) * math.sqrt(max(m, 0)) / root

    def y(v: float) -> float:
        v = min(max(v, low), high)
        return plot_top + PLOT_HEIGHT * (1 - (v - low) / (high - low))

    _y_grid(parts, ticks, y, left, right, lambda t: _num(t, 0 if float(t).is_integer() else 1))
    if measure == "change" and low < 0 < high:
        parts.append(_rule(left, y(0), right, y(0), AXIS, ' stroke-width="1.2"'))
    if mcid is not None and low <= mcid <= high:
        # Labelled at the left, over the baseline column, which a change chart leaves empty.
        label_y = y(mcid) + (-5 if mcid > 0 else 14)
        parts.append(
            f'<g class="mcid"><line x1="{left}" x2="{right}" y1="{y(mcid):.1f}" y2="{y(mcid):.1f}" '
            f'stroke="{MUTED}" stroke-dasharray="5 4"/><text x="{left + 5}" y="{label_y:.1f}" '
            f'fill="{MUTED}" font-size="11">MCID {mcid:g}</text>'
            f"<title>Minimal clinically important difference: {mcid:g}</title></g>"
        )
    parts.append(f'<line x1="{left}" x2="{right}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="{AXIS}"/>')
    for m in ([0] if months[0] > 0 else []) + months:
        parts.append(
            _rule(x(m), plot_bottom, x(m), plot_bottom + 4, AXIS)
            + f'<text x="{x(m):.1f}" y="{plot_bottom + 17}" text-anchor="middle" fill="{MUTED}">{m}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{plot_bottom + 34}" text-anchor="middle" fill="{MUTED}">'
        "Months after the index treatment (square-root scale)</text>"
    )

    count = len(results)
    dodge = {i: (i - (count - 1) / 2) * 3.0 for i in range(count)}
    bands, lines = [], []
    for i, (result, row) in enumerate(zip(results, cells, strict=True)):
        colour, dx = _colour(i), dodge[i]
        # The line joins the points drawn; a point left out (withheld, nobody answered) is skipped,
        # and its N row says why. The band is broken where a point has no interval (N of 1).
        drawn = [m for m in months if row[m].state == "value"]
        band, body = [], []
        ci_runs: list[list[int]] = [[]]
        for m in drawn:
            if row[m].ci is not None:
                ci_runs[-1].append(m)
            elif ci_runs[-1]:
                ci_runs.append([])
        for ci_run in ci_runs:
            bounds = [(m, row[m].ci) for m in ci_run]
            if len(bounds) >= 2:
                upper = [f"{x(m) + dx:.1f},{y(ci[1]):.1f}" for m, ci in bounds if ci]
                lower = [f"{x(m) + dx:.1f},{y(ci[0]):.1f}" for m, ci in reversed(bounds) if ci]
                band.append(
                    f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.12"/>'
                )
            elif bounds and bounds[0][1]:  # a lone interval: a whisker
                m, (lo_, hi_) = bounds[0]
                body.append(
                    f'<path d="{_whisker(x(m) + dx, y(hi_), y(lo_))}" stroke="{colour}" '
                    'stroke-width="1.5" fill="none"/>'
                )
        if len(drawn) >= 2:
            path = " ".join(
                f"{'M' if k == 0 else 'L'}{x(m) + dx:.1f},{y(row[m].value):.1f}" for k, m in enumerate(drawn)
            )
            body.insert(
                0,
                f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.2" '
                f'stroke-linejoin="round"{_dash(i)}/>',
            )
        for m in months:
            cell = row[m]
            if cell.state != "value":
                continue
            ci_text = (
                f"{_level(cell.level)} CI {_num(cell.ci[0])} to {_num(cell.ci[1])}"
                if cell.ci
                else "no CI (too few)"
            )
            if cell.ci and cell.coverage is not None and round(cell.coverage, 3) > cell.level:
                ci_text += f", exact coverage {100 * cell.coverage:.1f}%"
            tip = f"{result.label} — {cell.name}: {statistic} {_num(cell.value)} ({ci_text}), N = {cell.n}"
            data = (
                f' class="datum" data-series="{i}" data-timepoint="{_esc(cell.code)}" data-months="{m}" '
                f'data-estimate="{_attr(cell.value)}" data-ci-low="{_attr(cell.ci[0] if cell.ci else None)}" '
                f'data-ci-high="{_attr(cell.ci[1] if cell.ci else None)}" data-n="{cell.n}"'
            )
            body.append(_marker(i, x(m) + dx, y(cell.value), 4.5, data, f"<title>{_esc(tip)}</title>"))
        bands.append(f'<g class="series band" data-series="{i}">{"".join(band)}</g>')
        lines.append(f'<g class="series" data-series="{i}">{"".join(body)}</g>')
    parts.extend(bands)
    parts.extend(lines)

    # The N row per cohort.
    n_top = plot_bottom + 58
    noun = "change" if measure == "change" else "score"
    parts.append(
        f'<text x="12" y="{n_top:.1f}" font-size="11" font-weight="600" fill="{INK}">N with a {noun}</text>'
    )
    for i, (result, row) in enumerate(zip(results, cells, strict=True)):
        base = n_top + 17 * (i + 1)
        name = _fit(result.label, 11, left - 38 - 14)
        texts = [
            f"<title>{_esc(result.label)}</title>{_line_swatch(i, 20)(12, base - 4)}"
            f'<text x="38" y="{base:.1f}" font-size="11">{_esc(name)}</text>'
        ]
        for m in months:
            cell = row[m]
            text = str(cell.n) if cell.state == "value" else "withheld" if cell.state == "withheld" else "–"
            tip = {
                "value": f"{result.label} — {cell.name}: N = {cell.n}",
                "withheld": f"{result.label} — {found[m][1]}: withheld (fewer than {result.minimum} patients)"
                if result.minimum
                else f"{result.label} — {found[m][1]}: withheld",
                "none": f"{result.label} — {found[m][1]}: no {noun}s",
            }[cell.state]
            colour = INK if cell.state == "value" else MUTED
            style = ' font-style="italic"' if cell.state == "withheld" else ""
            texts.append(
                f'<text class="n-cell" x="{x(m):.1f}" y="{base:.1f}" text-anchor="middle" font-size="11" '
                f'fill="{colour}"{style} data-months="{m}" '
                f'data-n="{cell.n if cell.state == "value" else ""}">'
                f"{text}<title>{_esc(tip)}</title></text>"
            )
        parts.append(f'<g class="series n-row" data-series="{i}">{"".join(texts)}</g>')
    height = n_top + 17 * count + 14
    return "".join([*_open(cid, kind, width, height, title or axis_label, desc), *parts, "</svg>"])


def _outcome_description(
    results: Sequence[CohortResult],
    cells: Sequence[dict[int, _Cell]],
    months: Sequence[int],
    found: dict[int, tuple[str, str]],
    what: str,
    level: float,
    higher_is_better: bool | None,
) -> str:
    when = ", ".join(str(m) for m in months)
    text = (
        f"{what[0].upper()}{what[1:]} with {_level(level)} confidence intervals at {when} months after "
        f"the index treatment, {len(results)} cohort{'s' if len(results) != 1 else ''}"
        + ("." if higher_is_better is None else "; ")
        + ("" if higher_is_better is None else f"{'higher' if higher_is_better else 'lower'} is better.")
    )
    for result, row in zip(results, cells, strict=True):
        shown = [m for m in months if row[m].state == "value"]
        if result.withheld:
            text += f" {result.label}: withheld (fewer than {result.minimum} patients)."
            continue
        if not shown:
            text += f" {result.label}: nothing to show."
            continue
        a, b = row[shown[0]], row[shown[-1]]
        text += f" {result.label}: {_num(a.value)} at {found[shown[0]][1].lower()} (N = {a.n})"
        if len(shown) > 1:
            text += f" to {_num(b.value)} at {found[shown[-1]][1].lower()} (N = {b.n})"
        withheld = [found[m][1].lower() for m in months if row[m].state == "withheld"]
        if withheld:
            text += f"; withheld at {', '.join(withheld)}"
        text += "."
    return text


# --------------------------------------------------------------------------- responder rates


def responder_chart(results: Sequence[CohortResult], definition: str, *, title: str = "") -> str:
    """Grouped bars: per follow-up time point, each cohort's responder rate by ``definition``.

    A bar is the rate among patients who answered, with its Wilson interval as a whisker; the open
    diamond is the sensitivity rate that counts the patients without an answer as non-responders.
    Under each bar, responders/answered. A rate withheld by the small-cell rule is labelled so.
    """
    results = list(results)
    kind = "responder"
    if not results:
        return _message(kind, title, "No cohorts to show.")
    names = sorted({line.definition for r in results for p in r.points for line in p.responders})
    if names and definition not in names:
        raise Invalid(
            f"No responder definition {definition!r} in these results; they have {', '.join(names)}.",
            "definition",
        )
    found: dict[int, tuple[str, str]] = {}
    about = None
    for result in results:
        for point in result.points:
            if point.timepoint == "baseline":
                continue
            found.setdefault(point.months, (point.timepoint, point.name))
            for line in point.responders:
                if line.definition == definition and about is None:
                    about = line
    months = sorted(found)
    table: list[dict[int, tuple[str, Any]]] = []
    for result in results:
        row: dict[int, tuple[str, Any]] = {}
        for m in months:
            point = next((p for p in result.points if p.months == m), None)
            line = next(
                (ln for ln in (point.responders if point else ()) if ln.definition == definition), None
            )
            if result.withheld or (line is not None and line.rate is None):
                row[m] = ("withheld", line)
            elif line is None or line.rate is None or line.rate.total == 0:
                row[m] = ("none", line)
            elif line.rate.answered.n == 0:
                row[m] = ("unanswered", line)
            else:
                row[m] = ("value", line)
        table.append(row)
    told = [row for result, row in zip(results, table, strict=True) if not result.withheld]
    shown = [m for m in months if any(row[m][0] != "none" for row in told)]
    if about is None or not any(row[m][0] == "value" for row in told for m in months):
        why = _nothing(results, bool(shown))
        return _message(kind, title, f"No responder rates to show for the definition {definition!r} ({why}).")
    months = [m for m in months if m <= shown[-1]]
    count = len(results)

    labels = [
        f"{line.rate.answered.k}/{line.rate.answered.n}"
        for row in table
        for state, line in row.values()
        if state == "value"
    ]
    # One bar slot per cohort and time point. The k/n labels go in one row when they fit under their
    # bars, else in two staggered rows (every other cohort lower); the chart widens only past that.
    need = max(_width(t, 10.5) for t in labels) + 6
    left, gap = 56.0, 20.0
    room = COHORT_WIDTH - 18 - left
    slot = min(56.0, (room / len(months) - gap) / count)
    stagger = count > 1 and slot < need
    slot = max(slot, 20.0, need / 2 if stagger else need - (gap if count == 1 else 0))
    label_rows = 2 if stagger else 1
    plot_w = len(months) * (count * slot + gap)
    width = max(COHORT_WIDTH, left + plot_w + 18)
    gap = (width - 18 - left) / len(months) - count * slot
    right = width - 18
    bar_w = min(slot - 8, 36.0)
    level = next(line.rate.answered.level for row in table for s, line in row.values() if s == "value")

    cid = _chart_id(kind, results, definition, title)
    parts: list[str] = [_patterns(cid, count)]
    subtitle = f"Responder definition: {about.description} ({about.version}, '{definition}')"
    top = _heading(parts, title, subtitle, width)
    entries = [_cohort_entry(r, i, _bar_swatch(cid, i)) for i, r in enumerate(results)]
    entries += [
        _Entry(
            f"{_level(level)} CI (Wilson)",
            "The whisker: the Wilson score interval of the rate",
            _whisker_swatch,
        ),
        _Entry(
            "missing counted as non-responders",
            "The diamond: responders over everyone due, counting those without an answer as non-responders",
            _diamond_swatch,
        ),
    ]
    top += _legend(parts, entries, 12, top, width - 12) + 8
    axis_label = "Responders among patients who answered (%)"
    parts.append(f'<text x="12" y="{top + 12:.1f}" font-weight="600">{axis_label}</text>')
    plot_top = top + 22
    plot_bottom = plot_top + PLOT_HEIGHT

    def y(p: float) -> float:
        return plot_top + PLOT_HEIGHT * (1 - min(max(p, 0.0), 1.0))

    _y_grid(parts, (0, 25, 50, 75, 100), lambda t: y(t / 100), left, right, lambda t: f"{t:g}%")
    parts.append(
        f'<line x1="{left}" x2="{right:.1f}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="{AXIS}"/>'
    )
    series: list[list[str]] = [[] for _ in results]
    for g, m in enumerate(months):
        start = left + g * (count * slot + gap) + gap / 2
        code, name = found[m]
        parts.append(
            f'<text x="{start + count * slot / 2:.1f}" y="{plot_bottom + 21 + 13 * label_rows}" '
            'text-anchor="middle" '
            f'fill="{INK}">{_esc(name)}</text>'
        )
        for i, (result, row) in enumerate(zip(results, table, strict=True)):
            cx = start + (i + 0.5) * slot
            kn_y = plot_bottom + 15 + (13 if stagger and i % 2 else 0)
            state, line = row[m]
            body = series[i]
            if state != "value":
                if state == "none":
                    text, tip = "–", f"{result.label} — {name}: nobody due yet"
                elif state == "unanswered":
                    text = "0/0"
                    tip = f"{result.label} — {name}: {line.rate.total} due, no answers"
                else:
                    text = "–"
                    small = f" (fewer than {result.minimum} patients)" if result.minimum else ""
                    tip = f"{result.label} — {name}: withheld{small}"
                if state in ("withheld", "unanswered"):
                    label = "withheld" if state == "withheld" else "no answers"
                    body.append(
                        f'<text x="{cx + 4:.1f}" y="{plot_bottom - 6}" transform="rotate(-90 {cx + 4:.1f} '
                        f'{plot_bottom - 6})" font-size="11" font-style="italic" fill="{MUTED}">{label}'
                        f"<title>{_esc(tip)}</title></text>"
                    )
                body.append(
                    f'<text class="kn" x="{cx:.1f}" y="{kn_y}" text-anchor="middle" font-size="10.5" '
                    f'fill="{MUTED}">{text}<title>{_esc(tip)}</title></text>'
                )
                continue
            rate = line.rate
            ans, sens = rate.answered, rate.sensitivity
            tip = (
                f"{result.label} — {name}: {_pct(ans.p)} responders ({ans.k}/{ans.n} who answered; "
                f"{_level(ans.level)} CI {_pct(ans.low)} to {_pct(ans.high)}). Missing counted as "
                f"non-responders: {_pct(sens.p)} ({sens.k}/{sens.n}; {_level(sens.level)} CI "
                f"{_pct(sens.low)} to {_pct(sens.high)}); {rate.missing} without an answer."
            )
            top_y = y(ans.p or 0.0)
            body.append(
                f'<rect class="datum" x="{cx - bar_w / 2:.1f}" y="{top_y:.1f}" width="{bar_w:.1f}" '
                f'height="{max(plot_bottom - top_y, 0.5):.1f}" fill="{_bar_fill(cid, i)}" '
                f'stroke="{_colour(i)}" data-series="{i}" data-timepoint="{_esc(code)}" data-months="{m}" '
                f'data-estimate="{_attr(ans.p)}" '
                f'data-ci-low="{_attr(ans.low)}" data-ci-high="{_attr(ans.high)}" data-k="{ans.k}" '
                f'data-n="{ans.n}" data-sensitivity="{_attr(sens.p)}" data-total="{rate.total}">'
                f"<title>{_esc(tip)}</title></rect>"
            )
            if ans.low is not None and ans.high is not None:
                whisker = _whisker(cx, y(ans.high), y(ans.low))
                body.append(
                    f'<path d="{whisker}" fill="none" stroke="#fff" stroke-width="3.5" '
                    'stroke-linecap="round"/>'
                    f'<path d="{whisker}" fill="none" stroke="{INK}" stroke-width="1.4"/>'
                )
            if sens.p is not None:
                body.append(
                    _diamond(cx, y(sens.p), 'class="sensitivity"')[:-2]
                    + f"><title>{_esc(tip)}</title></path>"
                )
            body.append(
                f'<text class="kn" x="{cx:.1f}" y="{kn_y}" text-anchor="middle" font-size="10.5" '
                f'fill="{INK}">{ans.k}/{ans.n}<title>{_esc(tip)}</title></text>'
            )
    for i, body in enumerate(series):
        parts.append(f'<g class="series" data-series="{i}">{"".join(body)}</g>')
    height = plot_bottom + 35 + 13 * label_rows
    desc = _responder_description(results, table, months, found, about.description, level)
    return "".join(
        [
            *_open(cid, kind, width, height, title or f"Responders: {about.description}", desc),
            *parts,
            "</svg>",
        ]
    )


def _diamond(cx: float, cy: float, attrs: str = "") -> str:
    return (
        f'<path {attrs} d="{_poly((cx, cy - 5), (cx + 4.5, cy), (cx, cy + 5), (cx - 4.5, cy))}" '
        f'fill="#fff" stroke="{INK}" stroke-width="1.4"/>'
    )


def _bar_swatch(cid: str, i: int) -> Callable[[float, float], str]:
    def draw(x: float, cy: float) -> str:
        return (
            f'<rect x="{x + 4:.1f}" y="{cy - 6:.1f}" width="20" height="12" fill="{_bar_fill(cid, i)}" '
            f'stroke="{_colour(i)}"/>'
        )

    return draw


def _whisker_swatch(x: float, cy: float) -> str:
    return f'<path d="{_whisker(x + 14, cy - 7, cy + 7)}" stroke="{INK}" stroke-width="1.4" fill="none"/>'


def _whisker(cx: float, top: float, bottom: float) -> str:
    """An interval: a vertical line with caps 8 px wide."""
    return f"M{cx - 4:.1f},{top:.1f}h8M{cx:.1f},{top:.1f}V{bottom:.1f}M{cx - 4:.1f},{bottom:.1f}h8"


def _diamond_swatch(x: float, cy: float) -> str:
    return _diamond(x + 14, cy)


def _responder_description(
    results: Sequence[CohortResult],
    table: Sequence[dict[int, tuple[str, Any]]],
    months: Sequence[int],
    found: dict[int, tuple[str, str]],
    about: str,
    level: float,
) -> str:
    text = (
        f"Responder rates ({about.rstrip('.')}) among patients who answered, with {_level(level)} Wilson "
        "intervals and the rate counting missing answers as non-responders, at "
        f"{', '.join(found[m][1] for m in months)}; {len(results)} cohort{'s' if len(results) != 1 else ''}."
    )
    for result, row in zip(results, table, strict=True):
        if result.withheld:
            text += f" {result.label}: withheld (fewer than {result.minimum} patients)."
            continue
        shown = [m for m in months if row[m][0] == "value"]
        if not shown:
            text += f" {result.label}: no rates to show."
            continue
        bits = []
        for m in shown:
            ans = row[m][1].rate.answered
            bits.append(f"{_pct(ans.p)} ({ans.k}/{ans.n}) at {found[m][1]}")
        withheld = [found[m][1] for m in months if row[m][0] == "withheld"]
        text += f" {result.label}: {', '.join(bits)}"
        text += f"; withheld at {', '.join(withheld)}." if withheld else "."
    return text


# --------------------------------------------------------------------------- durability (Kaplan–Meier)

_FREE_OF = {
    "retreatment": "free of re-treatment",
    "surgery": "free of surgery",
    "loss-of-response": "still responding",
}


def km_chart(curves: Sequence[tuple[str, Durability]], *, title: str = "", minimum: int | None = None) -> str:
    """Kaplan–Meier step curves of each cohort's durability, with CI bands, censoring ticks, and the
    number at risk under the axis at the at-risk table's times (``-1``: withheld, printed
    ``<minimum``). A curve that is not available (``km`` is None) is only named in the legend."""
    from stride.core.analysis import DAYS_PER_MONTH

    curves = list(curves)
    kind = "km"
    if not curves:
        return _message(kind, title, "No cohorts to show.")
    events = {d.event for _, d in curves}
    event = events.pop() if len(events) == 1 else ""
    free_of = _FREE_OF.get(event, "event-free")
    drawn = [i for i, (_, d) in enumerate(curves) if d.km is not None and d.km.points]
    if not drawn:
        notes = "; ".join(f"{label}: {d.note or 'not available'}" for label, d in curves)
        return _message(kind, title, f"No Kaplan–Meier curve to show ({notes}).")

    def months_of(days: float) -> float:
        return days / DAYS_PER_MONTH

    risk_times = sorted({round(months_of(a.time), 4) for i in drawn for a in curves[i][1].at_risk})
    end = max(
        [months_of(curves[i][1].km.points[-1].time) for i in drawn] + risk_times + [1.0]  # type: ignore[union-attr]
    )
    ticks = risk_times if len(risk_times) >= 2 else _ticks(0, math.ceil(end))
    end = max(end, ticks[-1])
    level = curves[drawn[0]][1].km.level  # type: ignore[union-attr]
    origin = getattr(curves[drawn[0]][1], "origin", "the index treatment")
    width = COHORT_WIDTH
    left, right = LABEL_COLUMN, width - 22
    plot_w = right - left

    cid = _chart_id(kind, curves, title, minimum)
    parts: list[str] = []
    description = curves[drawn[0]][1].description if event else "the event"
    top = _heading(parts, title, "", width)
    entries = []
    for i, (label, d) in enumerate(curves):
        km = d.km
        if i in drawn:
            assert km is not None
            entries.append(
                _Entry(
                    f"{label} (n = {km.n}, {km.events} event{'s' if km.events != 1 else ''})",
                    f"{label}: {km.n} patients at risk, {km.events} events; {_median_text(km, months_of)}",
                    _line_swatch(i),
                    i,
                    label,
                )
            )
        else:
            entries.append(
                _Entry(f"{label} — not available", f"{label}: {d.note or 'not available'}", _muted_swatch)
            )
    entries.append(
        _Entry("censored", "A tick marks follow-up that ended without the event (censored)", _censor_swatch)
    )
    top += _legend(parts, entries, 12, top, width - 12) + 8
    axis_label = f"{free_of[0].upper()}{free_of[1:]} (%), with {_level(level)} CI"
    parts.append(f'<text x="12" y="{top + 12:.1f}" font-weight="600">{_esc(axis_label)}</text>')
    plot_top = top + 22
    plot_bottom = plot_top + PLOT_HEIGHT

    inset = 18  # keeps the first at-risk column clear of the row names

    def x(m: float) -> float:
        return left + inset + (plot_w - inset) * min(max(m, 0.0), end) / end

    def y(s: float) -> float:
        return plot_top + PLOT_HEIGHT * (1 - min(max(s, 0.0), 1.0))

    _y_grid(parts, (0, 25, 50, 75, 100), lambda t: y(t / 100), left, right, lambda t: f"{t:g}%")
    parts.append(
        f'<line x1="{left}" x2="{right}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="{AXIS}"/>'
        f'<line x1="{left}" x2="{left}" y1="{plot_top}" y2="{plot_bottom}" stroke="{AXIS}"/>'
    )
    for tick in ticks:
        parts.append(
            _rule(x(tick), plot_bottom, x(tick), plot_bottom + 4, AXIS)
            + f'<text x="{x(tick):.1f}" y="{plot_bottom + 17}" text-anchor="middle" fill="{MUTED}">'
            f"{_month_label(tick)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{plot_bottom + 34}" text-anchor="middle" fill="{MUTED}">'
        f"Months after {escape(origin)}</text>"
    )
    bands, lines = [], []
    for i in drawn:
        label, d = curves[i]
        km = d.km
        assert km is not None
        colour = _colour(i)
        points = km.points
        stops = [months_of(p.time) for p in points]
        # The band: one step polygon per run of points whose bounds exist.
        runs: list[list[tuple[float, float, float, float]]] = [[]]
        for k, p in enumerate(points):
            if p.ci_low is None or p.ci_high is None:
                if runs[-1]:
                    runs.append([])
                continue
            until = stops[k + 1] if k + 1 < len(points) else stops[k]
            runs[-1].append((x(stops[k]), x(until), y(p.ci_high), y(p.ci_low)))
        band = []
        for run in runs:
            if not run or run[-1][1] - run[0][0] < 0.5:
                continue
            upper = [f"{a:.1f},{hi:.1f} {b:.1f},{hi:.1f}" for a, b, hi, _ in run]
            lower = [f"{b:.1f},{lo:.1f} {a:.1f},{lo:.1f}" for a, b, _, lo in reversed(run)]
            band.append(f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" fill-opacity="0.12"/>')
        bands.append(f'<g class="series band" data-series="{i}">{"".join(band)}</g>')
        path = f"M{x(stops[0]):.1f},{y(points[0].survival):.1f}" + "".join(
            f"H{x(t):.1f}V{y(p.survival):.1f}" for t, p in zip(stops[1:], points[1:], strict=True)
        )
        body = [
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2.2" '
            f'stroke-linejoin="round"{_dash(i)}/>'
        ]
        for t, p in zip(stops, points, strict=True):
            if p.censored:
                tip = f"{label}: {p.censored} censored at {t:.1f} months ({_pct(p.survival)} {free_of})"
                body.append(
                    f'<line class="datum censor" x1="{x(t):.1f}" x2="{x(t):.1f}" '
                    f'y1="{y(p.survival) - 5:.1f}" y2="{y(p.survival) + 5:.1f}" stroke="{colour}" '
                    f'stroke-width="1.6" data-series="{i}" '
                    f'data-months="{t:.2f}" data-censored="{p.censored}"><title>{_esc(tip)}</title></line>'
                )
            if p.events:
                ci = (
                    f"{_level(km.level)} CI {_pct(p.ci_low)} to {_pct(p.ci_high)}"
                    if p.ci_low is not None and p.ci_high is not None
                    else "no CI"
                )
                tip = (
                    f"{label}: {_pct(p.survival)} {free_of} at {t:.1f} months ({ci}); {p.at_risk} at risk, "
                    f"{p.events} event{'s' if p.events != 1 else ''}"
                )
                body.append(
                    f'<circle class="datum" cx="{x(t):.1f}" cy="{y(p.survival):.1f}" r="4" fill="{colour}" '
                    f'fill-opacity="0" data-series="{i}" data-months="{t:.2f}" '
                    f'data-estimate="{_attr(p.survival)}" '
                    f'data-ci-low="{_attr(p.ci_low)}" data-ci-high="{_attr(p.ci_high)}" data-n="{p.at_risk}" '
                    f'data-events="{p.events}"><title>{_esc(tip)}</title></circle>'
                )
        lines.append(f'<g class="series" data-series="{i}">{"".join(body)}</g>')
    parts.extend(bands)
    parts.extend(lines)

    risk_top = plot_bottom + 58
    parts.append(f'<text x="12" y="{risk_top:.1f}" font-size="11" font-weight="600">Number at risk</text>')
    for row, i in enumerate(drawn):
        label, d = curves[i]
        base = risk_top + 17 * (row + 1)
        cells = [
            f"<title>{_esc(label)}</title>{_line_swatch(i, 20)(12, base - 4)}"
            f'<text x="38" y="{base:.1f}" font-size="11">{_esc(_fit(label, 11, left - 38 - 14))}</text>'
        ]
        for a in d.at_risk:
            t = months_of(a.time)
            if a.at_risk < 0:
                text = f"<{minimum}" if minimum else "<min"
                fewer = minimum or "the minimum"
                tip = f"{label} at {_month_label(t)} months: fewer than {fewer} at risk (withheld)"
            else:
                text = str(a.at_risk)
                tip = (
                    f"{label} at {_month_label(t)} months: {a.at_risk} at risk; {a.events} event(s) and "
                    f"{a.censored} censored so far"
                )
            cells.append(
                f'<text class="at-risk" x="{x(t):.1f}" y="{base:.1f}" text-anchor="middle" font-size="11" '
                f'fill="{INK if a.at_risk >= 0 else MUTED}" data-months="{_attr(t)}" '
                f'data-at-risk="{a.at_risk}">'
                f"{_esc(text)}<title>{_esc(tip)}</title></text>"
            )
        parts.append(f'<g class="series at-risk-row" data-series="{i}">{"".join(cells)}</g>')
    height = risk_top + 17 * len(drawn) + 14
    desc = _km_description(curves, drawn, description, free_of, level, months_of)
    heading = title or f"Time to {description}"
    return "".join([*_open(cid, kind, width, height, heading, desc), *parts, "</svg>"])


def _month_label(m: float) -> str:
    return f"{m:.0f}" if abs(m - round(m)) < 0.05 else f"{m:.1f}"


def _censor_swatch(x: float, cy: float) -> str:
    return _rule(x + 14, cy - 6, x + 14, cy + 6, INK, ' stroke-width="1.6"')


def _median_text(km: Any, months_of: Callable[[float], float]) -> str:
    if km.median is None:  # not reached, or beyond the tail the small-cell rule leaves out
        return f"median not reached in the {months_of(km.points[-1].time):.1f} months drawn"
    low, high = km.median_ci
    bound = lambda v: "not reached" if v is None else f"{months_of(v):.1f}"  # noqa: E731
    return f"median {months_of(km.median):.1f} months ({_level(km.level)} CI {bound(low)} to {bound(high)})"


def _km_description(
    curves: Sequence[tuple[str, Durability]],
    drawn: Sequence[int],
    description: str,
    free_of: str,
    level: float,
    months_of: Callable[[float], float],
) -> str:
    text = (
        f"Kaplan–Meier curves of the time to {description}, as the percentage {free_of} with {_level(level)} "
        f"confidence bands, and the number at risk; {len(curves)} cohort{'s' if len(curves) != 1 else ''}."
    )
    for i, (label, d) in enumerate(curves):
        km = d.km
        if i not in drawn or km is None:
            text += f" {label}: not available{f' ({d.note})' if d.note else ''}."
            continue
        last = km.points[-1]
        text += (
            f" {label}: {km.n} patients, {km.events} event{'s' if km.events != 1 else ''}, "
            f"{_median_text(km, months_of)}; {_pct(last.survival)} {free_of} at "
            f"{months_of(last.time):.1f} months."
        )
    return text


# --------------------------------------------------------------------------- PNG


def to_png(svg: str, *, scale: float = 2.0) -> bytes:
    """The chart as a PNG (CairoSVG), ``scale`` times its width and height in pixels (2: sharp on slides)."""
    if not svg.strip():
        raise Invalid("There is no chart to render.", "svg")
    if not scale > 0:
        raise Invalid(f"The scale must be positive, got {scale}.", "scale")
    try:
        import cairosvg
    except OSError as error:  # cairocffi could not load the C library
        raise ChartError(
            "Rendering charts as PNG needs the Cairo graphics library, which was not found: install "
            f"libcairo2 (Debian/Ubuntu: apt install libcairo2; macOS: brew install cairo). ({error})"
        ) from error
    return cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=scale)
