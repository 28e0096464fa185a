from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stride.admin_site import ReadOnlyAdmin
from stride.audit.models import AuditEntry
from stride.clinics import access
from stride.clinics.access import Action


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "username", "action", "model", "object_id", "patient_id", "ip_address", "channel"]
    list_filter = ["action", "channel", "model"]
    search_fields = ["username", "object_id"]
    date_hierarchy = "at"

    def get_queryset(self, request: HttpRequest) -> Any:
        queryset = super().get_queryset(request)
        ids = access.clinic_ids(request.user, Action.ADMINISTER)
        return queryset if ids is None else queryset.filter(clinic_id__in=ids)
