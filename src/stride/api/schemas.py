"""The API's request and response schemas.

Inputs are strict: unknown fields are refused, a number is never read from a
string nor a boolean from a number, dates are written ``YYYY-MM-DD``, text
holds no NUL character. Catalog entries are named by their codes (the same as
in the catalog files), users by their usernames, records by their ids.
Outputs name every field, nullable ones with ``null``.

The schemas check shapes and types; the clinical rules (dates, sides, codes,
ranges) stay in the models' ``clean()`` and the services, so the API refuses
exactly what the pages refuse, with the same sentences.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PlainValidator, create_model
from pydantic.json_schema import WithJsonSchema
from pydantic_core import PydanticCustomError

from stride.core import catalog as core_catalog
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure

SLUG = r"^[a-z0-9-]+$"
RECORD_NUMBER = r"^[A-Za-z0-9][A-Za-z0-9./_-]*$"
PHONE = r"^(\+?[0-9 ()./-]{6,30})?$"

#: The largest id a database row can have (a signed 64-bit integer).
MAX_ID = 2**63 - 1
MAX_PAGE = 200
DEFAULT_PAGE = 50

# --------------------------------------------------------------------------- building blocks


def _text(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "contains the NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("not_text", "is not valid Unicode text") from None
    return value


def Text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_text)]


Code = Annotated[str, Field(min_length=1, max_length=60, pattern=SLUG)]
RecordNumber = Annotated[str, Field(min_length=1, max_length=40, pattern=RECORD_NUMBER)]
Phone = Annotated[str, Field(max_length=30, pattern=PHONE)]
Username = Annotated[str, Field(min_length=1, max_length=150), AfterValidator(_text)]


def _whole(value: Any) -> Any:
    """JSON has one number type: 3.0 is the whole number 3 (as JSON Schema's "integer" says)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**63:
        return int(value)
    return value


Id = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_ID)]
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date_format", "is not a date written YYYY-MM-DD")


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date), WithJsonSchema({"type": "string", "format": "date"})]


def Number(ge: float | None = None, le: float | None = None) -> Any:
    return Annotated[float, Field(allow_inf_nan=False, ge=ge, le=le)]


def Count(ge: int = 0, le: int = 32767) -> Any:
    return Annotated[int, BeforeValidator(_whole), Field(ge=ge, le=le)]


def _answer(value: Any) -> int | str | None:
    value = _whole(value)
    if value is None or (isinstance(value, str) and value == "NA"):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 10**6:
        return value
    raise PydanticCustomError("answer_type", 'is not a whole number, "NA" or null')


Answer = Annotated[
    int | str | None,
    PlainValidator(_answer),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": -(10**6), "maximum": 10**6},
                {"type": "string", "enum": ["NA"]},
                {"type": "null"},
            ]
        }
    ),
]


def CatalogCode(label: str, codes: Any) -> Any:
    """A code of the shipped catalog, listed in the document; an unknown one is refused by name."""
    known = tuple(sorted(codes))

    def check(value: str) -> str:
        if value not in known:
            raise PydanticCustomError("unknown_code", "is not a known code", {"label": label, "given": value})
        return value

    return Annotated[
        str, PlainValidator(_strict_str(check)), WithJsonSchema({"type": "string", "enum": list(known)})
    ]


def _strict_str(then: Any) -> Any:
    def validate(value: Any) -> Any:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "is not a string")
        return then(value)

    return validate


_CATALOG = core_catalog.catalog()
ConditionCode = CatalogCode("condition type", _CATALOG.conditions)
SiteCode = CatalogCode("site", _CATALOG.sites)
ProcedureCode = CatalogCode("procedure type", _CATALOG.procedures)
TreatmentCode = CatalogCode("treatment", _CATALOG.treatments)
DrugCode = CatalogCode("drug", _CATALOG.drugs)
EventCode = CatalogCode("adverse-event kind", _CATALOG.adverse_events)
FindingCode = CatalogCode("finding", {q.code for c in _CATALOG.conditions.values() for q in c.qualifiers})
ActivationCode = CatalogCode("activation", {"", *_CATALOG.activations})
InstrumentCode = CatalogCode("instrument", core_instruments.library())
MeasurementCode = CatalogCode("measurement type", core_measure.measurement_types())


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def unchanged() -> Any:
    """A PATCH field: absent keeps the stored value (``null`` is refused where the field is not nullable)."""
    return Field(default=None, json_schema_extra=_no_default)


