"""Patients and their registry consent."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from stride.api import common
from stride.api.errors import invalid
from stride.api.schemas import (
    ERRORS,
    MAX_ID,
    WRITE_ERRORS,
    ConsentIn,
    ConsentOut,
    ConsentPatch,
    FhirBundleOut,
    PageQuery,
    PatientIn,
    PatientOut,
    PatientPatch,
    PatientQuery,
    page_of,
)
from stride.clinics import access
from stride.clinics.access import Action
from stride.patients.models import Consent, Patient

router = Router(tags=["patients"])

PatientPage = page_of(PatientOut, "PatientPage")
ConsentPage = page_of(ConsentOut, "ConsentPage")
PatientId = Path(..., ge=1, le=MAX_ID, description="The patient's id.")


def _with_consent(queryset: Any) -> Any:
    """Annotate each patient with whether they consented and whether their latest consent is withdrawn."""
    latest = Consent.objects.filter(patient=OuterRef("pk")).order_by("-consented_on", "-pk")
    return queryset.annotate(
        _consented=Exists(Consent.objects.filter(patient=OuterRef("pk"))),
        _latest_withdrawn=Subquery(latest.values("withdrawn_on")[:1]),
    )


def patient_out(p: Patient) -> dict[str, Any]:
    if hasattr(p, "_consented"):
        status = "none" if not p._consented else ("withdrawn" if p._latest_withdrawn else "active")
    else:
        status = p.consent_status
    return {
        "id": p.pk,
        "clinic": p.clinic.slug,
        "record_number": p.record_number,
        "given_name": p.given_name,
        "family_name": p.family_name,
        "date_of_birth": p.date_of_birth,
        "sex": p.sex,
        "email": p.email,
        "phone": p.phone,
        "height_cm": common.number(p.height_cm),
        "weight_kg": common.number(p.weight_kg),
        "activity_level": p.activity_level,
        "notes": p.notes,
        "consent_status": status,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    }


def consent_out(c: Consent) -> dict[str, Any]:
    return {
        "id": c.pk,
        "patient_id": c.patient_id,
        "version": c.version,
        "consented_on": c.consented_on,
        "withdrawn_on": c.withdrawn_on,
        "notes": c.notes,
        "recorded_by": common.username(c.recorded_by),
        "created_at": c.created_at,
    }


def _apply(instance: Any, data: dict[str, Any]) -> None:
    for name in ("height_cm", "weight_kg"):
        if name in data:
            data[name] = common.decimal(data[name], name)
    for name, value in data.items():
        setattr(instance, name, value)


# --------------------------------------------------------------------------- patients


@router.get("/patients", response={200: PatientPage, **ERRORS}, summary="List and search patients")
def list_patients(request: HttpRequest, filters: Query[PatientQuery]) -> dict[str, Any]:
    """The patients of your clinics, by family name; ``q`` searches names, record numbers and conditions.

    Audited as one search (with the number of patients found, never the words).
    """
    access.require(common.user_of(request), Action.VIEW_PATIENT)
    patients = common.scoped(request, Patient.objects.select_related("clinic"))
    if filters.q.strip():
        patients = patients.search(filters.q.strip())
    if filters.clinic:
        patients = patients.filter(clinic__slug=filters.clinic)
    if filters.record_number:
        patients = patients.filter(record_number__iexact=filters.record_number.strip())
    patients = _with_consent(patients).order_by("family_name", "given_name", "record_number", "pk")
    result = common.page(patients, filters, patient_out)
    common.searched("patients", result["count"])
    return result


@router.post("/patients", response={201: PatientOut, **WRITE_ERRORS}, summary="Register a patient")
def create_patient(request: HttpRequest, payload: PatientIn) -> Status:
    user = common.user_of(request)
    access.require(user, Action.EDIT_PATIENT)
    clinics = access.clinics(user, Action.EDIT_PATIENT)
    if payload.clinic is None:
        if clinics.count() != 1:
            raise invalid("clinic is required: you work in more than one clinic.", "clinic")
        clinic = clinics.get()
    else:
        clinic = clinics.filter(slug=payload.clinic).first()
        if clinic is None:
            raise invalid(f"You cannot register patients in a clinic {payload.clinic!r}.", "clinic")
    new = Patient(clinic=clinic)
    _apply(new, payload.model_dump(exclude={"clinic"}))
    with transaction.atomic():
        common.save(new)
    return Status(201, patient_out(new))


@router.get("/patients/{patient_id}", response={200: PatientOut, **ERRORS}, summary="Read a patient")
def read_patient(request: HttpRequest, patient_id: int = PatientId) -> dict[str, Any]:
    """Audited as a view of the patient, as the patient page is."""
    found = common.patient(request, patient_id)
    common.viewed(found, "patient")
    return patient_out(found)


@router.patch(
    "/patients/{patient_id}", response={200: PatientOut, **WRITE_ERRORS}, summary="Change a patient"
)
def update_patient(
    request: HttpRequest, payload: PatientPatch, patient_id: int = PatientId
) -> dict[str, Any]:
    """Only the fields sent change. A patient never moves to another clinic."""
    found = common.patient(request, patient_id, Action.EDIT_PATIENT)
    _apply(found, payload.model_dump(exclude_unset=True))
    with transaction.atomic():
        common.save(found)
    return patient_out(found)


@router.get(
    "/patients/{patient_id}/fhir",
    response={200: FhirBundleOut, **ERRORS},
    summary="A patient's whole record as a FHIR R4 Bundle",
)
def patient_fhir(request: HttpRequest, patient_id: int = PatientId) -> dict[str, Any]:
    """Patient, conditions, procedures, scores, measurements, responses, care plans and consent, coded
    as the FHIR export codes them (see docs/interop.md). Audited as an export of the patient."""
    from stride.interop.fhir_export import patient_bundle  # the interop app's, built on every app's models

    return patient_bundle(common.patient(request, patient_id))


# --------------------------------------------------------------------------- consent


@router.get(
    "/patients/{patient_id}/consents",
    response={200: ConsentPage, **ERRORS},
    summary="List a patient's registry consents",
)
def list_consents(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = PatientId
) -> dict[str, Any]:
    found = common.patient(request, patient_id)
    consents = common.scoped(request, found.consents.select_related("recorded_by")).order_by(
        "-consented_on", "-pk"
    )
    result = common.page(consents, query, consent_out)
    common.viewed(found, "consents", results=result["count"])
    return result


@router.post(
    "/patients/{patient_id}/consents",
    response={201: ConsentOut, **WRITE_ERRORS},
    summary="Record a registry consent",
)
def create_consent(request: HttpRequest, payload: ConsentIn, patient_id: int = PatientId) -> Status:
    found = common.patient(request, patient_id, Action.RECORD_CONSENT)
    consent = Consent(patient=found, recorded_by=common.user_of(request), **payload.model_dump())
    with transaction.atomic():
        common.save(consent)
    return Status(201, consent_out(consent))


@router.get("/consents/{consent_id}", response={200: ConsentOut, **ERRORS}, summary="Read a consent")
def read_consent(request: HttpRequest, consent_id: int = Path(..., ge=1, le=MAX_ID)) -> dict[str, Any]:
    consent = common.fetch(
        request, Consent.objects.select_related("patient__clinic", "recorded_by"), consent_id, "consent"
    )
    common.viewed(consent, "consent")
    return consent_out(consent)


@router.patch(
    "/consents/{consent_id}",
    response={200: ConsentOut, **WRITE_ERRORS},
    summary="Change a consent or record its withdrawal",
)
def update_consent(
    request: HttpRequest, payload: ConsentPatch, consent_id: int = Path(..., ge=1, le=MAX_ID)
) -> dict[str, Any]:
    """Withdrawal (``withdrawn_on``) ends the patient's open follow-up that day; the record stays."""
    consent = common.fetch(
        request,
        Consent.objects.select_related("patient__clinic", "recorded_by"),
        consent_id,
        "consent",
        Action.RECORD_CONSENT,
    )
    for name, value in payload.model_dump(exclude_unset=True).items():
        setattr(consent, name, value)
    with transaction.atomic():
        common.save(consent)
    return consent_out(consent)
