"""Patients' personal links: signed tokens that name a revocable, expiring PatientLink row.

The token in the address is the link's random key signed with the
installation's secret, so a guessed or altered address fails the signature
check before any database lookup, and a link can still be revoked or expire
through its row.
"""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from stride.outcomes.models import PatientLink
from stride.patients.models import Patient
from stride.tokens import KeySigner

_SIGNER = KeySigner("stride.patient-link")
DEFAULT_DAYS = 45


def token_for(link: PatientLink) -> str:
    return _SIGNER.token(link.key)


def url_for(link: PatientLink, base_url: str = "") -> str:
    return base_url.rstrip("/") + reverse("patient-home", kwargs={"token": token_for(link)})


def resolve(token: str, now: dt.datetime | None = None) -> PatientLink | None:
    """The usable link a token names, or None (tampered, unknown, expired or revoked: all alike)."""
    key = _SIGNER.key(token)
    if key is None:
        return None
    link = PatientLink.objects.select_related("patient__clinic").filter(key=key).first()
    if link is None or not link.usable(now or timezone.now()):
        return None
    return link


def link_until(patient: Patient, until: dt.datetime, created_by: object = None) -> PatientLink:
    """An active link of the patient valid until at least ``until``; a new one if none is."""
    existing = (
        PatientLink.objects.filter(patient=patient, revoked_at__isnull=True, expires_at__gte=until)
        .order_by("-expires_at")
        .first()
    )
    if existing is not None:
        return existing
    return PatientLink.objects.create(patient=patient, expires_at=until, created_by=created_by)


def new_link(patient: Patient, days: int = DEFAULT_DAYS, created_by: object = None) -> PatientLink:
    return PatientLink.objects.create(
        patient=patient, expires_at=timezone.now() + dt.timedelta(days=days), created_by=created_by
    )


def revoke_all(patient: Patient) -> int:
    return PatientLink.objects.filter(patient=patient, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
