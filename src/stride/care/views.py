"""Pages that record conditions, treatment history and procedures.

Each record is reached through its patient's clinic scope (404 across
clinics) and changed only by a role that may (403 otherwise). A record is
saved with its injectates and adverse events in one transaction, or not at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Model, ProtectedError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from stride.care.forms import (
    AdverseEventFormSet,
    ConditionForm,
    InjectateFormSet,
    ProcedureForm,
    TreatmentHistoryForm,
)
from stride.care.models import Condition, Procedure, TreatmentHistory
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import injectates as injectate_rules
from stride.patients.models import Patient
from stride.patients.views import patient_for


def _record_for(request: HttpRequest, model: type[Model], pk: int, action: Action) -> Any:
    obj = get_object_or_404(
        access.scope(model.objects.select_related("patient__clinic"), request.user), pk=pk
    )
    access.require(request.user, action, obj.patient.clinic_id)
    return obj


def _save_form(request: HttpRequest, patient: Patient, form: Any, title: str, message: str) -> HttpResponse:
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
        messages.success(request, message)
        return redirect("patient-detail", pk=patient.pk)
    return render(request, "form.html", {"form": form, "patient": patient, "title": title})


def _delete(request: HttpRequest, obj: Any, what: str) -> HttpResponse:
    patient = obj.patient
    if request.method == "POST":
        try:
            with transaction.atomic():
                obj.delete()
        except ProtectedError:
            messages.error(request, f"This {what} has procedures recorded against it; delete those first.")
            return redirect("patient-detail", pk=patient.pk)
        messages.success(request, f"The {what} was deleted.")
        return redirect("patient-detail", pk=patient.pk)
    return render(request, "confirm_delete.html", {"patient": patient, "object": obj, "what": f"this {what}"})


# --------------------------------------------------------------------------- conditions


@login_required
@require_http_methods(["GET", "POST"])
def condition_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.EDIT_CONDITION)
    form = ConditionForm(request.POST or None, instance=Condition(patient=patient))
    return _save_form(request, patient, form, "Add a condition", "Condition added.")


@login_required
@require_http_methods(["GET", "POST"])
def condition_edit(request: HttpRequest, pk: int) -> HttpResponse:
    condition = _record_for(request, Condition, pk, Action.EDIT_CONDITION)
    form = ConditionForm(request.POST or None, instance=condition)
    return _save_form(request, condition.patient, form, "Edit condition", "Condition saved.")


@login_required
@require_http_methods(["GET", "POST"])
def condition_delete(request: HttpRequest, pk: int) -> HttpResponse:
    return _delete(request, _record_for(request, Condition, pk, Action.EDIT_CONDITION), "condition")


# --------------------------------------------------------------------------- history


@login_required
@require_http_methods(["GET", "POST"])
def history_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.EDIT_HISTORY)
    form = TreatmentHistoryForm(
        request.POST or None, instance=TreatmentHistory(patient=patient), patient=patient
    )
    return _save_form(request, patient, form, "Add earlier treatment", "Treatment history added.")


@login_required
@require_http_methods(["GET", "POST"])
def history_edit(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _record_for(request, TreatmentHistory, pk, Action.EDIT_HISTORY)
    form = TreatmentHistoryForm(request.POST or None, instance=entry, patient=entry.patient)
    return _save_form(request, entry.patient, form, "Edit earlier treatment", "Treatment history saved.")


@login_required
@require_http_methods(["GET", "POST"])
def history_delete(request: HttpRequest, pk: int) -> HttpResponse:
    return _delete(request, _record_for(request, TreatmentHistory, pk, Action.EDIT_HISTORY), "history entry")


# --------------------------------------------------------------------------- procedures


@login_required
@require_http_methods(["GET", "POST"])
def procedure_create(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.RECORD_PROCEDURE)
    procedure = Procedure(
        patient=patient, clinician=request.user if _is_clinician(request, patient) else None
    )
    condition_id = request.GET.get("condition")
    if condition_id and condition_id.isdigit():
        condition = patient.conditions.filter(pk=condition_id).first()
        if condition is not None:
            procedure.condition = condition
            procedure.laterality = condition.laterality if condition.laterality != "bilateral" else ""
            procedure.site = condition.site
    return _procedure_form(request, patient, procedure, "Record a procedure")


@login_required
@require_http_methods(["GET", "POST"])
def procedure_edit(request: HttpRequest, pk: int) -> HttpResponse:
    procedure = _record_for(request, Procedure, pk, Action.RECORD_PROCEDURE)
    return _procedure_form(request, procedure.patient, procedure, "Edit procedure")


@login_required
@require_http_methods(["GET", "POST"])
def procedure_delete(request: HttpRequest, pk: int) -> HttpResponse:
    return _delete(request, _record_for(request, Procedure, pk, Action.RECORD_PROCEDURE), "procedure")


def _is_clinician(request: HttpRequest, patient: Patient) -> bool:
    return access.roles(request.user).get(patient.clinic_id) in {"clinician", "admin"}


def _procedure_form(request: HttpRequest, patient: Patient, procedure: Procedure, title: str) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = ProcedureForm(data, instance=procedure, patient=patient)
    injectates = InjectateFormSet(data, instance=procedure, prefix="injectates")
    events = AdverseEventFormSet(data, instance=procedure, prefix="events")
    # Validated in this order (the injectate checks read the procedure type); all are run so
    # every error is shown at once.
    if request.method == "POST" and all([form.is_valid(), injectates.is_valid(), events.is_valid()]):
        with transaction.atomic():
            saved = form.save()
            injectates.save()
            for event in events.save(commit=False):
                event.adjudicated_by = event.adjudicated_by or request.user
                event.save()
            for event in events.deleted_objects:
                event.delete()
        messages.success(request, "Procedure saved.")
        if saved.steroid_limit_exceeded:
            messages.warning(
                request,
                "This is more than three steroid injections for this condition within six months: "
                "record the clinical justification in the notes.",
            )
        return redirect("patient-detail", pk=patient.pk)
    context = {
        "form": form,
        "injectates": injectates,
        "events": events,
        "patient": patient,
        "title": title,
        "default_guidance": {str(p.pk): p.default_guidance for p in form.fields["procedure_type"].queryset},
        "injectate_fields": {
            kind: ["kind", "notes", *injectate_rules.fields_for(kind)] for kind in injectate_rules.REQUIRED
        },
    }
    return render(request, "care/procedure_form.html", context)
