from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CareConfig(AppConfig):
    name = "stride.care"
    verbose_name = "Care: conditions, history and procedures"

    def ready(self) -> None:
        from stride.care.catalog_sync import sync_after_migrate

        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="stride.care.catalog_sync")
