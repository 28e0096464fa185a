from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stride.audit.context import acting_as, cli_actor
from stride.clinics.models import Clinic
from stride.core import instruments as core_instruments
from stride.core.errors import Invalid
from stride.outcomes.models import InstrumentWording


class Command(BaseCommand):
    help = (
        "Load a clinic's licensed, official wording of an instrument: a JSON object of item "
        "link id → text, covering every item. Patients of the clinic then see that wording "
        "instead of Stride's short labels.\n\n"
        "Example: stride wording load lakeside faam-adl faam-adl-wording.json"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("action", choices=["load", "remove"])
        parser.add_argument("clinic", help="The clinic's slug.")
        parser.add_argument("instrument", help="The instrument code, e.g. faam-adl.")
        parser.add_argument("file", nargs="?", help="The JSON file (for load).")
        parser.add_argument(
            "--source", default="", help="Where the wording comes from, e.g. the licence reference."
        )

    def handle(
        self, *args: Any, action: str, clinic: str, instrument: str, file: str | None, source: str, **o: Any
    ) -> None:
        clinic_obj = Clinic.objects.filter(slug=clinic).first()
        if clinic_obj is None:
            raise CommandError(f"Unknown clinic {clinic!r}.", returncode=2)
        try:
            definition = core_instruments.instrument(instrument)
        except Invalid as exc:
            raise CommandError(exc.message, returncode=2) from None
        if action == "remove":
            deleted, _ = InstrumentWording.objects.filter(clinic=clinic_obj, instrument=instrument).delete()
            self.stdout.write("Wording removed." if deleted else "There was no wording to remove.")
            return
        if not file:
            raise CommandError("Give the JSON file to load.", returncode=2)
        try:
            texts = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"{file}: {exc}", returncode=2) from None
        expected = [item.link_id for item in definition.items]
        if not isinstance(texts, dict) or not all(isinstance(v, str) and v.strip() for v in texts.values()):
            raise CommandError(f"{file}: expected an object of link id → non-empty text.", returncode=2)
        unknown = sorted(set(texts) - set(expected))
        missing = [link_id for link_id in expected if link_id not in texts]
        if unknown or missing:
            problem = []
            if unknown:
                problem.append(f"unknown link ids {', '.join(unknown)}")
            if missing:
                problem.append(f"no text for {', '.join(missing)}")
            raise CommandError(f"{file}: {'; '.join(problem)}.", returncode=2)
        with acting_as(cli_actor()):
            InstrumentWording.objects.update_or_create(
                clinic=clinic_obj,
                instrument=instrument,
                defaults={
                    "instrument_version": definition.version,
                    "texts": {k: texts[k].strip() for k in expected},
                    "source": source,
                    "loaded_by": cli_actor().label,
                },
            )
        self.stdout.write(f"Official wording of {definition.short_name} loaded for {clinic_obj.name}.")
