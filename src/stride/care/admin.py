from django.contrib import admin

from stride.admin_site import ReadOnlyAdmin, ScopedAdmin
from stride.care import models


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
