"""Every read of a patient page and every write of identifiable data leaves an audit entry."""

from __future__ import annotations

from django.urls import reverse

from stride.audit.models import AuditEntry


def test_opening_a_patient_page_is_audited_with_who_and_from_where(client, cast) -> None:
    client.force_login(cast.alice)
    client.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk}), REMOTE_ADDR="10.1.2.3")
    entry = AuditEntry.objects.filter(action="view").get()
    assert (entry.user, entry.username, entry.model, entry.object_id) == (
        cast.alice,
        "alice",
        "patients.Patient",
        str(cast.pat.pk),
    )
    assert (entry.patient_id, entry.clinic_id, entry.ip_address, entry.channel) == (
        cast.pat.pk,
        cast.clinic_a.pk,
        "10.1.2.3",
        "web",
    )


def test_the_forwarded_address_is_used_only_when_trusted(client, cast, settings) -> None:
    client.force_login(cast.alice)
    url = reverse("patient-detail", kwargs={"pk": cast.pat.pk})
    client.get(url, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    settings.STRIDE_TRUST_X_FORWARDED_FOR = True
    client.get(url, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.1")
    assert list(
        AuditEntry.objects.filter(action="view").order_by("pk").values_list("ip_address", flat=True)
    ) == [
        "10.0.0.1",
        "203.0.113.9",
    ]


def test_an_edit_records_which_fields_changed_but_not_their_values(client, cast) -> None:
    client.force_login(cast.carol)
    data = {
        "record_number": "A-001",
        "given_name": "Patricia",
        "family_name": "Lee",
        "date_of_birth": "1970-05-17",
        "sex": "female",
        "email": "",
        "phone": "",
        "height_cm": "168",
        "weight_kg": "70",
        "activity_level": "",
        "notes": "",
    }
    response = client.post(reverse("patient-edit", kwargs={"pk": cast.pat.pk}), data)
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="update", model="patients.Patient")
    assert entry.detail == {"fields": ["given_name"]}
    assert entry.user == cast.carol
    assert "Patricia" not in str(entry.detail)


def test_creating_and_deleting_records_are_audited(client, cast) -> None:
    client.force_login(cast.alice)
    procedure_id = cast.pat_procedure.pk
    client.post(reverse("procedure-delete", kwargs={"pk": procedure_id}))
    deleted = AuditEntry.objects.filter(action="delete").values_list("model", flat=True)
    assert set(deleted) == {"care.Procedure", "care.Injectate"}
    entry = AuditEntry.objects.get(action="delete", model="care.Procedure")
    assert (entry.object_id, entry.patient_id, entry.user) == (str(procedure_id), cast.pat.pk, cast.alice)
    assert AuditEntry.objects.filter(action="create", model="care.Injectate").exists()


def test_logins_and_failed_logins_are_audited(client, cast) -> None:
    from tests.conftest import PASSWORD

    client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    actions = list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))
    assert actions[-2:] == ["login-failed", "login"]
    assert AuditEntry.objects.get(action="login-failed").detail == {"username": "alice"}


def test_a_search_is_audited_without_its_text(client, cast) -> None:
    client.force_login(cast.alice)
    client.get(reverse("patient-list"), {"q": "Lee"})
    entry = AuditEntry.objects.get(action="search")
    assert entry.detail == {"results": 1}


def test_batched_entries_are_the_same_written_together_and_discarded_work_leaves_none(db) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from stride.audit.context import Actor, acting_as
    from stride.audit.log import batched, record

    with acting_as(Actor(channel="cli", label="cli:ops")), batched() as pending:
        record(AuditEntry.Action.EXPORT, model="m", object_id="1", patient_id=7)
        mark = pending.mark()
        record(AuditEntry.Action.EXPORT, model="m", object_id="2", patient_id=8)
        pending.discard(mark)  # that work was rolled back
        record(AuditEntry.Action.EXPORT, model="m", object_id="3", patient_id=9)
        assert not AuditEntry.objects.exists()  # nothing written yet
        with CaptureQueriesContext(connection) as queries:
            pending.flush()
        assert len(queries) == 1
        record(AuditEntry.Action.EXPORT, model="m", object_id="4")  # written when the block ends
    rows = list(
        AuditEntry.objects.order_by("pk").values_list("object_id", "patient_id", "username", "channel")
    )
    assert rows == [("1", 7, "cli:ops", "cli"), ("3", 9, "cli:ops", "cli"), ("4", None, "cli:ops", "cli")]
    assert all(entry.at is not None for entry in AuditEntry.objects.all())
    record(AuditEntry.Action.EXPORT, model="m", object_id="5")  # outside: written at once
    assert AuditEntry.objects.count() == 4
