"""Case reports: one patient's story written from the record, as HTML and PDF.

A case report tells what was wrong, what was tried before, what was done
(with every injectate's details), and how the patient's scores moved, with
the treatments marked on the charts, followed by the clinician's own
narrative paragraph.

It is de-identified unless its maker asks otherwise and may see the patient:
no name, record number, date of birth or free-text notes (which may name
people), dates given as days from the first index treatment and the age at
that day; the score charts count months from that day instead of showing
dates. The identified version carries the name, record number and dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from stride import __version__
from stride.analytics.models import CaseNarrative
from stride.analytics.reports import as_plain, html_to_pdf
from stride.core import instruments as core_instruments
from stride.core import rules
from stride.outcomes.models import Episode, QuestionnaireResponse
from stride.patients.models import Patient


@dataclass(frozen=True)
class Entry:
    when: str  # a date, or days from the index treatment when de-identified
    kind: str  # condition / history / procedure / adverse-event
    title: str
    details: tuple[str, ...] = ()
    index: bool = False


@dataclass(frozen=True)
class ScoreLine:
    instrument: str
    timepoint: str
    when: str
    values: str


@dataclass(frozen=True)
class CaseReport:
    identified: bool
    heading: str  # "Jane Doe (LFA-1001)" or "Woman, 54 years"
    facts: tuple[tuple[str, str], ...]
    conditions: tuple[Entry, ...]
    entries: tuple[Entry, ...]
    scores: tuple[ScoreLine, ...]
    charts: tuple[dict[str, str], ...]
    images: tuple[dict[str, str], ...]  # before/after figures, each {"title", "svg"}
    measurement_charts: tuple[dict[str, str], ...]
    narrative: str
    narrative_by: str
    generated_at: dt.datetime
    generated_by: str
    clinic: str
    software: str = field(default_factory=lambda: f"Stride {__version__}")


def first_index_date(patient: Patient) -> dt.date | None:
    """Day 0 of a de-identified account: the first index treatment (else the first procedure)."""
    first = (
        Episode.objects.filter(condition__patient=patient)
        .order_by("index_date")
        .values_list("index_date", flat=True)
    ).first()
    if first is None:
        first = patient.procedures.order_by("performed_on").values_list("performed_on", flat=True).first()
    return first


def _when(day: dt.date | None, origin: dt.date | None, identified: bool, precision: str = "day") -> str:
    if day is None:
        return ""
    if identified:
        return {"year": day.strftime("%Y"), "month": day.strftime("%b %Y")}.get(precision, f"{day:%-d %b %Y}")
    if origin is None:
        return ""
    days = (day - origin).days
    if precision != "day":
        months = round(days / 30.44)
        return (
            f"about {abs(months)} months {'before' if months < 0 else 'after'}" if months else "around day 0"
        )
    return f"day {days:+d}" if days else "day 0"


def build_case_report(patient: Patient, *, identified: bool = False, user: Any = None) -> CaseReport:
    """The case report of ``patient`` (fetched through the access scope by the caller)."""
    from stride.outcomes.views import score_charts, score_text  # the outcomes app draws scores

    origin = first_index_date(patient)
    when = lambda day, precision="day": _when(day, origin, identified, precision)  # noqa: E731
    conditions = list(patient.conditions.select_related("condition_type", "site"))
    history = list(patient.history.select_related("treatment").order_by("started_on", "pk"))
    procedures = list(
        patient.procedures.select_related("procedure_type", "site", "condition__condition_type")
        .prefetch_related("injectates__drug", "adverse_events__kind")
        .order_by("performed_on", "pk")
    )
    entries: list[tuple[dt.date, int, Entry]] = []
    far = dt.date.max
    for condition in conditions:
        site = f" — {condition.site.name}" if condition.site_id else ""
        entries.append(
            (
                condition.onset_date or far,
                0,
                Entry(
                    when(condition.onset_date) if condition.onset_date else "",
                    "condition",
                    f"{condition.condition_type.name}, {condition.get_laterality_display().lower()}{site}",
                    (f"ICD-10-CM {condition.icd10_code}",),
                ),
            )
        )
    for item in history:
        details = [f"Response: {item.get_response_display().lower()}"]
        if item.relief_weeks:
            details.append(f"relief lasted {item.relief_weeks} week{'s' if item.relief_weeks != 1 else ''}")
        if identified and item.notes:
            details.append(item.notes)
        title = f"Earlier: {item.treatment.name}"
        entries.append(
            (
                item.started_on,
                1,
                Entry(when(item.started_on, item.date_precision), "history", title, tuple(details)),
            )
        )
    for procedure in procedures:
        details = [i.summary() for i in procedure.injectates.all()]
        for injectate in procedure.injectates.all():
            labels = [
                x
                for x in (
                    injectate.paw and f"PAW {injectate.paw}",
                    injectate.mishra and f"Mishra {injectate.mishra}",
                )
                if x
            ]
            if labels:
                details.append(", ".join(labels))
        if procedure.image_guidance != "none":
            details.append(f"{procedure.get_image_guidance_display()}-guided")
        for event in procedure.adverse_events.all():
            details.append(
                f"Adverse event: {event.kind.name}, {event.get_severity_display().lower()}, "
                f"{event.get_relatedness_display().lower()}"
            )
        if identified and procedure.notes:
            details.append(procedure.notes)
        site = f" — {procedure.site.name}" if procedure.site_id else ""
        entries.append(
            (
                procedure.performed_on,
                2,
                Entry(
                    when(procedure.performed_on),
                    "procedure",
                    f"{procedure.procedure_type.name}, {procedure.get_laterality_display().lower()}{site}",
                    tuple(details),
                    index=procedure.is_index,
                ),
            )
        )
    library = core_instruments.library()
    scores = []
    responses = (
        QuestionnaireResponse.objects.filter(patient=patient, status=QuestionnaireResponse.Status.COMPLETED)
        .select_related("follow_up")
        .prefetch_related("scores")
        .order_by("collected_on", "pk")
    )
    for response in responses:
        instrument = library.get(response.instrument)
        scores.append(
            ScoreLine(
                instrument.short_name if instrument else response.instrument,
                response.follow_up.timepoint_name if response.follow_up else "",
                when(response.collected_on),
                score_text(response),
            )
        )
    age = rules.age_on(patient.date_of_birth, origin or patient.clinic.today())
    sex = patient.get_sex_display()
    if identified:
        heading = f"{patient.full_name} ({patient.record_number})"
        facts = [
            ("Date of birth", f"{patient.date_of_birth:%-d %b %Y}"),
            ("Sex", sex),
            ("First index treatment", when(origin) if origin else "none yet"),
        ]
    else:
        heading = f"{sex}, {age} years"
        facts = [("Age at the first index treatment", f"{age} years"), ("Sex", sex)]
        facts.append(("Dates", "days from the first index treatment (day 0)" if origin else "withheld"))
    if patient.activity_level:
        facts.append(("Activity level", patient.get_activity_level_display()))
    bmi = patient.bmi
    if bmi:
        facts.append(("BMI", f"{bmi:.1f} kg/m²"))
    narrative = CaseNarrative.objects.filter(patient=patient).select_related("updated_by").first()
    charts = score_charts(patient, procedures, origin=None if identified else origin)
    from stride.imaging.figures import case_pairs  # the imaging app draws the images
    from stride.imaging.panel import measurement_charts

    measured = measurement_charts(patient, procedures, origin=None if identified else origin)
    return CaseReport(
        identified=identified,
        heading=heading,
        facts=tuple(facts),
        conditions=tuple(e for _, _, e in entries if e.kind == "condition"),
        entries=tuple(e for _, _, e in sorted(entries, key=lambda t: (t[0], t[1])) if e.kind != "condition"),
        scores=tuple(scores),
        charts=tuple({"title": c["title"], "svg": c["svg"]} for c in charts),
        images=tuple(case_pairs(patient, identified=identified)),
        measurement_charts=tuple({"title": c["title"], "svg": c["svg"]} for c in measured),
        narrative=narrative.text if narrative else "",
        narrative_by=str(narrative.updated_by) if narrative and narrative.updated_by else "",
        generated_at=timezone.now(),
        generated_by=user.get_username() if user is not None and user.is_authenticated else "",
        clinic=patient.clinic.name,
    )


def render_case_html(report: CaseReport) -> str:
    return render_to_string("analytics/case_report_document.html", {"report": report})


def render_case_body(report: CaseReport) -> str:
    return render_to_string("analytics/_case_report.html", {"report": report})


def render_case_pdf(report: CaseReport) -> bytes:
    return html_to_pdf(render_case_html(report))


def case_json(report: CaseReport) -> dict[str, Any]:
    return as_plain(report)
