"""The de-identified research export: tidy tables of the registry for R, Stata and Python.

:func:`write_research_export` writes one file per table (CSV or Parquet), the data
dictionary (CSV and JSON), the table of categories with their patient counts, and a
README stating the de-identification applied. The rules themselves are pure and live
in :mod:`stride.core.deid`; this module reads the database and applies them.

Which patients: only :meth:`Patient.objects.analysable() <stride.patients.models.PatientQuerySet.analysable>`
(consent given and not withdrawn), only of the clinics given. With a cohort
(:class:`~stride.core.cohorts.CohortSpec`) only the patients of its index episodes, and of
them only the conditions those episodes follow (with everything recorded about those
conditions; treatment history not tied to any condition comes too). ``episodes.in_cohort``
marks the cohort's own index episodes.

What never leaves: names, record numbers, emails, phones, dates of birth, calendar dates
(in "index" mode), free text of any kind, users, image files and their names, DICOM
attributes, internal ids (every id is a keyed pseudonym).

Memory stays flat however large the registry: patients are read in chunks of
:data:`CHUNK_PATIENTS` (keyset pagination by id), each table's rows for a chunk are
streamed with ``values_list(...).iterator(chunk_size=FETCH)``, CSV rows are written as
they come and Parquet rows are buffered up to :data:`ROW_GROUP` rows per row group. Only
the per-chunk lookups (day 0, offset and pseudonym of each patient of the chunk) and the
sets of rare categories are held.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import CharField, Count, F, Min, Q, QuerySet
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from stride.analytics.dataset import episodes_for
from stride.care.models import (
    AdverseEvent,
    Candidacy,
    Condition,
    ConditionStatus,
    DatePrecision,
    ImageGuidance,
    Injectate,
    Procedure,
    TreatmentHistory,
)
from stride.care.models import Response as TreatmentResponse
from stride.core import anthropometry, cohorts, deid, rules
from stride.core import schedule as core_schedule
from stride.core.catalog import LATERALITIES
from stride.core.errors import Invalid
from stride.imaging.models import Image, Measurement
from stride.outcomes.models import Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Consent, Patient

#: Patients read per chunk; every table's rows are read chunk by chunk.
CHUNK_PATIENTS = 2000
#: Rows fetched from the database at a time.
FETCH = 2000
#: Rows per Parquet row group (the most a Parquet table buffers).
ROW_GROUP = 20_000

FORMATS = ("csv", "parquet")
DICTIONARY = "data_dictionary"
CATEGORIES = "categories"
README = "README.txt"


# --------------------------------------------------------------------------- the tables, as data


@dataclass(frozen=True)
class Column:
    """One column of an exported table.

    ``type`` is string, integer, number, boolean or *day*: a day column is written as
    ``<name>_day`` (integer days from the patient's day 0) in "index" mode and as
    ``<name>_date`` (the date shifted by the patient's offset) in "shift" mode.
    ``collapsed`` columns pool values fewer than the small-cell minimum of patients share as
    "other". ``only`` names the one date mode the column exists in.
    """

    name: str
    type: str
    description: str
    unit: str = ""
    values: str = ""
    collapsed: bool = False
    only: str = ""

    def resolved(self, mode: str) -> Column | None:
        """The column as written in date mode ``mode`` (``None`` when it has no place there)."""
        if self.only and self.only != mode:
            return None
        if self.type != "day":
            return self
        if mode == "index":
            return replace(
                self,
                name=f"{self.name}_day",
                type="integer",
                unit="days",
                description=f"{self.description}: days from the patient's day 0 (negative before it).",
            )
        return replace(
            self,
            name=f"{self.name}_date",
            type="date",
            description=f"{self.description}: the date moved by the patient's secret offset "
            f"(1 to {deid.MAX_SHIFT_DAYS} days either way; never the true date).",
        )


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]

    def resolved(self, mode: str) -> tuple[Column, ...]:
        return tuple(c for c in (column.resolved(mode) for column in self.columns) if c is not None)


def _choices(choices: Iterable[Any]) -> str:
    return ", ".join(str(value) for value, _ in choices)


def _list(values: Iterable[str]) -> str:
    return ", ".join(values)


_OTHER = f"; '{deid.OTHER}' pools values fewer than the minimum of patients share"
_SIDES = _list(LATERALITIES)


def _pid(what: str = "The patient") -> Column:
    return Column("patient_id", "string", f"{what}'s pseudonym (links the tables).")


TABLES: tuple[Table, ...] = (
    Table(
        "patients",
        "One row per patient (consent given and not withdrawn).",
        (
            _pid(),
            Column(
                "clinic",
                "string",
                "The clinic's pseudonym (a keyed hash; no clinic name or place)",
                collapsed=True,
            ),
            Column("sex", "string", "Administrative sex", values=_list(cohorts.SEXES), collapsed=True),
            Column(
                "age_group",
                "string",
                f"Age in whole years at day 0; every age over {deid.OLDEST_AGE} is '{deid.AGE_OVER}'",
                unit="years",
            ),
            Column("bmi", "integer", "Body-mass index from the current height and weight, rounded", "kg/m2"),
            Column(
                "bmi_category",
                "string",
                "WHO adult BMI category",
                values="underweight, normal, overweight, obese",
            ),
            Column(
                "activity_level",
                "string",
                "Activity level",
                values=_list(cohorts.ACTIVITY_LEVELS),
                collapsed=True,
            ),
            Column(
                "day0_basis",
                "string",
                "What the patient's day 0 is: their first index treatment, else their first "
                "procedure, else their registry consent",
                values="first-index, first-procedure, consent",
            ),
            Column("day0", "day", "The patient's day 0", only="shift"),
        ),
    ),
    Table(
        "conditions",
        "One row per condition (a catalog condition on one side, at one site).",
        (
            Column("condition_id", "string", "The condition's pseudonym."),
            _pid(),
            Column("condition", "string", "Condition catalog code", collapsed=True),
            Column("icd10", "string", "ICD-10-CM code given to the condition", collapsed=True),
            Column(
                "additional_icd10",
                "string",
                "Further ICD-10-CM codes from catalog findings, space-separated",
                collapsed=True,
            ),
            Column(
                "snomed",
                "string",
                f"SNOMED CT concept id (empty where not verified; '{deid.OTHER}' with the condition)",
            ),
            Column("body_site", "string", "Body-site catalog code of the condition"),
            Column("site", "string", "Finer site catalog code (empty when not recorded)", collapsed=True),
            Column("side", "string", "Laterality", values=_SIDES),
            Column("status", "string", "Condition status", values=_choices(ConditionStatus.choices)),
            Column("onset", "day", "Onset"),
            Column("resolved", "day", "Resolution"),
        ),
    ),
    Table(
        "procedures",
        "One row per procedure done at the clinic.",
        (
            Column("procedure_id", "string", "The procedure's pseudonym."),
            _pid(),
            Column("condition_id", "string", "The condition treated."),
            Column("procedure", "string", "Procedure catalog code", collapsed=True),
            Column(
                "cpt", "string", f"CPT/HCPCS code number (no descriptor; '{deid.OTHER}' with the procedure)"
            ),
            Column("category", "string", "Procedure category", values="injection, surgery"),
            Column("side", "string", "Side treated", values=_SIDES),
            Column("site", "string", "Target structure catalog code", collapsed=True),
            Column("guidance", "string", "Image guidance", values=_choices(ImageGuidance.choices)),
            Column("is_index", "boolean", "An index treatment (starts a follow-up episode)"),
            Column("candidacy", "string", "Candidacy grade", values=_choices(Candidacy.choices)),
            Column("performed", "day", "Day of the procedure"),
        ),
    ),
    Table(
        "injectates",
        "One row per injectate of a procedure (a procedure may have several).",
        (
            Column("procedure_id", "string", "The procedure."),
            _pid(),
            Column(
                "kind", "string", "Injectate kind", values=_choices(Injectate.Kind.choices), collapsed=True
            ),
            Column("drug", "string", "Drug catalog code (steroids, anaesthetics)", collapsed=True),
            Column("dose_mg", "number", "Dose", "mg"),
            Column("volume_ml", "number", "Volume injected", "mL"),
            Column("concentration_pct", "number", "Concentration", "%"),
            Column("platelet_count", "number", "Platelet count of the product", "10^3/uL"),
            Column("baseline_platelet_count", "number", "Whole-blood platelet count", "10^3/uL"),
            Column("leukocytes", "string", "PRP leukocyte content", values="rich, poor"),
            Column("activation", "string", "PRP activation catalog code", collapsed=True),
            Column("aspirate_volume_ml", "number", "Bone-marrow aspirate volume", "mL"),
            Column("tnc_per_ml", "number", "Nucleated cells", "10^6/mL"),
            Column("series_number", "integer", "Session in a series"),
            Column("sites_injected", "integer", "Number of sites injected"),
        ),
    ),
    Table(
        "adverse_events",
        "One row per adverse event after a procedure (the description is not exported).",
        (
            Column("procedure_id", "string", "The procedure."),
            _pid(),
            Column("event", "string", "Adverse-event catalog code", collapsed=True),
            Column("severity", "string", "Severity", values=_choices(AdverseEvent.Severity.choices)),
            Column(
                "relatedness",
                "string",
                "Relation to the procedure",
                values=_choices(AdverseEvent.Relatedness.choices),
            ),
            Column("onset", "day", "Onset"),
            Column("resolved", "day", "Resolution"),
        ),
    ),
    Table(
        "history",
        "One row per treatment tried before or elsewhere (provider and notes are not exported).",
        (
            _pid(),
            Column("condition_id", "string", "The condition it was for (empty: not tied to one)."),
            Column("treatment", "string", "Treatment catalog code", collapsed=True),
            Column("category", "string", "Treatment category", values="conservative, injection, surgery"),
            Column("side", "string", "Side (empty when not recorded)", values=_SIDES),
            Column("started", "day", "When it was tried (to the precision given)"),
            Column(
                "precision",
                "string",
                "Precision of that date",
                values=_choices(DatePrecision.choices),
            ),
            Column("response", "string", "Response", values=_choices(TreatmentResponse.choices)),
            Column("relief_weeks", "integer", "How long relief lasted", "weeks"),
        ),
    ),
    Table(
        "episodes",
        "One row per follow-up episode: outcomes are timed from its index treatment.",
        (
            Column("episode_id", "string", "The episode's pseudonym."),
            _pid(),
            Column("condition_id", "string", "The condition followed."),
            Column("index_procedure_id", "string", "The index procedure (empty: started from a date)."),
            Column(
                "in_cohort",
                "boolean",
                "One of the cohort's index episodes (every episode when the whole registry is exported)",
            ),
            Column(
                "age_group",
                "string",
                f"Age in whole years at the index date; over {deid.OLDEST_AGE} is '{deid.AGE_OVER}'",
                unit="years",
            ),
            Column("index", "day", "Index date"),
            Column("ended", "day", "End of follow-up (censoring), empty while it runs"),
            Column(
                "end_reason",
                "string",
                "Why follow-up ended",
                values=_choices(Episode.EndReason.choices),
            ),
            Column("schedule_version", "integer", "Version of the follow-up schedule"),
        ),
    ),
    Table(
        "follow_up",
        "One row per episode and time point of the schedule, with its state.",
        (
            Column("episode_id", "string", "The episode."),
            _pid(),
            Column(
                "timepoint",
                "string",
                "Time point",
                values=_list(p.code for p in core_schedule.schedule().timepoints),
            ),
            Column("status", "string", "State (as last stored)", values=_choices(FollowUp.Status.choices)),
            Column("due", "day", "Target day of the time point"),
            Column("instruments", "string", "Instruments asked, space-separated"),
        ),
    ),
    Table(
        "scores",
        "One row per completed questionnaire, scale and time point.",
        (
            _pid(),
            Column("episode_id", "string", "The episode (empty for answers outside follow-up)."),
            Column("timepoint", "string", "Time point (empty for answers outside follow-up)"),
            Column("instrument", "string", "Instrument code"),
            Column("instrument_version", "string", "Instrument version"),
            Column("scale", "string", "Scale code"),
            Column("value", "number", "Score (empty when the scoring rules withhold it)"),
            Column("valid", "boolean", "Scored by the instrument's rules"),
            Column("late", "boolean", "Answered after the window closed (analyses leave these out)"),
            Column("baseline_after_index", "boolean", "A baseline answered after the index day (in grace)"),
            Column("days_from_index", "integer", "Days from the episode's index date to the answer", "days"),
            Column("answered", "day", "Day of the answer"),
            Column(
                "source",
                "string",
                "How it was collected",
                values=_choices(QuestionnaireResponse.Source.choices),
            ),
            Column("policy", "string", "Scoring policy applied"),
        ),
    ),
    Table(
        "measurements",
        "One row per image measurement (images themselves are never exported).",
        (
            _pid(),
            Column("condition_id", "string", "The condition the image belongs to."),
            Column("image_id", "string", "The image's pseudonym (groups measurements of one image)."),
            Column("measurement", "string", "Measurement type catalog code", collapsed=True),
            Column("value", "number", "Value, in the unit of the next column"),
            Column(
                "unit",
                "string",
                "Unit (px or px2: the image had no spacing)",
                values="mm, mm2, cm2, deg, ratio, grade, px, px2",
            ),
            Column("calibrated", "boolean", "Measured with a pixel spacing (false: in pixels)"),
            Column("tool", "string", "Measuring tool"),
            Column("qualifiers", "string", "Catalog qualifiers as JSON (code: option)"),
            Column("side", "string", "Side imaged", values=_SIDES),
            Column(
                "site", "string", "Site catalog code (the measurement's, else the image's)", collapsed=True
            ),
            Column(
                "modality", "string", "Imaging modality (DICOM code)", values=_choices(Image.Modality.choices)
            ),
            Column("view", "string", "Projection or view", values=_choices(Image.View.choices)),
            Column("taken", "day", "Day the image was taken"),
        ),
    ),
)

TABLE_NAMES = tuple(table.name for table in TABLES)
_BY_NAME = {table.name: table for table in TABLES}


# --------------------------------------------------------------------------- what was written


@dataclass
class ResearchSummary:
    """What an export wrote: rows per table, the files, and the de-identification in force."""

    out_dir: Path
    fmt: str
    dates: str
    minimum: int
    key_fingerprint: str
    tables: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    collapsed: dict[str, int] = field(default_factory=dict)  # "table.column" → values pooled as other

    @property
    def patients(self) -> int:
        return self.tables.get("patients", 0)

    def lines(self) -> list[str]:
        """The summary a command prints."""
        lines = [
            f"Research export ({self.fmt}, dates: {self.dates}) in {self.out_dir}",
            f"Export key fingerprint {self.key_fingerprint}; small-cell minimum {self.minimum}.",
        ]
        width = max(len(name) for name in self.tables) if self.tables else 0
        lines += [
            f"  {name:<{width}}  {count:>9,} row{'' if count == 1 else 's'}"
            for name, count in self.tables.items()
        ]
        pooled = sum(self.collapsed.values())
        if pooled:
            lines.append(f"{pooled} rare categor{'y' if pooled == 1 else 'ies'} pooled as '{deid.OTHER}'.")
        return lines


# --------------------------------------------------------------------------- writers


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class _CsvTable:
    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        self.file = path.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.file)
        self.writer.writerow([c.name for c in columns])

    def write(self, row: Sequence[Any]) -> None:
        self.writer.writerow([_csv_value(v) for v in row])

    def close(self) -> None:
        self.file.close()


class _ParquetTable:
    """Rows buffered by column and written as one row group per :data:`ROW_GROUP` rows."""

    def __init__(self, path: Path, columns: Sequence[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {
            "string": pa.string(),
            "integer": pa.int64(),
            "number": pa.float64(),
            "boolean": pa.bool_(),
            "date": pa.date32(),
        }
        self.pa = pa
        self.schema = pa.schema([pa.field(c.name, types[c.type]) for c in columns])
        self.writer = pq.ParquetWriter(str(path), self.schema)
        self.buffer: list[list[Any]] = [[] for _ in columns]
        self.size = 0

    def write(self, row: Sequence[Any]) -> None:
        # An empty text is a missing value, as in the CSV: null in Parquet.
        for column, value in zip(self.buffer, row, strict=True):
            column.append(None if value == "" else value)
        self.size += 1
        if self.size >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if not self.size:
            return
        arrays = [
            self.pa.array(values, type=f.type) for values, f in zip(self.buffer, self.schema, strict=True)
        ]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))
        self.buffer = [[] for _ in self.buffer]
        self.size = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


# --------------------------------------------------------------------------- values


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _whole(value: Any) -> int | None:
    return None if value is None else int(value)


def _codes(text: str | None) -> str:
    """A JSON list of codes (as stored) as space-separated codes."""
    if not text:
        return ""
    try:
        codes = json.loads(text)
    except ValueError:
        return ""
    return " ".join(str(code) for code in codes) if isinstance(codes, list) else ""


def _json_text(field_name: str) -> Cast:
    return Cast(field_name, CharField())


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class _Category:
    """A collapsed column: the table, the model, the raw value's expression, the path to the patient
    and to the condition (for a cohort), and whether rows without a condition belong to every cohort."""

    table: str
    column: str
    model: Any
    value: Any
    patient: str
    condition: str | None
    loose: bool = False  # rows without a condition count in a cohort export (history)
    label: Callable[[Any], str] | None = None


def _categories(pseudonyms: deid.Pseudonymiser) -> tuple[_Category, ...]:
    def clinic(clinic_id: Any) -> str:
        return pseudonyms("clinic", int(clinic_id))

    return (
        _Category("patients", "clinic", Patient, F("clinic_id"), "pk", None, label=clinic),
        _Category("patients", "sex", Patient, F("sex"), "pk", None),
        _Category("patients", "activity_level", Patient, F("activity_level"), "pk", None),
        _Category("conditions", "condition", Condition, F("condition_type__code"), "patient_id", "pk"),
        _Category("conditions", "icd10", Condition, F("icd10_code"), "patient_id", "pk"),
        _Category(
            "conditions",
            "additional_icd10",
            Condition,
            _json_text("additional_icd10"),
            "patient_id",
            "pk",
            label=_codes,
        ),
        _Category("conditions", "site", Condition, F("site__code"), "patient_id", "pk"),
        _Category(
            "procedures", "procedure", Procedure, F("procedure_type__code"), "patient_id", "condition_id"
        ),
        _Category("procedures", "site", Procedure, F("site__code"), "patient_id", "condition_id"),
        _Category(
            "injectates", "kind", Injectate, F("kind"), "procedure__patient_id", "procedure__condition_id"
        ),
        _Category(
            "injectates",
            "drug",
            Injectate,
            F("drug__code"),
            "procedure__patient_id",
            "procedure__condition_id",
        ),
        _Category(
            "injectates",
            "activation",
            Injectate,
            F("activation"),
            "procedure__patient_id",
            "procedure__condition_id",
        ),
        _Category(
            "adverse_events",
            "event",
            AdverseEvent,
            F("kind__code"),
            "procedure__patient_id",
            "procedure__condition_id",
        ),
        _Category(
            "history", "treatment", TreatmentHistory, F("treatment__code"), "patient_id", "condition_id", True
        ),
        _Category(
            "measurements",
            "measurement",
            Measurement,
            F("type_code"),
            "image__patient_id",
            "image__condition_id",
        ),
        _Category(
            "measurements",
            "site",
            Measurement,
            Coalesce("site__code", "image__site__code"),
            "image__patient_id",
            "image__condition_id",
        ),
    )


class _Selection:
    """The export's patients (and, for a cohort, conditions and index episodes), as querysets."""

    def __init__(self, clinic_ids: Iterable[int] | None, spec: cohorts.CohortSpec | None) -> None:
        patients = Patient.objects.analysable()
        if clinic_ids is not None:
            patients = patients.filter(clinic_id__in=list(clinic_ids))
        self.spec = spec
        self.episodes: QuerySet[Episode] | None = None
        if spec is not None:
            self.episodes = episodes_for(spec, clinic_ids)
            patients = patients.filter(pk__in=self.episodes.values("condition__patient_id"))
        self.patients = patients

    def scoped(
        self,
        queryset: QuerySet[Any],
        patient: str,
        condition: str | None,
        *,
        patients: Any = None,
        conditions: Any = None,
        loose: bool = False,
    ) -> QuerySet[Any]:
        """``queryset`` narrowed to the export's patients (or ``patients``) and, for a cohort, to its
        conditions (or ``conditions``); ``loose`` lets rows tied to no condition through."""
        queryset = queryset.filter(
            **{f"{patient}__in": self.patients.values("pk") if patients is None else patients}
        )
        if self.episodes is not None and condition is not None:
            chosen = self.episodes.values("condition_id") if conditions is None else conditions
            among = Q(**{f"{condition}__in": chosen})
            if loose:
                among |= Q(**{f"{condition}__isnull": True})
            queryset = queryset.filter(among)
        return queryset

    def chunks(self, size: int) -> Iterator[list[int]]:
        """The export's patient ids, ``size`` at a time, in id order."""
        last = 0
        while True:
            ids = list(self.patients.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
            if not ids:
                return
            yield ids
            last = ids[-1]


@dataclass
class _Chunk:
    """One chunk of patients and what every table needs about them."""

    ids: list[int]
    conditions: list[int] | None  # a cohort's conditions among these patients
    cohort_episodes: set[int] | None
    born: dict[int, dt.date]
    day0: dict[int, dt.date]
    basis: dict[int, str]
    offset: dict[int, int]
    pseudonym: dict[int, str]


class _Export:
    def __init__(
        self,
        selection: _Selection,
        mode: str,
        pseudonyms: deid.Pseudonymiser,
        rare: Mapping[tuple[str, str], frozenset[Any]],
    ) -> None:
        self.selection = selection
        self.mode = mode
        self.pseudonyms = pseudonyms
        self.rare = rare

    # ------------------------------------------------------------------ per chunk

    def chunk(self, ids: list[int]) -> _Chunk:
        firsts: list[tuple[str, dict[int, dt.date]]] = [
            (
                "first-index",
                dict(
                    Episode.objects.filter(condition__patient_id__in=ids)
                    .values("condition__patient_id")
                    .annotate(first=Min("index_date"))
                    .values_list("condition__patient_id", "first")
                    .order_by()
                ),
            ),
            (
                "first-procedure",
                dict(
                    Procedure.objects.filter(patient_id__in=ids)
                    .values("patient_id")
                    .annotate(first=Min("performed_on"))
                    .values_list("patient_id", "first")
                    .order_by()
                ),
            ),
            (
                "consent",
                dict(
                    Consent.objects.filter(patient_id__in=ids)
                    .values("patient_id")
                    .annotate(first=Min("consented_on"))
                    .values_list("patient_id", "first")
                    .order_by()
                ),
            ),
        ]
        day0: dict[int, dt.date] = {}
        basis: dict[int, str] = {}
        for patient_id in ids:
            for name, days in firsts:
                if patient_id in days:
                    day0[patient_id], basis[patient_id] = days[patient_id], name
                    break
        conditions = cohort_episodes = None
        if self.selection.episodes is not None:
            pairs = list(
                self.selection.episodes.filter(condition__patient_id__in=ids)
                .order_by()
                .values_list("pk", "condition_id")
            )
            cohort_episodes = {episode_id for episode_id, _ in pairs}
            conditions = sorted({condition_id for _, condition_id in pairs})
        return _Chunk(
            ids=ids,
            conditions=conditions,
            cohort_episodes=cohort_episodes,
            born=dict(Patient.objects.filter(pk__in=ids).values_list("pk", "date_of_birth")),
            day0=day0,
            basis=basis,
            offset={i: self.pseudonyms.offset(i) for i in ids},
            pseudonym={i: self.pseudonyms("patient", i) for i in ids},
        )

    def day(self, chunk: _Chunk, patient_id: int, day: dt.date | None) -> int | dt.date | None:
        return deid.export_day(self.mode, day, day0=chunk.day0[patient_id], offset=chunk.offset[patient_id])

    def other(self, table: str, column: str, value: Any) -> Any:
        """``value``, or "other" when fewer than the minimum of patients share it."""
        return deid.OTHER if value in self.rare.get((table, column), ()) else value

    def id_of(self, kind: str, record_id: int | None) -> str | None:
        return None if record_id is None else self.pseudonyms(kind, record_id)

    def rows(self, queryset: QuerySet[Any], *fields: Any) -> Iterator[tuple[Any, ...]]:
        return queryset.values_list(*fields).iterator(chunk_size=FETCH)

    def scoped(
        self, chunk: _Chunk, queryset: QuerySet[Any], patient: str, condition: str | None, loose: bool = False
    ) -> QuerySet[Any]:
        return self.selection.scoped(
            queryset, patient, condition, patients=chunk.ids, conditions=chunk.conditions, loose=loose
        )

    # ------------------------------------------------------------------ the tables

    def patients(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        for pk, clinic_id, sex, height, weight, activity in self.rows(
            Patient.objects.filter(pk__in=chunk.ids).order_by("pk"),
            "pk",
            "clinic_id",
            "sex",
            "height_cm",
            "weight_kg",
            "activity_level",
        ):
            bmi = anthropometry.bmi(height, weight)
            clinic = self.other("patients", "clinic", clinic_id)
            row = [
                chunk.pseudonym[pk],
                clinic if clinic == deid.OTHER else self.pseudonyms("clinic", clinic_id),
                self.other("patients", "sex", sex),
                deid.age_group(max(rules.age_on(chunk.born[pk], chunk.day0[pk]), 0)),
                deid.bmi_value(bmi),
                anthropometry.bmi_category(bmi),
                self.other("patients", "activity_level", activity),
                chunk.basis[pk],
            ]
            if self.mode == "shift":
                row.append(self.day(chunk, pk, chunk.day0[pk]))
            yield tuple(row)

    def conditions(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(chunk, Condition.objects.order_by("patient_id", "pk"), "patient_id", "pk")
        for (
            pk,
            patient_id,
            code,
            icd10,
            additional,
            snomed,
            body_site,
            site,
            side,
            status,
            onset,
            resolved,
        ) in self.rows(
            queryset,
            "pk",
            "patient_id",
            "condition_type__code",
            "icd10_code",
            _json_text("additional_icd10"),
            "snomed_code",
            "condition_type__body_site__code",
            "site__code",
            "laterality",
            "status",
            "onset_date",
            "resolved_on",
        ):
            condition = self.other("conditions", "condition", code)
            extra = self.other("conditions", "additional_icd10", additional)
            yield (
                self.pseudonyms("condition", pk),
                chunk.pseudonym[patient_id],
                condition,
                self.other("conditions", "icd10", icd10),
                extra if extra == deid.OTHER else _codes(extra),
                deid.OTHER if condition == deid.OTHER else snomed,
                body_site,
                self.other("conditions", "site", site),
                side,
                status,
                self.day(chunk, patient_id, onset),
                self.day(chunk, patient_id, resolved),
            )

    def procedures(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk, Procedure.objects.order_by("patient_id", "pk"), "patient_id", "condition_id"
        )
        for (
            pk,
            patient_id,
            condition_id,
            code,
            cpt,
            category,
            side,
            site,
            guidance,
            index,
            candidacy,
            day,
        ) in self.rows(
            queryset,
            "pk",
            "patient_id",
            "condition_id",
            "procedure_type__code",
            "procedure_type__cpt",
            "procedure_type__category",
            "laterality",
            "site__code",
            "image_guidance",
            "is_index",
            "candidacy",
            "performed_on",
        ):
            procedure = self.other("procedures", "procedure", code)
            yield (
                self.pseudonyms("procedure", pk),
                chunk.pseudonym[patient_id],
                self.pseudonyms("condition", condition_id),
                procedure,
                deid.OTHER if procedure == deid.OTHER else cpt,
                category,
                side,
                self.other("procedures", "site", site),
                guidance,
                bool(index),
                candidacy,
                self.day(chunk, patient_id, day),
            )

    def injectates(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            Injectate.objects.order_by("procedure__patient_id", "procedure_id", "pk"),
            "procedure__patient_id",
            "procedure__condition_id",
        )
        for (
            procedure_id,
            patient_id,
            kind,
            drug,
            dose,
            volume,
            concentration,
            platelets,
            baseline_platelets,
            leukocytes,
            activation,
            aspirate,
            tnc,
            series,
            sites,
        ) in self.rows(
            queryset,
            "procedure_id",
            "procedure__patient_id",
            "kind",
            "drug__code",
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
        ):
            yield (
                self.pseudonyms("procedure", procedure_id),
                chunk.pseudonym[patient_id],
                self.other("injectates", "kind", kind),
                self.other("injectates", "drug", drug),
                _number(dose),
                _number(volume),
                _number(concentration),
                _number(platelets),
                _number(baseline_platelets),
                leukocytes,
                self.other("injectates", "activation", activation),
                _number(aspirate),
                _number(tnc),
                _whole(series),
                _whole(sites),
            )

    def adverse_events(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            AdverseEvent.objects.order_by("procedure__patient_id", "procedure_id", "pk"),
            "procedure__patient_id",
            "procedure__condition_id",
        )
        for procedure_id, patient_id, kind, severity, relatedness, onset, resolved in self.rows(
            queryset,
            "procedure_id",
            "procedure__patient_id",
            "kind__code",
            "severity",
            "relatedness",
            "onset_date",
            "resolved_on",
        ):
            yield (
                self.pseudonyms("procedure", procedure_id),
                chunk.pseudonym[patient_id],
                self.other("adverse_events", "event", kind),
                severity,
                relatedness,
                self.day(chunk, patient_id, onset),
                self.day(chunk, patient_id, resolved),
            )

    def history(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            TreatmentHistory.objects.order_by("patient_id", "pk"),
            "patient_id",
            "condition_id",
            loose=True,
        )
        for patient_id, condition_id, code, category, side, started, precision, response, relief in self.rows(
            queryset,
            "patient_id",
            "condition_id",
            "treatment__code",
            "treatment__category",
            "laterality",
            "started_on",
            "date_precision",
            "response",
            "relief_weeks",
        ):
            yield (
                chunk.pseudonym[patient_id],
                self.id_of("condition", condition_id),
                self.other("history", "treatment", code),
                category,
                side,
                self.day(chunk, patient_id, started),
                precision,
                response,
                _whole(relief),
            )

    def episodes(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            Episode.objects.order_by("condition__patient_id", "index_date", "pk"),
            "condition__patient_id",
            "condition_id",
        )
        for pk, patient_id, condition_id, procedure_id, index, ended, reason, version in self.rows(
            queryset,
            "pk",
            "condition__patient_id",
            "condition_id",
            "index_procedure_id",
            "index_date",
            "ended_on",
            "end_reason",
            "schedule_version",
        ):
            yield (
                self.pseudonyms("episode", pk),
                chunk.pseudonym[patient_id],
                self.pseudonyms("condition", condition_id),
                self.id_of("procedure", procedure_id),
                chunk.cohort_episodes is None or pk in chunk.cohort_episodes,
                deid.age_group(max(rules.age_on(chunk.born[patient_id], index), 0)),
                self.day(chunk, patient_id, index),
                self.day(chunk, patient_id, ended),
                reason,
                version,
            )

    def follow_up(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            FollowUp.objects.order_by("patient_id", "episode_id", "due_on", "pk"),
            "patient_id",
            "episode__condition_id",
        )
        for episode_id, patient_id, point, status, due, instruments in self.rows(
            queryset, "episode_id", "patient_id", "timepoint", "status", "due_on", "instruments"
        ):
            yield (
                self.pseudonyms("episode", episode_id),
                chunk.pseudonym[patient_id],
                point,
                status,
                self.day(chunk, patient_id, due),
                " ".join(instruments or ()),
            )

    def scores(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            Score.objects.filter(response__status=QuestionnaireResponse.Status.COMPLETED).order_by(
                "response__patient_id", "response__collected_on", "response_id", "pk"
            ),
            "response__patient_id",
            "response__follow_up__episode__condition_id",
        )
        for (
            patient_id,
            episode_id,
            index,
            point,
            instrument,
            version,
            scale,
            value,
            valid,
            flags,
            answered,
            source,
            policy,
        ) in self.rows(
            queryset,
            "response__patient_id",
            "response__follow_up__episode_id",
            "response__follow_up__episode__index_date",
            "response__follow_up__timepoint",
            "instrument",
            "response__instrument_version",
            "scale",
            "value",
            "valid",
            "response__flags",
            "response__collected_on",
            "response__source",
            "policy",
        ):
            flags = flags or ()
            yield (
                chunk.pseudonym[patient_id],
                self.id_of("episode", episode_id),
                point or "",
                instrument,
                version,
                scale,
                value,
                bool(valid),
                "late" in flags,
                "baseline-after-index" in flags,
                None if index is None else deid.days_from(index, answered),
                self.day(chunk, patient_id, answered),
                source,
                policy,
            )

    def measurements(self, chunk: _Chunk) -> Iterator[tuple[Any, ...]]:
        queryset = self.scoped(
            chunk,
            Measurement.objects.order_by("image__patient_id", "image__acquired_on", "image_id", "pk"),
            "image__patient_id",
            "image__condition_id",
        )
        for (
            patient_id,
            condition_id,
            image_id,
            code,
            value,
            unit,
            calibrated,
            tool,
            qualifiers,
            side,
            site,
            modality,
            view,
            taken,
        ) in self.rows(
            queryset,
            "image__patient_id",
            "image__condition_id",
            "image_id",
            "type_code",
            "value",
            "unit",
            "calibrated",
            "tool",
            "qualifiers",
            "image__laterality",
            Coalesce("site__code", "image__site__code"),
            "image__modality",
            "image__view",
            "image__acquired_on",
        ):
            yield (
                chunk.pseudonym[patient_id],
                self.pseudonyms("condition", condition_id),
                self.pseudonyms("image", image_id),
                self.other("measurements", "measurement", code),
                value,
                unit,
                bool(calibrated),
                tool,
                json.dumps(qualifiers or {}, sort_keys=True),
                side,
                self.other("measurements", "site", site),
                modality,
                view,
                self.day(chunk, patient_id, taken),
            )


# --------------------------------------------------------------------------- small cells


def _rare_categories(
    selection: _Selection, pseudonyms: deid.Pseudonymiser, minimum: int
) -> tuple[dict[tuple[str, str], frozenset[Any]], list[tuple[str, str, str, int | None]]]:
    """The rare values of every collapsed column, and the category table (patients per value,
    after pooling, small counts withheld)."""
    rare: dict[tuple[str, str], frozenset[Any]] = {}
    table: list[tuple[str, str, str, int | None]] = []
    for category in _categories(pseudonyms):
        scoped = selection.scoped(
            category.model.objects.all(), category.patient, category.condition, loose=category.loose
        ).annotate(_value=category.value)
        counts = dict(
            scoped.order_by()
            .values("_value")
            .annotate(n=Count(category.patient, distinct=True))
            .values_list("_value", "n")
        )
        found = deid.rare_values({k: v for k, v in counts.items() if k not in (None, "")}, minimum)
        rare[category.table, category.column] = found
        label = category.label or str
        rows = sorted(
            (label(value), n) for value, n in counts.items() if value not in (None, "") and value not in found
        )
        if found:
            pooled = scoped.filter(_value__in=list(found)).aggregate(n=Count(category.patient, distinct=True))
            rows.append((deid.OTHER, pooled["n"]))
        for value, n in deid.suppress_counts(rows, minimum):
            table.append((category.table, category.column, value, n))
    return rare, table


# --------------------------------------------------------------------------- the export


def _check(fmt: str, dates: str, key: str, minimum: int | None) -> int:
    if fmt not in FORMATS:
        raise Invalid(f"Unknown format {fmt!r}; choose csv or parquet.", "format")
    deid.check_mode(dates)
    deid.check_key(key)
    return deid.check_minimum(settings.STRIDE_MIN_CELL_SIZE if minimum is None else minimum)


def write_research_export(
    out_dir: Path | str,
    *,
    fmt: str = "csv",
    clinic_ids: Iterable[int] | None,
    spec: cohorts.CohortSpec | None = None,
    dates: str = "index",
    key: str,
    minimum: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> ResearchSummary:
    """Write the de-identified research tables of ``clinic_ids`` (``None``: every clinic) to ``out_dir``.

    ``spec`` narrows the export to a cohort's patients and the conditions its index episodes
    follow. ``dates`` is "index" (days from each patient's day 0) or "shift" (dates moved by a
    secret per-patient offset). ``key`` derives every pseudonym and offset: the same key gives
    the same pseudonyms in every export. ``minimum`` is the small-cell minimum (the
    ``STRIDE_MIN_CELL_SIZE`` setting when ``None``; 1 pools nothing). ``progress`` is called
    with (table name, rows written to it so far) after each chunk of patients.

    Raises :class:`Invalid` (nothing written) for a bad format, date mode, key or minimum.
    """
    minimum = _check(fmt, dates, key, minimum)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise Invalid(f"{out} is a file; give a folder for the export.", "out")
    out.mkdir(parents=True, exist_ok=True)
    pseudonyms = deid.Pseudonymiser(key)
    selection = _Selection(clinic_ids, spec)
    rare, categories = _rare_categories(selection, pseudonyms, minimum)
    export = _Export(selection, dates, pseudonyms, rare)
    summary = ResearchSummary(
        out_dir=out, fmt=fmt, dates=dates, minimum=minimum, key_fingerprint=deid.fingerprint(key)
    )
    summary.collapsed = {
        f"{table}.{column}": len(values) for (table, column), values in rare.items() if values
    }

    writer_type = _CsvTable if fmt == "csv" else _ParquetTable
    writers: dict[str, _CsvTable | _ParquetTable] = {}
    try:
        for table in TABLES:
            path = out / f"{table.name}.{fmt}"
            writers[table.name] = writer_type(path, table.resolved(dates))
            summary.files.append(path)
            summary.tables[table.name] = 0
        for ids in selection.chunks(CHUNK_PATIENTS):
            chunk = export.chunk(ids)
            for table in TABLES:
                written = 0
                sink = writers[table.name]
                for row in getattr(export, table.name)(chunk):
                    sink.write(row)
                    written += 1
                summary.tables[table.name] += written
                if progress is not None:
                    progress(table.name, summary.tables[table.name])
    finally:
        for sink in writers.values():
            sink.close()

    summary.files += _write_dictionary(out, dates)
    summary.files.append(_write_categories(out, categories, minimum))
    summary.files.append(_write_readme(out, summary, spec, categories))
    return summary


# --------------------------------------------------------------------------- dictionary and README


def dictionary(dates: str = "index") -> list[dict[str, str]]:
    """The data dictionary: one entry per column of every table, as exported in date mode ``dates``."""
    deid.check_mode(dates)
    entries = []
    for table in TABLES:
        for column in table.resolved(dates):
            description = column.description.rstrip(".") + "."
            if column.collapsed:
                description = description.rstrip(".") + _OTHER + "."
            entries.append(
                {
                    "table": table.name,
                    "column": column.name,
                    "type": column.type,
                    "unit": column.unit,
                    "description": description,
                    "values": column.values,
                }
            )
    return entries


def dictionary_markdown() -> str:
    """The tables and their columns as Markdown, for docs/research-export.md: written from the same
    definitions as the dictionary files. A day column is shown with both of its names."""
    lines: list[str] = []
    for table in TABLES:
        lines += [f"### `{table.name}`", "", table.description, ""]
        lines += ["| column | type | unit | description | values |", "| --- | --- | --- | --- | --- |"]
        for column in table.columns:
            if column.type == "day" and column.only == "shift":
                names, kind, unit = f"`{column.name}_date`", "date", ""
                description = f"{column.description}, shifted by the patient's offset."
            elif column.type == "day":
                names, kind, unit = f"`{column.name}_day` / `{column.name}_date`", "integer / date", "days"
                description = (
                    f"{column.description}: days from the patient's day 0 ('index' mode) or the date "
                    "shifted by the patient's offset ('shift' mode)."
                )
            else:
                names, kind, unit = f"`{column.name}`", column.type, column.unit
                description = column.description.rstrip(".") + "."
            if column.only:
                description += f" Only in '{column.only}' mode."
            if column.collapsed:
                description = description.rstrip(".") + _OTHER + "."
            lines.append(f"| {names} | {kind} | {unit} | {description} | {column.values} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _write_dictionary(out: Path, dates: str) -> list[Path]:
    entries = dictionary(dates)
    csv_path = out / f"{DICTIONARY}.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["table", "column", "type", "unit", "description", "values"])
        writer.writeheader()
        writer.writerows(entries)
    json_path = out / f"{DICTIONARY}.json"
    data = {
        "date_mode": dates,
        "tables": [
            {
                "name": table.name,
                "description": table.description,
                "columns": [
                    {k: v for k, v in entry.items() if k != "table"}
                    for entry in entries
                    if entry["table"] == table.name
                ],
            }
            for table in TABLES
        ],
    }
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [csv_path, json_path]


def _write_categories(out: Path, rows: list[tuple[str, str, str, int | None]], minimum: int) -> Path:
    path = out / f"{CATEGORIES}.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["table", "column", "value", "patients"])
        for table, column, value, count in rows:
            writer.writerow([table, column, value, deid.count_text(count, minimum)])
    return path


def _cohort_text(spec: cohorts.CohortSpec | None) -> str:
    if spec is None:
        return "The whole registry of the clinics chosen (every patient whose consent stands)."
    # Clinics are named by pseudonym only; calendar dates of a cohort's criteria are left out.
    told = replace(spec, clinics=(), index_dates=cohorts.Range())
    text = cohorts.describe(told)
    if spec.index_dates:
        text += " The cohort is limited to a range of index dates (not stated: no calendar date is exported)."
    return text


def _write_readme(
    out: Path,
    summary: ResearchSummary,
    spec: cohorts.CohortSpec | None,
    categories: list[tuple[str, str, str, int | None]],
) -> Path:
    minimum = summary.minimum
    clinics = [value for table, column, value, _ in categories if (table, column) == ("patients", "clinic")]
    lines = [
        "Stride research export (de-identified)",
        "=" * 38,
        "",
        f"Generated: {timezone.now():%Y-%m-%d %H:%M} UTC",
        f"Format: {summary.fmt}; one file per table, plus {DICTIONARY}.csv/.json and {CATEGORIES}.csv.",
        f"Export key fingerprint: {summary.key_fingerprint} (the key itself is not stored anywhere).",
        "",
        "Selection",
        "---------",
        _cohort_text(spec),
        f"Clinics (pseudonyms): {', '.join(clinics) or 'none'}.",
        "Patients who withdrew consent, or never gave it, are never included.",
        "",
        "Tables (rows)",
        "-------------",
    ]
    for name, count in deid.suppress_counts(summary.tables.items(), minimum):
        description = _BY_NAME[name].description
        lines.append(f"{name}: {deid.count_text(count, minimum)} rows. {description}")
    lines += [
        "",
        "Dates",
        "-----",
    ]
    if summary.dates == "index":
        lines.append(
            "Mode 'index': no calendar date is exported. Every date is a whole number of days from the "
            "patient's own day 0 (their first index treatment; else their first procedure; else their "
            "registry consent; see patients.day0_basis). Columns ending in _day hold these numbers; "
            "negative numbers are before day 0. scores.days_from_index counts from the episode's own "
            "index date."
        )
    else:
        lines.append(
            "Mode 'shift': columns ending in _date hold dates moved by a secret per-patient offset of "
            f"1 to {deid.MAX_SHIFT_DAYS} days, earlier or later (never 0), the same offset for all of a "
            "patient's dates, so intervals within a patient are exact while no true date is given. The "
            "offset is derived from the export key. Shifted dates are not among Safe Harbor's own rules "
            "(which remove every date element but the year): use this mode only where the registry's "
            "governance (an expert determination or a data-use agreement) allows it."
        )
    lines += [
        "",
        "Ages",
        "----",
        f"Whole years; every age over {deid.OLDEST_AGE} is '{deid.AGE_OVER}'. No date or year of birth is "
        "exported.",
        "",
        "Small cells",
        "-----------",
        f"Minimum: {minimum} patients. In {CATEGORIES}.csv (patients per category) and in the row "
        f"counts above, counts of 1 to {minimum - 1} are shown as '<{minimum}'. In the tables, a category "
        f"(clinic, sex, activity level, condition, ICD-10-CM code, site, procedure, injectate kind, drug, "
        f"activation, adverse event, treatment, measurement type) that fewer than {minimum} patients "
        f"share is replaced by '{deid.OTHER}' (a CPT or SNOMED code follows its procedure or condition). "
        "Numbers (ages, BMI, scores, measurements, days) are not pooled: ages over 89 are grouped and "
        "BMI is rounded instead.",
    ]
    if summary.collapsed:
        pooled = ", ".join(f"{name} ({n})" for name, n in sorted(summary.collapsed.items()))
        lines.append(f"Columns with values pooled (number of values): {pooled}.")
    else:
        lines.append("No value was rare enough to be pooled in this export.")
    lines += [
        "",
        "Pseudonyms",
        "----------",
        "Every id (patient P…, clinic K…, condition C…, procedure X…, episode E…, image I…) is a keyed "
        "BLAKE2b hash of Stride's internal id under the export key: the same in every export made with "
        "the same key, unrelated under another key, and not reversible without it. Keep the key with "
        "the registry; never send it with the data.",
        "",
        "HIPAA Safe Harbor identifiers (45 CFR 164.514(b)(2)) and what this export does",
        "-------------------------------------------------------------------------------",
    ]
    for item in deid.SAFE_HARBOR:
        lines.append(f"({item.code}) {item.name}: {item.stride}")
    lines += [
        "",
        "Loading",
        "-------",
        "Python: pandas.read_csv('scores.csv') or pandas.read_parquet('scores.parquet').",
        "R: readr::read_csv('scores.csv') or arrow::read_parquet('scores.parquet').",
        "Join the tables on patient_id, condition_id, procedure_id, episode_id and image_id.",
        f"Each column is described in {DICTIONARY}.csv.",
        "",
    ]
    path = out / README
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
