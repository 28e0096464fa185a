"""A cohort as data: its index episodes, and one plain de-identified row per episode.

:func:`episodes_for` turns a :class:`~stride.core.cohorts.CohortSpec` into a
queryset of :class:`~stride.outcomes.models.Episode` rows (only patients whose
registry consent stands, only the given clinics). :func:`analysis_rows`
reads everything an analysis needs about those episodes in a handful of
``values_list`` queries (chunked ``__in`` filters over ids, joined in
Python) and returns frozen :class:`EpisodeRow` records that carry no name,
record number, date of birth or calendar date — only a pseudonymous key,
ages, and days counted from the index date. The statistics work on these
rows and never touch the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import CharField, Exists, FloatField, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, ExtractDay, ExtractMonth, ExtractYear, Round
from django.utils import timezone

from stride.care.models import CarePlan, Injectate, PlanStep, Procedure, TreatmentHistory
from stride.clinics.models import Clinic
from stride.core import anthropometry, rules
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.core.analysis import EpisodeRow, InjectateRow, timepoints
from stride.core.cohorts import CohortSpec
from stride.core.errors import Invalid
from stride.core.protocols import today_in
from stride.outcomes.models import Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Patient

# --------------------------------------------------------------------------- the cohort


def _day_number(field: str) -> Any:
    """``year * 10000 + month * 100 + day`` of a date column (whole years apart = difference // 10000)."""
    return ExtractYear(field) * 10000 + ExtractMonth(field) * 100 + ExtractDay(field)


def episodes_for(spec: CohortSpec, clinic_ids: Iterable[int] | None) -> QuerySet[Episode]:
    """The cohort's index episodes: analysable patients of ``clinic_ids`` (``None``: every clinic).

    Pass the viewer's clinics (``access.clinic_ids(user, Action.VIEW_AGGREGATES)``): a cohort never
    reaches past them, whatever clinics the spec names.
    """
    episodes = Episode.objects.filter(condition__patient__in=Patient.objects.analysable())
    if clinic_ids is not None:
        episodes = episodes.filter(condition__patient__clinic_id__in=list(clinic_ids))
    if spec.clinics:
        episodes = episodes.filter(condition__patient__clinic__slug__in=spec.clinics)
    if spec.conditions:
        episodes = episodes.filter(condition__condition_type__code__in=spec.conditions)
    if spec.lateralities:
        episodes = episodes.filter(condition__laterality__in=spec.lateralities)
    if spec.sites:
        episodes = episodes.filter(
            Q(condition__site__code__in=spec.sites)
            | Q(condition__condition_type__body_site__code__in=spec.sites)
        )
    if spec.procedure_types:
        episodes = episodes.filter(index_procedure__procedure_type__code__in=spec.procedure_types)
    if spec.injectate_kinds or spec.leukocytes or spec.activations or spec.drugs:
        # One injectate meets every injectate criterion (leukocyte-poor PRP, not PRP plus anything poor).
        injected = Injectate.objects.filter(procedure_id=OuterRef("index_procedure_id"))
        if spec.injectate_kinds:
            injected = injected.filter(kind__in=spec.injectate_kinds)
        if spec.leukocytes:
            injected = injected.filter(leukocytes__in=spec.leukocytes)
        if spec.activations:
            injected = injected.filter(activation__in=spec.activations)
        if spec.drugs:
            injected = injected.filter(drug__code__in=spec.drugs)
        episodes = episodes.filter(Exists(injected))
    if spec.protocols:
        in_plan = PlanStep.objects.filter(
            procedure_id=OuterRef("index_procedure_id"), plan__protocol__code__in=spec.protocols
        )
        anchored = CarePlan.objects.filter(
            condition_id=OuterRef("condition_id"),
            protocol__code__in=spec.protocols,
            anchor_date=OuterRef("index_date"),
        )
        episodes = episodes.filter(Exists(in_plan) | Exists(anchored))
    if spec.sexes:
        episodes = episodes.filter(condition__patient__sex__in=spec.sexes)
    if spec.activity_levels:
        episodes = episodes.filter(condition__patient__activity_level__in=spec.activity_levels)
    if spec.age:
        episodes = episodes.annotate(
            _age_span=_day_number("index_date") - _day_number("condition__patient__date_of_birth")
        )
        if spec.age.low is not None:
            episodes = episodes.filter(_age_span__gte=int(spec.age.low) * 10000)
        if spec.age.high is not None:
            episodes = episodes.filter(_age_span__lt=(int(spec.age.high) + 1) * 10000)
    if spec.bmi:
        height = Cast("condition__patient__height_cm", FloatField())
        weight = Cast("condition__patient__weight_kg", FloatField())
        episodes = episodes.annotate(
            _bmi=Round(weight * 10000.0 / (height * height), 1, output_field=FloatField())
        )
        if spec.bmi.low is not None:
            episodes = episodes.filter(_bmi__gte=spec.bmi.low)
        if spec.bmi.high is not None:
            episodes = episodes.filter(_bmi__lte=spec.bmi.high)
    if spec.prior_treatments:
        tried = TreatmentHistory.objects.filter(
            Q(condition_id=OuterRef("condition_id")) | Q(condition__isnull=True),
            patient_id=OuterRef("condition__patient_id"),
            treatment__code__in=spec.prior_treatments,
            started_on__lt=OuterRef("index_date"),
        )
        episodes = episodes.filter(Exists(tried))
    if spec.index_dates.low is not None:
        episodes = episodes.filter(index_date__gte=spec.index_dates.low)
    if spec.index_dates.high is not None:
        episodes = episodes.filter(index_date__lte=spec.index_dates.high)
    return episodes


# --------------------------------------------------------------------------- the rows


def _chunk_size() -> int:
    limit = 30_000  # PostgreSQL takes at most 65,535 parameters a statement
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        try:
            import sqlite3

            variables = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # Python < 3.11
            variables = 999
        limit = min(50_000, variables - 50)
    return max(limit, 100)


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int] | RawSQL]:
    """``ids`` in pieces a ``__in`` filter takes.

    SQLite and PostgreSQL get them all at once as a single parameter (a JSON array read by
    ``json_each``, an array ``unnest``-ed): no variable limit, and none of the ORM's per-value work,
    which costs more than the query at 100,000 ids. Other databases get chunks of ``size``.
    """
    if not ids:
        return
    if connection.vendor == "sqlite":
        yield RawSQL("SELECT value FROM json_each(%s)", (json.dumps(list(ids)),))
    elif connection.vendor == "postgresql":
        yield RawSQL("SELECT unnest(%s::bigint[])", (list(ids),))
    else:
        for start in range(0, len(ids), size):
            yield list(ids[start : start + size])


