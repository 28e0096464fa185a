"""Clinical and data rules that every input path obeys.

Each rule raises :class:`~stride.core.errors.Invalid` naming the field at
fault, or returns quietly. Forms, the demo loader, the synthetic generator
and (later) imports all run the same rules, so bad data is refused the same
way wherever it comes from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from stride.core.errors import Invalid

#: More steroid injections than this at one site within STEROID_WINDOW_DAYS is flagged.
STEROID_LIMIT = 3
STEROID_WINDOW_DAYS = 183
OLDEST_AGE_YEARS = 125


def birth_date(value: dt.date, today: dt.date) -> None:
    if value > today:
        raise Invalid("The date of birth is in the future.", "date_of_birth")
    if value.year < today.year - OLDEST_AGE_YEARS:
        raise Invalid(f"The date of birth is more than {OLDEST_AGE_YEARS} years ago.", "date_of_birth")


def event_date(value: dt.date, field: str, label: str, *, born: dt.date | None, today: dt.date) -> None:
    """A clinical date: not in the future, not before the patient was born."""
    if value > today:
        raise Invalid(f"The {label} is in the future.", field)
    if born is not None and value < born:
        raise Invalid(f"The {label} is before the patient's date of birth ({born:%d %b %Y}).", field)


def not_before(later: dt.date | None, earlier: dt.date | None, field: str, message: str) -> None:
    if later is not None and earlier is not None and later < earlier:
        raise Invalid(message, field)


def positive(
    value: Decimal | float | int | None, field: str, label: str, *, allow_zero: bool = False
) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise Invalid(f"The {label} must be {'zero or more' if allow_zero else 'more than zero'}.", field)


def within(
    value: Decimal | float | int | None, low: float, high: float, field: str, label: str, unit: str
) -> None:
    if value is None:
        return
    if not low <= value <= high:
        raise Invalid(f"The {label} must be between {low:g} and {high:g} {unit}.", field)


def procedure_side(procedure_laterality: str, condition_laterality: str) -> None:
    """A procedure treats the side of its condition (either side of a bilateral one)."""
    if condition_laterality == "bilateral":
        return
    if procedure_laterality != condition_laterality:
        raise Invalid(
            f"This condition is on the {condition_laterality} side; the procedure is recorded on the "
            f"{procedure_laterality}.",
            "laterality",
        )


def steroid_injections_in_window(dates: Iterable[dt.date], on: dt.date) -> int:
    """How many of ``dates`` fall in the window of STEROID_WINDOW_DAYS ending on ``on`` (inclusive)."""
    start = on - dt.timedelta(days=STEROID_WINDOW_DAYS)
    return sum(1 for d in dates if start < d <= on)


def steroid_limit_exceeded(dates: Iterable[dt.date], on: dt.date) -> bool:
    """True when the injection on ``on`` makes more than STEROID_LIMIT at one site in six months.

    ``dates`` are the site's steroid injection dates including ``on``. Payers
    ask for a justification beyond three in six months (CMS article A57201).
    """
    return steroid_injections_in_window(dates, on) > STEROID_LIMIT


def age_on(born: dt.date, on: dt.date) -> int:
    """Whole years of age on a date."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
