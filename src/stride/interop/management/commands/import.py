"""``stride import fhir PATH…``: FHIR R4 NDJSON files, Bundles and folders of them into Stride."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from stride.audit.context import acting_as, cli_actor

BAD_INPUT = 2


class Command(BaseCommand):
    help = (
        "Import FHIR R4 resources: bulk NDJSON files (one resource per line), Bundles (collection, "
        "transaction…) and folders of them. Files are read a line (or a Bundle entry) at a time. "
        "Organizations, patients, conditions, procedures, questionnaire responses, scores and "
        "measurements, consents and care plans become Stride records where they map; what does not map "
        "(a code outside the catalog, a condition without a side) is kept whole and exported again; "
        "other resource types are skipped. Every rejected resource is listed with its file, line and "
        "reason. Importing the same files again changes nothing.\n\n"
        "Example: stride import fhir exports/fhir\n"
        "Example: stride import fhir ehr/Patient.ndjson ehr/Condition.ndjson --source st-marys-ehr"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="fhir")
        fhir = kinds.add_parser(
            "fhir",
            help="FHIR R4 NDJSON files, Bundles, or folders of them.",
            description="Example: stride import fhir exports/fhir",
        )
        fhir.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="Files or folders.")
        fhir.add_argument(
            "--source",
            default="",
            help="A name for the system the files come from, when its resource ids are not unique "
            "across systems (plain numbers, say); leave it out for UUIDs such as Stride's and Synthea's.",
        )
        fhir.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, paths: list[Path], source: str, no_progress: bool, **options: Any) -> None:
        from stride.interop.fhir_files import FileError
        from stride.interop.fhir_import import import_paths

        show = not no_progress and sys.stderr.isatty()
        with (
            acting_as(cli_actor()),
            tqdm(
                desc="FHIR import", unit=" resources", unit_scale=True, file=sys.stderr, disable=not show
            ) as bar,
        ):

            def total(n: int) -> None:
                bar.total = n
                bar.refresh()

            def progress(resource_type: str, n: int) -> None:
                bar.update(n)

            try:
                report = import_paths(paths, progress=progress, source=source.strip(), total=total)
            except FileError as error:
                raise CommandError(str(error), returncode=BAD_INPUT) from None
        for line in report.lines():
            self.stdout.write(line)
        if report.nothing_done:
            raise CommandError("Nothing could be imported.", returncode=1)