class In(Schema):
    """A request body: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


Laterality = Literal["left", "right", "bilateral"]
SideOrBlank = Literal["", "left", "right", "bilateral"]
Sex = Literal["female", "male", "other", "unknown"]
Activity = Literal["", "sedentary", "recreational", "competitive"]

# --------------------------------------------------------------------------- errors, pages


class FieldError(Schema):
    field: str | None
    message: str


class Error(Schema):
    """Every error: one sentence, the field at fault (``null`` for the request as a whole), all problems."""

    error: str
    field: str | None
    errors: list[FieldError]


#: The error answers every operation may give besides its own.
ERRORS: dict[int, type[Schema]] = {401: Error, 403: Error, 404: Error, 422: Error}
WRITE_ERRORS: dict[int, type[Schema]] = {400: Error, **ERRORS}


class PageQuery(Schema):
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description=f"Items per page (at most {MAX_PAGE}).")
    offset: int = Field(0, ge=0, le=10**9, description="How many items to skip.")


def page_of(item: type[Schema], name: str) -> type[Schema]:
    """``{count, limit, offset, items}``: one page of a list, and how many there are in all."""
    return create_model(  # type: ignore[call-overload,no-any-return]
        name,
        __base__=Schema,
        __doc__=f"A page of {item.__name__} items and the total count.",
        count=(int, ...),
        limit=(int, ...),
        offset=(int, ...),
        items=(list[item], ...),  # type: ignore[valid-type]
    )


# --------------------------------------------------------------------------- who am I, the catalog


class MembershipOut(Schema):
    clinic: str
    clinic_name: str
    role: str


class MeOut(Schema):
    username: str
    name: str
    memberships: list[MembershipOut]


class CatalogItem(Schema):
    code: str
    name: str


class InstrumentOut(Schema):
    code: str
    name: str
    version: str
    items: int
    scales: list[str]


class MeasurementTypeOut(Schema):
    code: str
    name: str
    unit: str
    tools: list[str]


class CatalogOut(Schema):
    condition_types: list[CatalogItem]
    sites: list[CatalogItem]
    procedure_types: list[CatalogItem]
    treatments: list[CatalogItem]
    drugs: list[CatalogItem]
    adverse_event_kinds: list[CatalogItem]
    instruments: list[InstrumentOut]
    measurement_types: list[MeasurementTypeOut]


# --------------------------------------------------------------------------- patients and consent


class PatientQuery(PageQuery):
    q: Text(100) = Field(  # type: ignore[valid-type]
        "", description="Words to find in a name, record number, condition or ICD-10-CM code."
    )
    clinic: Text(50) = Field("", description="Only this clinic (its slug).")  # type: ignore[valid-type]
    record_number: Text(40) = Field("", description="Exactly this record number.")  # type: ignore[valid-type]


class PatientOut(Schema):
    id: int
    clinic: str
    record_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    sex: str
    email: str
    phone: str
    height_cm: float | None
    weight_kg: float | None
    activity_level: str
    notes: str
    consent_status: Literal["none", "active", "withdrawn"]
    created_at: dt.datetime
    updated_at: dt.datetime


class PatientIn(In):
    clinic: Annotated[str, Field(min_length=1, max_length=50, pattern=SLUG)] | None = Field(
        None, description="The clinic's slug; may be left out by a user of one clinic."
    )
    record_number: RecordNumber
    given_name: Text(100, 1)  # type: ignore[valid-type]
    family_name: Text(100, 1)  # type: ignore[valid-type]
    date_of_birth: IsoDate
    sex: Sex
    email: Text(254) = ""  # type: ignore[valid-type]
    phone: Phone = ""
    height_cm: Number() | None = None  # type: ignore[valid-type]
    weight_kg: Number() | None = None  # type: ignore[valid-type]
    activity_level: Activity = ""
    notes: Text(10_000) = ""  # type: ignore[valid-type]


class PatientPatch(In):
    record_number: RecordNumber = unchanged()
    given_name: Text(100, 1) = unchanged()  # type: ignore[valid-type]
    family_name: Text(100, 1) = unchanged()  # type: ignore[valid-type]
    date_of_birth: IsoDate = unchanged()
    sex: Sex = unchanged()
    email: Text(254) = unchanged()  # type: ignore[valid-type]
    phone: Phone = unchanged()
    height_cm: Number() | None = unchanged()  # type: ignore[valid-type]
    weight_kg: Number() | None = unchanged()  # type: ignore[valid-type]
    activity_level: Activity = unchanged()
    notes: Text(10_000) = unchanged()  # type: ignore[valid-type]


class FhirBundleOut(Schema):
    """A FHIR R4 Bundle (type collection) of the patient's record, as the FHIR export writes it."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    type: str
    entry: list[dict[str, Any]]


