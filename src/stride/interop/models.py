"""What FHIR import and export remember: which resource became which Stride record.

An :class:`ExternalResource` ties one FHIR resource, named by its type and id
within the system it came from (``source``), to the Stride record it was
imported as (a content type and an object id). Export reads it back, so a
record that came in as ``Condition/abc`` goes out as ``Condition/abc`` again;
records made in Stride go out under a deterministic id (see
:func:`stride.interop.fhir_map.resource_id`).

A resource Stride has no record for (a code outside the catalog, a condition
without a side, a care plan not started from one of Stride's protocols) is
*kept*: stored whole in ``payload``, tied to its patient, and exported again
with that patient's records. Of a resource that did become a record,
``payload`` keeps what the record has no field for (an address, a second
identifier, a coding from another system), so nothing read is dropped.

``content_hash`` is the SHA-256 of the resource as read: importing the same
resource again is recognised and changes nothing. ``export_id`` is the id the
record (or kept resource) goes out under: the id it came in with, or, for a
source whose ids are unique only within it, a UUID5 of source, type and id.

FHIR: none (bookkeeping of the interface).
"""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from stride.patients.models import Patient


class ExternalResource(models.Model):
    """One FHIR resource read by an import, and the Stride record it became (or the resource, kept)."""

    scope_path = "patient__"

    class Status(models.TextChoices):
        MAPPED = "mapped", "Imported as a Stride record"
        KEPT = "kept", "Kept as it was (no Stride record holds it)"

    source = models.CharField(
        max_length=200,
        blank=True,
        help_text="The system the resource ids belong to (the import's --source); empty for unique ids.",
    )
    resource_type = models.CharField(max_length=64)
    fhir_id = models.CharField("FHIR id", max_length=64)
    export_id = models.CharField(
        "id when exported",
        max_length=64,
        help_text="The FHIR id; from a named --source, a UUID5 of source, type and id (unique per source).",
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    record = GenericForeignKey("content_type", "object_id")
    patient = models.ForeignKey(
        Patient,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="external_resources",
        help_text="The patient the resource belongs to, when it belongs to one.",
    )
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the resource as read.")
    payload = models.JSONField(
        null=True,
        blank=True,
        help_text="Kept: the whole resource. Imported: the elements no Stride field holds.",
    )
    reason = models.CharField(max_length=300, blank=True, help_text="Why a kept resource is not a record.")
    imported_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "resource_type", "fhir_id"], name="external_resource_once_per_source"
            ),
            models.CheckConstraint(
                condition=models.Q(status="kept", content_type__isnull=True)
                | models.Q(status="mapped", content_type__isnull=False, object_id__isnull=False),
                name="external_resource_mapped_or_kept",
            ),
        ]
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="external_resource_record"),
            models.Index(fields=["status", "resource_type", "patient"], name="external_resource_kept"),
        ]

    def __str__(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"{self.resource_type}/{self.fhir_id}{where} ({self.get_status_display().lower()})"
