from django.apps import AppConfig


class ClinicsConfig(AppConfig):
    name = "stride.clinics"
    verbose_name = "Clinics and access"
