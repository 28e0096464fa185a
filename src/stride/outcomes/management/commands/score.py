"""``stride score``: score one questionnaire from a JSON file of answers, without a database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from stride.core.errors import CatalogError, Invalid
from stride.core.instruments import instrument, library
from stride.core.scoring import score

BAD_INPUT = 2


class Command(BaseCommand):
    help = (
        "Score one questionnaire. ANSWERS.json holds a JSON list of the answers in item order: a whole "
        'number as coded on the form, null for a blank, or "NA" for not applicable. Prints one JSON '
        "object with the value and counts of every scale, and the policy used.\n\n"
        "Example: stride score faam-adl answers.json --policy na-counts-as-missing"
    )
    requires_system_checks: list[str] = []  # pure scoring: no database, no checks

    def add_arguments(self, parser: Any) -> None:
        try:
            codes = ", ".join(library())
        except CatalogError:
            codes = "see stride/outcomes/instruments"
        parser.add_argument("code", metavar="CODE", help=f"the instrument: {codes}.")
        parser.add_argument("answers", metavar="ANSWERS.json", help="the answers file, or - for stdin.")
        parser.add_argument(
            "--policy", default=None, help="a named scoring policy of the instrument (default: its own)."
        )

    def handle(self, *args: Any, code: str, answers: str, policy: str | None, **options: Any) -> None:
        try:
            chosen = instrument(code)
            chosen.resolve_policy(policy)
            result = score(chosen, _read_answers(answers), policy)
        except (Invalid, CatalogError) as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from None
        self.stdout.write(json.dumps(result.as_dict(), ensure_ascii=False))


def _read_answers(source: str) -> list[Any]:
    name = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise Invalid(f"Cannot read {name}: {reason}.", "answers") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(
            f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(data, list):
        raise Invalid(f"{name} must hold a JSON list of answers in item order.", "answers")
    return data
