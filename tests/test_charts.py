"""The cohort charts (outcome, responders, Kaplan–Meier) as standalone SVG, and their PNG rendering.

Plain functions over :func:`stride.core.analysis.analyse` results of hand-made rows: no database.
"""

from __future__ import annotations

import re
import struct
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from stride.core import analysis, charts
from stride.core.analysis import DAYS_PER_MONTH, CohortResult, EpisodeRow
from stride.core.errors import Invalid, StrideError
from stride.core.instruments import instrument
from tests.libraries import require

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = {"baseline": 0, "1m": 1, "3m": 3, "6m": 6, "12m": 12, "24m": 24, "36m": 36}
MINIMUM = 5


def _row(
    key: str, scores: dict[str, float | None], *, followed: int = 6, retreated: int | None = None
) -> EpisodeRow:
    """An NPRS episode: answered where a score is given, missed where None, pending after ``followed``."""
    status: dict[str, str] = {}
    days: dict[str, int | None] = {}
    full: dict[str, float | None] = {}
    for code, months in MONTHS.items():
        value = scores.get(code)
        full[code] = value
        if months > followed:
            status[code], days[code] = "pending", None
        elif value is None:
            status[code], days[code] = "missed", None
        else:
            status[code], days[code] = "completed", round(months * DAYS_PER_MONTH)
    last = max((d for d in days.values() if d is not None), default=0)
    return EpisodeRow(
        key=key,
        age=52,
        sex="female",
        bmi=24.0,
        activity_level="",
        clinic="lakeside",
        condition="morton-neuroma",
        laterality="left",
        procedure_type="prp-injection",
        procedure_category="injection",
        injectate_kinds=("prp",),
        injectates=(),
        baseline=full["baseline"],
        scores=full,
        status=status,
        answer_days=days,
        retreated_days=retreated,
        surgery_days=None,
        ended_days=None,
        end_reason="",
        last_answer_days=last,
        censor_days=last if retreated is None else retreated,
    )


def _rows(prefix: str, table: list[tuple[Any, ...]]) -> list[EpisodeRow]:
    """Rows from (baseline, 1m, 3m, 6m, retreated days) tuples."""
    return [
        _row(f"{prefix}{i}", {"baseline": b, "1m": m1, "3m": m3, "6m": m6}, retreated=re_)
        for i, (b, m1, m3, m6, re_) in enumerate(table)
    ]


# PRP: everyone answers at 3 and 6 months (one misses 3); nobody at 1 month; two re-treated.
PRP = [
    (8, None, 5, 3, None),
    (7, None, 4, 2, None),
    (9, None, 6, 5, 150),
    (6, None, 5, 4, None),
    (8, None, None, 4, 160),
    (7, None, 3, 2, None),
]
# Steroid: 1 and 3 months answered by all, 6 months by only two (withheld under the minimum of 5).
STEROID = [
    (7, 6, 6, 5, None),
    (8, 7, 7, None, 100),
    (6, 6, 5, None, None),
    (9, 8, 8, 7, None),
    (7, 6, 6, None, 120),
    (8, 8, 7, None, None),
]
# Three patients: the whole cohort is under the minimum.
TINY = [(8, 7, 5, 4, None), (7, 6, 4, 3, None), (9, 9, 8, 6, None)]

NASTY = "<script>alert('x')</script> & \"co\""


def _cohorts(minimum: int | None = MINIMUM, label: str = "PRP") -> list[CohortResult]:
    nprs = instrument("nprs")
    return [
        analysis.analyse(label, _rows("p", PRP), nprs, "total", minimum=minimum),
        analysis.analyse("Steroid", _rows("s", STEROID), nprs, "total", minimum=minimum),
        analysis.analyse("Tiny", _rows("t", TINY), nprs, "total", minimum=minimum),
    ]


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _all(root: ET.Element, cls: str, **attrs: str) -> list[ET.Element]:
    """Elements whose class list holds ``cls`` (and with the given attribute values)."""
    found = []
    for element in root.iter():
        if cls not in (element.get("class") or "").split():
            continue
        if all(element.get(name.replace("_", "-")) == value for name, value in attrs.items()):
            found.append(element)
    return found


def _tip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None, ET.tostring(element)
    return title.text or ""


def _text(element: ET.Element) -> str:
    return "".join(element.itertext())


def svg_text(root: ET.Element) -> str:
    return " ".join(_text(e) for e in root.iter(f"{SVG}text"))


