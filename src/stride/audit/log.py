"""Writing audit entries."""

from __future__ import annotations

from typing import Any

from django.db import models

from stride.audit.context import current
from stride.audit.models import AuditEntry


def patient_and_clinic(instance: models.Model) -> tuple[int | None, int | None]:
    """The patient and clinic a record belongs to, following its ``scope_path``."""
    from stride.patients.models import Patient

    path = getattr(type(instance), "scope_path", None)
    if path is None:
        return None, getattr(instance, "clinic_id", None)
    obj: Any = instance
    for step in [p for p in path.split("__") if p]:
        obj = getattr(obj, step, None)
        if obj is None:
            return None, None
    if isinstance(obj, Patient):
        return obj.pk, obj.clinic_id
    return None, None


def record(
    action: str,
    instance: models.Model | None = None,
    *,
    detail: dict[str, Any] | None = None,
    user: Any = None,
    model: str = "",
    object_id: str = "",
    patient_id: int | None = None,
    clinic_id: int | None = None,
) -> AuditEntry:
    actor = current()
    user = user if user is not None else actor.user
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    if instance is not None:
        model = instance._meta.label
        object_id = str(instance.pk)
        patient_id, clinic_id = patient_and_clinic(instance)
    return AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else actor.label,
        action=action,
        model=model,
        object_id=object_id,
        patient_id=patient_id,
        clinic_id=clinic_id,
        ip_address=actor.ip_address,
        channel=actor.channel,
        detail=detail or {},
    )