class ConsentOut(Schema):
    id: int
    patient_id: int
    version: str
    consented_on: dt.date
    withdrawn_on: dt.date | None
    notes: str
    recorded_by: str | None
    created_at: dt.datetime


class ConsentIn(In):
    version: Text(40, 1)  # type: ignore[valid-type]
    consented_on: IsoDate
    withdrawn_on: IsoDate | None = None
    notes: Text(10_000) = ""  # type: ignore[valid-type]


class ConsentPatch(In):
    version: Text(40, 1) = unchanged()  # type: ignore[valid-type]
    consented_on: IsoDate = unchanged()
    withdrawn_on: IsoDate | None = unchanged()
    notes: Text(10_000) = unchanged()  # type: ignore[valid-type]


# --------------------------------------------------------------------------- conditions, history


Episode = Literal["", "A", "D", "S"]


class ConditionOut(Schema):
    id: int
    patient_id: int
    condition_type: str
    condition_name: str
    laterality: str
    site: str | None
    site_note: str
    episode: str
    qualifiers: list[str]
    icd10_code: str
    additional_icd10: list[str]
    snomed_code: str
    onset_date: dt.date | None
    status: str
    resolved_on: dt.date | None
    severity_notes: str
    created_at: dt.datetime
    updated_at: dt.datetime


class ConditionIn(In):
    condition_type: ConditionCode
    laterality: Laterality
    site: SiteCode | None = None
    site_note: Text(200) = ""  # type: ignore[valid-type]
    episode: Episode = ""
    qualifiers: list[FindingCode] = Field(default_factory=list, max_length=10)
    onset_date: IsoDate | None = None
    status: Literal["active", "resolved"] = "active"
    resolved_on: IsoDate | None = None
    severity_notes: Text(10_000) = ""  # type: ignore[valid-type]


class ConditionPatch(In):
    condition_type: ConditionCode = unchanged()
    laterality: Laterality = unchanged()
    site: SiteCode | None = unchanged()
    site_note: Text(200) = unchanged()  # type: ignore[valid-type]
    episode: Episode = unchanged()
    qualifiers: list[FindingCode] = Field(default=None, max_length=10, json_schema_extra=_no_default)
    onset_date: IsoDate | None = unchanged()
    status: Literal["active", "resolved"] = unchanged()
    resolved_on: IsoDate | None = unchanged()
    severity_notes: Text(10_000) = unchanged()  # type: ignore[valid-type]


Response = Literal["none", "partial", "full", "unknown"]
Precision = Literal["day", "month", "year"]


class HistoryOut(Schema):
    id: int
    patient_id: int
    condition_id: int | None
    treatment: str
    treatment_name: str
    laterality: str
    started_on: dt.date
    date_precision: str
    provider: str
    response: str
    relief_weeks: int | None
    notes: str
    created_at: dt.datetime
    updated_at: dt.datetime


class HistoryIn(In):
    condition: Id | None = None
    treatment: TreatmentCode
    laterality: SideOrBlank = ""
    started_on: IsoDate
    date_precision: Precision = "day"
    provider: Text(200) = ""  # type: ignore[valid-type]
    response: Response = "unknown"
    relief_weeks: Count(0, 5200) | None = None  # type: ignore[valid-type]
    notes: Text(10_000) = ""  # type: ignore[valid-type]


class HistoryPatch(In):
    condition: Id | None = unchanged()
    treatment: TreatmentCode = unchanged()
    laterality: SideOrBlank = unchanged()
    started_on: IsoDate = unchanged()
    date_precision: Precision = unchanged()
    provider: Text(200) = unchanged()  # type: ignore[valid-type]
    response: Response = unchanged()
    relief_weeks: Count(0, 5200) | None = unchanged()  # type: ignore[valid-type]
    notes: Text(10_000) = unchanged()  # type: ignore[valid-type]


