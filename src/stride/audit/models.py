"""The audit trail: who read or changed which identifiable record, when, from where.

Entries are only ever added. They name records by model and id, and store the
names of the fields that changed, never their values: the trail must not
become a second copy of the patient data.

FHIR: AuditEvent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"
        VIEW = "view", "Viewed"
        SEARCH = "search", "Searched"
        LOGIN = "login", "Logged in"
        LOGOUT = "logout", "Logged out"
        LOGIN_FAILED = "login-failed", "Login failed"
        BULK = "bulk", "Bulk operation"
        EXPORT = "export", "Exported"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept when the user is later deleted.")
    action = models.CharField(max_length=20, choices=Action.choices)
    model = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    clinic_id = models.BigIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    channel = models.CharField(max_length=10, default="web", help_text="web, cli or admin.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        target = f" {self.model} #{self.object_id}" if self.model else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or 'system'} {self.action}{target}"
