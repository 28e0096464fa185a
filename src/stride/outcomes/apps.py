from django.apps import AppConfig


class OutcomesConfig(AppConfig):
    name = "stride.outcomes"
    verbose_name = "Outcomes: questionnaires, schedules and follow-up"

    def ready(self) -> None:
        from stride.outcomes import signals  # noqa: F401  (connects the receivers)