# --------------------------------------------------------------------------- procedures


InjectateKind = Literal[
    "steroid", "local-anaesthetic", "prp", "platelet-lysate", "bmc", "dextrose", "alcohol"
]
Guidance = Literal["ultrasound", "fluoroscopy", "none"]
Candidacy = Literal["", "good", "fair", "poor"]


class InjectateOut(Schema):
    id: int
    kind: str
    drug: str | None
    dose_mg: float | None
    volume_ml: float | None
    concentration_pct: float | None
    platelet_count: float | None
    baseline_platelet_count: float | None
    leukocytes: str
    activation: str
    aspirate_volume_ml: float | None
    tnc_per_ml: float | None
    series_number: int | None
    sites_injected: int | None
    notes: str
    platelet_dose_billions: float | None
    total_nucleated_cells_millions: float | None
    paw: str | None
    mishra: str | None
    summary: str


class InjectateIn(In):
    kind: InjectateKind
    drug: DrugCode | None = None
    dose_mg: Number() | None = None  # type: ignore[valid-type]
    volume_ml: Number() | None = None  # type: ignore[valid-type]
    concentration_pct: Number() | None = None  # type: ignore[valid-type]
    platelet_count: Number() | None = None  # type: ignore[valid-type]
    baseline_platelet_count: Number() | None = None  # type: ignore[valid-type]
    leukocytes: Literal["", "rich", "poor"] = ""
    activation: ActivationCode = ""
    aspirate_volume_ml: Number() | None = None  # type: ignore[valid-type]
    tnc_per_ml: Number() | None = None  # type: ignore[valid-type]
    series_number: Count(0, 32767) | None = None  # type: ignore[valid-type]
    sites_injected: Count(0, 32767) | None = None  # type: ignore[valid-type]
    notes: Text(300) = ""  # type: ignore[valid-type]


Severity = Literal["mild", "moderate", "severe", "serious"]
Relatedness = Literal["related", "possibly", "unlikely", "unrelated"]


class AdverseEventOut(Schema):
    id: int
    kind: str
    kind_name: str
    description: str
    onset_date: dt.date
    severity: str
    relatedness: str
    adjudicated_by: str | None
    resolved_on: dt.date | None


class AdverseEventIn(In):
    kind: EventCode
    description: Text(300) = ""  # type: ignore[valid-type]
    onset_date: IsoDate
    severity: Severity
    relatedness: Relatedness
    resolved_on: IsoDate | None = None


class ProcedureOut(Schema):
    id: int
    patient_id: int
    condition_id: int
    performed_on: dt.date
    procedure_type: str
    procedure_name: str
    cpt: str
    clinician: str | None
    site: str | None
    target_note: str
    laterality: str
    image_guidance: str
    is_index: bool
    candidacy: str
    notes: str
    steroid_limit_exceeded: bool
    injectates: list[InjectateOut]
    adverse_events: list[AdverseEventOut]
    created_at: dt.datetime
    updated_at: dt.datetime


class ProcedureIn(In):
    condition: Id
    performed_on: IsoDate
    procedure_type: ProcedureCode
    clinician: Username | None = Field(
        None, description="Username of the clinician; left out, the token's user when they are one."
    )
    site: SiteCode | None = None
    target_note: Text(200) = ""  # type: ignore[valid-type]
    laterality: Laterality
    image_guidance: Guidance
    is_index: bool = False
    candidacy: Candidacy = ""
    notes: Text(10_000) = ""  # type: ignore[valid-type]
    injectates: list[InjectateIn] = Field(default_factory=list, max_length=6)
    adverse_events: list[AdverseEventIn] = Field(default_factory=list, max_length=10)


class ProcedurePatch(In):
    performed_on: IsoDate = unchanged()
    procedure_type: ProcedureCode = unchanged()
    clinician: Username = unchanged()
    site: SiteCode | None = unchanged()
    target_note: Text(200) = unchanged()  # type: ignore[valid-type]
    laterality: Laterality = unchanged()
    image_guidance: Guidance = unchanged()
    is_index: bool = unchanged()
    candidacy: Candidacy = unchanged()
    notes: Text(10_000) = unchanged()  # type: ignore[valid-type]


