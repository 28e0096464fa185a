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
from django.forms import inlineformset_factory
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from stride.care import plans
from stride.care.forms import (
    AdverseEventFormSet,
    ConditionForm,
    InjectateForm,
    InjectateFormSet,
    ProcedureForm,
    TreatmentHistoryForm,
)
from stride.care.models import (
    CarePlan,
    Condition,
    Drug,
    Injectate,
    PlanStep,
    Procedure,
    ProcedureType,
    Site,
    TreatmentHistory,
)
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
    step = _plan_step(request, patient)
    if step is not None:
        return _procedure_form(
            request, patient, _from_step(procedure, step), f"Record: {step.name}", step=step
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


def _plan_step(request: HttpRequest, patient: Patient) -> PlanStep | None:
    """The planned procedure step this procedure is recorded for (``?step=``), if any."""
    raw = request.GET.get("step", "")
    if not raw.isdigit():
        return None
    return (
        PlanStep.objects.filter(
            pk=int(raw),
            plan__condition__patient=patient,
            plan__status=CarePlan.Status.ACTIVE,
            status=PlanStep.Status.PLANNED,
            kind="procedure",
        )
        .select_related("plan__condition__patient__clinic", "plan__condition__site")
        .first()
    )


def _from_step(procedure: Procedure, step: PlanStep) -> Procedure:
    """A procedure filled in from its plan step: condition, type, site, guidance, index, today's date."""
    condition = step.plan.condition
    defaults = step.defaults or {}
    procedure.condition = condition
    procedure.laterality = condition.laterality if condition.laterality != "bilateral" else ""
    procedure.performed_on = condition.patient.clinic.today()
    procedure.is_index = step.is_anchor
    procedure.procedure_type = ProcedureType.objects.filter(code=defaults.get("procedure")).first()
    site = defaults.get("site")
    procedure.site = Site.objects.filter(code=site).first() if site else condition.site
    procedure.image_guidance = defaults.get("guidance") or ""
    return procedure


def _step_injectates(step: PlanStep) -> list[dict[str, Any]]:
    """The step's default injectates as initial formset data."""
    initial = []
    for default in (step.defaults or {}).get("injectates", []):
        values = {k: v for k, v in default.items() if k != "drug"}
        if default.get("drug"):
            values["drug"] = Drug.objects.filter(code=default["drug"]).values_list("pk", flat=True).first()
        initial.append(values)
    return initial


def _procedure_form(
    request: HttpRequest, patient: Patient, procedure: Procedure, title: str, step: PlanStep | None = None
) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = ProcedureForm(data, instance=procedure, patient=patient)
    initial = _step_injectates(step) if step is not None and data is None else []
    formset_class = InjectateFormSet
    if initial:
        formset_class = inlineformset_factory(
            Procedure,
            Injectate,
            form=InjectateForm,
            extra=len(initial),
            max_num=6,
            can_delete=True,
            can_delete_extra=False,
            validate_max=True,
        )
    injectates = formset_class(data, instance=procedure, prefix="injectates", initial=initial or None)
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
            if step is not None:
                plans.complete(step, saved, saved.performed_on, request.user)
        messages.success(request, "Procedure saved.")
        if saved.steroid_limit_exceeded:
            messages.warning(
                request,
                "This is more than three steroid injections for this condition within six months: "
                "record the clinical justification in the notes.",
            )
        if step is not None:
            if step.deviation:
                messages.warning(
                    request, f"{step.name} was done outside its window: recorded as a deviation."
                )
            return redirect("plan-detail", pk=step.plan_id)
        return redirect("patient-detail", pk=patient.pk)
    context = {
        "form": form,
        "injectates": injectates,
        "events": events,
        "patient": patient,
        "title": title,
        "step": step,
        "default_guidance": {str(p.pk): p.default_guidance for p in form.fields["procedure_type"].queryset},
        "injectate_fields": {
            kind: ["kind", "notes", *injectate_rules.fields_for(kind)] for kind in injectate_rules.REQUIRED
        },
    }
    return render(request, "care/procedure_form.html", context)
