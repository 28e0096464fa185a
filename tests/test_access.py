"""Access rules for every page: who may open what, and nobody crosses clinics.

The table below names every URL of the patient-data apps with the action it
needs. A test fails when a URL is added without a row here, so no page can
skip the access checks.
"""

from __future__ import annotations

import datetime as dt
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
    "plan-start": (lambda c: _plan(c).condition_id, Action.START_PLAN),
    "ladder": (lambda c: _plan(c).condition_id, Action.VIEW_PATIENT),
    "plan-detail": (lambda c: _plan(c).pk, Action.VIEW_PATIENT),
    "step-add": (lambda c: _plan(c).pk, Action.MANAGE_PLAN),
    "plan-stop": (lambda c: _plan(c).pk, Action.START_PLAN),
    "step-reschedule": (lambda c: _plan_step(c, "booster").pk, Action.MANAGE_PLAN),
    "step-skip": (lambda c: _plan_step(c, "booster").pk, Action.MANAGE_PLAN),
    "step-done": (lambda c: _plan_step(c, "review").pk, Action.MANAGE_PLAN),
    "plan-worklist": (lambda c: None, Action.VIEW_PATIENT),
    "plan-calendar": (lambda c: _plan(c).pk, Action.VIEW_PATIENT),
    "my-calendar": (lambda c: None, Action.VIEW_PATIENT),
    "protocol-fhir": (lambda c: None, Action.VIEW_PATIENT),
    "plan-fhir": (lambda c: _plan(c).pk, Action.VIEW_PATIENT),
    "image-upload": (lambda c: c.pat.pk, Action.UPLOAD_IMAGE),
    "image-compare": (lambda c: c.pat.pk, Action.VIEW_PATIENT),
    "image-compare-figure": (lambda c: c.pat.pk, Action.VIEW_PATIENT),
    "image-detail": (lambda c: _image(c).pk, Action.VIEW_PATIENT),
    "image-edit": (lambda c: _image(c).pk, Action.UPLOAD_IMAGE),
    "image-delete": (lambda c: _image(c).pk, Action.MEASURE_IMAGE),
    "image-render": (lambda c: _image(c).pk, Action.VIEW_PATIENT),
    "image-original": (lambda c: _image(c).pk, Action.VIEW_PATIENT),
    "image-deidentified": (lambda c: _image(c).pk, Action.VIEW_PATIENT),
    "image-measure": (lambda c: _image(c).pk, Action.MEASURE_IMAGE),
    "image-annotate": (lambda c: _image(c).pk, Action.MEASURE_IMAGE),
    "image-calibrate": (lambda c: _image(c).pk, Action.MEASURE_IMAGE),
    "image-settings": (lambda c: _image(c).pk, Action.MEASURE_IMAGE),
    "measurement-delete": (lambda c: _image(c).measurements.get().pk, Action.MEASURE_IMAGE),
    "annotation-delete": (lambda c: _image(c).annotations.get().pk, Action.MEASURE_IMAGE),
}
# pages that name no patient
LISTS = {
    *("patient-list", "patient-create", "overview", "worklist"),
    *("plan-worklist", "my-calendar", "protocol-fhir"),
}
POST_ONLY = {
    *("link-create", "links-revoke", "follow-up-resend", "task-outcome", "step-add", "plan-stop"),
    *("image-measure", "image-annotate", "image-calibrate", "image-settings"),
    *("measurement-delete", "annotation-delete"),
}
#: What an allowed role gets back when the status is not 200 (GET) or 302 (POST): the viewer's JSON
#: endpoints answer an empty form body with a 400 naming the body, and deletions with their JSON.
ALLOWED_STATUS = {
    **dict.fromkeys(("image-measure", "image-annotate", "image-calibrate", "image-settings"), 400),
    **dict.fromkeys(("measurement-delete", "annotation-delete"), 200),
}
#: Pages that only answer GET.
READ_ONLY = {
    *("image-compare", "image-compare-figure", "image-detail", "image-render"),
    *("image-original", "image-deidentified"),
}
#: Query strings a page needs to show something.
QUERY = {"image-compare-figure": lambda c: f"?before={_image(c).pk}&after={_image(c).pk}"}
EXTRA = {"paper-entry": {"instrument": "nprs"}, "protocol-fhir": {"code": "ankle-instability-regenerative"}}


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


def _plan(cast: object) -> object:
    """A care plan for Pat: the ankle protocol on an ankle-instability condition, day 0 in a month."""
    from stride.care import plans
    from stride.care.models import CarePlan
    from tests.conftest import make_condition

    existing = CarePlan.objects.filter(condition__patient=cast.pat).first()
    if existing is not None:
        return existing
    condition = make_condition(cast.pat, code="ankle-instability-ligamentous", site="atfl-cfl")
    (version,) = plans.current_versions(cast.clinic_a, "ankle-instability-ligamentous")
    return plans.start_plan(
        condition, version, cast.clinic_a.today() + dt.timedelta(days=30), clinician=cast.alice
    )


def _image(cast: object) -> object:
    """An ultrasound of Pat's left foot, with one measurement and one mark."""
    from stride.imaging import services
    from stride.imaging.models import Image
    from tests import dicoms

    existing = Image.objects.filter(patient=cast.pat).first()
    if existing is not None:
        return existing
    data = dicoms.ultrasound(PatientName="Lee^Pat", PatientID="A-001", PatientBirthDate="19700517")
    image = services.store(cast.pat, data, "scan.dcm", services.Upload(cast.pat_condition), user=cast.alice)
    services.add_measurement(image, {"type": "length", "tool": "line", "points": [[1, 1], [9, 9]]}, user=None)
    services.add_annotation(image, {"kind": "arrow", "points": [[1, 1], [9, 9]]}, user=None)
    return image