def _text(field: str) -> Cast:
    """A date column as ISO text, parsed by ``date.fromisoformat``: much faster than the ORM's converter."""
    return Cast(field, CharField())


@cache
def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text[:10]) if text else None


def _pseudonymiser() -> Callable[[int], str]:
    """Episode id → a 16-hex-digit key: keyed BLAKE2b, stable within this installation, not reversible."""
    secret = hashlib.sha256(f"stride-cohort-key:{settings.SECRET_KEY}".encode()).digest()

    def key(episode_id: int) -> str:
        return hashlib.blake2b(b"episode:%d" % episode_id, key=secret, digest_size=8).hexdigest()

    return key


def _check_measure(instrument: str, scale: str) -> None:
    try:
        definition = core_instruments.instrument(instrument)
    except (KeyError, Invalid, LookupError):
        raise Invalid(f"Unknown instrument {instrument!r}.", "instrument") from None
    if scale not in definition.scales:
        known = ", ".join(definition.scales)
        raise Invalid(f"{definition.short_name} has no scale {scale!r} (it has {known}).", "scale")


def analysis_rows(
    spec: CohortSpec,
    clinic_ids: Iterable[int] | None,
    instrument: str,
    scale: str,
    *,
    today: dt.date | None = None,
) -> list[EpisodeRow]:
    """One de-identified row per index episode of the cohort, with ``instrument``/``scale`` scores.

    Follow-up states that the worker has not yet moved on (pending → due → missed) are read as of
    ``today`` (each clinic's own day when not given). Answers given after a window closed (flagged
    "late") do not count as that time point's score.
    """
    _check_measure(instrument, scale)
    points = timepoints()
    size = _chunk_size()
    plan = core_schedule.schedule()

    base = list(
        episodes_for(spec, clinic_ids)
        .order_by("pk")
        .values_list(
            "pk",
            "condition_id",
            _text("index_date"),
            "index_procedure_id",
            _text("ended_on"),
            "end_reason",
            "condition__condition_type__code",
            "condition__laterality",
            _text("condition__patient__date_of_birth"),
            "condition__patient__sex",
            Cast("condition__patient__height_cm", FloatField()),
            Cast("condition__patient__weight_kg", FloatField()),
            "condition__patient__activity_level",
            "condition__patient__clinic_id",
            "index_procedure__procedure_type__code",
            "index_procedure__procedure_type__category",
        )
    )
    if not base:
        return []
    episode_ids = [row[0] for row in base]
    condition_ids = sorted({row[1] for row in base})
    procedure_ids = sorted({row[3] for row in base if row[3] is not None})

    clinics = {pk: (slug, zone) for pk, slug, zone in Clinic.objects.values_list("pk", "slug", "time_zone")}
    now = timezone.now()
    clinic_today = {pk: today or today_in(zone, now) for pk, (_, zone) in clinics.items()}

    injected: dict[int, list[InjectateRow]] = defaultdict(list)
    for chunk in _chunks(procedure_ids, size):
        for procedure_id, kind, leukocytes, activation, drug in (
            Injectate.objects.filter(procedure_id__in=chunk)
            .order_by("pk")
            .values_list("procedure_id", "kind", "leukocytes", "activation", "drug__code")
        ):
            injected[procedure_id].append(InjectateRow(kind, leukocytes or "", activation or "", drug or ""))

    states: dict[int, dict[str, str]] = defaultdict(dict)
    for chunk in _chunks(episode_ids, size):
        for episode_id, point, status in (
            FollowUp.objects.filter(episode_id__in=chunk)
            .order_by()
            .values_list("episode_id", "timepoint", "status")
        ):
            states[episode_id][point] = status

    scores: dict[int, dict[str, tuple[float | None, str]]] = defaultdict(dict)
    for chunk in _chunks(episode_ids, size):
        for episode_id, point, value, valid, collected, flags in (
            Score.objects.filter(
                response__follow_up__episode_id__in=chunk,
                response__status=QuestionnaireResponse.Status.COMPLETED,
                instrument=instrument,
                scale=scale,
            )
            .order_by()
            .values_list(
                "response__follow_up__episode_id",
                "response__follow_up__timepoint",
                "value",
                "valid",
                _text("response__collected_on"),
                _text("response__flags"),
            )
        ):
            if flags and '"late"' in flags:
                continue
            scores[episode_id][point] = (value if valid else None, collected)

    later_index: dict[int, list[dt.date]] = defaultdict(list)
    surgeries: dict[int, list[dt.date]] = defaultdict(list)
    for chunk in _chunks(condition_ids, size):
        for condition_id, performed_on, is_index, category in (
            Procedure.objects.filter(condition_id__in=chunk)
            .filter(Q(is_index=True) | Q(procedure_type__category="surgery"))
            .order_by()
            .values_list("condition_id", _text("performed_on"), "is_index", "procedure_type__category")
        ):
            performed_on = _day(performed_on)
            if is_index:
                later_index[condition_id].append(performed_on)
            if category == "surgery":
                surgeries[condition_id].append(performed_on)
        for condition_id, index_date in (
            Episode.objects.filter(condition_id__in=chunk)
            .order_by()
            .values_list("condition_id", _text("index_date"))
        ):
            later_index[condition_id].append(_day(index_date))

    def first_after(days: Iterable[dt.date], index: dt.date) -> int | None:
        after = [(day - index).days for day in days if day > index]
        return min(after) if after else None

    windows_on: dict[dt.date, dict[str, core_schedule.Window]] = {}
    pseudonym = _pseudonymiser()
    rows = []
    for (
        episode_id,
        condition_id,
        index_date,
        procedure_id,
        ended_on,
        end_reason,
        condition,
        laterality,
        born,
        sex,
        height,
        weight,
        activity,
        clinic_id,
        procedure_type,
        category,
    ) in base:
        index_date, ended_on, born = _day(index_date), _day(ended_on), _day(born)
        status: dict[str, str] = {}
        by_point = states.get(episode_id, {})
        windows: dict[str, core_schedule.Window] | None = None
        for point in points:
            stored = by_point.get(point)
            if stored is None:
                stored = "pending" if ended_on is None else "cancelled"
            elif stored in ("pending", "due"):
                # The worker moves states on once a day; read them as of today all the same.
                if windows is None:
                    windows = windows_on.get(index_date)
                    if windows is None:
                        windows = {window.timepoint: window for window in plan.windows(index_date)}
                        windows_on[index_date] = windows
                if point in windows:
                    stored = windows[point].state(clinic_today[clinic_id], completed=False)
            status[point] = stored
        answered = scores.get(episode_id, {})
        values = {point: answered[point][0] if point in answered else None for point in points}
        answer_days = {
            point: (_day(answered[point][1]) - index_date).days if point in answered else None  # type: ignore[operator]
            for point in points
        }
        known_days = [days for days in answer_days.values() if days is not None]
        last_answer = max(known_days) if known_days else None
        ended_days = (ended_on - index_date).days if ended_on else None
        injectates = tuple(injected.get(procedure_id, ())) if procedure_id else ()
        rows.append(
            EpisodeRow(
                key=pseudonym(episode_id),
                age=rules.age_on(born, index_date),
                sex=sex,
                bmi=anthropometry.bmi(height, weight),
                activity_level=activity or "",
                clinic=clinics[clinic_id][0],
                condition=condition,
                laterality=laterality,
                procedure_type=procedure_type or "",
                procedure_category=category or "",
                injectate_kinds=tuple(dict.fromkeys(i.kind for i in injectates)),
                injectates=injectates,
                baseline=values.get("baseline"),
                scores=values,
                status=status,
                answer_days=answer_days,
                retreated_days=first_after(later_index.get(condition_id, ()), index_date),
                surgery_days=first_after(surgeries.get(condition_id, ()), index_date),
                ended_days=ended_days,
                end_reason=end_reason or "",
                last_answer_days=last_answer,
                censor_days=ended_days if ended_days is not None else max(last_answer or 0, 0),
            )
        )
    return rows
