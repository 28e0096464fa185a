"""Saved cohorts: a named cohort definition and the clinics it covers.

A saved cohort holds no patient data, only its definition
(:class:`stride.core.cohorts.CohortSpec` as JSON) and its clinic scope.
Whoever runs it sees only the episodes of their own clinics
(:func:`stride.analytics.dataset.episodes_for` is always given the viewer's
clinic ids), so a cohort shared across a network never widens anyone's view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models, transaction

from stride.clinics import access
from stride.clinics.models import Clinic
from stride.core import cohorts
from stride.patients.models import Patient

if TYPE_CHECKING:
    from stride.clinics.access import AnyUser


class SavedCohortQuerySet(models.QuerySet["SavedCohort"]):
    def visible_to(self, user: AnyUser) -> SavedCohortQuerySet:
        """Cohorts every clinic of which the user may see aggregates of (a researcher: their clinics)."""
        ids = access.clinic_ids(user, access.Action.VIEW_AGGREGATES)
        if ids is None:
            return self.all()
        outside = SavedCohortClinic.objects.filter(cohort=models.OuterRef("pk")).exclude(clinic_id__in=ids)
        inside = SavedCohortClinic.objects.filter(cohort=models.OuterRef("pk"), clinic_id__in=ids)
        return self.filter(models.Exists(inside)).exclude(models.Exists(outside))


class SavedCohort(models.Model):
    """A cohort definition saved by name, for the clinics it covers."""

    # For access.scope(): a cohort is in scope where any of its clinics is; visible_to() asks for all.
    scope_path = "scopes__"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="The cohort definition (CohortSpec.to_dict()).")
    clinics = models.ManyToManyField(Clinic, through="SavedCohortClinic", related_name="saved_cohorts")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SavedCohortQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @property
    def cohort(self) -> cohorts.CohortSpec:
        return cohorts.parse_spec(self.spec)

    def describe(self) -> str:
        return cohorts.describe(self.cohort)

    @classmethod
    @transaction.atomic
    def save_for(
        cls,
        user: Any,
        name: str,
        spec: cohorts.CohortSpec,
        clinics: Iterable[Clinic] | None = None,
        description: str = "",
    ) -> SavedCohort:
        """Save ``spec`` as ``name``, scoped to ``clinics`` (by default every clinic whose aggregates the
        user may see); a clinic outside the user's reach is refused."""
        allowed = access.clinics(user, access.Action.VIEW_AGGREGATES)
        chosen = list(allowed) if clinics is None else list(clinics)
        allowed_ids = set(allowed.values_list("pk", flat=True))
        if not chosen:
            raise cohorts.Invalid("A saved cohort needs at least one clinic you can see.", "clinics")
        outside = [clinic.name for clinic in chosen if clinic.pk not in allowed_ids]
        if outside:
            raise cohorts.Invalid(f"You cannot save a cohort for {', '.join(outside)}.", "clinics")
        cohort = cls.objects.create(
            name=name.strip(),
            description=description,
            spec=spec.to_dict(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        cohort.clinics.set(chosen)
        return cohort


class SavedCohortClinic(models.Model):
    """One clinic a saved cohort covers."""

    cohort = models.ForeignKey(SavedCohort, on_delete=models.CASCADE, related_name="scopes")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cohort", "clinic"], name="saved_cohort_clinic_once"),
        ]

    def __str__(self) -> str:
        return f"{self.cohort} at clinic {self.clinic_id}"


class CaseNarrative(models.Model):
    """The clinician's narrative paragraph of a patient's case report (one per patient)."""

    scope_path = "patient__"

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="case_narrative")
    text = models.TextField(blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Case narrative of patient {self.patient_id}"
