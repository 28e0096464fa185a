"""``stride images prune``: remove files in the image storage that no image refers to any more."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from stride.imaging import services


class Command(BaseCommand):
    help = (
        "Find files in the image storage that no image refers to: an original left behind when the "
        "transaction around its upload was rolled back, the renditions of a deleted image. List them, or "
        "delete them with --delete.\n\n"
        "Example: stride images prune --delete"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["prune"], help="prune: find (and delete) unreferenced files.")
        parser.add_argument("--delete", action="store_true", help="delete them (default: only list them).")
        parser.add_argument(
            "--older-than",
            type=int,
            default=60,
            metavar="MINUTES",
            help="only files older than this, so an upload in progress is never touched (default 60).",
        )

    def handle(self, *args: Any, action: str, delete: bool, older_than: int, **options: Any) -> None:
        before = timezone.now() - dt.timedelta(minutes=older_than)
        found = services.unreferenced_files(before)
        for name in found:
            self.stdout.write(name)
            if delete:
                services.image_storage().delete(name)
        verb = "Deleted" if delete else "Found"
        self.stdout.write(f"{verb} {len(found)} unreferenced file{'s' if len(found) != 1 else ''}.")
