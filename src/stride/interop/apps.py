from django.apps import AppConfig


class InteropConfig(AppConfig):
    name = "stride.interop"
    verbose_name = "Interoperability: FHIR import and export, research exports"
