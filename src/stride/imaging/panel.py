"""What the patient page shows of imaging: the images, and each measurement as a series over time."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any

from django.db.models import Count

from stride.care.models import Procedure
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import charts
from stride.core import measure as core_measure
from stride.imaging.models import Image, Measurement, format_value
from stride.patients.models import Patient


def _axis(values: list[float], bounds: tuple[float, float] | None) -> tuple[float, float]:
    """From zero (or the type's lower bound) to a round number above the largest value, within the type's
    range: a 2 mm muscle must not be a flat line at the bottom of a 0–40 mm axis."""
    low = bounds[0] if bounds else 0.0
    top = max(values) * 1.3 or 1.0
    step = 10 ** math.floor(math.log10(top))
    high = math.ceil(top / step) * step
    if bounds:
        high = min(high, bounds[1])
    return min(low, *values), max(high, *values)


def _better(kind: core_measure.MeasurementType | None) -> bool | None:
    if kind is None or not kind.direction:
        return None
    return kind.direction == "higher-better"


def measurement_charts(
    patient: Patient, procedures: list[Procedure], *, origin: dt.date | None = None
) -> list[dict[str, Any]]:
    """One chart per measurement type, side, site and unit (millimetres and pixels never share an axis)."""
    from stride.outcomes.views import treatment_markers  # the outcomes app draws the treatments

    rows = (
        Measurement.objects.filter(image__patient=patient)
        .select_related("image", "site")
        .order_by("image__acquired_on", "pk")
    )
    series: dict[tuple[str, str, str, str], list[Measurement]] = defaultdict(list)
    for m in rows:
        series[(m.type_code, m.image.laterality, m.site.name if m.site_id else "", m.unit)].append(m)
    if not series:
        return []
    markers = treatment_markers(patient, procedures)
    types = core_measure.measurement_types()
    result = []
    for (code, side, site, unit), measured in sorted(series.items(), key=lambda item: item[0]):
        kind = types.get(code)
        name = kind.name if kind else code
        values = [m.value for m in measured]
        low, high = _axis(values, kind.range if kind and unit == kind.unit else None)
        where = ", ".join(part for part in (side, site) if part)
        title = f"{name} — {where}" if where else name
        points = [
            charts.Point(
                m.image.acquired_on, m.value, label=format_value(m.value, m.unit), flagged=not m.calibrated
            )
            for m in measured
        ]
        result.append(
            {
                "title": title,
                "svg": charts.score_chart(
                    title,
                    points,
                    low=low,
                    high=high,
                    markers=markers,
                    higher_is_better=_better(kind),
                    unit=core_measure.UNIT_SYMBOLS.get(unit, unit),
                    origin=origin,
                ),
                "latest": format_value(measured[-1].value, unit),
                "note": kind.note if kind else "",
            }
        )
    return result


def imaging_panel(patient: Patient, user: Any, procedures: list[Procedure]) -> dict[str, Any]:
    images = list(
        Image.objects.filter(patient=patient)
        .select_related("site")
        .annotate(measurement_count=Count("measurements"))
        .order_by("-acquired_on", "-pk")
    )
    return {
        "image_list": images,
        "measurement_charts": measurement_charts(patient, procedures),
        "can_upload": access.can(user, Action.UPLOAD_IMAGE, patient.clinic_id),
    }
