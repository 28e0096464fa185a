"""Cohort reports: the analysis of one or more cohorts, as HTML, PDF, CSV and JSON.

:func:`cohort_report` reads each cohort's de-identified rows
(:func:`stride.analytics.dataset.analysis_rows`), analyses them
(:mod:`stride.core.analysis`) and returns a :class:`CohortReport`: plain
data, no database handles. The renderers turn that one object into every
format, so the page, the PDF, the CSV and the JSON always carry the same
numbers:

- :func:`render_html` — a standalone HTML document (the PDF is this document);
- :func:`render_pdf` — WeasyPrint over the same HTML, charts as vector SVG;
- :func:`render_csv` — every number of the report, one per line (tidy long format);
- :func:`report_json` — the same numbers as JSON.

A report withholds small groups (``minimum``) when it is made for a viewer
who may not see every patient behind it (researchers) or when its maker asks
for it (anything meant to be shared).

An image measurement (``img-<type code>``, scale ``value``) is reported like a
score, in its unit (outcome curves and change from baseline in mm, cm² or
degrees), without responder rates (no responder definition exists for image
measurements) and with method notes that say how images are placed in time
points and what "due" means for imaging.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from stride import __version__
from stride.analytics.dataset import analysis_rows, measure_instrument, measurement_type_of
from stride.clinics.models import Clinic
from stride.core import analysis, charts, cohorts
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure
from stride.core import schedule as core_schedule
from stride.core.catalog import catalog
from stride.core.errors import Invalid, StrideError

Progress = Callable[[str], None]

#: The steps a report goes through, for progress bars: rows and analysis per cohort, then these.
FINAL_STEPS = ("comparison", "table 1")


class MissingLibrary(StrideError):
    """A system library a format needs (Pango for PDF, Cairo for PNG) is not installed."""


#: How an image measurement's unit reads in names, axes and tables.
_UNIT_TEXT = {"mm": "mm", "mm2": "mm²", "cm2": "cm²", "deg": "°", "ratio": "ratio"}


def measure_unit(mtype: core_measure.MeasurementType) -> str:
    """The unit of an image measurement type as a reader sees it: ``mm``, ``cm²``, ``°``, ``grade 0–3``."""
    if mtype.is_grade:
        low, high = mtype.range
        return f"grade {low:g}–{high:g}"
    return _UNIT_TEXT.get(mtype.unit, mtype.unit)


@dataclass(frozen=True)
class CohortReport:
    """Everything a cohort report shows; the renderers only lay it out."""

    title: str
    generated_at: dt.datetime
    generated_by: str
    clinics: tuple[str, ...]  # names of the clinics the figures come from
    labels: tuple[str, ...]
    descriptions: tuple[str, ...]  # each cohort's definition in words
    specs: tuple[cohorts.CohortSpec, ...]
    instrument: core_instruments.Instrument
    scale: str
    event: str
    timepoint: str  # the time point of the adjusted comparison
    minimum: int | None  # the small-cell minimum applied (None: figures shown whatever their size)
    results: tuple[analysis.CohortResult, ...]
    table1: tuple[analysis.Table1Row, ...]
    comparison: analysis.Comparison | None
    notes: tuple[str, ...] = ()  # what could not be done, and why
    software: str = field(default_factory=lambda: f"Stride {__version__}")

    @property
    def scale_definition(self) -> core_instruments.Scale:
        return self.instrument.scale(self.scale)

    @property
    def image_type(self) -> core_measure.MeasurementType | None:
        """The image measurement type analysed, or ``None`` for a questionnaire."""
        return measurement_type_of(self.instrument.code)

    @property
    def unit(self) -> str:
        """The measure's unit: an image measurement's (``mm``, ``grade 0–3``), else the scale's."""
        mtype = self.image_type
        return measure_unit(mtype) if mtype is not None else self.scale_definition.unit

    @property
    def measure(self) -> str:
        scale = self.scale_definition
        if self.image_type is not None:
            return f"{self.instrument.short_name} ({self.unit})"
        if len(self.instrument.scales) == 1:
            return self.instrument.short_name
        return f"{self.instrument.short_name} — {scale.name}"

    @property
    def definitions(self) -> list[analysis.ResponderLine]:
        """The responder definitions used (from the first follow-up time point), default first."""
        for result in self.results:
            for point in result.points:
                if point.responders:
                    return list(point.responders)
        return []

    @property
    def version(self) -> str:
        return f"{self.instrument.code} v{self.instrument.version}"


