from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "stride.patients"
    verbose_name = "Patients and consent"
