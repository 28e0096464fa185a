from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from stride.audit.context import acting_as, cli_actor
from stride.demo.loader import load_demo
from stride.demo.stories import DEMO_PASSWORD_DEFAULT, LOGINS, SYNTH_PATIENTS, SYNTH_SEED


class Command(BaseCommand):
    help = (
        "Load the demo into the configured database: two clinics, one login per role, three story "
        "patients with the questionnaires they have answered so far, and a few hundred synthetic "
        "ones with theirs. Running it again changes nothing.\n\n"
        "Example: stride demo"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--synthetic",
            type=int,
            default=SYNTH_PATIENTS,
            help=f"Synthetic patients to add (default {SYNTH_PATIENTS}).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not show a progress bar.")

    def handle(self, *args: Any, synthetic: int, no_progress: bool, **options: Any) -> None:
        password = os.environ.get("STRIDE_DEMO_PASSWORD", DEMO_PASSWORD_DEFAULT)
        with (
            acting_as(cli_actor()),
            tqdm(
                total=synthetic,
                desc="Synthetic patients",
                unit="patient",
                disable=no_progress,
                file=sys.stderr,
            ) as bar,
        ):
            counts = load_demo(password, synth_patients=synthetic, synth_seed=SYNTH_SEED, progress=bar.update)
        added = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing (already loaded)"
        self.stdout.write(f"Demo data added: {added}.")
        self.stdout.write("")
        self.stdout.write(f"Demo logins (password: {password}):")
        for login in LOGINS:
            roles = ", ".join(f"{role} at {clinic}" for clinic, role in login.roles.items())
            self.stdout.write(f"  {login.username:<12} {roles}")