def _plan_step(cast: object, code: str) -> object:
    return _plan(cast).steps.get(code=code)


def _other(character: str) -> str:
    """A different character (a change to the first character of a signature always counts)."""
    return "B" if character == "A" else "A"


def _url(name: str, cast: object) -> str:
    pk = PAGES[name][0](cast)
    kwargs = EXTRA.get(name, {}) | ({"pk": pk} if pk is not None else {})
    query = QUERY[name](cast) if name in QUERY else ""
    return reverse(name, kwargs=kwargs or None) + query


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
            "stride.imaging.urls",
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
        expected = ALLOWED_STATUS.get(name, 302 if name in POST_ONLY else 200)
        assert response.status_code == expected, f"{who} ({role}) should open {name}"
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
    plans_before = _plan_state()
    client.force_login(cast.olga)
    soon = str(cast.clinic_a.today() + dt.timedelta(days=40))
    response = client.post(
        url,
        {
            "given_name": "Hijacked",
            "version": "x",
            "consented_on": "2025-01-01",
            # what the plan pages would take
            "reason": "Hijacked",
            "planned_on": soon,
            "anchor_date": soon,
            "name": "Hijacked step",
            "kind": "review",
            "done_on": str(cast.clinic_a.today()),
            "action": "new",
        },
    )
    # Read-only pages refuse a POST outright (405) before looking anything up.
    assert response.status_code == (405 if name in READ_ONLY else 404)
    cast.pat.refresh_from_db()
    assert cast.pat.given_name == "Pat"
    assert (
        Patient.objects.count(),
        AuditEntry.objects.exclude(action__in=["view", "login"]).count(),
    ) == before
    assert _plan_state() == plans_before


def _plan_state() -> tuple[object, ...]:
    from stride.care.models import CalendarFeed, CarePlan, PlanStep, PlanStepChange

    return (
        sorted(CarePlan.objects.values_list("pk", "status", "anchor_date", "stopped_reason")),
        sorted(PlanStep.objects.values_list("pk", "status", "planned_on", "reason", "procedure_id")),
        PlanStepChange.objects.count(),
        CalendarFeed.objects.count(),
    )


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


def _feed_url(user: object) -> str:
    from stride.care import calendar
    from stride.care.models import CalendarFeed

    feed = CalendarFeed.objects.create(user=user)
    return reverse("calendar-feed", kwargs={"token": calendar.feed_token(feed) + ".ics"})


def test_the_calendar_feed_is_not_found_for_a_bad_or_revoked_address(client, cast) -> None:
    from django.utils import timezone

    from stride.care.models import CalendarFeed

    _plan(cast)
    url = _feed_url(cast.alice)
    assert client.get(url).status_code == 200  # no login: the address is the secret
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    key, signature = token.split(".")
    for bad in (
        "nonsense",
        f"{key}.ics",  # the key without its signature
        f"{key}.{_other(signature[0])}{signature[1:]}.ics",  # a forged signature
        f"{_other(key[0])}{key[1:]}.{signature}.ics",  # another key with this signature
        "",
    ):
        response = client.get(f"/feeds/calendar/{bad}")
        assert response.status_code == 404, bad
        assert b"A-001" not in response.content
    CalendarFeed.objects.filter(user=cast.alice).update(revoked_at=timezone.now())
    response = client.get(url)
    assert response.status_code == 404
    assert b"VEVENT" not in response.content and b"A-001" not in response.content


def test_the_calendar_feed_of_a_deactivated_user_is_not_found(client, cast) -> None:
    _plan(cast)
    url = _feed_url(cast.alice)
    cast.alice.is_active = False
    cast.alice.save()
    assert client.get(url).status_code == 404


def test_revoking_from_the_calendar_page_turns_the_old_address_off(client, cast) -> None:
    _plan(cast)
    client.force_login(cast.alice)
    client.post(reverse("my-calendar"), {"action": "new"})
    old = client.get(reverse("my-calendar")).context["url"]
    assert old and client.get(old).status_code == 200
    client.post(reverse("my-calendar"), {"action": "new"})
    new = client.get(reverse("my-calendar")).context["url"]
    assert new != old
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200
    client.post(reverse("my-calendar"), {"action": "revoke"})
    assert client.get(reverse("my-calendar")).context["url"] == ""
    assert client.get(new).status_code == 404


def test_the_calendar_feed_never_shows_another_clinics_steps_or_any_name(client, cast) -> None:
    from stride.care import plans

    own = _plan(cast)
    # A plan in clinic B naming Alice as its clinician (she does not work there): not in her feed.
    version = plans.current_versions(cast.clinic_b, "morton-neuroma")[0]
    other = plans.start_plan(
        cast.quinn_condition, version, cast.clinic_b.today() + dt.timedelta(days=10), clinician=cast.alice
    )
    body = client.get(_feed_url(cast.alice)).content.decode()
    assert body.count("BEGIN:VEVENT") == own.steps.count()
    for step in own.steps.all():
        assert f"UID:plan-step-{step.pk}@stride" in body
    for step in other.steps.all():
        assert f"plan-step-{step.pk}@" not in body
    assert "A-001" in body
    assert "B-001" not in body and "Harbour" not in body
    for name in ("Pat", "Lee", "Quinn", "Moss", "Morton", "instability"):
        assert name not in body, name
    # Olga's own feed: her clinic's plan, nothing of clinic A.
    plans.stop(other, "reassigned")
    plans.start_plan(
        cast.quinn_condition, version, cast.clinic_b.today() + dt.timedelta(days=12), clinician=cast.olga
    )
    olga_body = client.get(_feed_url(cast.olga)).content.decode()
    assert "B-001" in olga_body
    assert "A-001" not in olga_body and "Lakeside" not in olga_body
