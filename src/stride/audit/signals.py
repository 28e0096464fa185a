"""Every create, update and delete of an audited model writes an audit entry.

Receivers hang on the model signals, so a change made through a page, the
Django admin or a command is audited the same way. Bulk writes (synthetic
data) bypass the signals and write one ``bulk`` entry themselves.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from stride.audit.log import patient_and_clinic, record
from stride.audit.models import AuditEntry

AUDITED = {
    "clinics.Clinic",
    "clinics.Membership",
    "clinics.User",
    "patients.Patient",
    "patients.Consent",
    "care.Condition",
    "care.TreatmentHistory",
    "care.Procedure",
    "care.Injectate",
    "care.AdverseEvent",
    "outcomes.Episode",
    "outcomes.QuestionnaireResponse",
    "outcomes.PatientLink",
    "outcomes.MessageTemplate",
    "analytics.CaseNarrative",
    "imaging.Image",
    "imaging.Measurement",
    "imaging.Annotation",
}
_IGNORED_FIELDS = {"updated_at", "last_login", "password"}


def _audited(sender: type[models.Model]) -> bool:
    return sender._meta.label in AUDITED


@receiver(pre_save)
def remember_changes(
    sender: type[models.Model], instance: models.Model, raw: bool = False, **kwargs: Any
) -> None:
    if raw or not _audited(sender) or instance.pk is None:
        return
    old = sender._default_manager.filter(pk=instance.pk).values().first()
    if old is None:
        return
    changed = [
        f.name
        for f in sender._meta.concrete_fields
        if f.name not in _IGNORED_FIELDS and old.get(f.attname) != getattr(instance, f.attname)
    ]
    if "password" in {f.name for f in sender._meta.concrete_fields} and old.get("password") != getattr(
        instance, "password", None
    ):
        changed.append("password")
    instance._stride_changed = changed  # type: ignore[attr-defined]


@receiver(post_save)
def audit_save(
    sender: type[models.Model], instance: models.Model, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if raw or not _audited(sender):
        return
    if created:
        record(AuditEntry.Action.CREATE, instance)
        return
    changed = getattr(instance, "_stride_changed", None)
    if changed == [] or changed == ["last_login"]:
        return  # nothing a person changed (e.g. a login stamping last_login)
    record(AuditEntry.Action.UPDATE, instance, detail={"fields": changed or []})


@receiver(post_delete)
def audit_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    if not _audited(sender):
        return
    patient_id, clinic_id = _safe_scope(instance)
    record(
        AuditEntry.Action.DELETE,
        model=sender._meta.label,
        object_id=str(instance.pk),
        patient_id=patient_id,
        clinic_id=clinic_id,
    )


def _safe_scope(instance: models.Model) -> tuple[int | None, int | None]:
    try:
        return patient_and_clinic(instance)
    except Exception:  # the parent may already be gone in a cascade
        return None, None


@receiver(user_logged_in)
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record(AuditEntry.Action.LOGIN, user=user)


@receiver(user_logged_out)
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(AuditEntry.Action.LOGOUT, user=user)


@receiver(user_login_failed)
def audit_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    record(AuditEntry.Action.LOGIN_FAILED, detail={"username": credentials.get("username", "")})
