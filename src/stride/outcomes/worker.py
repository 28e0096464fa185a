"""The follow-up worker: opens and closes follow-ups, plans contacts, sends email.

One pass (:meth:`Worker.run_once`) does four things, each safe to repeat and
safe to run in two processes at once:

1. **advance**: pending follow-ups whose window opened become due; those whose
   window closed unanswered become missed (their pending contacts cancelled).
2. **plan**: for each due follow-up of a consenting patient, the contacts whose
   day has come are created — an invitation and a reminder by email, then a
   phone call and a letter as tasks on the coordinator's worklist. A unique
   constraint (follow-up, kind) makes each happen at most once.
3. **recover**: a contact left "sending" by a worker that died is marked
   failed ("interrupted") and is *not* sent again: a message may have gone
   out, and a patient is never messaged twice.
4. **send**: each scheduled email is claimed with a conditional update
   (``UPDATE … SET state='sending' WHERE id=… AND state='scheduled'``); only
   the worker whose update changed one row sends it.

This is the claim-by-conditional-update loop of healthchecks' ``sendalerts``:
no broker, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from stride.clinics.models import Clinic
from stride.core import schedule as core_schedule
from stride.outcomes.messages import render_message
from stride.outcomes.models import Contact, FollowUp
from stride.outcomes.services import cancel_contacts
from stride.patients.models import Patient

log = logging.getLogger("stride.worker")

STALE_AFTER = dt.timedelta(minutes=10)
RETRY_AFTER = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 3
EMAIL_KINDS = {Contact.Kind.INVITATION, Contact.Kind.REMINDER, Contact.Kind.RESEND}


class Worker:
    def __init__(self, name: str | None = None, now: Callable[[], dt.datetime] = timezone.now) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.now = now
        self.stopping = False

    # ----------------------------------------------------------------- the loop

    def run_forever(self, interval: float = 30.0, *, handle_signals: bool = True) -> None:
        if handle_signals:  # only the main thread may install handlers
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
        log.info("worker %s started; a pass every %ss", self.name, interval)
        while not self.stopping:
            try:
                counts = self.run_once()
                if any(counts.values()):
                    log.info("worker pass: %s", dict(counts))
            except Exception:  # one bad pass must not stop follow-up for everyone
                log.exception("worker pass failed; trying again in %ss", interval)
            deadline = time.monotonic() + interval
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.2)
        log.info("worker %s stopped", self.name)

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run_once(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for clinic in Clinic.objects.all():
            today = _today(clinic, self.now())
            counts += self.advance(clinic, today)
            counts += self.plan(clinic, today)
        counts["interrupted"] += self.recover()
        counts += self.send_due()
        return counts

    # ----------------------------------------------------------------- the steps

    def advance(self, clinic: Clinic, today: dt.date) -> Counter[str]:
        counts: Counter[str] = Counter()
        follow_ups = FollowUp.objects.filter(patient__clinic=clinic, episode__ended_on__isnull=True)
        with transaction.atomic():
            counts["opened"] = follow_ups.filter(
                status=FollowUp.Status.PENDING, opens_on__lte=today, accepts_until__gte=today
            ).update(status=FollowUp.Status.DUE)
            closed = follow_ups.filter(
                status__in=[FollowUp.Status.PENDING, FollowUp.Status.DUE], accepts_until__lt=today
            )
            closed_ids = list(closed.values_list("pk", flat=True))
            if closed_ids:
                cancel_contacts(
                    Contact.objects.filter(follow_up_id__in=closed_ids), Contact.Outcome.WINDOW_CLOSED
                )
                counts["missed"] = FollowUp.objects.filter(
                    pk__in=closed_ids, status__in=[FollowUp.Status.PENDING, FollowUp.Status.DUE]
                ).update(status=FollowUp.Status.MISSED)
        return counts

    def plan(self, clinic: Clinic, today: dt.date) -> Counter[str]:
        """Create the contacts whose day has come; existing ones are left alone (at most one per kind)."""
        plan = core_schedule.schedule()
        consenting = Patient.objects.analysable().filter(pk=OuterRef("patient_id"))
        due = (
            FollowUp.objects.filter(
                patient__clinic=clinic, status=FollowUp.Status.DUE, episode__ended_on__isnull=True
            )
            .filter(Exists(consenting))
            .prefetch_related("contacts")
        )
        now = self.now()
        new: list[Contact] = []
        for follow_up in due.iterator(chunk_size=500):
            kind = _next_contact(plan, follow_up, today, ZoneInfo(clinic.time_zone))
            if kind is not None:
                email = kind in EMAIL_KINDS
                new.append(
                    Contact(
                        follow_up=follow_up,
                        kind=kind,
                        channel=Contact.Channel.EMAIL
                        if email
                        else (
                            Contact.Channel.PHONE
                            if kind == Contact.Kind.PHONE_CALL
                            else Contact.Channel.LETTER
                        ),
                        due_at=now,
                        state=Contact.State.SCHEDULED if email else Contact.State.OPEN,
                    )
                )
        # ignore_conflicts: a second worker planning the same contact at the same moment is harmless.
        Contact.objects.bulk_create(new, ignore_conflicts=True)
        counts: Counter[str] = Counter()
        for contact in new:
            counts[f"planned {contact.kind}"] += 1
        return counts

    def recover(self) -> int:
        return Contact.objects.filter(
            state=Contact.State.SENDING, claimed_at__lt=self.now() - STALE_AFTER
        ).update(state=Contact.State.FAILED, outcome=Contact.Outcome.INTERRUPTED, finished_at=self.now())

    def send_due(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        ready = Contact.objects.filter(
            state=Contact.State.SCHEDULED, channel=Contact.Channel.EMAIL, due_at__lte=self.now()
        ).values_list("pk", flat=True)
        for pk in list(ready[:500]):
            if self.stopping:
                break
            claimed = Contact.objects.filter(pk=pk, state=Contact.State.SCHEDULED).update(
                state=Contact.State.SENDING, claimed_by=self.name, claimed_at=self.now()
            )
            if claimed != 1:
                continue  # another worker has it
            counts[self.send(Contact.objects.select_related("follow_up__patient__clinic").get(pk=pk))] += 1
        return counts

    def send(self, contact: Contact) -> str:
        """Send one claimed email contact; returns what happened."""
        patient = contact.follow_up.patient
        contact.attempts += 1
        if not patient.email:
            return self._finish(contact, Contact.State.FAILED, Contact.Outcome.NO_EMAIL)
        subject, body = render_message(contact, base_url=settings.STRIDE_BASE_URL, now=self.now())
        try:
            EmailMessage(subject, body, to=[patient.email]).send()
        except Exception as exc:  # SMTP and socket errors: the message did not go out
            if contact.attempts < MAX_ATTEMPTS:
                contact.state = Contact.State.SCHEDULED
                contact.due_at = self.now() + RETRY_AFTER
                contact.note = f"attempt {contact.attempts} failed: {exc.__class__.__name__}"
                contact.save(update_fields=["state", "due_at", "attempts", "note"])
                return "retry"
            contact.note = f"{exc.__class__.__name__}: {exc}"[:300]
            return self._finish(contact, Contact.State.FAILED, Contact.Outcome.SEND_ERROR)
        return self._finish(contact, Contact.State.SENT, Contact.Outcome.SENT)

    def _finish(self, contact: Contact, state: str, outcome: str) -> str:
        contact.state = state
        contact.outcome = outcome
        contact.finished_at = self.now()
        contact.save(update_fields=["state", "outcome", "finished_at", "attempts", "note"])
        return str(outcome.value if hasattr(outcome, "value") else outcome)


def _next_contact(
    plan: core_schedule.Schedule, follow_up: FollowUp, today: dt.date, zone: ZoneInfo
) -> str | None:
    """The next contact a due follow-up gets today, if any: one step of the ladder at a time.

    Each step waits for its day in the window *and* for the gap after the step
    before it actually happened, so a follow-up that opened long ago (a
    treatment recorded late) starts with the invitation, not with every
    contact at once.
    """
    days = plan.contact_dates(follow_up.window)
    made = {c.kind: c for c in follow_up.contacts.all() if c.kind != Contact.Kind.RESEND}
    previous: tuple[str, dt.date] | None = None
    for kind in core_schedule.CONTACT_KINDS:
        if kind not in days:
            return None  # falls after the window closes: the ladder ends here
        if kind in made:
            previous = (kind, made[kind].due_at.astimezone(zone).date())
            continue
        if days[kind] > today:
            return None
        if previous is not None:
            gap = plan.contact_days[kind] - plan.contact_days[previous[0]]
            if previous[1] + dt.timedelta(days=gap) > today:
                return None
        return kind
    return None


def _today(clinic: Clinic, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(clinic.time_zone)).date()
