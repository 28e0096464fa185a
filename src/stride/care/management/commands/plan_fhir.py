"""``stride plan_fhir``: a protocol as a FHIR R4 PlanDefinition, or a care plan as a FHIR R4 CarePlan."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from stride.audit.context import acting_as, cli_actor
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care import plans
from stride.care.fhir_views import protocol_version
from stride.care.models import CarePlan
from stride.core.errors import CatalogError
from stride.interop import fhir_plans

BAD_INPUT = 2


class Command(BaseCommand):
    help = (
        "Print a protocol as a FHIR R4 PlanDefinition (its newest version, shipped or a clinic's, or "
        "--version N), or a care plan as a FHIR R4 CarePlan (audited as a read of the patient's "
        "record).\n\n"
        "Example: stride plan_fhir protocol ankle-instability-regenerative --version 1"
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        # --version names the protocol version here, in place of Django's "show the version".
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("what", choices=["protocol", "plan"], help="protocol (by code) or plan (by id).")
        parser.add_argument("key", metavar="CODE|ID", help="the protocol code, or the plan's id.")
        parser.add_argument(
            "--version", type=int, default=None, help="the protocol version (default: the newest in use)."
        )

    def handle(self, *args: Any, what: str, key: str, version: int | None, **options: Any) -> None:
        base_url = settings.STRIDE_BASE_URL
        if what == "protocol":
            row = protocol_version(key, version)
            if row is None:
                which = f" version {version}" if version is not None else ""
                raise CommandError(f"No protocol {key!r}{which}.", returncode=BAD_INPUT)
            try:
                resource = fhir_plans.plan_definition(
                    plans.parsed(row), version_label=str(row.version), base_url=base_url
                )
            except CatalogError as exc:
                raise CommandError(
                    f"Protocol {key!r} v{row.version} cannot be read: {exc}", returncode=1
                ) from None
        else:
            if version is not None:
                raise CommandError("--version applies to a protocol, not a plan.", returncode=BAD_INPUT)
            plan = (
                CarePlan.objects.select_related("condition__patient", "protocol").filter(pk=int(key)).first()
                if key.isdigit() and len(key) <= 18
                else None
            )
            if plan is None:
                raise CommandError(f"No care plan with id {key!r}.", returncode=BAD_INPUT)
            with acting_as(cli_actor()):
                resource = fhir_plans.care_plan(plan, base_url=base_url)
                record(
                    AuditEntry.Action.VIEW,
                    plan.condition.patient,
                    detail={"fhir": "CarePlan", "plan": plan.pk},
                )
        self.stdout.write(json.dumps(resource, indent=2, ensure_ascii=False))