def _assert_standalone(root: ET.Element, shortest_desc: int = 40) -> None:
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {width:.0f} {height:.0f}"
    assert root.get("role") == "img"
    ids = root.get("aria-labelledby").split()
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert [title.get("id"), desc.get("id")] == ids
    assert title.text and desc.text and len(desc.text) >= shortest_desc


# --------------------------------------------------------------------------- outcome over time


def test_the_outcome_chart_is_a_standalone_svg_with_one_series_per_cohort() -> None:
    results = _cohorts()
    svg = charts.outcome_chart(results, title="Pain after PRP", y_range=(0, 10))
    root = _parse(svg)
    _assert_standalone(root)
    assert root.find(f"{SVG}title").text == "Pain after PRP"
    assert [e.get("data-series") for e in _all(root, "legend-item")] == ["0", "1", "2"]
    lines = [
        e for e in _all(root, "series") if "band" not in e.get("class") and "n-row" not in e.get("class")
    ]
    assert len(lines) == len(_all(root, "band")) == len(_all(root, "n-row")) == 3
    # a point per time point with a score: PRP at baseline, 3 and 6 months; Steroid not at 6 (withheld)
    for i, result in enumerate(results):
        expected = [
            p.timepoint for p in result.points if p.score is not None and p.score.n > 0 and p.months <= 6
        ]
        assert [e.get("data-timepoint") for e in _all(root, "datum", data_series=str(i))] == expected
    assert [e.get("data-timepoint") for e in _all(root, "datum", data_series="1")] == ["baseline", "1m", "3m"]
    assert _all(root, "datum", data_series="2") == []


def test_outcome_tooltips_and_data_attributes_carry_the_exact_figures() -> None:
    results = _cohorts()
    root = _parse(charts.outcome_chart(results, y_range=(0, 10)))
    score = results[0].point("3m").score
    assert score is not None and score.mean_ci is not None
    (point,) = _all(root, "datum", data_series="0", data_timepoint="3m")
    tip = _tip(point)
    assert f"mean {score.mean:.1f}" in tip
    assert f"95% CI {score.mean_ci[0]:.1f} to {score.mean_ci[1]:.1f}" in tip
    assert f"N = {score.n}" in tip and tip.startswith("PRP — 3 months")
    assert float(point.get("data-estimate")) == pytest.approx(score.mean, abs=1e-4)
    assert float(point.get("data-ci-low")) == pytest.approx(score.mean_ci[0], abs=1e-4)
    assert point.get("data-n") == str(score.n) == "5"
    assert "lower is better" in svg_text(root)


def test_the_n_row_shows_withheld_and_missing_time_points() -> None:
    results = _cohorts()
    root = _parse(charts.outcome_chart(results, y_range=(0, 10)))
    rows = _all(root, "n-row")
    cells = [[(c.get("data-months"), c.text) for c in _all(row, "n-cell")] for row in rows]
    # columns 0, 1, 3, 6 months: nothing later was due
    assert [m for m, _ in cells[0]] == ["0", "1", "3", "6"]
    assert cells[0] == [("0", "6"), ("1", "–"), ("3", "5"), ("6", "6")]
    assert cells[1] == [("0", "6"), ("1", "6"), ("3", "6"), ("6", "withheld")]
    assert [text for _, text in cells[2]] == ["withheld"] * 4
    withheld = next(c for c in _all(rows[1], "n-cell") if c.text == "withheld")
    assert "fewer than 5 patients" in _tip(withheld)
    legend = _all(root, "legend-item", data_series="2")[0]
    assert "withheld" in _text(legend)
    desc = root.find(f"{SVG}desc").text
    assert "Steroid" in desc and "withheld at 6 months" in desc


def test_the_change_chart_leaves_out_the_baseline_and_marks_the_mcid() -> None:
    results = _cohorts()
    root = _parse(charts.outcome_chart(results, measure="change", statistic="median"))
    assert not _all(root, "datum", data_timepoint="baseline")
    change = results[0].point("6m").change
    assert change is not None and change.median_ci is not None
    (point,) = _all(root, "datum", data_series="0", data_timepoint="6m")
    ci = f"95% CI {change.median_ci[0]:.1f} to {change.median_ci[1]:.1f}"
    coverage = f"exact coverage {100 * change.median_ci_coverage:.1f}%"  # order statistics: at least 95 %
    assert f"median {change.median:.1f} ({ci}, {coverage}), N = {change.n}" in _tip(point)
    (mcid,) = _all(root, "mcid")
    assert "MCID -2" in _text(mcid)  # NPRS: lower is better, so the MCID is 2 points down
    ticks = [
        float(t.text)
        for t in root.iter(f"{SVG}text")
        if t.get("text-anchor") == "end" and re.fullmatch(r"-?\d+", t.text or "")
    ]  # the y axis's labels
    assert min(ticks) == -max(ticks)  # a symmetric axis around 0


