"""Write synthetic patients (:mod:`stride.core.synth`) to the database, fast.

The generator guarantees that every record obeys the core rules, so rows are
written in bulk, without ``full_clean``, without model instances and without
a query per row: catalog codes are resolved to table rows once, up front,
and the ICD-10-CM codes a condition's ``save()`` would derive are set here
from the catalog files.

Follow-up is written too: an episode per index treatment (created here, as
no ``post_save`` signal is sent to start it), its follow-ups with the windows
of :meth:`stride.core.schedule.Schedule.windows` and their state as of today,
the questionnaire responses with their flags and their scores (from
:func:`stride.core.scoring.score`, the pure scorer, once per distinct answer
set) and every contact.

How it is fast: a run of 100,000 patients writes some six million rows, and
the ORM's ``bulk_create`` manages about 15,000 a second on SQLite (it builds
an instance and prepares every field of every row in Python, in batches of
at most 999 parameters). So each table gets one raw ``INSERT`` run with
``executemany`` per chunk of patients (:class:`_Raw`): every column of the
model is written, those the generator does not give at their field default;
values are put in the database's format by the fields themselves
(``get_db_prep_save``), once per distinct value where values repeat (dates,
JSON lists); and the primary keys the child rows need are reserved up front
(:func:`_reserve_ids`: ``nextval`` on PostgreSQL; on SQLite, whose
``IMMEDIATE`` transaction holds the write lock, the numbers after the
highest ever used). ``created_at`` and ``updated_at`` are the time of the run
for the clinical records, as ``save()`` would set them, and the day things
happened for the follow-up ones (a contact was created when it was made, a
response started on the day it was answered).

Everything happens in one transaction: a run either writes all its patients
or nothing. Bulk writes bypass the audit signals, so a run writes one
``bulk`` audit entry naming the command, the seed, the clinics and the count.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from stride.audit.log import record
from stride.care.models import (
    AdverseEvent,
    AdverseEventKind,
    Condition,
    ConditionType,
    Drug,
    Injectate,
    Procedure,
    ProcedureType,
    Site,
    TreatmentHistory,
    TreatmentKind,
)
from stride.clinics.models import Clinic, Membership, Role, User
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.core import scoring, synth
from stride.core.catalog import Catalog, Coding, catalog, resolve_condition_codes
from stride.core.errors import Invalid
from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Consent, Patient

MAX_PATIENTS = 1_000_000
#: Patients generated and written per round (their conditions, procedures... follow them).
CHUNK = 2_000
#: Synthetic clinicians created in a clinic that has none.
CLINICIANS_PER_CLINIC = 3
SYNTHETIC_CLINIC = ("Synthetic Clinic", "synthetic")

Progress = Callable[[int], Any]


# --------------------------------------------------------------------------- before writing


def target_clinics(slugs: Sequence[str] | None) -> list[Clinic]:
    """The clinics to write to: those named (in the order given), or else all of them.

    With no clinic in the database at all, one named "Synthetic Clinic" is created.
    """
    if slugs:
        wanted = list(dict.fromkeys(slugs))
        found = {c.slug: c for c in Clinic.objects.filter(slug__in=wanted)}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            known = ", ".join(Clinic.objects.order_by("slug").values_list("slug", flat=True)) or "none"
            raise Invalid(
                f"Unknown clinic {', '.join(repr(s) for s in unknown)} (known clinics: {known}).",
                "clinic",
            )
        return [found[slug] for slug in wanted]
    clinics = list(Clinic.objects.order_by("slug"))
    if not clinics:
        name, slug = SYNTHETIC_CLINIC
        clinics = [Clinic.objects.create(name=name, slug=slug)]
    return clinics


def clinic_with_seed(seed: int, clinics: Sequence[Clinic] | None = None) -> Clinic | None:
    """The first clinic (of ``clinics``, or of all) already holding patients of ``seed``."""
    patients = Patient.objects.filter(record_number__startswith=synth.record_prefix(seed))
    if clinics is not None:
        patients = patients.filter(clinic__in=list(clinics))
    clinic_id = patients.order_by("clinic_id").values_list("clinic_id", flat=True).first()
    return None if clinic_id is None else Clinic.objects.get(pk=clinic_id)


def seed_exists(seed: int, clinic_slugs: Sequence[str] | None = None) -> bool:
    """Whether synthetic patients of ``seed`` are already in any (or one of the named) clinics."""
    patients = Patient.objects.filter(record_number__startswith=synth.record_prefix(seed))
    if clinic_slugs:
        patients = patients.filter(clinic__slug__in=list(clinic_slugs))
    return patients.exists()


def clinicians(clinics: Sequence[Clinic]) -> dict[str, dict[str, int]]:
    """Per clinic slug: its clinicians' usernames → user ids, creating synthetic ones where none.

    Synthetic clinicians cannot log in (unusable password) until an admin sets one.
    """
    result: dict[str, dict[str, int]] = {c.slug: {} for c in clinics}
    slugs = {c.pk: c.slug for c in clinics}
    rows = Membership.objects.filter(clinic__in=list(clinics), role=Role.CLINICIAN).values_list(
        "clinic_id", "user__username", "user_id"
    )
    for clinic_id, username, user_id in rows:
        result[slugs[clinic_id]][username] = user_id
    for clinic in clinics:
        if result[clinic.slug]:
            continue
        for number in range(1, CLINICIANS_PER_CLINIC + 1):
            username = f"synth-{clinic.slug}-clinician-{number}"
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(
                    username=username,
                    first_name="Synthetic",
                    last_name=f"Clinician {number}",
                    email=f"{username}@stride.example",
                )
                user.set_unusable_password()
                user.save()
            Membership.objects.update_or_create(user=user, clinic=clinic, defaults={"role": Role.CLINICIAN})
            result[clinic.slug][username] = user.pk
    return result


def _codes(model: Any, wanted: Sequence[str], what: str) -> dict[str, int]:
    ids = dict(model.objects.filter(code__in=list(wanted)).values_list("code", "pk"))
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise Invalid(
            f"The catalog table of {what} lacks {', '.join(missing)}: "
            "run `stride migrate` (or `stride catalog sync`) first."
        )
    return ids


class _Lookups:
    """Catalog codes → primary keys, resolved once."""

    def __init__(self, cat: Catalog) -> None:
        self.conditions = _codes(ConditionType, list(cat.conditions), "conditions")
        self.sites = _codes(Site, list(cat.sites), "sites")
        self.procedures = _codes(ProcedureType, list(cat.procedures), "procedures")
        self.treatments = _codes(TreatmentKind, list(cat.treatments), "treatments")
        self.drugs = _codes(Drug, list(cat.drugs), "drugs")
        self.adverse_events = _codes(AdverseEventKind, list(cat.adverse_events), "adverse events")
        self.cat = cat
        self._coding: dict[tuple[str, str, str, str, tuple[str, ...]], Coding] = {}

    def coding(self, c: synth.SynthCondition) -> Coding:
        key = (c.condition_type, c.laterality, c.site, c.episode, c.qualifiers)
        coding = self._coding.get(key)
        if coding is None:
            coding = resolve_condition_codes(
                self.cat.conditions[c.condition_type],
                c.laterality,
                site=c.site,
                episode=c.episode,
                qualifiers=c.qualifiers,
            )
            self._coding[key] = coding
        return coding


# --------------------------------------------------------------------------- writing


class _Raw:
    """One ``INSERT`` of every column of a table, run with ``executemany``: no instances, no per-row SQL.

    ``names`` (attribute names: ``patient_id`` for a foreign key, ``id`` when
    the caller reserves the keys) are the columns each row gives, in order;
    every other column gets its field's default, or the time of the run for
    ``auto_now`` and ``auto_now_add`` fields, worked out once. Row values must
    already be in the database's format (:class:`_Prep`); strings, numbers,
    booleans, decimals and ``None`` are.
    """

    def __init__(self, model: Any, *names: str, now: dt.datetime) -> None:
        meta = model._meta
        quote = connection.ops.quote_name
        given = [meta.get_field(name) for name in names]
        unknown = [name for name, f in zip(names, given, strict=True) if not f.concrete]
        if unknown:
            raise LookupError(f"{model.__name__} has no column for {', '.join(unknown)}.")
        rest = [f for f in meta.concrete_fields if f not in given and not f.primary_key]
        defaults = []
        for f in rest:
            stamped = getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
            defaults.append(f.get_db_prep_save(now if stamped else f.get_default(), connection))
        self.defaults = tuple(defaults)
        columns = [f.column for f in [*given, *rest]]
        self.sql = "INSERT INTO {} ({}) VALUES ({})".format(
            quote(meta.db_table),
            ", ".join(quote(c) for c in columns),
            ", ".join(["%s"] * len(columns)),
        )

    def write(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert ``rows`` (each the values of ``names``); returns how many."""
        if rows:
            defaults = self.defaults
            with connection.cursor() as cursor:
                cursor.executemany(self.sql, [row + defaults for row in rows] if defaults else rows)
        return len(rows)


