from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "stride.audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from stride.audit import signals  # noqa: F401  (connects the receivers)
