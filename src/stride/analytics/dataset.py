"""A cohort as data: its index episodes, and one plain de-identified row per episode.

:func:`episodes_for` turns a :class:`~stride.core.cohorts.CohortSpec` into a
queryset of :class:`~stride.outcomes.models.Episode` rows (only patients whose
registry consent stands, only the given clinics). :func:`analysis_rows`
reads everything an analysis needs about those episodes in five queries (the
cohort's episodes, then what belongs to them, given their ids as one
parameter; joined in Python) and returns frozen :class:`EpisodeRow` records
that carry no name, record number, date of birth or calendar date — only a
pseudonymous key, ages, and days counted from the index date. The
statistics work on these rows and never touch the ORM.

The measure analysed is a questionnaire scale (``nprs``/``total``) or an image
measurement type (``img-<type code>``/``value``, see :func:`measure_instrument`):
its values then come from the measurements on the condition's images, placed in
the same time-point windows (:func:`_measured`).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Aggregate,
    BooleanField,
    CharField,
    Exists,
    F,
    FloatField,
    Lookup,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat, ExtractDay, ExtractMonth, ExtractYear, Round
from django.utils import timezone

from stride.care.models import CarePlan, Injectate, Laterality, PlanStep, Procedure, TreatmentHistory
from stride.core import anthropometry, rules
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure
from stride.core import schedule as core_schedule
from stride.core.analysis import EpisodeRow, InjectateRow, timepoints
from stride.core.cohorts import CohortSpec
from stride.core.errors import Invalid
from stride.core.protocols import today_in
from stride.imaging.models import Measurement
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


def _id_list(ids: Iterable[int]) -> str:
    """Ids as the one text parameter :class:`_Among` takes: a PostgreSQL array literal, a JSON array.

    Written out once here: the driver would adapt a list of 100,000 ints value by value for every
    query (0.25 s each on PostgreSQL), and the ORM's ``__in`` would add a parameter per id.
    """
    text = ",".join(map(str, ids))
    return f"{{{text}}}" if connection.vendor == "postgresql" else f"[{text}]"


class _Among(Lookup):
    """``lhs`` is one of the ids of ``rhs`` (an :func:`_id_list`), whatever their number.

    PostgreSQL gets ``= ANY(array)``, which it plans from the array's length (a subquery over
    ``unnest`` is planned as 200 rows, hence index probes where a hash join is faster); SQLite reads
    the JSON array with ``json_each``.
    """

    lookup_name = "among"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", (*params, self.rhs)
        return f"{lhs} IN (SELECT value FROM json_each(%s))", (*params, self.rhs)


class _Joined(Aggregate):
    """The group's texts joined by spaces, in no particular order (``GROUP_CONCAT`` / ``string_agg``)."""

    function = "GROUP_CONCAT"
    template = "%(function)s(%(expressions)s, ' ')"
    output_field = CharField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="STRING_AGG", **extra)


