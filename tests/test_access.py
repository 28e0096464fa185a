"""Access rules for every page: who may open what, and nobody crosses clinics.

The table below names every URL of the patient-data apps with the action it
needs. A test fails when a URL is added without a row here, so no page can
skip the access checks.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import get_resolver, reverse

from stride.clinics.access import PERMISSIONS, Action
from stride.clinics.models import Role

# url name -> (how to get its pk from the cast, the action it needs)
PAGES: dict[str, tuple[Callable[[object], int | None], Action]] = {
    "patient-list": (lambda c: None, Action.VIEW_PATIENT),
    "patient-create": (lambda c: None, Action.EDIT_PATIENT),
    "patient-detail": (lambda c: c.pat.pk, Action.VIEW_PATIENT),
    "patient-edit": (lambda c: c.pat.pk, Action.EDIT_PATIENT),
    "patient-delete": (lambda c: c.pat.pk, Action.DELETE_PATIENT),
    "consent-create": (lambda c: c.pat.pk, Action.RECORD_CONSENT),
    "consent-edit": (lambda c: c.pat.consents.get().pk, Action.RECORD_CONSENT),
    "condition-create": (lambda c: c.pat.pk, Action.EDIT_CONDITION),
    "condition-edit": (lambda c: c.pat_condition.pk, Action.EDIT_CONDITION),
    "condition-delete": (lambda c: c.pat_condition.pk, Action.EDIT_CONDITION),
    "history-create": (lambda c: c.pat.pk, Action.EDIT_HISTORY),
    "history-edit": (lambda c: _history(c).pk, Action.EDIT_HISTORY),
    "history-delete": (lambda c: _history(c).pk, Action.EDIT_HISTORY),
    "procedure-create": (lambda c: c.pat.pk, Action.RECORD_PROCEDURE),
    "procedure-edit": (lambda c: c.pat_procedure.pk, Action.RECORD_PROCEDURE),
    "procedure-delete": (lambda c: c.pat_procedure.pk, Action.RECORD_PROCEDURE),
    "overview": (lambda c: None, Action.VIEW_AGGREGATES),
    "follow-up-start": (lambda c: c.pat_condition.pk, Action.START_FOLLOW_UP),
    "link-create": (lambda c: c.pat.pk, Action.RECORD_ANSWERS),
    "links-revoke": (lambda c: c.pat.pk, Action.RECORD_ANSWERS),
    "paper-entry": (lambda c: _follow_up(c).pk, Action.RECORD_ANSWERS),
    "follow-up-resend": (lambda c: _follow_up(c).pk, Action.RECORD_ANSWERS),
    "worklist": (lambda c: None, Action.RECORD_ANSWERS),
    "task-outcome": (lambda c: _letter_task(c).pk, Action.RECORD_ANSWERS),
    "letter": (lambda c: _letter_task(c).pk, Action.RECORD_ANSWERS),
}
LISTS = {"patient-list", "patient-create", "overview", "worklist"}  # pages that name no patient
POST_ONLY = {"link-create", "links-revoke", "follow-up-resend", "task-outcome"}
EXTRA = {"paper-entry": {"instrument": "nprs"}}


def _follow_up(cast: object) -> object:
    import datetime as dt

    from stride.outcomes.models import FollowUp
    from stride.outcomes.services import start_episode

    existing = FollowUp.objects.filter(patient=cast.pat, timepoint="1m").first()
    if existing is not None:
        return existing
    episode = start_episode(cast.pat_condition, cast.clinic_a.today() - dt.timedelta(days=30))
    return episode.follow_ups.get(timepoint="1m")


def _letter_task(cast: object) -> object:
    from django.utils import timezone

    from stride.outcomes.models import Contact

    follow_up = _follow_up(cast)
    contact, _ = Contact.objects.get_or_create(
        follow_up=follow_up,
        kind="letter",
        defaults={"channel": "letter", "due_at": timezone.now(), "state": "open"},
    )
    return contact


def _history(cast: object) -> object:
    import datetime as dt

    from stride.care.models import TreatmentHistory, TreatmentKind

    entry, _ = TreatmentHistory.objects.get_or_create(
        patient=cast.pat,
        treatment=TreatmentKind.objects.get(code="orthotics"),
        defaults={"started_on": dt.date(2023, 1, 1)},
    )
    return entry


def _url(name: str, cast: object) -> str:
    pk = PAGES[name][0](cast)
    return reverse(name, kwargs={"pk": pk, **EXTRA.get(name, {})}) if pk is not None else reverse(name)


def _request(client, name: str, url: str, data: dict[str, str] | None = None):
    return client.post(url, data or {}) if name in POST_ONLY else client.get(url)


def test_every_patient_data_url_is_in_the_access_table() -> None:
    names = set()
    for pattern in get_resolver().url_patterns:
        module = getattr(pattern, "urlconf_name", None)
        if getattr(module, "__name__", "") in {
            "stride.patients.urls",
            "stride.care.urls",
            "stride.outcomes.urls",
        }:
            names |= {p.name for p in module.urlpatterns}
    assert names, "the patient and care URL modules were not found"
    assert names - set(PAGES) == set(), "add these pages to PAGES with the action they need"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_anonymous_visitors_are_sent_to_the_login_page(client, cast, name) -> None:
    response = _request(client, name, _url(name, cast))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("who", ["alice", "carol", "rita", "adam"])
@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_role_reaches_exactly_the_pages_its_role_allows(client, cast, who, name) -> None:
    user = getattr(cast, who)
    role = user.memberships.get().role
    url = _url(name, cast)
    client.force_login(user)
    response = _request(client, name, url)
    allowed = Role(role) in PERMISSIONS[PAGES[name][1]]
    if allowed:
        assert response.status_code == (302 if name in POST_ONLY else 200), (
            f"{who} ({role}) should open {name}"
        )
    elif name in LISTS or role != Role.RESEARCHER:
        assert response.status_code == 403, f"{who} ({role}) must not open {name}"
    else:
        # A researcher has no patient scope at all: the record does not exist for them.
        assert response.status_code == 404


@pytest.mark.parametrize("name", sorted(set(PAGES) - LISTS))
def test_a_clinician_of_another_clinic_cannot_open_a_record_by_its_id(client, cast, name) -> None:
    url = _url(name, cast)
    client.force_login(cast.olga)
    assert _request(client, name, url).status_code == 404


@pytest.mark.parametrize("name", sorted(set(PAGES) - LISTS))
def test_a_clinician_of_another_clinic_cannot_post_to_a_record_by_its_id(client, cast, name) -> None:
    from stride.audit.models import AuditEntry
    from stride.patients.models import Patient

    url = _url(name, cast)
    before = (Patient.objects.count(), AuditEntry.objects.exclude(action="view").count())
    client.force_login(cast.olga)
    response = client.post(url, {"given_name": "Hijacked", "version": "x", "consented_on": "2025-01-01"})
    assert response.status_code == 404
    cast.pat.refresh_from_db()
    assert cast.pat.given_name == "Pat"
    assert (
        Patient.objects.count(),
        AuditEntry.objects.exclude(action__in=["view", "login"]).count(),
    ) == before


def test_the_patient_list_shows_only_the_users_own_clinic(client, cast) -> None:
    client.force_login(cast.olga)
    page = client.get(reverse("patient-list")).content.decode()
    assert "B-001" in page
    assert "A-001" not in page


def test_search_never_finds_another_clinics_patient(client, cast) -> None:
    client.force_login(cast.olga)
    page = client.get(reverse("patient-list"), {"q": "Lee"}).content.decode()
    assert "A-001" not in page


def test_a_researcher_sees_no_name_anywhere_they_can_go(client, cast) -> None:
    client.force_login(cast.rita)
    for name in ("home", "overview"):
        response = client.get(reverse(name), follow=True)
        assert response.status_code == 200
        assert "Lee" not in response.content.decode()
        assert "A-001" not in response.content.decode()


def test_a_user_in_two_clinics_sees_both(client, cast) -> None:
    from stride.clinics.models import Membership

    Membership.objects.create(user=cast.alice, clinic=cast.clinic_b, role="coordinator")
    client.force_login(cast.alice)
    page = client.get(reverse("patient-list")).content.decode()
    assert "A-001" in page and "B-001" in page
    # ...but with the rights of her role in each clinic: a coordinator in B records no procedure there.
    assert client.get(reverse("procedure-create", kwargs={"pk": cast.quinn.pk})).status_code == 403


def test_the_django_admin_is_for_clinic_admins_only(client, cast) -> None:
    client.force_login(cast.alice)
    assert client.get("/admin/").status_code == 302  # to the admin login: not allowed
    client.force_login(cast.adam)
    assert client.get("/admin/").status_code == 200


def test_the_admin_lists_only_the_admins_own_clinics_patients(client, cast) -> None:
    client.force_login(cast.adam)
    page = client.get("/admin/patients/patient/").content.decode()
    assert "A-001" in page
    assert "B-001" not in page
    assert client.get(f"/admin/patients/patient/{cast.quinn.pk}/change/").status_code in (302, 404)


def test_a_clinic_admin_cannot_manage_users_or_clinics(client, cast) -> None:
    client.force_login(cast.adam)
    assert client.get("/admin/clinics/user/").status_code == 403
    assert client.get("/admin/clinics/clinic/").status_code == 403
