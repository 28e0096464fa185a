"""A patient's timeline: everything that happened, in date order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Same-day events read in this order: consent, then diagnosis, history, procedures, withdrawal.
_ORDER = {"consent": 0, "condition": 1, "history": 2, "procedure": 3, "withdrawal": 4}


@dataclass(frozen=True)
class TimelineItem:
    date: dt.date
    kind: str
    item: Any
    #: How exactly the date is known: "day", "month" or "year".
    precision: str = "day"


def build_timeline(
    conditions: Iterable[Any],
    history: Iterable[Any],
    procedures: Iterable[Any],
    consents: Iterable[Any],
) -> list[TimelineItem]:
    """Merge a patient's records into one list, oldest first.

    Records are read by attribute: conditions by ``onset_date`` (falling back
    to the date recorded), history by ``started_on`` and ``date_precision``,
    procedures by ``performed_on``, consents by ``consented_on`` and
    ``withdrawn_on``.
    """
    items: list[TimelineItem] = []
    for condition in conditions:
        if condition.onset_date:
            items.append(TimelineItem(condition.onset_date, "condition", condition))
        else:
            items.append(TimelineItem(condition.created_at.date(), "condition", condition, precision="month"))
    for entry in history:
        items.append(TimelineItem(entry.started_on, "history", entry, precision=entry.date_precision))
    for procedure in procedures:
        items.append(TimelineItem(procedure.performed_on, "procedure", procedure))
    for consent in consents:
        items.append(TimelineItem(consent.consented_on, "consent", consent))
        if consent.withdrawn_on:
            items.append(TimelineItem(consent.withdrawn_on, "withdrawal", consent))
    items.sort(key=lambda i: (i.date, _ORDER[i.kind], getattr(i.item, "pk", 0) or 0))
    return items