def _fetch(queryset: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """A ``values_list`` query's rows as the database driver gives them.

    No per-value converters (booleans stay 0/1 on SQLite, casts to float are already floats): the
    callers only test the booleans' truth.
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _text(field: str) -> Cast:
    """A date column as ISO text on either database, read by the cached :func:`_day` and :func:`_ordinal`."""
    return Cast(field, CharField())


@cache
def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text[:10]) if text else None


@cache
def _ordinal(text: str) -> int:
    """An ISO date as a day number: the days between two dates are the difference of their numbers."""
    return dt.date.fromisoformat(text[:10]).toordinal()


def _pseudonymiser() -> Callable[[int], str]:
    """Episode id → a 16-hex-digit key: keyed BLAKE2b, stable within this installation, not reversible."""
    secret = hashlib.sha256(f"stride-cohort-key:{settings.SECRET_KEY}".encode()).digest()
    keyed = hashlib.blake2b(key=secret, digest_size=8)  # copied for each id: the key is hashed once

    def key(episode_id: int) -> str:
        digest = keyed.copy()
        digest.update(b"episode:%d" % episode_id)
        return digest.hexdigest()

    return key


# --------------------------------------------------------------------------- what is measured


#: Image measurement units that need no pixel spacing: an angle, a ratio of two lengths, a grade.
#: A length or an area counts only when measured on a calibrated image (in mm, never in px).
CALIBRATION_FREE_UNITS = ("deg", "ratio", "grade")


def measurement_type_of(instrument: str) -> core_measure.MeasurementType | None:
    """The image measurement type an instrument code names (``img-<type code>``), else ``None``."""
    if not instrument.startswith(core_measure.INSTRUMENT_PREFIX):
        return None
    return core_measure.measurement_type(instrument.removeprefix(core_measure.INSTRUMENT_PREFIX))


def measure_instrument(code: str) -> core_instruments.Instrument:
    """The instrument an analysis of ``code`` reads: a questionnaire of the library, or an image
    measurement type as a one-scale instrument (``img-<type code>``, scale ``value``).

    A free measurement type (a length or an angle outside the catalog, named in each measurement's
    note) means something else on every image, so it is refused.
    """
    try:
        mtype = measurement_type_of(code)
        definition = core_instruments.instrument(code) if mtype is None else core_measure.instrument_for(code)
    except (KeyError, Invalid, LookupError):
        raise Invalid(f"Unknown instrument {code!r}.", "instrument") from None
    if mtype is not None and mtype.free:
        raise Invalid(
            f"{mtype.name} is a free measurement: what each one measures is only in its note, so it is "
            "not analysed across patients.",
            "instrument",
        )
    return definition


def _check_measure(instrument: str, scale: str) -> None:
    definition = measure_instrument(instrument)
    if scale not in definition.scales:
        known = ", ".join(definition.scales)
        raise Invalid(f"{definition.short_name} has no scale {scale!r} (it has {known}).", "scale")


@contextmanager
def _bulk_reading() -> Iterator[None]:
    """Around reading a cohort's rows.

    The garbage collector is paused (for the whole process, as it only can be): the rows hold no
    reference cycles, and its passes over the millions of objects they are made of cost about a
    second at 100,000 episodes. On PostgreSQL the queries run in one transaction with JIT compilation
    off, set back afterwards: compiling the cohort's query alone took about 0.5 s at 100,000.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        if connection.vendor != "postgresql":
            yield
            return
        nested = connection.in_atomic_block
        with transaction.atomic(savepoint=False), connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
            previous = cursor.fetchone()[0]
            yield
            if nested:  # else the commit ends the setting
                cursor.execute("SELECT set_config('jit', %s, true)", [previous])
    finally:
        if collecting:
            gc.enable()


#: Stored follow-up states the worker moves on once a day (pending → due → missed).
_MOVING = frozenset({"pending", "due"})


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
    ``today`` (each clinic's own day when not given); a time point without a follow-up reads as
    pending, or cancelled once the episode has ended. Answers given after a window closed (flagged
    "late") do not count as that time point's score.

    Five queries whatever the cohort's size: the episodes with their patient, clinic, condition and
    index procedure; then, given their ids, the injectates of the index procedures, the follow-up
    states (one text per episode), the scores, and the index treatments and surgeries of the same
    conditions (for re-treatment and surgery).

    An image measurement (``img-<type code>``, scale ``value``) is read from the measurements on the
    condition's images instead of scores, and its time points from the images' dates, not from the
    questionnaires' follow-ups (four queries: no follow-up states); see :func:`_measured`.
    """
    _check_measure(instrument, scale)
    with _bulk_reading():
        return _rows(spec, clinic_ids, instrument, scale, today)


def _rows(
    spec: CohortSpec, clinic_ids: Iterable[int] | None, instrument: str, scale: str, today: dt.date | None
) -> list[EpisodeRow]:
    points = timepoints()
    plan = core_schedule.schedule()
    mtype = measurement_type_of(instrument)

    base = _fetch(
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
            "condition__patient__clinic__slug",
            "condition__patient__clinic__time_zone",
        )
    )
    if not base:
        return []
    # The other queries take the cohort's ids rather than the cohort as a subquery: its consent check
    # would cost each of them more than passing 100,000 ids does.
    episode_ids = _id_list(row[0] for row in base)
    condition_ids = _id_list({row[1] for row in base})
    procedure_ids = _id_list(row[3] for row in base if row[3] is not None)

    now = timezone.now()
    zones = {row[13]: row[17] for row in base}
    clinic_today = {clinic_id: today or today_in(zone, now) for clinic_id, zone in zones.items()}

    injected: dict[int, list[InjectateRow]] = defaultdict(list)
    made: dict[tuple[str, str, str, str], InjectateRow] = {}  # one (immutable) row per distinct injectate
    for procedure_id, kind, leukocytes, activation, drug in _fetch(
        Injectate.objects.filter(_Among(F("procedure_id"), procedure_ids))
        .order_by("pk")
        .values_list("procedure_id", "kind", "leukocytes", "activation", "drug__code")
    ):
        described = (kind, leukocytes or "", activation or "", drug or "")
        injectate = made.get(described)
        if injectate is None:
            injectate = made[described] = InjectateRow(*described)
        injected[procedure_id].append(injectate)
    # Procedure id → its injectates and their kinds (each once, in order).
    injectates_of = {
        procedure_id: (tuple(found), tuple(dict.fromkeys(i.kind for i in found)))
        for procedure_id, found in injected.items()
    }

    states: dict[int, str] = {}
    scores: dict[int, dict[str, tuple[float | None, str]]] = defaultdict(dict)
    measured = None if mtype is None else _measured(mtype, condition_ids)
    if measured is None:
        # "baseline completed 1m missed ...": one text per episode instead of a row per follow-up.
        states = dict(
            _fetch(
                FollowUp.objects.filter(_Among(F("episode_id"), episode_ids))
                .order_by()
                .values("episode_id")
                .annotate(states=_Joined(Concat("timepoint", Value(" "), "status")))
                .values_list("episode_id", "states")
            )
        )
        for episode_id, point, value, valid, collected in _fetch(
            Score.objects.filter(
                _Among(F("response__follow_up__episode_id"), episode_ids),
                response__status=QuestionnaireResponse.Status.COMPLETED,
                instrument=instrument,
                scale=scale,
            )
            .alias(_flags=_text("response__flags"))
            .exclude(_flags__contains='"late"')
            .order_by()
            .values_list(
                "response__follow_up__episode_id",
                "response__follow_up__timepoint",
                "value",
                "valid",
                _text("response__collected_on"),
            )
        ):
            scores[episode_id][point] = (value if valid else None, collected)

    # Each condition's index treatments (procedures and episodes) and surgeries, as sorted day numbers.
    later_index: dict[int, list[int]] = defaultdict(list)
    surgeries: dict[int, list[int]] = defaultdict(list)
    procedures = (
        Procedure.objects.filter(_Among(F("condition_id"), condition_ids))
        .filter(Q(is_index=True) | Q(procedure_type__category="surgery"))
        .order_by()
        .values_list("condition_id", _text("performed_on"), "is_index", "procedure_type__category")
    )
    episodes = (
        Episode.objects.filter(_Among(F("condition_id"), condition_ids))
        .order_by()
        .values_list(
            "condition_id",
            _text("index_date"),
            Value(True, output_field=BooleanField()),
            Value("", output_field=CharField()),
        )
    )
    for condition_id, day, is_index, category in _fetch(procedures.union(episodes, all=True)):
        if is_index:
            later_index[condition_id].append(_ordinal(day))
        if category == "surgery":
            surgeries[condition_id].append(_ordinal(day))
    for days in (*later_index.values(), *surgeries.values()):
        days.sort()

    def first_after(days: list[int] | None, index: int) -> int | None:
        """Days from ``index`` to the first of ``days`` after it."""
        if not days or days[-1] <= index:
            return None
        return days[bisect_right(days, index)] - index

    # Stored states as one text per episode (the same text for many) → the state of each time point,
    # and the time points whose stored pending or due still has to be read as of today.
    parsed: dict[tuple[str, bool], tuple[dict[str, str], tuple[str, ...]]] = {}

    def parse(text: str, open_ended: bool) -> tuple[dict[str, str], tuple[str, ...]]:
        words = text.split(" ")
        stored = dict(zip(words[::2], words[1::2], strict=False))
        missing = "pending" if open_ended else "cancelled"
        template = {point: stored.get(point, missing) for point in points}
        parsed[text, open_ended] = template, tuple(p for p in points if stored.get(p) in _MOVING)
        return parsed[text, open_ended]

    # (index date, clinic's day) → what a stored pending or due reads as on that day, per time point.
    moved_on: dict[tuple[dt.date, dt.date], dict[str, str]] = {}
    blank = dict.fromkeys(points)
    never = ((), ())
    pseudonym = _pseudonymiser()
    rows = []
    for (
        episode_id,
        condition_id,
        index_text,
        procedure_id,
        ended_text,
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
        clinic,
        _,
    ) in base:
        index_date = _day(index_text)
        index = index_date.toordinal()
        ended_days = _ordinal(ended_text) - index if ended_text else None

        if measured is not None:
            status, values, answer_days, last_answer = measured.row(
                index_date, ended_days, clinic_today[clinic_id], condition_id
            )
        else:
            stored = states.get(episode_id, "")
            template, moving = parsed.get((stored, ended_text is None)) or parse(stored, ended_text is None)
            status = template.copy()
            if moving:
                # The worker moves states on once a day; read them as of today all the same.
                day = clinic_today[clinic_id]
                as_of = moved_on.get((index_date, day))
                if as_of is None:
                    windows = plan.windows(index_date)
                    as_of = moved_on[index_date, day] = {
                        w.timepoint: w.state(day, completed=False) for w in windows
                    }
                for point in moving:
                    status[point] = as_of.get(point, status[point])

            values = blank.copy()
            answer_days = blank.copy()
            last_answer = None
            for point, (value, collected) in scores.get(episode_id, {}).items():
                if point in values:
                    days = _ordinal(collected) - index
                    values[point] = value
                    answer_days[point] = days
                    if last_answer is None or days > last_answer:
                        last_answer = days
        injectates, kinds = injectates_of.get(procedure_id, never)
        rows.append(
            EpisodeRow(
                key=pseudonym(episode_id),
                age=rules.age_on(_day(born), index_date),
                sex=sex,
                bmi=anthropometry.bmi(height, weight),
                activity_level=activity or "",
                clinic=clinic,
                condition=condition,
                laterality=laterality,
                procedure_type=procedure_type or "",
                procedure_category=category or "",
                injectate_kinds=kinds,
                injectates=injectates,
                baseline=values.get("baseline"),
                scores=values,
                status=status,
                answer_days=answer_days,
                retreated_days=first_after(later_index.get(condition_id), index),
                surgery_days=first_after(surgeries.get(condition_id), index),
                ended_days=ended_days,
                end_reason=end_reason or "",
                last_answer_days=last_answer,
                censor_days=ended_days if ended_days is not None else max(last_answer or 0, 0),
            )
        )
    return rows


# --------------------------------------------------------------------------- image measurements


def _measured(mtype: core_measure.MeasurementType, condition_ids: str) -> _Measured:
    """The measurements of ``mtype`` that count for the conditions ``condition_ids``, in one query.

    A measurement counts for a condition when its image belongs to the condition, it is in the
    type's unit and — for a length or an area — was taken on a calibrated image (a value in pixels
    never mixes with one in mm), its image shows the condition's side (the other foot's comparison
    images do not count; a bilateral condition takes either side), and its site (the image's when the
    measurement names none) is the condition's site when both are recorded.
    """
    measurements = Measurement.objects.filter(
        _Among(F("image__condition_id"), condition_ids), type_code=mtype.code, unit=mtype.unit
    )
    if mtype.unit not in CALIBRATION_FREE_UNITS:
        measurements = measurements.filter(calibrated=True)
    measurements = (
        measurements.filter(
            Q(image__laterality=F("image__condition__laterality"))
            | Q(image__condition__laterality=Laterality.BILATERAL)
        )
        .alias(_site=Coalesce("site_id", "image__site_id"))
        .filter(
            Q(_site__isnull=True)
            | Q(image__condition__site_id__isnull=True)
            | Q(_site=F("image__condition__site_id"))
        )
        .order_by("pk")
        .values_list("image__condition_id", _text("image__acquired_on"), "image_id", "value")
    )
    found: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for condition_id, day, image_id, value in _fetch(measurements):
        found[condition_id].append((_ordinal(day), image_id, value))
    return _Measured(found)


class _Measured:
    """A cohort's counted image measurements by condition, and what they give each episode.

    Each measurement belongs to the time point whose window (the questionnaires' windows of
    :mod:`stride.core.schedule`; the baseline's runs up to the index day, without the grace the
    questionnaires get) holds its image's date; one taken after the episode ended (a re-treatment,
    a withdrawal or a stop) does not count for it. Within a time point the images of the day
    nearest the target day count (the earlier of two days equally near); the value is the mean of
    those images, each the mean of its measurements of the type.

    Imaging follows the clinic's protocol, not an invitation the patient answers, so a time point
    is "completed" when measured, "missed" once its window closed without a measurement while the
    episode ran, "cancelled" when the episode ended before its window closed, and "pending"
    otherwise (an open window is not yet due): due reads "measured or window closed".
    """

    def __init__(self, found: dict[int, list[tuple[int, int, float]]]) -> None:
        self.found = found
        self.plan = core_schedule.schedule()
        self.points = timepoints()
        self.windows: dict[dt.date, tuple[tuple[str, int, int, int], ...]] = {}

    def _windows(self, index_date: dt.date) -> tuple[tuple[str, int, int, int], ...]:
        """(time point, opens, target day, closes) as day numbers, for an index date."""
        known = self.windows.get(index_date)
        if known is None:
            known = self.windows[index_date] = tuple(
                (w.timepoint, w.opens.toordinal(), w.due.toordinal(), w.closes.toordinal())
                for w in self.plan.windows(index_date)
            )
        return known

    def row(
        self, index_date: dt.date, ended_days: int | None, today: dt.date, condition_id: int
    ) -> tuple[dict[str, str], dict[str, float | None], dict[str, int | None], int | None]:
        """An episode's status, values, measurement days (from the index) and last measurement day."""
        index = index_date.toordinal()
        windows = self._windows(index_date)
        last = None if ended_days is None else index + ended_days
        # time point → ((days from the target, day), image → its values on the nearest day)
        nearest: dict[str, tuple[tuple[int, int], dict[int, list[float]]]] = {}
        for day, image_id, value in self.found.get(condition_id, ()):
            if last is not None and day > last:
                continue
            placed = next((w for w in windows if w[1] <= day <= w[3]), None)
            if placed is None:
                continue  # outside every window
            point, _, target, _ = placed
            key = (abs(day - target), day)
            held = nearest.get(point)
            if held is None or key < held[0]:
                nearest[point] = (key, {image_id: [value]})
            elif key == held[0]:
                held[1].setdefault(image_id, []).append(value)
        # The last day a window may have closed on to count as passed: the episode's end, or yesterday.
        passed = last if last is not None else today.toordinal() - 1
        status: dict[str, str] = {}
        values: dict[str, float | None] = dict.fromkeys(self.points)
        days: dict[str, int | None] = dict.fromkeys(self.points)
        last_measured = None
        for point, _, _, closes in windows:
            held = nearest.get(point)
            if held is not None:
                (_, day), images = held
                means = [sum(found) / len(found) for found in images.values()]
                values[point] = sum(means) / len(means)
                days[point] = last_measured = day - index
                status[point] = "completed"
            elif closes <= passed:
                status[point] = "missed"
            elif last is not None:
                status[point] = "cancelled"
            else:
                status[point] = "pending"
        return status, values, days, last_measured
