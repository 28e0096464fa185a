"""Who the token acts as, and the catalog codes the other endpoints take (no patient data)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from stride.api import common
from stride.api.schemas import CatalogOut, Error, MeOut
from stride.care.models import AdverseEventKind, ConditionType, Drug, ProcedureType, Site, TreatmentKind
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure

router = Router(tags=["account and catalog"])


@router.get("/me", response={200: MeOut, 401: Error}, summary="Who this token acts as")
def me(request: HttpRequest) -> dict[str, Any]:
    """The token's user and their role in each clinic: the API allows what those roles allow on the pages."""
    user = common.user_of(request)
    memberships = user.memberships.select_related("clinic").order_by("clinic__name")
    return {
        "username": user.get_username(),
        "name": user.get_full_name(),
        "memberships": [
            {"clinic": m.clinic.slug, "clinic_name": m.clinic.name, "role": m.role} for m in memberships
        ],
    }


def _entries(model: Any) -> list[dict[str, str]]:
    return [{"code": e.code, "name": e.name} for e in model.objects.filter(retired=False).order_by("code")]


@router.get("/catalog", response={200: CatalogOut, 401: Error}, summary="The catalog codes")
def catalog(request: HttpRequest) -> dict[str, Any]:
    """Condition types, sites, procedure types, earlier treatments, drugs, adverse-event kinds,
    instruments and measurement types, by the codes the other endpoints take."""
    return {
        "condition_types": _entries(ConditionType),
        "sites": _entries(Site),
        "procedure_types": _entries(ProcedureType),
        "treatments": _entries(TreatmentKind),
        "drugs": _entries(Drug),
        "adverse_event_kinds": _entries(AdverseEventKind),
        "instruments": [
            {
                "code": i.code,
                "name": i.name,
                "version": i.version,
                "items": len(i.items),
                "scales": list(i.scales),
            }
            for i in sorted(core_instruments.library().values(), key=lambda i: i.code)
        ],
        "measurement_types": [
            {"code": t.code, "name": t.name, "unit": t.unit, "tools": list(t.tools)}
            for t in sorted(core_measure.measurement_types().values(), key=lambda t: t.code)
        ],
    }