class _Prep:
    """A field's database value for a Python value, worked out once per distinct value (tuples as lists)."""

    def __init__(self, model: Any, name: str) -> None:
        self.field = model._meta.get_field(name)
        self.cache: dict[Any, Any] = {None: None}

    def __call__(self, value: Any) -> Any:
        try:
            return self.cache[value]
        except KeyError:
            prepped = self.cache[value] = self.field.get_db_prep_save(
                list(value) if isinstance(value, tuple) else value, connection
            )
            return prepped


def _reserve_ids(model: Any, n: int) -> Sequence[int]:
    """``n`` primary keys for rows of ``model`` about to be inserted with them.

    Must run inside the writing transaction: on SQLite that transaction
    (``IMMEDIATE``) holds the write lock, so the numbers after the highest
    ever used (``sqlite_sequence``, which explicit keys keep up to date) stay
    free until it ends; on PostgreSQL they come from the table's sequence.
    """
    if n <= 0:
        return ()
    table = model._meta.db_table
    column = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, column, n],
            )
            return [row[0] for row in cursor.fetchall()]
        if connection.vendor == "sqlite":
            quote = connection.ops.quote_name
            cursor.execute(f"SELECT MAX({quote(column)}) FROM {quote(table)}")
            highest = cursor.fetchone()[0] or 0
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            first = max(highest, row[0] if row else 0) + 1
            return range(first, first + n)
    raise NotImplementedError(f"Synthetic data is written to SQLite or PostgreSQL, not {connection.vendor}.")


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC)


