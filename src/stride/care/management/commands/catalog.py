from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stride.audit.context import acting_as, cli_actor
from stride.care.catalog_sync import sync_catalog
from stride.core import measure
from stride.core.catalog import load_catalog
from stride.core.errors import CatalogError


class Command(BaseCommand):
    help = (
        "Check the clinical catalog files, or bring the catalog tables in line with them.\n\n"
        "Example: stride catalog check"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "action",
            choices=["check", "sync", "show"],
            help="check the files, sync the tables, or show them.",
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            catalog = load_catalog()
            types = measure.load_types(measure.MEASUREMENT_FILE)
        except CatalogError as exc:
            raise CommandError(f"The catalog files are invalid: {exc}") from None
        unknown = sorted({site for t in types.values() for site in t.sites} - set(catalog.sites))
        if unknown:
            raise CommandError(f"Imaging measurements name sites not in the catalog: {', '.join(unknown)}.")
        if action == "check":
            versions = ", ".join(
                f"{name} v{version}"
                for name, version in {**catalog.versions, "measurements": measure.catalog_version()}.items()
            )
            self.stdout.write(f"Catalog files are valid: {versions}.")
        elif action == "sync":
            with acting_as(cli_actor()):
                counts = sync_catalog(catalog)
            self.stdout.write(
                f"Catalog synced: {counts['added']} added, {counts['updated']} updated, "
                f"{counts['retired']} retired."
            )
        else:
            for condition in catalog.conditions.values():
                codes = " / ".join(f"{side} {code}" for side, code in condition.icd10.items())
                self.stdout.write(f"{condition.code:<32} {condition.name:<55} {codes}")
            for procedure in catalog.procedures.values():
                self.stdout.write(f"{procedure.code:<32} {procedure.name:<55} {procedure.cpt}")
