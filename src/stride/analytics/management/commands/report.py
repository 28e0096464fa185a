"""``stride report case|cohort``: the reports of the analytics pages, from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from stride.analytics import reports
from stride.analytics.case_report import build_case_report, case_json, render_case_html, render_case_pdf
from stride.analytics.models import SavedCohort
from stride.audit.context import acting_as, cli_actor
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.core import analysis, cohorts
from stride.core.errors import Invalid, StrideError
from stride.patients.models import Patient

FORMATS = ("html", "pdf", "json", "csv")


class Command(BaseCommand):
    help = (
        "Write a case report of one patient or a cohort report of one or more cohorts, as HTML, PDF or "
        "JSON (cohort reports also as CSV: every number in the report). Cohorts are saved cohorts (by "
        "name or id) or definitions given as JSON; the first cohort is the reference of a comparison. "
        "Cohort reports withhold groups under the small-cell minimum unless --show-small is given; "
        "case reports are de-identified unless --identified is given.\n\n"
        "Example: stride report cohort --cohort 'PRP, plantar fasciitis' --cohort 'Steroid' "
        "--measure nprs:total --format pdf --out prp-vs-steroid.pdf\n"
        'Example: stride report cohort --spec \'Wasting={"conditions": ["foot-muscle-wasting"]}\' '
        "--measure img-interosseous-thickness:value --format csv\n"
        "Example: stride report case LFA-1001 --format pdf --out case.pdf"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="case|cohort")
        case = kinds.add_parser("case", help="One patient's case report.")
        case.add_argument("patient", help="Record number (or database id) of the patient.")
        case.add_argument("--clinic", help="Clinic slug, when the record number is used in several clinics.")
        case.add_argument("--identified", action="store_true", help="Include name, record number and dates.")
        cohort = kinds.add_parser("cohort", help="A cohort report (several cohorts: a comparison).")
        cohort.add_argument(
            "--cohort",
            action="append",
            default=[],
            metavar="NAME|ID",
            help="A saved cohort by name or id (repeat to compare).",
        )
        cohort.add_argument(
            "--spec",
            action="append",
            default=[],
            metavar="LABEL=JSON",
            help='An ad-hoc cohort, e.g. \'PRP={"injectate_kinds": ["prp"]}\' (repeatable).',
        )
        cohort.add_argument("--all", action="store_true", help="Add a cohort of every treated patient.")
        cohort.add_argument(
            "--measure",
            default="nprs:total",
            help=(
                "instrument:scale to analyse (default nprs:total); an image measurement is "
                "img-<type code>:value, e.g. img-interosseous-thickness:value."
            ),
        )
        cohort.add_argument(
            "--event", default=analysis.DEFAULT_EVENT, choices=list(analysis.EVENTS), help="Durability event."
        )
        cohort.add_argument("--timepoint", default="6m", help="Time point of the adjusted comparison.")
        cohort.add_argument(
            "--show-small", action="store_true", help="Do not withhold groups under the small-cell minimum."
        )
        cohort.add_argument("--title", default="", help="Report title.")
        for sub in (case, cohort):
            sub.add_argument(
                "--format", default="html", choices=FORMATS if sub is cohort else FORMATS[:3], help="Output."
            )
            sub.add_argument("--out", type=Path, help="File to write (default: standard output).")
            sub.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with acting_as(cli_actor()):
                output = self._case(options) if options["kind"] == "case" else self._cohort(options)
        except (Invalid, StrideError) as error:
            raise CommandError(str(getattr(error, "message", error))) from None
        out: Path | None = options["out"]
        if out is None:
            if isinstance(output, bytes):
                if sys.stdout.isatty():
                    raise CommandError("A PDF goes to a file: add --out FILE.pdf.")
                sys.stdout.buffer.write(output)
            else:
                self.stdout.write(output, ending="")
            return
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(output if isinstance(output, bytes) else output.encode())
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror}.") from None
        self.stderr.write(f"Wrote {out} ({out.stat().st_size:,} bytes).")

    def _bar(self, options: dict[str, Any], total: int, what: str) -> tqdm:
        return tqdm(total=total, desc=what, unit="step", file=sys.stderr, disable=options["no_progress"])

    def _case(self, options: dict[str, Any]) -> str | bytes:
        wanted = options["format"]
        key = options["patient"].strip()
        patients = Patient.objects.select_related("clinic").filter(record_number=key.upper())
        if options["clinic"]:
            patients = patients.filter(clinic__slug=options["clinic"])
        found = list(patients[:2])
        if not found and key.isdigit():
            found = list(Patient.objects.select_related("clinic").filter(pk=int(key)))
        if not found:
            raise CommandError(f"No patient {key!r}.")
        if len(found) > 1:
            raise CommandError(f"{key!r} is a record number in several clinics: add --clinic SLUG.")
        patient = found[0]
        with self._bar(options, 2, "case report") as bar:
            built = build_case_report(patient, identified=options["identified"])
            bar.update()
            record(
                AuditEntry.Action.EXPORT,
                patient,
                detail={"report": "case", "identified": options["identified"], "format": wanted},
            )
            if wanted == "json":
                output: str | bytes = json.dumps(case_json(built), indent=1, ensure_ascii=False) + "\n"
            elif wanted == "pdf":
                output = render_case_pdf(built)
            else:
                output = render_case_html(built)
            bar.update()
        return output

    def _cohort(self, options: dict[str, Any]) -> str | bytes:
        chosen: list[tuple[str, cohorts.CohortSpec]] = []
        if options["all"]:
            chosen.append(("All treated patients", cohorts.CohortSpec()))
        for key in options["cohort"]:
            saved = SavedCohort.objects.filter(name=key).first()
            if saved is None and key.isdigit():
                saved = SavedCohort.objects.filter(pk=int(key)).first()
            if saved is None:
                known = ", ".join(SavedCohort.objects.values_list("name", flat=True)[:20]) or "none saved"
                raise CommandError(f"No saved cohort {key!r} (saved cohorts: {known}).")
            chosen.append((saved.name, saved.cohort))
        for item in options["spec"]:
            label, sep, text = item.partition("=")
            if not sep or not label.strip():
                raise CommandError(f"--spec takes LABEL=JSON, got {item!r}.")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise CommandError(
                    f"--spec {label}: not JSON ({error.msg} at column {error.colno})."
                ) from None
            chosen.append((label.strip(), cohorts.parse_spec(data)))
        if not chosen:
            raise CommandError("Name at least one cohort: --cohort NAME, --spec LABEL=JSON or --all.")
        instrument, _, scale = options["measure"].partition(":")
        if not scale:
            raise CommandError(
                "--measure takes instrument:scale (e.g. nprs:total, or img-interosseous-thickness:value "
                f"for an image measurement), got {options['measure']!r}."
            )
        wanted = options["format"]
        steps = len(chosen) + len(reports.FINAL_STEPS) + 1
        with self._bar(options, steps, "cohort report") as bar:

            def progress(step: str) -> None:
                bar.set_postfix_str(step[:30])
                bar.update()

            built = reports.cohort_report(
                chosen,
                clinic_ids=None,
                instrument=instrument,
                scale=scale,
                event=options["event"],
                timepoint=options["timepoint"],
                minimum=None if options["show_small"] else settings.STRIDE_MIN_CELL_SIZE,
                title=options["title"],
                generated_by="command line",
                progress=progress,
            )
            record(
                AuditEntry.Action.EXPORT,
                detail={"report": "cohort", "format": wanted, "cohorts": list(built.labels)},
                model="analytics.cohortreport",
            )
            if wanted == "json":
                output: str | bytes = (
                    json.dumps(reports.report_json(built), indent=1, ensure_ascii=False) + "\n"
                )
            elif wanted == "csv":
                output = reports.render_csv(built)
            elif wanted == "pdf":
                output = reports.render_pdf(built)
            else:
                output = reports.render_html(built)
            progress(wanted)
        return output