def _chunks(patients: Iterator[synth.SynthPatient], size: int) -> Iterator[list[synth.SynthPatient]]:
    while chunk := list(islice(patients, size)):
        yield chunk


class _Writer:
    """Writes chunks of generated patients; keeps the counts."""

    def __init__(
        self,
        clinic_ids: dict[str, int],
        clinician_ids: dict[str, dict[str, int]],
        lookups: _Lookups,
    ) -> None:
        self.clinic_ids = clinic_ids
        self.clinician_ids = clinician_ids
        self.lookups = lookups
        self.plan = core_schedule.schedule()
        self.library = core_instruments.library()
        self.counts = dict.fromkeys(
            (
                "patients",
                "consents",
                "conditions",
                "history",
                "procedures",
                "injectates",
                "adverse events",
                "episodes",
                "follow-ups",
                "responses",
                "scores",
                "contacts",
            ),
            0,
        )
        now = timezone.now()
        self.patient = _Raw(
            Patient,
            "id",
            "clinic_id",
            "record_number",
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "email",
            "phone",
            "height_cm",
            "weight_kg",
            "activity_level",
            now=now,
        )
        self.consent = _Raw(Consent, "patient_id", "version", "consented_on", "withdrawn_on", now=now)
        self.condition = _Raw(
            Condition,
            "id",
            "patient_id",
            "condition_type_id",
            "laterality",
            "site_id",
            "episode",
            "qualifiers",
            "icd10_code",
            "additional_icd10",
            "snomed_code",
            "onset_date",
            "status",
            "resolved_on",
            now=now,
        )
        self.history = _Raw(
            TreatmentHistory,
            "patient_id",
            "condition_id",
            "treatment_id",
            "laterality",
            "started_on",
            "date_precision",
            "provider",
            "response",
            "relief_weeks",
            now=now,
        )
        self.procedure = _Raw(
            Procedure,
            "id",
            "patient_id",
            "condition_id",
            "performed_on",
            "clinician_id",
            "procedure_type_id",
            "site_id",
            "laterality",
            "image_guidance",
            "candidacy",
            "is_index",
            now=now,
        )
        self.injectate = _Raw(
            Injectate,
            "procedure_id",
            "kind",
            "drug_id",
            "dose_mg",
            "volume_ml",
            "concentration_pct",
            "platelet_count",
            "baseline_platelet_count",
            "leukocytes",
            "activation",
            "aspirate_volume_ml",
            "tnc_per_ml",
            "series_number",
            "sites_injected",
            now=now,
        )
        self.event = _Raw(
            AdverseEvent,
            "procedure_id",
            "kind_id",
            "onset_date",
            "severity",
            "relatedness",
            "adjudicated_by_id",
            "resolved_on",
            now=now,
        )
        self.episode = _Raw(
            Episode,
            "id",
            "condition_id",
            "index_date",
            "index_procedure_id",
            "schedule_version",
            "created_at",
            "ended_on",
            "end_reason",
            now=now,
        )
        self.follow_up = _Raw(
            FollowUp,
            "id",
            "episode_id",
            "patient_id",
            "timepoint",
            "opens_on",
            "due_on",
            "closes_on",
            "accepts_until",
            "instruments",
            "status",
            "completed_at",
            now=now,
        )
        self.response = _Raw(
            QuestionnaireResponse,
            "id",
            "patient_id",
            "follow_up_id",
            "instrument",
            "instrument_version",
            "context",
            "answers",
            "status",
            "source",
            "collected_on",
            "started_at",
            "submitted_at",
            "flags",
            now=now,
        )
        self.score = _Raw(
            Score,
            "response_id",
            "instrument",
            "scale",
            "value",
            "valid",
            "answered",
            "not_applicable",
            "missing",
            "policy",
            "flags",
            now=now,
        )
        self.contact = _Raw(
            Contact,
            "follow_up_id",
            "kind",
            "channel",
            "due_at",
            "state",
            "attempts",
            "claimed_by",
            "claimed_at",
            "finished_at",
            "outcome",
            "created_at",
            now=now,
        )
        self.date = _Prep(Patient, "date_of_birth")
        self.json = _Prep(Condition, "qualifiers")
        self.moment = _Prep(Contact, "due_at")
        self._moments: dict[tuple[dt.date, int, int], Any] = {}
        self._windows: dict[dt.date, list[core_schedule.Window]] = {}
        self._due: dict[tuple[str, str], Any] = {}
        self._scores: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]] = {}

    # -- values, each worked out once

    def _when(self, day: dt.date, hour: int, minute: int = 0) -> Any:
        key = (day, hour, minute)
        value = self._moments.get(key)
        if value is None:
            value = self._moments[key] = self.moment(_at(day, hour, minute))
        return value

    def _windows_of(self, index: dt.date) -> list[core_schedule.Window]:
        windows = self._windows.get(index)
        if windows is None:
            windows = self._windows[index] = self.plan.windows(index)
        return windows

    def _instruments_due(self, condition: str, timepoint: str) -> Any:
        key = (condition, timepoint)
        value = self._due.get(key)
        if value is None:
            codes = self.plan.instruments_for(condition, timepoint, lambda code: self.library[code].baseline)
            value = self._due[key] = self.json(codes)
        return value

    def _scored(self, instrument: str, answers: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The score rows (less the response) of an answer set, scored once by the pure scorer."""
        key = (instrument, answers)
        rows = self._scores.get(key)
        if rows is None:
            result = scoring.score(self.library[instrument], list(answers))
            rows = self._scores[key] = [
                (
                    instrument,
                    scale,
                    s.value,
                    s.valid,
                    s.answered,
                    s.na,
                    s.missing,
                    result.policy,
                    self.json(s.flags),
                )
                for scale, s in result.scales.items()
            ]
        return rows

    # -- one chunk

    def write(self, chunk: list[synth.SynthPatient]) -> None:
        lookups = self.lookups
        sites = lookups.sites
        date, json = self.date, self.json
        counts = self.counts

        patient_ids = _reserve_ids(Patient, len(chunk))
        n_conditions = n_procedures = 0
        for p in chunk:
            n_conditions += len(p.conditions)
            n_procedures += len(p.procedures)
        condition_ids = iter(_reserve_ids(Condition, n_conditions))
        procedure_ids = iter(_reserve_ids(Procedure, n_procedures))

        patients: list[tuple[Any, ...]] = []
        consents: list[tuple[Any, ...]] = []
        conditions: list[tuple[Any, ...]] = []
        history: list[tuple[Any, ...]] = []
        procedures: list[tuple[Any, ...]] = []
        injectates: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        own_conditions: list[list[int]] = []
        own_procedures: list[list[int]] = []
        for p, pk in zip(chunk, patient_ids, strict=True):
            patients.append(
                (
                    pk,
                    self.clinic_ids[p.clinic],
                    p.record_number,
                    p.given_name,
                    p.family_name,
                    date(p.date_of_birth),
                    p.sex,
                    p.email,
                    p.phone,
                    p.height_cm,
                    p.weight_kg,
                    p.activity_level,
                )
            )
            consent = p.consent
            consents.append((pk, consent.version, date(consent.consented_on), date(consent.withdrawn_on)))
            own = []
            for c in p.conditions:
                coding = lookups.coding(c)
                condition_id = next(condition_ids)
                own.append(condition_id)
                conditions.append(
                    (
                        condition_id,
                        pk,
                        lookups.conditions[c.condition_type],
                        c.laterality,
                        sites[c.site] if c.site else None,
                        c.episode,
                        json(c.qualifiers),
                        coding.icd10,
                        json(coding.additional_icd10),
                        coding.snomed,
                        date(c.onset_date),
                        c.status,
                        date(c.resolved_on),
                    )
                )
            own_conditions.append(own)
            for h in p.history:
                history.append(
                    (
                        pk,
                        own[h.condition],
                        lookups.treatments[h.treatment],
                        h.laterality,
                        date(h.started_on),
                        h.date_precision,
                        h.provider,
                        h.response,
                        h.relief_weeks,
                    )
                )
            staff = self.clinician_ids[p.clinic]
            done = []
            for s in p.procedures:
                procedure_id = next(procedure_ids)
                done.append(procedure_id)
                clinician = staff.get(s.clinician)
                procedures.append(
                    (
                        procedure_id,
                        pk,
                        own[s.condition],
                        date(s.performed_on),
                        clinician,
                        lookups.procedures[s.procedure_type],
                        sites[s.site] if s.site else None,
                        s.laterality,
                        s.image_guidance,
                        s.candidacy,
                        s.is_index,
                    )
                )
                for i in s.injectates:
                    injectates.append(
                        (
                            procedure_id,
                            i.kind,
                            lookups.drugs[i.drug] if i.drug else None,
                            i.dose_mg,
                            i.volume_ml,
                            i.concentration_pct,
                            i.platelet_count,
                            i.baseline_platelet_count,
                            i.leukocytes,
                            i.activation,
                            i.aspirate_volume_ml,
                            i.tnc_per_ml,
                            i.series_number,
                            i.sites_injected,
                        )
                    )
                for e in s.adverse_events:
                    events.append(
                        (
                            procedure_id,
                            lookups.adverse_events[e.kind],
                            date(e.onset_date),
                            e.severity,
                            e.relatedness,
                            clinician,
                            date(e.resolved_on),
                        )
                    )
            own_procedures.append(done)
        counts["patients"] += self.patient.write(patients)
        counts["consents"] += self.consent.write(consents)
        counts["conditions"] += self.condition.write(conditions)
        counts["history"] += self.history.write(history)
        counts["procedures"] += self.procedure.write(procedures)
        counts["injectates"] += self.injectate.write(injectates)
        counts["adverse events"] += self.event.write(events)
        self._follow_up(chunk, patient_ids, own_conditions, own_procedures)

    def _follow_up(
        self,
        chunk: Sequence[synth.SynthPatient],
        patient_ids: Sequence[int],
        condition_ids: Sequence[Sequence[int]],
        procedure_ids: Sequence[Sequence[int]],
    ) -> None:
        """Episodes, follow-ups, responses with their scores, and contacts of a chunk."""
        n_episodes = n_follow_ups = n_responses = 0
        for p in chunk:
            for e in p.episodes:
                n_episodes += 1
                n_follow_ups += len(e.follow_ups)
                for f in e.follow_ups:
                    n_responses += len(f.responses)
        if not n_episodes:
            return
        episode_ids = iter(_reserve_ids(Episode, n_episodes))
        follow_up_ids = iter(_reserve_ids(FollowUp, n_follow_ups))
        response_ids = iter(_reserve_ids(QuestionnaireResponse, n_responses))
        date, when, json, library = self.date, self._when, self.json, self.library
        version = self.plan.version
        episodes: list[tuple[Any, ...]] = []
        follow_ups: list[tuple[Any, ...]] = []
        responses: list[tuple[Any, ...]] = []
        scores: list[tuple[Any, ...]] = []
        contacts: list[tuple[Any, ...]] = []
        for p, patient_id, own_conditions, own_procedures in zip(
            chunk, patient_ids, condition_ids, procedure_ids, strict=True
        ):
            for e in p.episodes:
                episode_id = next(episode_ids)
                code = p.conditions[e.condition].condition_type
                episodes.append(
                    (
                        episode_id,
                        own_conditions[e.condition],
                        date(e.index_date),
                        own_procedures[e.procedure],
                        version,
                        when(e.index_date, 17),
                        date(e.ended_on),
                        e.end_reason,
                    )
                )
                for f, window in zip(e.follow_ups, self._windows_of(e.index_date), strict=True):
                    follow_up_id = next(follow_up_ids)
                    collected = f.collected_on
                    follow_ups.append(
                        (
                            follow_up_id,
                            episode_id,
                            patient_id,
                            f.timepoint,
                            date(window.opens),
                            date(window.due),
                            date(window.closes),
                            date(window.accepts_until),
                            self._instruments_due(code, f.timepoint),
                            f.status,
                            None if collected is None else when(collected, 18, 6),
                        )
                    )
                    if collected is not None:
                        flags = json(window.flags_for(collected))
                        day, started, submitted = date(collected), when(collected, 18), when(collected, 18, 6)
                        source = f.source
                        for answer_set in f.responses:
                            response_id = next(response_ids)
                            instrument, answers = answer_set
                            definition = library[instrument]
                            responses.append(
                                (
                                    response_id,
                                    patient_id,
                                    follow_up_id,
                                    instrument,
                                    definition.version,
                                    definition.context,
                                    json(answers),
                                    "completed",
                                    source,
                                    day,
                                    started,
                                    submitted,
                                    flags,
                                )
                            )
                            for row in self._scored(instrument, answers):
                                scores.append((response_id, *row))
                    for c in f.contacts:
                        kind, channel, day, state, outcome, finished_on = c
                        due = when(day, 16)
                        if channel == "email":  # sent by the worker: claimed, one attempt
                            finished = when(finished_on, 16, 1)
                            contacts.append(
                                (
                                    follow_up_id,
                                    kind,
                                    channel,
                                    due,
                                    state,
                                    1,
                                    "synth",
                                    due,
                                    finished,
                                    outcome,
                                    due,
                                )
                            )
                        else:  # a task on the worklist, done (or not) by the coordinator
                            end = None if finished_on is None else when(finished_on, 19)
                            contacts.append(
                                (follow_up_id, kind, channel, due, state, 0, "", None, end, outcome, due)
                            )
        counts = self.counts
        counts["episodes"] += self.episode.write(episodes)
        counts["follow-ups"] += self.follow_up.write(follow_ups)
        counts["responses"] += self.response.write(responses)
        counts["scores"] += self.score.write(scores)
        counts["contacts"] += self.contact.write(contacts)


#: SQLite page cache while writing (KiB): the indexes of the big tables stay in memory.
SQLITE_CACHE_KIB = 256 * 1024


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """No cyclic garbage collection while writing (it is back on, and run once, after).

    A chunk holds a few hundred thousand row tuples at once; the collector
    would walk them again and again for nothing (they hold no cycles, and
    are freed by reference counting when the chunk is done).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect()


@contextmanager
def _page_cache() -> Iterator[None]:
    """On SQLite, a page cache big enough for the run's indexes, back to what it was after.

    With SQLite's default 2 MB, inserting into indexes in random order (a
    contact's due date, a follow-up's patient) reads and writes the same
    pages over and over once the tables outgrow it.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB:d}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before):d}")


def write_synthetic(
    *,
    patients: int,
    seed: int,
    clinic_slugs: Sequence[str] | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> dict[str, int]:
    """Generate and write ``patients`` synthetic patients; return the rows written per kind.

    ``progress`` is called with the number of patients just written (an
    increment, as ``tqdm.update`` takes it). ``today`` defaults to the
    earliest "today" among the target clinics (their time zones differ), so
    no record is dated in any clinic's future. Raises :class:`Invalid` and
    writes nothing when a clinic is unknown or the seed was already used
    there.
    """
    if not 1 <= patients <= MAX_PATIENTS:
        raise Invalid(f"The number of patients must be between 1 and {MAX_PATIENTS:,}.", "patients")
    cat = catalog()
    with _no_cycle_collector(), transaction.atomic(), _page_cache():
        clinics = target_clinics(clinic_slugs)
        clash = clinic_with_seed(seed, clinics)
        if clash is not None:
            raise Invalid(
                f"Synthetic patients for seed {seed} already exist in clinic {clash.slug!r}; "
                "choose another --seed.",
                "seed",
            )
        lookups = _Lookups(cat)
        staff = clinicians(clinics)
        day = today or min(clinic.today() for clinic in clinics)
        generated = synth.generate(
            seed,
            patients,
            [c.slug for c in clinics],
            day,
            {slug: sorted(users) for slug, users in staff.items()},
            cat=cat,
        )
        writer = _Writer({c.slug: c.pk for c in clinics}, staff, lookups)
        for chunk in _chunks(generated, CHUNK):
            writer.write(chunk)
            if progress is not None:
                progress(len(chunk))
        record(
            "bulk",
            clinic_id=clinics[0].pk if len(clinics) == 1 else None,
            detail={
                "command": "synth",
                "patients": patients,
                "seed": seed,
                "clinics": [c.slug for c in clinics],
                "rows": writer.counts,
            },
        )
    return writer.counts
