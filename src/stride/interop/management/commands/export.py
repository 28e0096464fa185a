"""``stride export fhir|research``: the registry as FHIR R4 bulk files or one patient's Bundle, and the
de-identified research tables."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from stride.audit.context import acting_as, cli_actor
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.clinics.models import Clinic
from stride.core.errors import Invalid, StrideError
from stride.patients.models import Patient

BAD_INPUT = 2


def _clinic_ids(slugs: list[str] | None) -> set[int] | None:
    if not slugs:
        return None
    found = dict(Clinic.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    missing = [slug for slug in slugs if slug not in found]
    if missing:
        known = ", ".join(Clinic.objects.order_by("slug").values_list("slug", flat=True)) or "none"
        raise CommandError(f"No clinic {missing[0]!r} (clinics: {known}).", returncode=BAD_INPUT)
    return set(found.values())


def _saved_cohort(name: str) -> Any:
    from stride.analytics.models import SavedCohort

    saved = SavedCohort.objects.filter(name=name).first()
    if saved is None and name.isdigit():
        saved = SavedCohort.objects.filter(pk=int(name)).first()
    if saved is None:
        known = ", ".join(SavedCohort.objects.values_list("name", flat=True)[:20]) or "none saved"
        raise CommandError(f"No saved cohort {name!r} (saved cohorts: {known}).", returncode=BAD_INPUT)
    return saved


class Command(BaseCommand):
    help = (
        "Export the registry. 'fhir' writes FHIR R4 bulk NDJSON files, one per resource type, with a "
        "manifest in the style of the Bulk Data $export (patients whose registry consent stands, of every "
        "clinic or those named, or of a saved cohort), or with --patient one patient's record as a FHIR "
        "Bundle. 'research' writes the de-identified research tables (CSV or Parquet) with their data "
        "dictionary. Each export is audited.\n\n"
        "Example: stride export fhir --out exports/fhir --clinic lakeside\n"
        "Example: stride export fhir --patient LFA-1001 --out LFA-1001.json\n"
        "Example: stride export research --out exports/research --format parquet --key 'a long secret'"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="fhir|research")
        fhir = kinds.add_parser(
            "fhir",
            help="FHIR R4 bulk NDJSON files, or one patient's Bundle.",
            description="Example: stride export fhir --out exports/fhir --clinic lakeside",
        )
        fhir.add_argument(
            "--out",
            type=Path,
            required=True,
            help="Folder for the NDJSON files; with --patient, the Bundle's file (or a folder for it).",
        )
        fhir.add_argument(
            "--clinic", action="append", metavar="SLUG", help="Only this clinic (repeat for several)."
        )
        fhir.add_argument("--cohort", metavar="NAME|ID", help="Only the patients of this saved cohort.")
        fhir.add_argument(
            "--patient", metavar="RECORD", help="One patient (record number or id) as a Bundle."
        )
        research = kinds.add_parser(
            "research",
            help="The de-identified research tables and their data dictionary.",
            description="Example: stride export research --out exports/research --format csv --key 'secret'",
        )
        research.add_argument("--out", type=Path, required=True, help="Folder for the tables.")
        research.add_argument("--format", choices=["csv", "parquet"], default="csv", help="Table format.")
        research.add_argument(
            "--clinic", action="append", metavar="SLUG", help="Only this clinic (repeat for several)."
        )
        research.add_argument("--cohort", metavar="NAME|ID", help="Only the patients of this saved cohort.")
        research.add_argument(
            "--dates",
            choices=["index", "shift"],
            default="index",
            help="Days from each patient's index date (default), or dates shifted by a per-patient offset.",
        )
        research.add_argument(
            "--key", required=True, help="The export key: the same key gives the same pseudonyms."
        )
        research.add_argument(
            "--minimum", type=int, default=None, help="Small-cell minimum (default: STRIDE_MIN_CELL_SIZE)."
        )
        for sub in (fhir, research):
            sub.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        with acting_as(cli_actor()):
            if options["kind"] == "research":
                self._research(options)
            elif options["patient"]:
                self._bundle(options)
            else:
                self._bulk(options)
        self.stderr.write(f"Done in {time.perf_counter() - started:.1f} s.")

    def _bar(self, options: dict[str, Any], what: str, total: int | None = None) -> tqdm:
        show = not options["no_progress"] and sys.stderr.isatty()
        return tqdm(total=total, desc=what, unit=" rows", unit_scale=True, file=sys.stderr, disable=not show)

    # ----------------------------------------------------------------- FHIR

    def _bundle(self, options: dict[str, Any]) -> None:
        from stride.interop.fhir_export import patient_bundle

        if options["cohort"]:
            raise CommandError("--patient and --cohort do not go together.", returncode=BAD_INPUT)
        key = options["patient"].strip()
        patients = Patient.objects.select_related("clinic").filter(record_number=key.upper())
        clinic_ids = _clinic_ids(options["clinic"])
        if clinic_ids is not None:
            patients = patients.filter(clinic_id__in=clinic_ids)
        found = list(patients[:2])
        if not found and key.isdigit():
            found = list(Patient.objects.select_related("clinic").filter(pk=int(key)))
        if not found:
            raise CommandError(f"No patient {key!r}.", returncode=BAD_INPUT)
        if len(found) > 1:
            raise CommandError(f"{key!r} is a record number in several clinics: add --clinic SLUG.")
        patient = found[0]
        out: Path = options["out"]
        if out.is_dir() or str(out).endswith(("/", "\\")):
            out = out / f"{patient.record_number}.json"
        bundle = patient_bundle(patient)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(bundle, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as error:
            raise CommandError(f"Cannot write {out}: {error.strerror}.") from None
        counts: dict[str, int] = {}
        for entry in bundle["entry"]:
            kind = entry["resource"]["resourceType"]
            counts[kind] = counts.get(kind, 0) + 1
        self.stdout.write(
            f"Wrote {out}: a Bundle of {len(bundle['entry'])} resources of {patient.record_number}."
        )
        for kind, n in counts.items():
            self.stdout.write(f"  {kind:<24}{n:>10,}")

    def _bulk(self, options: dict[str, Any]) -> None:
        from stride.interop.fhir_export import selected_patients, write_bulk

        clinic_ids = _clinic_ids(options["clinic"])
        patient_ids = None
        if options["cohort"]:
            from stride.analytics.dataset import episodes_for

            saved = _saved_cohort(options["cohort"])
            patient_ids = episodes_for(saved.cohort, clinic_ids).values("condition__patient_id")
        if not selected_patients(clinic_ids, patient_ids).exists():
            raise CommandError(
                "No patients to export: none of those chosen has a registry consent that stands "
                "(withdrawn patients and patients without consent are never exported in bulk).",
                returncode=1,
            )
        out: Path = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} is a file; give a folder for the NDJSON files.", returncode=BAD_INPUT)
        with self._bar(options, "FHIR export") as bar:

            def progress(resource_type: str, n: int) -> None:
                bar.update(n)

            try:
                counts = write_bulk(out, clinic_ids=clinic_ids, patient_ids=patient_ids, progress=progress)
            except OSError as error:
                raise CommandError(f"Cannot write to {out}: {error.strerror or error}.") from None
        self.stdout.write(f"Wrote {sum(counts.values()):,} resources to {out}:")
        for kind, n in counts.items():
            self.stdout.write(f"  {kind + '.ndjson':<32}{n:>10,}")
        self.stdout.write(f"  {'manifest.json':<32}")

    # ----------------------------------------------------------------- research

    def _research(self, options: dict[str, Any]) -> None:
        from stride.interop.research import write_research_export

        clinic_ids = _clinic_ids(options["clinic"])
        spec = None
        if options["cohort"]:
            saved = _saved_cohort(options["cohort"])
            spec = saved.cohort
            if clinic_ids is None:
                clinic_ids = set(saved.clinics.values_list("pk", flat=True)) or None
        written: dict[str, int] = {}
        with self._bar(options, "Research export") as bar:

            def progress(table: str, rows: int) -> None:
                written[table] = rows
                bar.n = sum(written.values())
                bar.refresh()

            try:
                summary = write_research_export(
                    options["out"],
                    fmt=options["format"],
                    clinic_ids=clinic_ids,
                    spec=spec,
                    dates=options["dates"],
                    key=options["key"],
                    minimum=options["minimum"],
                    progress=progress,
                )
            except (Invalid, StrideError) as error:
                raise CommandError(str(getattr(error, "message", error)), returncode=BAD_INPUT) from None
            except OSError as error:
                raise CommandError(f"Cannot write to {options['out']}: {error.strerror or error}.") from None
        record(
            AuditEntry.Action.EXPORT,
            model="interop.researchexport",
            detail={
                "export": "research",
                "format": summary.fmt,
                "dates": summary.dates,
                "clinics": sorted(clinic_ids) if clinic_ids is not None else "all",
                "minimum": summary.minimum,
                "key": summary.key_fingerprint,
                "counts": summary.tables,
            },
        )
        for line in summary.lines():
            self.stdout.write(line)
        if getattr(summary, "patients", None) == 0:
            raise CommandError("No patients to export.", returncode=1)
