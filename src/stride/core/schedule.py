"""The follow-up schedule: time points and their windows, from an index date.

Plain functions over dates: which follow-ups a condition gets from its index
treatment, when each window opens and closes, what state a follow-up is in
on a given day, and on which days the invitation, the reminder and the
escalations fall. The numbers come from ``stride/outcomes/schedule.toml``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from stride.core.errors import CatalogError

SCHEDULE_FILE = Path(__file__).resolve().parent.parent / "outcomes" / "schedule.toml"
CONTACT_KINDS = ("invitation", "reminder", "phone-call", "letter")


@dataclass(frozen=True)
class TimePoint:
    code: str
    name: str
    months: int
    days_before: int
    days_after: int
    grace_days: int = 0


@dataclass(frozen=True)
class Window:
    timepoint: str
    opens: dt.date
    due: dt.date
    closes: dt.date
    #: The last day answers are taken (after ``closes`` only for the baseline's grace, flagged).
    accepts_until: dt.date

    def state(self, today: dt.date, *, completed: bool) -> str:
        """pending (not open yet), due (open), completed, or missed (closed unanswered)."""
        if completed:
            return "completed"
        if today < self.opens:
            return "pending"
        if today > self.accepts_until:
            return "missed"
        return "due"

    def flags_for(self, collected: dt.date) -> tuple[str, ...]:
        """Flags an answer collected on ``collected`` carries."""
        if collected <= self.closes:
            return ()
        if self.timepoint == "baseline" and collected <= self.accepts_until:
            return ("baseline-after-index",)
        return ("late",)

    def overdue(self, today: dt.date) -> bool:
        """Still taking answers, but past its due date."""
        return self.due < today <= self.accepts_until


@dataclass(frozen=True)
class Schedule:
    version: int
    timepoints: tuple[TimePoint, ...]
    contact_days: Mapping[str, int]
    instruments: Mapping[str, tuple[str, ...]]

    def timepoint(self, code: str) -> TimePoint:
        for point in self.timepoints:
            if point.code == code:
                return point
        raise KeyError(code)

    def windows(self, index: dt.date) -> list[Window]:
        """Every follow-up window of an episode whose index treatment is on ``index``."""
        result = []
        for point in self.timepoints:
            due = add_months(index, point.months)
            closes = due + dt.timedelta(days=point.days_after)
            result.append(
                Window(
                    point.code,
                    due - dt.timedelta(days=point.days_before),
                    due,
                    closes,
                    closes + dt.timedelta(days=point.grace_days),
                )
            )
        return result

    def contact_dates(self, window: Window) -> dict[str, dt.date]:
        """The day of each contact for a window; contacts that would fall after it closes are left out."""
        dates = {}
        for kind in CONTACT_KINDS:
            day = window.opens + dt.timedelta(days=self.contact_days[kind])
            if day <= window.closes:
                dates[kind] = day
        return dates

    def instruments_for(
        self, condition: str, timepoint: str, at_baseline: Callable[[str], bool] = lambda code: True
    ) -> tuple[str, ...]:
        """The questionnaires a condition is followed with at a time point."""
        codes = self.instruments.get(condition, self.instruments["default"])
        if timepoint == "baseline":
            codes = tuple(code for code in codes if at_baseline(code))
        return codes


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus calendar months, clamped to the end of a shorter month (31 Jan + 1 → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def load_schedule(path: Path = SCHEDULE_FILE) -> Schedule:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    if data.get("schedule") != "follow-up" or not isinstance(data.get("version"), int):
        raise CatalogError(f"{path.name}: needs schedule = 'follow-up' and a whole-number version.")
    points = []
    for entry in data.get("timepoint", []):
        try:
            point = TimePoint(
                entry["code"],
                entry["name"],
                entry["months"],
                entry["days_before"],
                entry["days_after"],
                entry.get("grace_days", 0),
            )
        except KeyError as exc:
            raise CatalogError(f"{path.name}: a time point lacks {exc.args[0]!r}.") from None
        if min(point.days_before, point.days_after, point.months, point.grace_days) < 0:
            raise CatalogError(f"{path.name}: time point {point.code} has a negative offset.")
        points.append(point)
    if not points or points[0].code != "baseline" or points[0].days_after != 0:
        raise CatalogError(
            f"{path.name}: the first time point must be the baseline, closing on the index day."
        )
    if [p.months for p in points] != sorted({p.months for p in points}):
        raise CatalogError(f"{path.name}: time points must be in increasing months, each once.")
    contacts = data.get("contacts", {})
    if set(contacts) != set(CONTACT_KINDS):
        raise CatalogError(f"{path.name}: [contacts] must give days for {', '.join(CONTACT_KINDS)}.")
    instruments = {key: tuple(value) for key, value in data.get("instruments", {}).items()}
    if "default" not in instruments:
        raise CatalogError(f"{path.name}: [instruments] needs a default list.")
    return Schedule(data["version"], tuple(points), dict(contacts), instruments)


@cache
def schedule() -> Schedule:
    return load_schedule()
