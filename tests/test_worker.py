"""The follow-up worker: one invitation per due follow-up, whatever restarts or second workers do."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from stride.outcomes import services
from stride.outcomes.models import Contact, FollowUp
from stride.outcomes.worker import STALE_AFTER, Worker


@pytest.fixture
def due(cast) -> FollowUp:
    """Pat (with an email address) has a 1-month follow-up whose window opened today."""
    cast.pat.email = "pat@example.org"
    cast.pat.save()
    index = cast.clinic_a.today() - dt.timedelta(days=23)  # 1m opens 7 days before day ~30
    episode = services.start_episode(cast.pat_condition, index)
    follow_up = episode.follow_ups.get(timepoint="1m")
    FollowUp.objects.filter(pk=follow_up.pk).update(opens_on=cast.clinic_a.today(), status="pending")
    follow_up.refresh_from_db()
    return follow_up


def at(days: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(days=days)


def test_a_due_follow_up_gets_exactly_one_invitation(due) -> None:
    worker = Worker("w1")
    counts = worker.run_once()
    assert counts["opened"] == 1 and counts["sent"] == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["pat@example.org"]
    assert "/q/" in message.body and "1 month follow-up" in message.body
    for _ in range(3):
        Worker("w1").run_once()  # restarts
    assert len(mail.outbox) == 1
    contact = Contact.objects.get()
    assert (contact.kind, contact.state, contact.outcome) == ("invitation", "sent", "sent")


def test_the_ladder_goes_invitation_reminder_phone_call(due) -> None:
    kinds = []
    for day in (0, 1, 4, 5, 8, 9, 12):
        Worker("w", now=lambda day=day: at(day)).run_once()
        kinds.append(sorted(Contact.objects.values_list("kind", flat=True)))
    assert kinds[0] == ["invitation"]
    assert kinds[1] == ["invitation"]
    assert kinds[2] == ["invitation", "reminder"]
    assert kinds[4] == ["invitation", "phone-call", "reminder"]
    assert len(mail.outbox) == 2  # the phone call is a task, not a message
    assert Contact.objects.get(kind="phone-call").state == "open"
    # The 1-month window (14 days) closes before a letter would be due: none is planned.
    assert not Contact.objects.filter(kind="letter").exists()


def test_an_answer_stops_every_pending_contact(due, cast) -> None:
    Worker("w").run_once()
    for code, answers in [
        ("nprs", [2]),
        ("percent-improvement", [60]),
        ("sane", [80]),
        ("faam-adl", [4] * 21),
    ]:
        services.save_answers(
            patient=cast.pat,
            follow_up=due,
            instrument=code,
            version="1",
            answers=answers,
            source="patient",
            submit=True,
        )
    for day in (4, 8, 12):
        Worker("w", now=lambda day=day: at(day)).run_once()
    assert len(mail.outbox) == 1
    assert list(Contact.objects.values_list("kind", flat=True)) == ["invitation"]


def test_a_follow_up_closed_unanswered_is_missed_and_its_tasks_cancelled(due) -> None:
    for day in (0, 4, 8):
        Worker("w", now=lambda day=day: at(day)).run_once()
    counts = Worker("w", now=lambda: at(20)).run_once()
    assert counts["missed"] == 1
    due.refresh_from_db()
    assert due.status == "missed"
    assert Contact.objects.get(kind="phone-call").outcome == "window-closed"


def test_a_patient_without_email_goes_straight_to_a_recorded_failure(due, cast) -> None:
    cast.pat.email = ""
    cast.pat.save()
    Worker("w").run_once()
    assert mail.outbox == []
    assert Contact.objects.get().outcome == "no-email"


def test_a_withdrawn_patient_is_not_contacted(due, cast) -> None:
    cast.pat.consents.update(withdrawn_on=cast.clinic_a.today())
    Worker("w").run_once()
    assert not Contact.objects.exists()


def test_a_message_interrupted_mid_send_is_never_sent_again(due) -> None:
    worker = Worker("w")
    worker.advance(due.patient.clinic, due.patient.clinic.today())
    worker.plan(due.patient.clinic, due.patient.clinic.today())
    contact = Contact.objects.get()
    # A worker claimed it and died before recording the outcome.
    Contact.objects.filter(pk=contact.pk).update(
        state="sending", claimed_by="dead", claimed_at=timezone.now()
    )
    Worker("w2", now=lambda: timezone.now() + STALE_AFTER + dt.timedelta(minutes=1)).run_once()
    contact.refresh_from_db()
    assert (contact.state, contact.outcome) == ("failed", "interrupted")
    assert mail.outbox == []


def test_a_failed_send_is_retried_a_few_times_then_recorded(due, settings, monkeypatch) -> None:
    def refuse(self, fail_silently=False):
        raise OSError("connection refused")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    Worker("w").run_once()
    contact = Contact.objects.get()
    assert (contact.state, contact.attempts) == ("scheduled", 1)
    Worker("w", now=lambda: at(0.02)).run_once()
    Worker("w", now=lambda: at(0.04)).run_once()
    contact.refresh_from_db()
    assert (contact.state, contact.outcome, contact.attempts) == ("failed", "send-error", 3)


def test_a_resend_goes_out_once(due, client, cast) -> None:
    Worker("w").run_once()
    from django.urls import reverse

    client.force_login(cast.carol)
    client.post(reverse("follow-up-resend", kwargs={"pk": due.pk}))
    Worker("w").run_once()
    Worker("w").run_once()
    assert len(mail.outbox) == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_send_each_invitation_once(cast) -> None:
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(
        ("file:memorydb", ":memory:")
    ):
        pytest.skip("an in-memory SQLite test database cannot be shared between threads' transactions")
    patients = []
    for i in range(20):
        from tests.conftest import make_condition, make_patient

        patient = make_patient(cast.clinic_a, f"W-{i}", email=f"w{i}@example.org")
        condition = make_condition(patient)
        episode = services.start_episode(condition, cast.clinic_a.today() - dt.timedelta(days=23))
        episode.follow_ups.filter(timepoint="1m").update(opens_on=cast.clinic_a.today(), status="pending")
        patients.append(patient)
    errors = []

    def work(name: str) -> None:
        try:
            Worker(name).run_once()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(mail.outbox) == 20
    assert sorted(m.to[0] for m in mail.outbox) == sorted(p.email for p in patients)
    assert Contact.objects.filter(kind="invitation").count() == 20


SETUP = """
import datetime as dt
import django
django.setup()
from stride.clinics.models import Clinic
from stride.outcomes import services
from tests.conftest import make_condition, make_patient
clinic = Clinic.objects.create(name="Lakeside", slug="lakeside", time_zone="UTC")
for i in range(30):
    patient = make_patient(clinic, f"W-{i}", email=f"w{i}@example.org")
    episode = services.start_episode(make_condition(patient), clinic.today() - dt.timedelta(days=23))
    episode.follow_ups.filter(timepoint="1m").update(opens_on=clinic.today(), status="pending")
"""

COUNT = """
import django
django.setup()
from stride.outcomes.models import Contact
print(Contact.objects.filter(kind="invitation").count(), Contact.objects.filter(state="sent").count())
"""


def test_two_worker_processes_on_one_sqlite_file_send_each_invitation_once(tmp_path) -> None:
    """Two real `stride worker --once` processes race over one SQLite database file."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    stride = Path(sys.executable).parent / "stride"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "STRIDE_HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "stride.settings",
        "STRIDE_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "PYTHONPATH": str(root),
    }
    subprocess.run([str(stride), "migrate", "-v", "0"], env=env, check=True, cwd=root)
    subprocess.run([sys.executable, "-c", SETUP], env=env, check=True, cwd=root)
    workers = [subprocess.Popen([str(stride), "worker", "--once"], env=env, cwd=root) for _ in range(2)]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    sent = sum(path.read_text().count("\nTo: ") for path in (tmp_path / "mail").iterdir())
    assert sent == 30
    counts = subprocess.run(
        [sys.executable, "-c", COUNT], env=env, check=True, cwd=root, capture_output=True, text=True
    )
    assert counts.stdout.split() == ["30", "30"]
