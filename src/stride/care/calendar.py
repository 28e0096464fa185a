"""Plan steps as iCalendar (RFC 5545), with the icalendar library.

Each step is an all-day event on its planned day; its UID is stable, so a
calendar app that subscribes to a feed updates a rescheduled step in place
instead of adding a second one. Events carry the record number and the step,
not the patient's name or diagnosis: calendars leave the clinic's systems.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone
from icalendar import Calendar, Event

from stride.care.models import CalendarFeed, PlanStep
from stride.tokens import KeySigner

_SIGNER = KeySigner("stride.calendar-feed")


def calendar_for(steps: Iterable[PlanStep], name: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Stride//care plans//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    stamp = timezone.now()
    for step in steps:
        patient = step.plan.condition.patient
        event = Event()
        event.add("uid", f"plan-step-{step.pk}@stride")
        event.add("dtstamp", stamp)
        event.add("dtstart", step.planned_on)
        event.add("dtend", step.planned_on + dt.timedelta(days=1))
        event.add("summary", f"{patient.record_number}: {step.name}")
        event.add(
            "description",
            f"{step.kind}; "
            f"window {step.window_start:%d %b} – {step.window_end:%d %b %Y}; {patient.clinic.name}",
        )
        event.add("status", "CANCELLED" if step.status == PlanStep.Status.SKIPPED else "CONFIRMED")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return calendar.to_ical()


def feed_token(feed: CalendarFeed) -> str:
    return _SIGNER.token(feed.key)


def feed_for(token: str) -> CalendarFeed | None:
    key = _SIGNER.key(token)
    if key is None:
        return None
    return CalendarFeed.objects.select_related("user").filter(key=key, revoked_at__isnull=True).first()
