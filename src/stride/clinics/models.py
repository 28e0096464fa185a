"""Clinics, the people who work in them, and what each may do there.

A user belongs to one or more clinics through a :class:`Membership`, which
carries that user's role *in that clinic*. Every patient belongs to exactly one
clinic; what a user may see and change follows from their memberships
(see :mod:`stride.clinics.access`).

FHIR: Clinic ~ Organization; Membership ~ PractitionerRole.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone


def validate_time_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone, e.g. Europe/London.") from None


class Role(models.TextChoices):
    CLINICIAN = "clinician", "Clinician"
    COORDINATOR = "coordinator", "Coordinator"
    RESEARCHER = "researcher", "Researcher"
    ADMIN = "admin", "Clinic admin"


class User(AbstractUser):
    """A person who logs in. Patients never have accounts."""

    class Meta:
        ordering = ["last_name", "first_name", "username"]

    def __str__(self) -> str:
        return self.get_full_name() or self.username


class Clinic(models.Model):
    """A site that treats patients and owns their records."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(
        max_length=50,
        unique=True,
        help_text="Short code used in the CLI and in exports, e.g. 'lakeside'.",
        validators=[RegexValidator(r"^[a-z0-9-]+$", "Use lower-case letters, digits and hyphens.")],
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA time zone; decides what 'today' means for this clinic.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def today(self) -> datetime.date:
        """Today's date where the clinic is."""
        return timezone.now().astimezone(ZoneInfo(self.time_zone)).date()


class Membership(models.Model):
    """A user's role in one clinic."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["clinic__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_role_per_user_per_clinic"),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="membership_role_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} at {self.clinic}"
