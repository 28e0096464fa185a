"""Conditions, treatment history, procedures (with their injectates and adverse events) and care plans."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from stride.api import common
from stride.api.errors import invalid
from stride.api.schemas import (
    ERRORS,
    MAX_ID,
    WRITE_ERRORS,
    ConditionIn,
    ConditionOut,
    ConditionPatch,
    HistoryIn,
    HistoryOut,
    HistoryPatch,
    PageQuery,
    PlanOut,
    ProcedureIn,
    ProcedureOut,
    ProcedurePatch,
    page_of,
)
from stride.care.forms import clinicians_of
from stride.care.models import (
    AdverseEvent,
    AdverseEventKind,
    CarePlan,
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
from stride.clinics import access
from stride.clinics.access import Action
from stride.core.errors import Invalid
from stride.patients.models import Patient

router = Router(tags=["care"])

ConditionPage = page_of(ConditionOut, "ConditionPage")
HistoryPage = page_of(HistoryOut, "HistoryPage")
ProcedurePage = page_of(ProcedureOut, "ProcedurePage")
PlanPage = page_of(PlanOut, "PlanPage")


def _id(description: str) -> Any:
    return Path(..., ge=1, le=MAX_ID, description=description)


# --------------------------------------------------------------------------- output


def condition_out(c: Condition) -> dict[str, Any]:
    return {
        "id": c.pk,
        "patient_id": c.patient_id,
        "condition_type": c.condition_type.code,
        "condition_name": c.condition_type.name,
        "laterality": c.laterality,
        "site": c.site.code if c.site_id else None,
        "site_note": c.site_note,
        "episode": c.episode,
        "qualifiers": list(c.qualifiers or []),
        "icd10_code": c.icd10_code,
        "additional_icd10": list(c.additional_icd10 or []),
        "snomed_code": c.snomed_code,
        "onset_date": c.onset_date,
        "status": c.status,
        "resolved_on": c.resolved_on,
        "severity_notes": c.severity_notes,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def history_out(h: TreatmentHistory) -> dict[str, Any]:
    return {
        "id": h.pk,
        "patient_id": h.patient_id,
        "condition_id": h.condition_id,
        "treatment": h.treatment.code,
        "treatment_name": h.treatment.name,
        "laterality": h.laterality,
        "started_on": h.started_on,
        "date_precision": h.date_precision,
        "provider": h.provider,
        "response": h.response,
        "relief_weeks": h.relief_weeks,
        "notes": h.notes,
        "created_at": h.created_at,
        "updated_at": h.updated_at,
    }


def injectate_out(i: Injectate) -> dict[str, Any]:
    return {
        "id": i.pk,
        "kind": i.kind,
        "drug": i.drug.code if i.drug_id else None,
        **{
            name: common.number(getattr(i, name))
            for name in (
                "dose_mg",
                "volume_ml",
                "concentration_pct",
                "platelet_count",
                "baseline_platelet_count",
                "aspirate_volume_ml",
                "tnc_per_ml",
            )
        },
        "leukocytes": i.leukocytes,
        "activation": i.activation,
        "series_number": i.series_number,
        "sites_injected": i.sites_injected,
        "notes": i.notes,
        "platelet_dose_billions": i.platelet_dose_billions,
        "total_nucleated_cells_millions": i.total_nucleated_cells_millions,
        "paw": i.paw,
        "mishra": i.mishra,
        "summary": i.summary(),
    }


def adverse_event_out(e: AdverseEvent) -> dict[str, Any]:
    return {
        "id": e.pk,
        "kind": e.kind.code,
        "kind_name": e.kind.name,
        "description": e.description,
        "onset_date": e.onset_date,
        "severity": e.severity,
        "relatedness": e.relatedness,
        "adjudicated_by": common.username(e.adjudicated_by),
        "resolved_on": e.resolved_on,
    }


def procedure_out(p: Procedure) -> dict[str, Any]:
    return {
        "id": p.pk,
        "patient_id": p.patient_id,
        "condition_id": p.condition_id,
        "performed_on": p.performed_on,
        "procedure_type": p.procedure_type.code,
        "procedure_name": p.procedure_type.name,
        "cpt": p.procedure_type.cpt,
        "clinician": common.username(p.clinician),
        "site": p.site.code if p.site_id else None,
        "target_note": p.target_note,
        "laterality": p.laterality,
        "image_guidance": p.image_guidance,
        "is_index": p.is_index,
        "candidacy": p.candidacy,
        "notes": p.notes,
        "steroid_limit_exceeded": p.steroid_limit_exceeded,
        "injectates": [injectate_out(i) for i in p.injectates.all()],
        "adverse_events": [adverse_event_out(e) for e in p.adverse_events.all()],
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def plan_out(plan: CarePlan) -> dict[str, Any]:
    return {
        "id": plan.pk,
        "patient_id": plan.condition.patient_id,
        "condition_id": plan.condition_id,
        "protocol": plan.protocol.code,
        "protocol_version": plan.protocol.version,
        "protocol_name": plan.protocol.name,
        "anchor_date": plan.anchor_date,
        "clinician": common.username(plan.clinician),
        "status": plan.status,
        "stopped_reason": plan.stopped_reason,
        "created_at": plan.created_at,
        "steps": [
            {
                "id": s.pk,
                "code": s.code,
                "name": s.name,
                "kind": s.kind,
                "planned_on": s.planned_on,
                "window_start": s.window_start,
                "window_end": s.window_end,
                "first_planned_on": s.first_planned_on,
                "optional": s.optional,
                "is_anchor": s.is_anchor,
                "session": s.session,
                "note": s.note,
                "status": s.status,
                "procedure_id": s.procedure_id,
                "done_on": s.done_on,
                "deviation": s.deviation,
                "reason": s.reason,
                "added": s.added,
            }
            for s in plan.steps.all()
        ],
    }


_CONDITIONS = Condition.objects.select_related("patient__clinic", "condition_type", "site")
_HISTORY = TreatmentHistory.objects.select_related("patient__clinic", "treatment")
_PROCEDURES = Procedure.objects.select_related(
    "patient__clinic", "procedure_type", "clinician", "site", "condition"
).prefetch_related("injectates__drug", "adverse_events__kind", "adverse_events__adjudicated_by")
_PLANS = CarePlan.objects.select_related(
    "condition__patient__clinic", "protocol", "clinician"
).prefetch_related("steps")


def _list(
    request: HttpRequest, patient_id: int, queryset: Any, query: PageQuery, what: str, out: Any
) -> dict[str, Any]:
    found = common.patient(request, patient_id)
    result = common.page(
        common.scoped(request, queryset.filter(**{_patient_lookup(queryset): found})), query, out
    )
    common.viewed(found, what, results=result["count"])
    return result


def _patient_lookup(queryset: Any) -> str:
    return f"{queryset.model.scope_path}pk".removesuffix("__pk") or "pk"


def _condition_of(found: Patient, pk: int | None, field: str = "condition") -> Condition | None:
    if pk is None:
        return None
    condition = found.conditions.select_related("condition_type", "site").filter(pk=pk).first()
    if condition is None:
        raise invalid(f"This patient has no condition {pk}.", field)
    return condition


def _codes(data: dict[str, Any], table: dict[str, tuple[type, str]]) -> dict[str, Any]:
    """Catalog codes in ``data`` replaced by their entries (422 naming the field for an unknown one)."""
    for name, (model, label) in table.items():
        if name in data:
            data[name] = common.by_code(model, data[name], name, label)
    return data


# --------------------------------------------------------------------------- conditions

_CONDITION_CODES = {"condition_type": (ConditionType, "condition type"), "site": (Site, "site")}


@router.get(
    "/patients/{patient_id}/conditions",
    response={200: ConditionPage, **ERRORS},
    summary="List a patient's conditions",
)
def list_conditions(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = _id("The patient's id.")
) -> dict[str, Any]:
    return _list(
        request, patient_id, _CONDITIONS.order_by("-onset_date", "-pk"), query, "conditions", condition_out
    )


@router.post(
    "/patients/{patient_id}/conditions",
    response={201: ConditionOut, **WRITE_ERRORS},
    summary="Add a condition",
)
def create_condition(
    request: HttpRequest, payload: ConditionIn, patient_id: int = _id("The patient's id.")
) -> Status:
    """The ICD-10-CM and SNOMED CT codes are derived from the type, side, site, episode and findings."""
    found = common.patient(request, patient_id, Action.EDIT_CONDITION)
    condition = Condition(patient=found, **_codes(payload.model_dump(), _CONDITION_CODES))
    with transaction.atomic():
        common.save(condition)
    return Status(201, condition_out(condition))


@router.get("/conditions/{condition_id}", response={200: ConditionOut, **ERRORS}, summary="Read a condition")
def read_condition(request: HttpRequest, condition_id: int = _id("The condition's id.")) -> dict[str, Any]:
    condition = common.fetch(request, _CONDITIONS, condition_id, "condition")
    common.viewed(condition, "condition")
    return condition_out(condition)


@router.patch(
    "/conditions/{condition_id}", response={200: ConditionOut, **WRITE_ERRORS}, summary="Change a condition"
)
def update_condition(
    request: HttpRequest, payload: ConditionPatch, condition_id: int = _id("The condition's id.")
) -> dict[str, Any]:
    condition = common.fetch(request, _CONDITIONS, condition_id, "condition", Action.EDIT_CONDITION)
    for name, value in _codes(payload.model_dump(exclude_unset=True), _CONDITION_CODES).items():
        setattr(condition, name, value)
    with transaction.atomic():
        common.save(condition)
    return condition_out(condition)


# --------------------------------------------------------------------------- treatment history

_HISTORY_CODES = {"treatment": (TreatmentKind, "treatment")}


@router.get(
    "/patients/{patient_id}/history",
    response={200: HistoryPage, **ERRORS},
    summary="List a patient's earlier treatments",
)
def list_history(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = _id("The patient's id.")
) -> dict[str, Any]:
    return _list(request, patient_id, _HISTORY.order_by("-started_on", "-pk"), query, "history", history_out)


@router.post(
    "/patients/{patient_id}/history",
    response={201: HistoryOut, **WRITE_ERRORS},
    summary="Add an earlier treatment",
)
def create_history(
    request: HttpRequest, payload: HistoryIn, patient_id: int = _id("The patient's id.")
) -> Status:
    found = common.patient(request, patient_id, Action.EDIT_HISTORY)
    data = _codes(payload.model_dump(), _HISTORY_CODES)
    data["condition"] = _condition_of(found, data["condition"])
    entry = TreatmentHistory(patient=found, **data)
    with transaction.atomic():
        common.save(entry)
    return Status(201, history_out(entry))


@router.get(
    "/history/{history_id}", response={200: HistoryOut, **ERRORS}, summary="Read an earlier treatment"
)
def read_history(request: HttpRequest, history_id: int = _id("The history entry's id.")) -> dict[str, Any]:
    entry = common.fetch(request, _HISTORY, history_id, "history entry")
    common.viewed(entry, "history")
    return history_out(entry)


@router.patch(
    "/history/{history_id}", response={200: HistoryOut, **WRITE_ERRORS}, summary="Change an earlier treatment"
)
def update_history(
    request: HttpRequest, payload: HistoryPatch, history_id: int = _id("The history entry's id.")
) -> dict[str, Any]:
    entry = common.fetch(request, _HISTORY, history_id, "history entry", Action.EDIT_HISTORY)
    data = _codes(payload.model_dump(exclude_unset=True), _HISTORY_CODES)
    if "condition" in data:
        data["condition"] = _condition_of(entry.patient, data["condition"])
    for name, value in data.items():
        setattr(entry, name, value)
    with transaction.atomic():
        common.save(entry)
    return history_out(entry)


# --------------------------------------------------------------------------- procedures

_PROCEDURE_CODES = {"procedure_type": (ProcedureType, "procedure type"), "site": (Site, "site")}
_DECIMALS = (
    "dose_mg",
    "volume_ml",
    "concentration_pct",
    "platelet_count",
    "baseline_platelet_count",
    "aspirate_volume_ml",
    "tnc_per_ml",
)


def _clinician(found: Patient, request: HttpRequest, name: str | None) -> Any:
    clinicians = clinicians_of(found)
    if name is not None:
        chosen = clinicians.filter(username=name).first()
        if chosen is None:
            raise invalid(f"{name!r} is not a clinician of this patient's clinic.", "clinician")
        return chosen
    user = common.user_of(request)
    if access.roles(user).get(found.clinic_id) in {"clinician", "admin"}:
        return user
    raise invalid("clinician is required: give the username of the clinician who did it.", "clinician")


@router.get(
    "/patients/{patient_id}/procedures",
    response={200: ProcedurePage, **ERRORS},
    summary="List a patient's procedures",
)
def list_procedures(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = _id("The patient's id.")
) -> dict[str, Any]:
    return _list(
        request, patient_id, _PROCEDURES.order_by("-performed_on", "-pk"), query, "procedures", procedure_out
    )


@router.post(
    "/patients/{patient_id}/procedures",
    response={201: ProcedureOut, **WRITE_ERRORS},
    summary="Record a procedure with its injectates and adverse events",
)
def create_procedure(
    request: HttpRequest, payload: ProcedureIn, patient_id: int = _id("The patient's id.")
) -> Status:
    """Saved whole or not at all: a problem in any injectate or adverse event saves nothing.

    An index treatment starts its condition's follow-up schedule, as on the pages.
    """
    found = common.patient(request, patient_id, Action.RECORD_PROCEDURE)
    user = common.user_of(request)
    data = _codes(payload.model_dump(exclude={"injectates", "adverse_events"}), _PROCEDURE_CODES)
    data["condition"] = _condition_of(found, data["condition"])
    data["clinician"] = _clinician(found, request, data["clinician"])
    procedure = Procedure(patient=found, **data)
    problems = common.check(procedure)
    injectates = []
    for n, item in enumerate(payload.injectates):
        values = item.model_dump()
        values["drug"] = common.by_code(Drug, values["drug"], f"injectates[{n}].drug", "drug")
        for name in _DECIMALS:
            values[name] = common.decimal(values[name], f"injectates[{n}].{name}")
        injectate = Injectate(procedure=procedure, **values)
        problems += common.check(injectate, prefix=f"injectates[{n}].", exclude=["procedure"])
        injectates.append(injectate)
    events = []
    for n, item in enumerate(payload.adverse_events):
        values = item.model_dump()
        values["kind"] = common.by_code(
            AdverseEventKind, values["kind"], f"adverse_events[{n}].kind", "event"
        )
        event = AdverseEvent(procedure=procedure, adjudicated_by=user, **values)
        problems += common.check(event, prefix=f"adverse_events[{n}].", exclude=["procedure"])
        events.append(event)
    common.raise_all(problems)
    try:
        with transaction.atomic():
            procedure.save()
            for injectate in injectates:
                injectate.procedure = procedure
                injectate.save()
            for event in events:
                event.procedure = procedure
                event.save()
    except Invalid as exc:  # e.g. starting follow-up from this index treatment
        raise invalid(exc.message, exc.field) from None
    return Status(201, procedure_out(_PROCEDURES.get(pk=procedure.pk)))


@router.get("/procedures/{procedure_id}", response={200: ProcedureOut, **ERRORS}, summary="Read a procedure")
def read_procedure(request: HttpRequest, procedure_id: int = _id("The procedure's id.")) -> dict[str, Any]:
    procedure = common.fetch(request, _PROCEDURES, procedure_id, "procedure")
    common.viewed(procedure, "procedure")
    return procedure_out(procedure)


@router.patch(
    "/procedures/{procedure_id}",
    response={200: ProcedureOut, **WRITE_ERRORS},
    summary="Change a procedure (not its injectates)",
)
def update_procedure(
    request: HttpRequest, payload: ProcedurePatch, procedure_id: int = _id("The procedure's id.")
) -> dict[str, Any]:
    """The injectates recorded stay as they are and are checked again against the changed procedure."""
    procedure = common.fetch(request, _PROCEDURES, procedure_id, "procedure", Action.RECORD_PROCEDURE)
    data = _codes(payload.model_dump(exclude_unset=True), _PROCEDURE_CODES)
    if "clinician" in data:
        data["clinician"] = _clinician(procedure.patient, request, data["clinician"])
    for name, value in data.items():
        setattr(procedure, name, value)
    problems = common.check(procedure)
    for n, injectate in enumerate(procedure.injectates.all()):
        injectate.procedure = procedure
        problems += common.check(injectate, prefix=f"injectates[{n}].")
    common.raise_all(problems)
    try:
        with transaction.atomic():
            procedure.save()
    except Invalid as exc:
        raise invalid(exc.message, exc.field) from None
    return procedure_out(_PROCEDURES.get(pk=procedure.pk))


# --------------------------------------------------------------------------- care plans


@router.get(
    "/patients/{patient_id}/plans", response={200: PlanPage, **ERRORS}, summary="List a patient's care plans"
)
def list_plans(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = _id("The patient's id.")
) -> dict[str, Any]:
    return _list(request, patient_id, _PLANS.order_by("-anchor_date", "-pk"), query, "plans", plan_out)


@router.get("/plans/{plan_id}", response={200: PlanOut, **ERRORS}, summary="Read a care plan with its steps")
def read_plan(request: HttpRequest, plan_id: int = _id("The plan's id.")) -> dict[str, Any]:
    plan = common.fetch(request, _PLANS, plan_id, "care plan")
    common.viewed(plan, "plan")
    return plan_out(plan)