# --------------------------------------------------------------------------- care plans, follow-up


class StepOut(Schema):
    id: int
    code: str
    name: str
    kind: str
    planned_on: dt.date
    window_start: dt.date
    window_end: dt.date
    first_planned_on: dt.date
    optional: bool
    is_anchor: bool
    session: str
    note: str
    status: str
    procedure_id: int | None
    done_on: dt.date | None
    deviation: bool
    reason: str
    added: bool


class PlanOut(Schema):
    id: int
    patient_id: int
    condition_id: int
    protocol: str
    protocol_version: int
    protocol_name: str
    anchor_date: dt.date
    clinician: str | None
    status: str
    stopped_reason: str
    created_at: dt.datetime
    steps: list[StepOut]


class FollowUpOut(Schema):
    id: int
    episode_id: int
    condition_id: int
    timepoint: str
    timepoint_name: str
    opens_on: dt.date
    due_on: dt.date
    closes_on: dt.date
    accepts_until: dt.date
    instruments: list[str]
    status: str
    completed_at: dt.datetime | None


# --------------------------------------------------------------------------- questionnaire responses


class ScoreOut(Schema):
    scale: str
    value: float | None
    valid: bool
    answered: int
    not_applicable: int
    missing: int
    policy: str
    flags: list[str]


class ResponseOut(Schema):
    id: int
    patient_id: int
    follow_up_id: int | None
    instrument: str
    instrument_version: str
    context: str
    answers: list[int | str | None]
    status: str
    source: str
    entered_by: str | None
    collected_on: dt.date
    started_at: dt.datetime
    submitted_at: dt.datetime | None
    flags: list[str]
    scores: list[ScoreOut]


class ResponseQuery(PageQuery):
    instrument: Text(40) = Field("", description="Only this instrument (its code).")  # type: ignore[valid-type]


class ResponseIn(In):
    instrument: InstrumentCode
    version: Text(20, 1) | None = Field(  # type: ignore[valid-type]
        None, description="The instrument version answered; left out, the current one."
    )
    follow_up: Id | None = Field(None, description="The follow-up (time point) answered; left out, none.")
    answers: list[Answer] = Field(max_length=200, description='In item order: a whole number, "NA" or null.')
    collected_on: IsoDate | None = Field(None, description="The day the patient answered; left out, today.")
    submit: bool = Field(True, description="false keeps the answers in progress, unscored.")


# --------------------------------------------------------------------------- images and measurements


class ImageOut(Schema):
    id: int
    patient_id: int
    condition_id: int
    format: str
    modality: str
    acquired_on: dt.date
    site: str | None
    laterality: str
    view: str
    frames: int
    frame: int
    width: int
    height: int
    spacing_row_mm: float | None
    spacing_col_mm: float | None
    spacing_source: str
    calibrated: bool
    window_centre: float | None
    window_width: float | None
    masks: list[list[int]]
    burned_in: str
    note: str
    sha256: str
    size_bytes: int
    uploaded_by: str | None
    measurement_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class MeasurementOut(Schema):
    id: int
    image_id: int
    type: str
    name: str
    tool: str
    frame: int
    points: list[list[float]]
    value: float
    unit: str
    text: str
    calibrated: bool
    qualifiers: dict[str, str]
    site: str | None
    note: str
    measured_by: str | None
    catalog_version: int
    created_at: dt.datetime


Point = Annotated[list[Number(-(10**6), 10**6)], Field(min_length=2, max_length=2)]  # type: ignore[misc]


class MeasurementIn(In):
    type: MeasurementCode
    tool: Text(10) = Field("", description="line, angle, ratio, ellipse, polygon…; left out for a grade.")  # type: ignore[valid-type]
    points: list[Point] = Field(
        default_factory=list, max_length=200, description="[[x, y], …] in the original's pixels."
    )
    frame: Count(0, 100_000) = Field(  # type: ignore[valid-type]
        None, description="Left out: the image's shown frame.", json_schema_extra=_no_default
    )
    qualifiers: dict[Code, Code] = Field(default_factory=dict, max_length=20)
    site: SiteCode | None = None
    note: Text(200) = ""  # type: ignore[valid-type]
    value: Number(-(10**6), 10**6) | None = Field(None, description="The grade, for a graded type.")  # type: ignore[valid-type]
