from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from stride.audit.context import acting_as, cli_actor
from stride.outcomes.worker import Worker


class Command(BaseCommand):
    help = (
        "Run the follow-up worker: opens and closes follow-up windows, sends invitations and "
        "reminders by email, and puts phone calls and letters on the coordinators' worklist. "
        "Stop it with Ctrl+C or SIGTERM; it finishes the message in hand first. Safe to run twice.\n\n"
        "Example: stride worker --interval 30"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Do one pass and exit (for cron or tests).")
        parser.add_argument(
            "--interval", type=float, default=30.0, help="Seconds between passes (default 30)."
        )

    def handle(self, *args: Any, once: bool, interval: float, **options: Any) -> None:
        worker = Worker()
        with acting_as(cli_actor()):
            if once:
                counts = worker.run_once()
                summary = (
                    ", ".join(f"{n} {what}" for what, n in sorted(counts.items()) if n) or "nothing to do"
                )
                self.stdout.write(f"Worker pass: {summary}.")
            else:
                self.stdout.write(f"Follow-up worker {worker.name} running (Ctrl+C to stop).")
                worker.run_forever(interval)