# --------------------------------------------------------------------------- building


def cohort_report(
    cohort_specs: Sequence[tuple[str, cohorts.CohortSpec]],
    *,
    clinic_ids: Iterable[int] | None,
    instrument: str,
    scale: str,
    event: str = analysis.DEFAULT_EVENT,
    timepoint: str = "6m",
    minimum: int | None = None,
    title: str = "",
    generated_by: str = "",
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> CohortReport:
    """Analyse each ``(label, spec)`` cohort on ``instrument``/``scale`` within ``clinic_ids``.

    ``clinic_ids`` is the viewer's reach (``access.clinic_ids(user, Action.VIEW_AGGREGATES)``;
    ``None``: every clinic). Labels must be distinct. ``progress`` is called with the name of each
    step as it finishes (one per cohort, then :data:`FINAL_STEPS`).
    """
    if not cohort_specs:
        raise Invalid("Choose at least one cohort.", "cohorts")
    labels = [label.strip() for label, _ in cohort_specs]
    if any(not label for label in labels):
        raise Invalid("Every cohort needs a name.", "cohorts")
    if len(set(labels)) != len(labels):
        raise Invalid("Two cohorts have the same name; name them apart.", "cohorts")
    if event not in analysis.EVENTS:
        raise Invalid(f"Unknown event {event!r}; choose one of {', '.join(analysis.EVENTS)}.", "event")
    if timepoint not in analysis.timepoints()[1:]:
        raise Invalid(f"{timepoint!r} is not a follow-up time point.", "timepoint")
    if minimum is not None and minimum < 1:
        raise Invalid(f"The small-cell minimum must be at least 1, got {minimum}.", "minimum")
    definition = measure_instrument(instrument)
    definition.scale(scale)
    mtype = measurement_type_of(instrument)
    unit = measure_unit(mtype) if mtype is not None else ""
    step = progress or (lambda name: None)

    groups: dict[str, list[analysis.EpisodeRow]] = {}
    results = []
    for label, (_, spec) in zip(labels, cohort_specs, strict=True):
        rows = analysis_rows(spec, clinic_ids, instrument, scale, today=today)
        groups[label] = rows
        result = analysis.analyse(label, rows, definition, scale, event=event, minimum=minimum)
        if mtype is not None:
            # Named with its unit, so every chart's axis says what the numbers are in.
            result = dataclasses.replace(result, instrument_name=f"{definition.short_name} ({unit})")
        results.append(result)
        step(label)
    comparison = None
    notes: list[str] = []
    if mtype is not None:
        notes.append(_no_responders(mtype))
    if len(groups) > 1:
        comparable = groups
        if minimum is not None:
            small = [label for label, rows in groups.items() if 0 < len(rows) < minimum]
            if small:
                notes.append(
                    f"No comparison: {', '.join(small)} has fewer than {minimum} index treatments "
                    "(small groups are withheld)."
                )
                comparable = {}
        if comparable:
            comparison = analysis.compare(comparable, definition, scale, timepoint=timepoint, event=event)
    step(FINAL_STEPS[0])
    table1 = analysis.table_one(groups, minimum=minimum, labels=_code_names())
    if mtype is not None:
        baseline = f"{mtype.name} at baseline ({unit})"
        table1 = tuple(
            dataclasses.replace(row, characteristic=baseline)
            if row.kind == "continuous" and row.characteristic == "Baseline score"
            else row
            for row in table1
        )
    step(FINAL_STEPS[1])
    names = Clinic.objects.order_by("name")
    if clinic_ids is not None:
        names = names.filter(pk__in=list(clinic_ids))
    name = definition.short_name if mtype is None else f"{definition.short_name} ({unit})"
    return CohortReport(
        title=title.strip() or f"{name}: " + " vs ".join(labels),
        generated_at=timezone.now(),
        generated_by=generated_by,
        clinics=tuple(names.values_list("name", flat=True)),
        labels=tuple(labels),
        descriptions=tuple(cohorts.describe(spec) for _, spec in cohort_specs),
        specs=tuple(spec for _, spec in cohort_specs),
        instrument=definition,
        scale=scale,
        event=event,
        timepoint=timepoint,
        minimum=minimum,
        results=tuple(results),
        table1=table1,
        comparison=comparison,
        notes=tuple(notes),
    )


def _no_responders(mtype: core_measure.MeasurementType) -> str:
    """Why an image measurement has no responder rates (the report's notes and its methods)."""
    return (
        "No responder rates: no responder definition exists for image measurements. The imaging "
        f"catalog fixes no threshold that links a change in {mtype.name} to how the patient is, so the "
        f"change is reported as measured, in {measure_unit(mtype)}, to be judged against the "
        "measurement error (see the measurement's note in the methods); loss of response cannot be "
        "studied either."
    )


def _code_names() -> dict[str, dict[str, str]]:
    """Names for the codes Table 1 shows (conditions, procedures, injectate kinds, ...)."""
    cat = catalog()
    return {
        "condition": {code: c.name for code, c in cat.conditions.items()},
        "procedure_type": {code: p.name for code, p in cat.procedures.items()},
        "injectate_kinds": {code: k.name for code, k in cat.injectate_kinds.items()},
        "sex": {s: s.capitalize() for s in cohorts.SEXES},
        "activity_level": {a: a.capitalize() for a in cohorts.ACTIVITY_LEVELS},
        "laterality": {"left": "Left", "right": "Right", "bilateral": "Both sides"},
        "clinic": dict(Clinic.objects.values_list("slug", "name")),
    }


# --------------------------------------------------------------------------- method notes


def method_notes(report: CohortReport) -> list[tuple[str, str]]:
    """(heading, text) paragraphs saying how every figure was made."""
    plan = core_schedule.schedule()
    windows = ", ".join(
        f"{p.name} (−{p.days_before}/+{p.days_after} days)" for p in plan.timepoints if p.code != "baseline"
    )
    scale = report.scale_definition
    level = analysis.stats.LEVEL
    mtype = report.image_type
    if mtype is not None:
        baseline = plan.timepoints[0]
        return _image_method_notes(report, mtype, windows, baseline.days_before)
    notes = [
        _who_is_counted(report),
        (
            "Time points",
            f"Follow-up is anchored to the index date; questionnaires count for a time point when answered "
            f"within its window: {windows}. Answers after a window closed are kept in the record but "
            "not counted. A time point is due when its window has opened.",
        ),
        (
            "Outcome",
            f"{report.measure} ({report.version}), range {scale.range[0]:g}–{scale.range[1]:g}, "
            f"{'higher is better' if scale.higher_is_better else 'lower is better'}"
            + (f"; MCID {scale.mcid:g} points" if scale.mcid else "")
            + ". "
            + analysis.stats.summary_method(level)
            + " Change from baseline uses patients with both values.",
        ),
    ]
    definitions = report.definitions
    if definitions:
        notes.append(
            (
                "Responders",
                "Responder definitions are fixed per instrument in its versioned catalog file before any "
                f"result is seen; this report used {report.version}: "
                + "; ".join(f"'{line.definition}' — {line.description}" for line in definitions)
                + f". Rates are responders among patients who answered, with {level:.0%} Wilson score "
                "intervals; beside each, the sensitivity rate counts every patient due who did not "
                "answer (missed, window still open) as a non-responder.",
            )
        )
    else:
        missing = f"{report.instrument.short_name} has no responder definition in its catalog file"
        notes.append(("Responders", f"{missing}: {report.instrument.responder.note}"))
    return notes + _closing_notes(report)


def _who_is_counted(report: CohortReport) -> tuple[str, str]:
    cohorts_ = "; ".join(
        f"{label}: {text.rstrip('.')}" for label, text in zip(report.labels, report.descriptions, strict=True)
    )
    return (
        "Who is counted",
        "Each row is one index treatment (an episode of follow-up) of a patient whose registry "
        f"consent stands; patients who withdrew consent are never included. The cohorts: {cohorts_}.",
    )


def _closing_notes(report: CohortReport, censoring: str = "") -> list[tuple[str, str]]:
    """Durability, comparison, small groups and software: the same for every measure."""
    notes = []
    durability = next((r.durability for r in report.results if r.durability.method), None)
    if durability is not None:
        notes.append(("Durability", f"{durability.method} {censoring}".strip()))
    comparison = report.comparison
    if comparison is not None:
        parts = []
        if comparison.logrank:
            parts.append(comparison.logrank.method)
        if comparison.cox:
            parts.append(comparison.cox.method.replace("female", "sex (female or not)"))
        for adjusted in comparison.adjusted:
            parts.append(adjusted.method.replace("female", "sex (female or not)"))
            break
        parts.extend(comparison.notes)
        notes.append(("Comparison", " ".join(parts)))
    if report.minimum is not None:
        notes.append(
            (
                "Small groups",
                f"Every figure resting on fewer than {report.minimum} patients (but more than none) is "
                "withheld, as are Table 1 counts under that size; Kaplan–Meier curves stop where fewer "
                f"than {report.minimum} remain at risk.",
            )
        )
    notes.append(
        (
            "Software",
            f"{report.software}; statistics by lifelines, statsmodels and scipy. "
            f"Generated {timezone.localtime(report.generated_at):%Y-%m-%d %H:%M %Z}"
            + (f" by {report.generated_by}" if report.generated_by else "")
            + ".",
        )
    )
    return notes


def _image_method_notes(
    report: CohortReport, mtype: core_measure.MeasurementType, windows: str, before: int
) -> list[tuple[str, str]]:
    """The method notes of a report on an image measurement."""
    unit = measure_unit(mtype)
    level = analysis.stats.LEVEL
    low, high = mtype.range
    direction = {
        "higher-better": "higher is better",
        "lower-better": "lower is better",
    }.get(mtype.direction, "no better direction is set, so a change is neither better nor worse by itself")
    spread = f"grades {low:g}–{high:g}" if mtype.is_grade else f"plausible range {low:g}–{high:g} {unit}"
    outcome = (
        f"{mtype.name} ({report.version}, measured on images in {unit}; {spread}; {direction}). "
        + (f"{mtype.note} " if mtype.note else "")
        + analysis.stats.summary_method(level)
        + " Change from baseline uses patients measured at both time points."
    )
    if mtype.is_grade:
        outcome += (
            f" {mtype.name} is an ordinal grade: means of grades (and of their changes) are descriptive, "
            "a summary of where the cohort lies on the scale rather than an amount; read the medians "
            "alongside them."
        )
    notes = [
        _who_is_counted(report),
        (
            "Measurements counted",
            f"A measurement of {mtype.name} counts for an episode when its image belongs to the episode's "
            "condition and shows the condition's side (images of the other foot, taken for comparison, "
            "do not count; a bilateral condition takes either side), its site (or its image's) is the "
            "condition's site when both are recorded, and — for a length or an area — the image was "
            "calibrated, so values in pixels never mix with values in millimetres. Angles, ratios and "
            "grades need no calibration. Measurements taken after the episode ended (a re-treatment, a "
            "withdrawal, a stop) do not count for it.",
        ),
        (
            "Time points",
            "Follow-up is anchored to the index date, with the questionnaires' windows: a measurement "
            "counts for the time point whose window holds the date its image was taken — the baseline "
            f"from {before} days before the index treatment up to its day, then {windows}. Images outside "
            "every window are not counted. Within a time point the images of the day nearest the "
            "target day count (the earlier of two days equally near); the value is the mean of those "
            "images, each the mean of its measurements of the type.",
        ),
        (
            "Completeness",
            "Imaging follows the clinic's protocol, not an invitation the patient answers: a time point "
            "counts as due once its window has closed or an image was measured in it, and 'answered' "
            "means measured. Completeness therefore reads measured / reached the time point; a time "
            "point with its window still open and nothing measured is not yet due. A time point the "
            "protocol did not image counts as missed.",
        ),
        ("Outcome", outcome),
        ("Responders", _no_responders(mtype)),
    ]
    censoring = (
        "For an image measurement the last answered follow-up is the last counted measurement."
        if report.event != "loss-of-response"
        else ""
    )
    return notes + _closing_notes(report, censoring)


# --------------------------------------------------------------------------- charts


def report_charts(report: CohortReport) -> list[dict[str, str]]:
    """The report's figures as SVG: outcome curves (score, change), responder bars, Kaplan–Meier."""
    scale = report.scale_definition
    results = [r for r in report.results if not r.withheld]
    mtype = report.image_type
    # An image measurement's plausible range is far wider than its values: its axis follows the data.
    y_range = scale.range if mtype is None or mtype.is_grade else None
    noun = "score" if mtype is None else "value"
    figures = [
        {
            "name": "outcome-score",
            "title": f"{report.measure}: mean {noun} with {analysis.stats.LEVEL:.0%} CI",
            "svg": charts.outcome_chart(results, measure="score", y_range=y_range),
        }
    ]
    if report.instrument.baseline:
        figures.append(
            {
                "name": "outcome-change",
                "title": f"{report.measure}: mean change from baseline with {analysis.stats.LEVEL:.0%} CI",
                "svg": charts.outcome_chart(results, measure="change"),
            }
        )
    for line in report.definitions:
        figures.append(
            {
                "name": f"responders-{line.definition}",
                "title": f"Responders ({line.definition}: {line.description})",
                "svg": charts.responder_chart(results, line.definition),
            }
        )
    curves = [(r.label, r.durability) for r in results]
    if any(d.km is not None for _, d in curves):
        figures.append(
            {
                "name": "durability",
                "title": f"Time to {analysis.EVENTS[report.event]} (Kaplan–Meier)",
                "svg": charts.km_chart(curves, minimum=report.minimum),
            }
        )
    return figures


# --------------------------------------------------------------------------- HTML and PDF


def _context(report: CohortReport, figures: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "report": report,
        "figures": report_charts(report) if figures is None else figures,
        "methods": method_notes(report),
        "event_name": analysis.EVENTS[report.event],
        "months": {p.code: p.name for p in core_schedule.schedule().timepoints},
        "rows_by_label": list(zip(report.labels, report.descriptions, report.results, strict=True)),
        "completeness": completeness_lines(report),
    }


def completeness_lines(report: CohortReport) -> list[tuple[str, list[tuple[str, int | None, int | None]]]]:
    """Per cohort, (time point, answered, due) for every follow-up time point that is due for anyone:
    the line printed under each figure, so no figure is read without its missing patients."""
    lines = []
    for result in report.results:
        if result.withheld:
            continue
        points = [
            (point.timepoint, point.flow.answered, point.flow.due)
            for point in result.points
            if point.timepoint != "baseline" and point.flow.due != 0
        ]
        lines.append((result.label, points))
    return lines


def render_body(report: CohortReport, figures: list[dict[str, str]] | None = None) -> str:
    """The report's body, for a page that already has its own header and styles (``figures``: the
    charts when the caller has drawn them already)."""
    return render_to_string("analytics/_cohort_report.html", _context(report, figures))


def render_html(report: CohortReport) -> str:
    """The report as one standalone HTML document (styles inline, charts as inline SVG)."""
    return render_to_string("analytics/cohort_report_document.html", _context(report))


def html_to_pdf(html: str) -> bytes:
    """PDF of a standalone HTML document (WeasyPrint; needs the Pango library)."""
    try:
        import weasyprint
    except OSError as error:  # WeasyPrint loads Pango when imported
        raise MissingLibrary(
            "PDF reports need the Pango library (Debian/Ubuntu: apt install libpango-1.0-0 "
            f"libpangoft2-1.0-0). The HTML report works without it. ({error})"
        ) from None
    return weasyprint.HTML(string=html, base_url=None).write_pdf()


def render_pdf(report: CohortReport) -> bytes:
    return html_to_pdf(render_html(report))


# --------------------------------------------------------------------------- CSV and JSON

CSV_COLUMNS = ("section", "cohort", "timepoint", "item", "level", "statistic", "value")
WITHHELD = "withheld"


def _number(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else round(value, 6)
    return "" if value is None else value


def _summary(prefix: str, summary: analysis.stats.Summary | None) -> Iterator[tuple[str, str, Any]]:
    if summary is None:
        yield prefix, "n", WITHHELD
        return
    yield prefix, "n", summary.n
    yield prefix, "mean", summary.mean
    yield prefix, "mean_ci_low", summary.mean_ci[0] if summary.mean_ci else None
    yield prefix, "mean_ci_high", summary.mean_ci[1] if summary.mean_ci else None
    yield prefix, "sd", summary.sd
    yield prefix, "median", summary.median
    yield prefix, "median_ci_low", summary.median_ci[0] if summary.median_ci else None
    yield prefix, "median_ci_high", summary.median_ci[1] if summary.median_ci else None
    yield prefix, "missing", summary.dropped


def report_numbers(report: CohortReport) -> Iterator[tuple[Any, ...]]:
    """Every number of the report as (section, cohort, timepoint, item, level, statistic, value)."""
    for row in report.table1:
        for label, cell in zip(report.labels, row.cells, strict=True):
            where = ("table1", label, "", row.characteristic, row.level)
            if cell.hidden:
                yield (*where, "count", WITHHELD)
                continue
            stats_: tuple[tuple[str, Any], ...]
            if row.kind == "continuous":
                stats_ = (
                    ("n", cell.n),
                    ("mean", cell.mean),
                    ("sd", cell.sd),
                    ("median", cell.median),
                    ("q1", cell.q1),
                    ("q3", cell.q3),
                    ("missing", cell.missing),
                )
            elif row.kind == "count":
                stats_ = (("count", cell.count),)
            else:
                stats_ = (("count", cell.count), ("percent", cell.percent))
            for name, value in stats_:
                yield (*where, name, value)
    # An image measurement's outcome figures carry its unit in the level column ("mm").
    unit = report.unit if report.image_type is not None else ""
    for result in report.results:
        yield from _cohort_numbers(result, unit)
    comparison = report.comparison
    if comparison is not None:
        yield from _comparison_numbers(comparison)


def _cohort_numbers(result: analysis.CohortResult, unit: str = "") -> Iterator[tuple[Any, ...]]:
    label = result.label
    if result.withheld:
        yield ("cohort", label, "", "index treatments", "", "n", WITHHELD)
        return
    yield ("cohort", label, "", "index treatments", "", "n", result.n)
    for point in result.points:
        at = point.timepoint
        for name, value in point.flow.as_dict().items():
            if name != "timepoint":
                yield ("flow", label, at, name, "", "count", WITHHELD if value is None else value)
        for item, statistic, value in _summary("score", point.score):
            yield ("outcome", label, at, item, unit, statistic, value)
        if at != "baseline":
            for item, statistic, value in _summary("change", point.change):
                yield ("outcome", label, at, item, unit, statistic, value)
        for line in point.responders:
            level = f"{line.definition} ({line.version})"
            rate = line.rate
            if rate is None:
                yield ("responders", label, at, "answered", level, "n", WITHHELD)
                continue
            for item, share in (("answered", rate.answered), ("missing-as-non-responder", rate.sensitivity)):
                for statistic in ("k", "n", "p", "low", "high"):
                    yield ("responders", label, at, item, level, statistic, getattr(share, statistic))
            yield ("responders", label, at, "missing", level, "count", rate.missing)
    durability = result.durability
    event = durability.event
    km = durability.km
    if km is None:
        return
    for statistic, value in (
        ("n", km.n),
        ("events", km.events),
        ("median_days", km.median),
        ("median_ci_low_days", km.median_ci[0]),
        ("median_ci_high_days", km.median_ci[1]),
        ("not_at_risk", WITHHELD if durability.excluded is None else durability.excluded),
    ):
        yield ("durability", label, "", event, "", statistic, value)
    for p in km.points:
        for statistic in ("survival", "ci_low", "ci_high", "at_risk", "events", "censored"):
            yield ("km", label, "", event, f"day {p.time:g}", statistic, getattr(p, statistic))
    for row in durability.at_risk:
        value = WITHHELD if row.at_risk < 0 else row.at_risk
        yield ("at-risk", label, "", event, f"day {row.time:g}", "at_risk", value)


def _comparison_numbers(comparison: analysis.Comparison) -> Iterator[tuple[Any, ...]]:
    if comparison.logrank:
        for statistic in ("statistic", "df", "p", "n", "events"):
            value = getattr(comparison.logrank, statistic)
            yield ("comparison", "", "", "log-rank", comparison.event, statistic, value)
    if comparison.cox:
        for term in comparison.cox.terms:
            for statistic in ("coef", "se", "hr", "ci_low", "ci_high", "p"):
                yield ("comparison", "", "", "cox", term.name, statistic, getattr(term, statistic))
        yield ("comparison", "", "", "cox", "", "n", comparison.cox.n)
        yield ("comparison", "", "", "cox", "", "events", comparison.cox.events)
    for adjusted in comparison.adjusted:
        for statistic, value in (
            ("estimate", adjusted.estimate),
            ("ci_low", adjusted.ci[0]),
            ("ci_high", adjusted.ci[1]),
            ("p", adjusted.p),
            ("n", adjusted.n),
        ):
            yield ("comparison", "", comparison.timepoint, "adjusted change", adjusted.term, statistic, value)


def render_csv(report: CohortReport) -> str:
    """Every number of the report, one per line, with a header naming the columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report_numbers(report):
        writer.writerow([_number(value) for value in row])
    return out.getvalue()


def as_plain(value: Any) -> Any:
    """Dataclasses, mappings and sequences as JSON-ready data (an instrument as its code and version)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, core_instruments.Instrument):
            return {"code": value.code, "version": value.version, "name": value.name}
        return {f.name: as_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(report: CohortReport) -> dict[str, Any]:
    """The report as JSON-ready data (cohort definitions, results, Table 1, comparison, methods)."""
    data = as_plain(report)
    data["measure"] = report.measure
    data["unit"] = report.unit
    data["specs"] = [spec.to_dict() for spec in report.specs]
    data["methods"] = [{"heading": h, "text": t} for h, t in method_notes(report)]
    return data