def test_a_cohort_name_is_escaped_everywhere() -> None:
    results = _cohorts(label=NASTY + "\x07")
    for svg in (
        charts.outcome_chart(results, y_range=(0, 10)),
        charts.responder_chart(results, "mcid"),
        charts.km_chart([(r.label, r.durability) for r in results], minimum=MINIMUM),
    ):
        assert "<script>" not in svg and "\x07" not in svg
        root = _parse(svg)  # well formed despite quotes, ampersands and a control character
        (legend,) = _all(root, "legend-item", data_series="0")
        assert legend.get("data-label") == NASTY
        assert _text(legend).startswith(NASTY)


def test_charts_refuse_unknown_options_and_say_when_there_is_nothing_to_draw() -> None:
    with pytest.raises(Invalid, match="measure"):
        charts.outcome_chart(_cohorts(), measure="percent")
    with pytest.raises(Invalid, match="statistic"):
        charts.outcome_chart(_cohorts(), statistic="mode")
    with pytest.raises(Invalid, match="they have mcid, substantial"):
        charts.responder_chart(_cohorts(), "halved")
    for svg in (charts.outcome_chart([]), charts.responder_chart([], "mcid"), charts.km_chart([])):
        root = _parse(svg)
        _assert_standalone(root, shortest_desc=10)
        assert "No cohorts to show." in svg_text(root)
    tiny = _cohorts()[2:]
    for svg in (charts.outcome_chart(tiny), charts.responder_chart(tiny, "mcid")):
        assert "every cohort is smaller than the small-cell minimum" in svg_text(_parse(svg))


def test_ids_are_unique_per_chart_and_stable() -> None:
    results = _cohorts()
    one = charts.outcome_chart(results, y_range=(0, 10))
    assert one == charts.outcome_chart(results, y_range=(0, 10))
    ids = [
        re.findall(r' id="([^"]+)"', svg) for svg in (one, charts.outcome_chart(results, measure="change"))
    ]
    assert ids[0] and not set(ids[0]) & set(ids[1])


def test_cohorts_differ_by_more_than_colour() -> None:
    root = _parse(charts.outcome_chart(_cohorts(), y_range=(0, 10)))
    looks = []
    for i in range(3):
        (swatch,) = [e for e in _all(root, "legend-item", data_series=str(i))[0] if e.tag == f"{SVG}line"]
        looks.append(swatch.get("stroke-dasharray"))
    assert len(set(looks)) == 3
    assert {c.upper() for c in charts.PALETTE} <= {
        "#000000",
        "#E69F00",
        "#56B4E9",
        "#009E73",
        "#F0E442",
        "#0072B2",
        "#D55E00",
        "#CC79A7",
    }  # Okabe–Ito


# --------------------------------------------------------------------------- responders


def test_the_responder_chart_has_one_bar_per_cohort_and_time_point_with_k_over_n() -> None:
    results = _cohorts()
    root = _parse(charts.responder_chart(results, "mcid", title="Responders"))
    _assert_standalone(root)
    bars = [e for e in _all(root, "datum") if e.tag == f"{SVG}rect"]
    expected = []
    for i, result in enumerate(results):
        for point in result.points:
            for line in point.responders:
                if line.definition == "mcid" and line.rate is not None and line.rate.answered.n:
                    expected.append((str(i), point.timepoint, line.rate))
    assert [(b.get("data-series"), b.get("data-timepoint")) for b in bars] == [(s, t) for s, t, _ in expected]
    series, timepoint, rate = expected[0]
    (bar,) = [b for b in bars if (b.get("data-series"), b.get("data-timepoint")) == (series, timepoint)]
    ans, sens = rate.answered, rate.sensitivity
    tip = _tip(bar)
    assert f"{100 * ans.p:.0f}% responders ({ans.k}/{ans.n} who answered" in tip
    assert f"CI {100 * ans.low:.0f}% to {100 * ans.high:.0f}%" in tip
    assert f"non-responders: {100 * sens.p:.0f}% ({sens.k}/{sens.n}" in tip
    assert bar.get("data-k") == str(ans.k) and bar.get("data-total") == str(rate.total)
    kn = [e.text for e in _all(root, "kn")]
    assert f"{ans.k}/{ans.n}" in kn
    assert len(_all(root, "sensitivity")) == len(bars)
    assert "Responder definition: Clinically important" in svg_text(root)
    assert {"0%", "25%", "50%", "75%", "100%"} <= set(svg_text(root).split())


