"""Run pure-core rules from Django code and report their failures the Django way."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from stride.core.errors import Invalid


def collect(*checks: Callable[[], object]) -> None:
    """Run every check; raise one ``ValidationError`` holding each failure next to its field."""
    errors: dict[str, list[str]] = {}
    for check in checks:
        try:
            check()
        except Invalid as exc:
            errors.setdefault(exc.field or NON_FIELD_ERRORS, []).append(exc.message)
    if errors:
        raise ValidationError(errors)
