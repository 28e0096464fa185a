"""Pages that belong to no single app: the home page and the registry overview."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from stride.care.models import Condition, Procedure
from stride.clinics import access
from stride.clinics.access import Action
from stride.core.privacy import suppress_small
from stride.patients.models import Patient


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if access.can(request.user, Action.VIEW_PATIENT):
        return redirect("patient-list")
    return redirect("overview")


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """De-identified counts for the user's clinics; groups under the minimum cell size are hidden."""
    access.require(request.user, Action.VIEW_AGGREGATES)
    clinic_ids = access.clinic_ids(request.user, Action.VIEW_AGGREGATES)
    patients = Patient.objects.analysable()
    if clinic_ids is not None:
        patients = patients.filter(clinic_id__in=clinic_ids)
    minimum = settings.STRIDE_MIN_CELL_SIZE
    by_condition = suppress_small(
        Condition.objects.filter(patient__in=patients)
        .values_list("condition_type__name")
        .annotate(n=Count("patient", distinct=True))
        .order_by("-n", "condition_type__name"),
        minimum,
    )
    by_procedure = suppress_small(
        Procedure.objects.filter(patient__in=patients)
        .values_list("procedure_type__name")
        .annotate(n=Count("patient", distinct=True))
        .order_by("-n", "procedure_type__name"),
        minimum,
    )
    context = {
        "total": patients.count(),
        "by_condition": by_condition,
        "by_procedure": by_procedure,
        "minimum": minimum,
        "clinics": access.clinics(request.user, Action.VIEW_AGGREGATES),
    }
    return render(request, "overview.html", context)