def test_withheld_responder_rates_are_labelled() -> None:
    results = _cohorts()
    root = _parse(charts.responder_chart(results, "substantial"))
    steroid_6m = results[1].point("6m").responders
    assert [line.rate for line in steroid_6m] == [None, None]  # 2 answered of 6 due: under the minimum
    labels = [t for t in root.iter(f"{SVG}text") if t.text == "withheld"]
    assert labels and any("Steroid — 6 months: withheld (fewer than 5 patients)" in _tip(t) for t in labels)
    assert "withheld at 6 months" in root.find(f"{SVG}desc").text


# --------------------------------------------------------------------------- Kaplan–Meier


def test_the_km_chart_draws_steps_censoring_and_the_at_risk_table() -> None:
    results = _cohorts()
    curves = [(r.label, r.durability) for r in results]
    root = _parse(charts.km_chart(curves, title="Time to re-treatment", minimum=MINIMUM))
    _assert_standalone(root)
    drawn = [(i, d) for i, (_, d) in enumerate(curves) if d.km is not None]
    assert [i for i, _ in drawn] == [0, 1]  # Tiny is withheld
    assert "Tiny — not available" in svg_text(root)
    for i, durability in drawn:
        km = durability.km
        censored = [p for p in km.points if p.censored]
        assert len(_all(root, "censor", data_series=str(i))) == len(censored)
        events = [e for e in _all(root, "datum", data_series=str(i)) if e.tag == f"{SVG}circle"]
        assert len(events) == sum(1 for p in km.points if p.events)
        row = _all(root, "at-risk-row", data_series=str(i))[0]
        cells = _all(row, "at-risk")
        assert [int(c.get("data-at-risk")) for c in cells] == [a.at_risk for a in durability.at_risk]
        assert [c.text for c in cells] == [
            str(a.at_risk) if a.at_risk >= 0 else "<5" for a in durability.at_risk
        ]
    event = next(e for e in _all(root, "datum", data_series="0") if e.tag == f"{SVG}circle")
    assert "free of re-treatment at" in _tip(event) and "at risk" in _tip(event)
    assert "Number at risk" in svg_text(root)


def test_withheld_at_risk_counts_read_below_the_minimum() -> None:
    results = _cohorts()
    at_risk = results[0].durability.at_risk
    assert any(a.at_risk == -1 for a in at_risk)  # the small-cell rule hid a tail count
    root = _parse(charts.km_chart([(results[0].label, results[0].durability)], minimum=MINIMUM))
    hidden = [c for c in _all(root, "at-risk") if c.get("data-at-risk") == "-1"]
    assert hidden and all(c.text == "<5" and "fewer than 5 at risk" in _tip(c) for c in hidden)
    months = [float(c.get("data-months")) for c in _all(root, "at-risk")]
    assert months == pytest.approx([a.time / DAYS_PER_MONTH for a in at_risk], abs=1e-3)


def test_a_km_chart_without_any_curve_says_so() -> None:
    results = _cohorts()[2:]
    svg = charts.km_chart([(r.label, r.durability) for r in results], minimum=MINIMUM)
    assert "No Kaplan–Meier curve to show" in svg_text(_parse(svg))


# --------------------------------------------------------------------------- PNG


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return struct.unpack(">II", png[16:24])


def test_to_png_renders_each_chart_at_the_scale_asked() -> None:
    require("cairosvg")
    results = _cohorts()
    for svg in (
        charts.outcome_chart(results, y_range=(0, 10)),
        charts.responder_chart(results, "mcid"),
        charts.km_chart([(r.label, r.durability) for r in results], minimum=MINIMUM),
    ):
        root = _parse(svg)
        width, height = float(root.get("width")), float(root.get("height"))
        assert _png_size(charts.to_png(svg)) == (round(2 * width), round(2 * height))
        assert _png_size(charts.to_png(svg, scale=1)) == (round(width), round(height))


def test_to_png_explains_a_missing_cairo_library(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoCairo:
        def find_spec(self, name: str, *args: Any) -> None:
            if name == "cairosvg" or name.startswith("cairosvg."):
                raise OSError('no library called "cairo-2" was found')

    monkeypatch.delitem(sys.modules, "cairosvg", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoCairo(), *sys.meta_path])
    with pytest.raises(StrideError, match="libcairo2") as caught:
        charts.to_png(charts.outcome_chart(_cohorts(), y_range=(0, 10)))
    assert isinstance(caught.value, RuntimeError)
    with pytest.raises(Invalid):
        charts.to_png("")
