from __future__ import annotations

import sys
import time
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from stride.audit.context import acting_as, cli_actor
from stride.core.errors import Invalid
from stride.demo.synth_writer import MAX_PATIENTS, write_synthetic


def _patients(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ArgumentTypeError(f"must be a whole number, not {value!r}") from None
    if not 1 <= number <= MAX_PATIENTS:
        raise ArgumentTypeError(f"must be between 1 and {MAX_PATIENTS:,} (got {number:,})")
    return number


class Command(BaseCommand):
    help = (
        "Add deterministic synthetic patients, with conditions, treatment history, procedures, "
        "injectates and adverse events in plausible proportions, and their follow-up: an episode per "
        "index treatment, the questionnaires answered (or not) at each time point with their scores, "
        "and every invitation, reminder, phone call and letter. The same --seed always gives the "
        "same patients (record numbers S<seed>-000001...), so a seed can be used once per clinic. "
        "Patients are spread over all clinics in turn, or over those named with --clinic.\n\n"
        "Example: stride synth --patients 1000 --seed 7 --clinic lakeside"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "-n",
            "--patients",
            type=_patients,
            required=True,
            help=f"How many patients to add (1 to {MAX_PATIENTS:,}).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=1,
            help="Random seed (default 1); one run per seed per clinic.",
        )
        parser.add_argument(
            "--clinic",
            action="append",
            dest="clinics",
            metavar="SLUG",
            help="Add patients to this clinic only (repeat for several; default: every clinic).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(
        self,
        *args: Any,
        patients: int,
        seed: int,
        clinics: list[str] | None,
        no_progress: bool,
        **options: Any,
    ) -> None:
        started = time.perf_counter()
        show = not no_progress and sys.stderr.isatty()
        with (
            acting_as(cli_actor()),
            tqdm(
                total=patients,
                desc="Synthetic patients",
                unit="patient",
                unit_scale=True,
                disable=not show,
                file=sys.stderr,
            ) as bar,
        ):
            try:
                counts = write_synthetic(
                    patients=patients, seed=seed, clinic_slugs=clinics, progress=bar.update
                )
            except Invalid as exc:
                raise CommandError(exc.message) from None
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"Added {counts['patients']:,} synthetic patients (seed {seed}) in {elapsed:.1f} s:"
        )
        for what, number in counts.items():
            self.stdout.write(f"  {what:<16} {number:>10,}")
