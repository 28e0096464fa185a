from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stride.admin_site import ScopedAdmin
from stride.clinics import access
from stride.clinics.access import Action
from stride.outcomes.models import Contact, InstrumentWording, MessageTemplate


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ScopedAdmin):
    """A clinic admin words the clinic's own invitation, reminder and letter."""

    list_display = ["clinic", "kind", "subject", "updated_at"]
    list_filter = ["kind"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clinic":
            kwargs["queryset"] = access.clinics(request.user, Action.ADMINISTER)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Contact)
class ContactAdmin(ScopedAdmin):
    list_display = ["follow_up", "kind", "channel", "state", "outcome", "due_at", "finished_at"]
    list_filter = ["kind", "state", "outcome"]
    readonly_fields = [f.name for f in Contact._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(InstrumentWording)
class InstrumentWordingAdmin(ScopedAdmin):
    """Loaded with `stride wording load`; shown here to check or remove."""

    list_display = ["clinic", "instrument", "instrument_version", "source", "loaded_by", "loaded_at"]
    readonly_fields = ["clinic", "instrument", "instrument_version", "texts", "loaded_by", "loaded_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
