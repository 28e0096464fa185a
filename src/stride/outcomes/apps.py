from django.apps import AppConfig


class OutcomesConfig(AppConfig):
    name = "stride.outcomes"
    verbose_name = "Outcomes: questionnaires, schedules and follow-up"
