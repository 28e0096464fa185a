"""FHIR R4 JSON of protocols (PlanDefinition) and care plans (CarePlan), for staff signed in.

The resources are built by :mod:`stride.interop.fhir_plans`; their canonical
addresses use ``STRIDE_BASE_URL``, so they do not depend on how the page was reached.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404

from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care import plans
from stride.care.models import CarePlan, ProtocolVersion
from stride.clinics import access
from stride.clinics.access import Action
from stride.interop import fhir_plans

FHIR_JSON = "application/fhir+json; charset=utf-8"


def protocol_version(
    code: str, version: int | None, versions: QuerySet[ProtocolVersion] | None = None
) -> ProtocolVersion | None:
    """A protocol's version by number, or its newest version not retired; ``None`` when there is none.

    ``versions`` narrows the choice (to the versions a user may see); a shipped
    version wins a tie with a clinic's.
    """
    rows = (versions if versions is not None else ProtocolVersion.objects.all()).filter(code=code)
    rows = rows.filter(retired=False) if version is None else rows.filter(version=version)
    return rows.order_by("-version", "clinic_id").first()


def visible_versions(user: Any) -> QuerySet[ProtocolVersion]:
    """The shipped versions and the edits of the clinics where the user sees patients."""
    ids = access.clinic_ids(user, Action.VIEW_PATIENT)
    versions = ProtocolVersion.objects.all()
    if ids is None:
        return versions
    return versions.filter(Q(clinic__isnull=True) | Q(clinic_id__in=ids))


def _fhir(resource: dict[str, Any]) -> HttpResponse:
    return HttpResponse(json.dumps(resource, indent=2, ensure_ascii=False), content_type=FHIR_JSON)


@login_required
def protocol_fhir(request: HttpRequest, code: str) -> HttpResponse:
    """``?version=N`` for one version; by default the newest one the user's clinics use."""
    access.require(request.user, Action.VIEW_PATIENT)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    raw = request.GET.get("version", "")
    if raw and not (raw.isdigit() and len(raw) <= 9):
        raise Http404("No such protocol version.")
    row = protocol_version(code, int(raw) if raw else None, visible_versions(request.user))
    if row is None:
        raise Http404("No such protocol.")
    return _fhir(
        fhir_plans.plan_definition(
            plans.parsed(row), version_label=str(row.version), base_url=settings.STRIDE_BASE_URL
        )
    )


@login_required
def plan_fhir(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(
        access.scope(CarePlan.objects.select_related("condition__patient", "protocol"), request.user), pk=pk
    )
    if request.method not in ("GET", "HEAD"):  # after the scope: another clinic's plan is not found
        return HttpResponseNotAllowed(["GET", "HEAD"])
    resource = fhir_plans.care_plan(plan, base_url=settings.STRIDE_BASE_URL)
    record(AuditEntry.Action.VIEW, plan.condition.patient, detail={"fhir": "CarePlan", "plan": plan.pk})
    return _fhir(resource)
