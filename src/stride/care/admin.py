from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest

from stride.admin_site import ReadOnlyAdmin, ScopedAdmin
from stride.care import models, plans
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import protocols as core_protocols
from stride.core.errors import CatalogError, Invalid


class InjectateInline(admin.StackedInline):
    model = models.Injectate
    extra = 0


class AdverseEventInline(admin.TabularInline):
    model = models.AdverseEvent
    extra = 0


@admin.register(models.Condition)
class ConditionAdmin(ScopedAdmin):
    list_display = ["patient", "condition_type", "laterality", "icd10_code", "status"]
    list_filter = ["condition_type", "status"]
    raw_id_fields = ["patient"]


@admin.register(models.TreatmentHistory)
class TreatmentHistoryAdmin(ScopedAdmin):
    list_display = ["patient", "treatment", "started_on", "response"]
    raw_id_fields = ["patient", "condition"]


@admin.register(models.Procedure)
class ProcedureAdmin(ScopedAdmin):
    list_display = ["patient", "procedure_type", "performed_on", "laterality", "clinician"]
    list_filter = ["procedure_type"]
    raw_id_fields = ["patient", "condition"]
    inlines = [InjectateInline, AdverseEventInline]


for model in (
    models.BodySite,
    models.Site,
    models.ConditionType,
    models.ProcedureType,
    models.TreatmentKind,
    models.Drug,
    models.AdverseEventKind,
):
    admin.site.register(model, ReadOnlyAdmin)


class ProtocolVersionForm(forms.ModelForm):
    """A new version of a protocol: the TOML text, checked in full before it is saved."""

    class Meta:
        model = models.ProtocolVersion
        fields = ["clinic", "code", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 40, "cols": 100, "style": "font-family: monospace"})}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        code, text = data.get("code"), data.get("text")
        if code and text:
            try:
                protocol = core_protocols.parse_protocol(text, f"{code} (edited)")
            except (CatalogError, Invalid) as exc:
                raise forms.ValidationError(str(exc)) from None
            if protocol.code != code:
                raise forms.ValidationError(f"The text names protocol {protocol.code!r}, not {code!r}.")
        return data


@admin.register(models.ProtocolVersion)
class ProtocolVersionAdmin(admin.ModelAdmin):
    """Protocols: shipped versions for everyone, and each clinic's own new versions.

    A version never changes once saved (plans keep the version they started
    from); editing means adding the next version, for the admin's clinic.
    """

    form = ProtocolVersionForm
    list_display = ["name", "code", "version", "clinic", "created_by", "created_at"]
    list_filter = ["code", "clinic"]

    def get_queryset(self, request: HttpRequest) -> Any:
        ids = access.clinic_ids(request.user, Action.EDIT_PROTOCOL)
        queryset = super().get_queryset(request)
        return queryset if ids is None else queryset.filter(Q(clinic__isnull=True) | Q(clinic_id__in=ids))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.can(request.user, Action.EDIT_PROTOCOL)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.can(request.user, Action.EDIT_PROTOCOL)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return access.can(request.user, Action.EDIT_PROTOCOL)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # versions are immutable: add the next one

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        code = request.GET.get("code")
        if code:
            latest = self.get_queryset(request).filter(code=code).order_by("-version").first()
            if latest is not None:
                initial["text"] = latest.text
        clinics = access.clinics(request.user, Action.EDIT_PROTOCOL)
        if len(clinics) == 1:
            initial["clinic"] = clinics[0].pk
        return initial

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "clinic":
            kwargs["queryset"] = access.clinics(request.user, Action.EDIT_PROTOCOL)
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = plans.save_clinic_version(obj.clinic, obj.code, obj.text, request.user)
        obj.pk, obj.version, obj.name = saved.pk, saved.version, saved.name
