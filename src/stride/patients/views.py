"""Patient pages: the list, the timeline, registration and consent.

Every patient is fetched through :func:`stride.clinics.access.scope`; a
patient of another clinic is "not found", whatever id is asked for.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care.models import CarePlan, Condition, Procedure, TreatmentHistory
from stride.clinics import access
from stride.clinics.access import Action
from stride.core.timeline import build_timeline
from stride.patients.forms import ConsentForm, PatientForm
from stride.patients.models import Consent, Patient

PAGE_SIZE = 25


def patient_for(request: HttpRequest, pk: int, action: Action = Action.VIEW_PATIENT) -> Patient:
    """The patient, if the user may see it (404 otherwise) and may ``action`` it (403 otherwise)."""
    patient = get_object_or_404(
        access.scope(Patient.objects.select_related("clinic"), request.user, Action.VIEW_PATIENT), pk=pk
    )
    access.require(request.user, action, patient.clinic_id)
    return patient


@login_required
def patient_list(request: HttpRequest) -> HttpResponse:
    access.require(request.user, Action.VIEW_PATIENT)
    query = request.GET.get("q", "").strip()[:100]
    patients = access.scope(Patient.objects.all(), request.user).select_related("clinic")
    patients = patients.search(query).prefetch_related(
        Prefetch("conditions", queryset=Condition.objects.select_related("condition_type").order_by("pk"))
    )
    page = Paginator(patients, PAGE_SIZE).get_page(request.GET.get("page"))
    if query:
        record(AuditEntry.Action.SEARCH, detail={"results": page.paginator.count})
    context = {"page": page, "query": query, "can_register": access.can(request.user, Action.EDIT_PATIENT)}
    template = "patients/_results.html" if request.htmx and not request.htmx.boosted else "patients/list.html"
    return render(request, template, context)


@login_required
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk)
    conditions = list(
        patient.conditions.select_related("condition_type", "site", "condition_type__body_site")
    )
    history = list(patient.history.select_related("treatment", "condition__condition_type"))
    procedures = list(
        patient.procedures.select_related("procedure_type", "clinician", "site", "condition__condition_type")
        .prefetch_related("injectates__drug", "adverse_events__kind")
        .order_by("performed_on", "pk")
    )
    consents = list(patient.consents.select_related("recorded_by"))
    record(AuditEntry.Action.VIEW, patient)
    user = request.user
    context = {
        "patient": patient,
        "conditions": conditions,
        "consents": consents,
        "timeline": build_timeline(conditions, history, procedures, consents),
        "steroid_flags": _steroid_flags(procedures),
        "can_edit": access.can(user, Action.EDIT_PATIENT, patient.clinic_id),
        "can_consent": access.can(user, Action.RECORD_CONSENT, patient.clinic_id),
        "can_condition": access.can(user, Action.EDIT_CONDITION, patient.clinic_id),
        "can_history": access.can(user, Action.EDIT_HISTORY, patient.clinic_id),
        "can_procedure": access.can(user, Action.RECORD_PROCEDURE, patient.clinic_id),
    }
    from stride.outcomes.views import patient_panel  # the outcomes app builds on this page

    plans = list(
        CarePlan.objects.filter(condition__patient=patient)
        .select_related("protocol", "condition__condition_type", "condition__site")
        .prefetch_related("steps")
    )
    for plan in plans:
        plan.next_step = next((s for s in plan.steps.all() if s.status == "planned"), None)
    context["plans"] = plans

    context.update(patient_panel(patient, user, procedures))
    from stride.imaging.panel import imaging_panel  # the imaging app builds on this page

    context.update(imaging_panel(patient, user, procedures))
    return render(request, "patients/detail.html", context)


def _steroid_flags(procedures: list[Procedure]) -> set[int]:
    """Ids of procedures that bring a site above three steroid injections in six months."""
    from stride.core.rules import steroid_limit_exceeded

    dates: dict[tuple[int, str, object], list] = {}
    flagged: set[int] = set()
    for procedure in procedures:  # in date order
        if any(i.kind == "steroid" for i in procedure.injectates.all()):
            seen = dates.setdefault(procedure.site_key(), [])
            seen.append(procedure.performed_on)
            if steroid_limit_exceeded(seen, procedure.performed_on):
                flagged.add(procedure.pk)
    return flagged


@login_required
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest) -> HttpResponse:
    access.require(request.user, Action.EDIT_PATIENT)
    form = PatientForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            patient = form.save()
        messages.success(request, f"{patient.full_name} is registered.")
        return redirect("patient-detail", pk=patient.pk)
    return render(
        request, "form.html", {"form": form, "title": "Register a patient", "cancel": "patient-list"}
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_edit(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.EDIT_PATIENT)
    form = PatientForm(request.POST or None, instance=patient, user=request.user)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        messages.success(request, "Patient details saved.")
        return redirect("patient-detail", pk=patient.pk)
    return render(request, "form.html", {"form": form, "patient": patient, "title": "Edit patient details"})


@login_required
@require_http_methods(["GET", "POST"])
def consent_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.RECORD_CONSENT)
    consent = Consent(patient=patient, recorded_by=request.user)
    return _consent_form(request, patient, consent, "Record registry consent")


@login_required
@require_http_methods(["GET", "POST"])
def consent_edit(request: HttpRequest, pk: int) -> HttpResponse:
    consent = get_object_or_404(
        access.scope(Consent.objects.select_related("patient__clinic"), request.user), pk=pk
    )
    access.require(request.user, Action.RECORD_CONSENT, consent.patient.clinic_id)
    return _consent_form(request, consent.patient, consent, "Edit consent or record withdrawal")


def _consent_form(request: HttpRequest, patient: Patient, consent: Consent, title: str) -> HttpResponse:
    form = ConsentForm(request.POST or None, instance=consent)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        messages.success(request, "Consent saved.")
        return redirect("patient-detail", pk=patient.pk)
    return render(request, "form.html", {"form": form, "patient": patient, "title": title})


@login_required
@require_http_methods(["GET", "POST"])
def patient_delete(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.DELETE_PATIENT)
    if request.method == "POST":
        name = patient.full_name
        with transaction.atomic():
            TreatmentHistory.objects.filter(patient=patient).delete()
            Procedure.objects.filter(patient=patient).delete()
            patient.delete()
        messages.success(request, f"{name}'s record was deleted.")
        return redirect("patient-list")
    return render(
        request,
        "confirm_delete.html",
        {"patient": patient, "object": patient, "what": "this patient's whole record"},
    )
