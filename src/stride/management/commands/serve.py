from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


class Command(BaseCommand):
    help = (
        "Run Stride's web application with a production WSGI server (waitress).\n\n"
        "Example: stride serve --port 8000"
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")
        parser.add_argument("--threads", type=int, default=8, help="Request threads (default 8).")
        parser.add_argument(
            "--with-worker",
            action="store_true",
            help="Also run the follow-up worker in this process (the demo; production runs `stride worker`).",
        )

    def handle(
        self, *args: Any, host: str, port: int, threads: int, with_worker: bool, **options: Any
    ) -> None:
        from waitress import serve

        from stride.wsgi import application

        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError("The database has unapplied migrations: run `stride migrate` first.")
        if with_worker:
            self._start_worker()
        self.stdout.write(f"Stride is running at http://{host}:{port}/ (Ctrl+C to stop)")
        serve(application, host=host, port=port, threads=threads, ident="stride")

    def _start_worker(self) -> None:
        import threading

        from stride.audit.context import acting_as, cli_actor
        from stride.outcomes.worker import Worker

        worker = Worker()

        def run() -> None:
            with acting_as(cli_actor()):
                worker.run_forever(interval=30, handle_signals=False)

        threading.Thread(target=run, name="stride-worker", daemon=True).start()
        self.stdout.write(f"Follow-up worker {worker.name} running in the background.")
