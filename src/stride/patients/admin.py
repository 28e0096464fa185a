from django.contrib import admin

from stride.admin_site import ScopedAdmin
from stride.patients.models import Consent, Patient


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    fields = ["version", "consented_on", "withdrawn_on", "recorded_by"]


@admin.register(Patient)
class PatientAdmin(ScopedAdmin):
    list_display = ["record_number", "family_name", "given_name", "date_of_birth", "clinic"]
    list_filter = ["clinic", "sex"]
    search_fields = ["record_number", "family_name", "given_name"]
    inlines = [ConsentInline]
