"""Care plans: started from a protocol, moved, skipped, added to, recorded, listed, exported.

The dates come from :mod:`stride.core.protocols` (tested there without a
database); these tests check that the app stores them, keeps them honest
when steps move, records every change with its reason, and shows them on the
plan page, the worklist, the ladder and the calendars.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.urls import reverse

from stride.audit.models import AuditEntry
from stride.care import plans
from stride.care.models import (
    CarePlan,
    Injectate,
    PlanStep,
    PlanStepChange,
    Procedure,
    ProcedureType,
    ProtocolVersion,
    TreatmentHistory,
    TreatmentKind,
)
from stride.core import protocols as core_protocols
from stride.core.errors import CatalogError, Invalid
from stride.outcomes.models import Episode, FollowUp
from tests.conftest import make_condition, make_patient

ANKLE = "ankle-instability-regenerative"
UTC = dt.UTC

#: A condition each shipped protocol applies to: (condition code, site).
SUITABLE = {
    "ankle-instability-regenerative": ("ankle-instability-ligamentous", "atfl-cfl"),
    "hallux-rigidus-bmc": ("hallux-rigidus", "mtp-1"),
    "morton-neuroma-conventional": ("morton-neuroma", "im-space-3"),
    "morton-neuroma-platelet-lysate": ("morton-neuroma", "im-space-3"),
}


# --------------------------------------------------------------------------- helpers


def ankle(patient: Any) -> Any:
    return make_condition(patient, code="ankle-instability-ligamentous", laterality="left", site="atfl-cfl")


def version_of(clinic: Any, code: str) -> ProtocolVersion:
    return next(v for v in plans.current_versions(clinic) if v.code == code)


def today(cast: Any) -> dt.date:
    return cast.clinic_a.today()


def start(cast: Any, condition: Any = None, code: str = ANKLE, anchor: dt.date | None = None, **kw: Any):
    condition = condition or ankle(cast.pat)
    anchor = anchor or today(cast) + dt.timedelta(days=30)
    kw.setdefault("clinician", cast.alice)
    return plans.start_plan(condition, version_of(condition.patient.clinic, code), anchor, **kw)


def step(plan: CarePlan, code: str) -> PlanStep:
    return plan.steps.get(code=code)


def days(plan: CarePlan) -> dict[str, int]:
    """Each step's day, counted from the plan's day 0."""
    return {s.code: (s.planned_on - plan.anchor_date).days for s in plan.steps.all()}


def windows(plan: CarePlan) -> dict[str, tuple[int, int]]:
    return {
        s.code: ((s.window_start - plan.anchor_date).days, (s.window_end - plan.anchor_date).days)
        for s in plan.steps.all()
    }


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def written() -> tuple[int, ...]:
    """Counts of everything starting or changing a plan could write."""
    return (
        CarePlan.objects.count(),
        PlanStep.objects.count(),
        PlanStepChange.objects.count(),
        Episode.objects.count(),
        FollowUp.objects.count(),
        Procedure.objects.count(),
        AuditEntry.objects.exclude(action__in=["view", "login"]).count(),
    )


def at(instant: dt.datetime) -> Any:
    return time_machine.travel(instant, tick=False)


#: What still has to be typed on the day, per injectate kind (the protocol's defaults give the rest).
MEASURED = {
    "bmc": {"volume_ml": "4", "aspirate_volume_ml": "60", "tnc_per_ml": "25"},
    "prp": {"volume_ml": "3", "platelet_count": "1200", "leukocytes": "poor", "activation": "none"},
    "dextrose": {"volume_ml": "5"},
    "platelet-lysate": {"volume_ml": "2"},
}


def _value(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "on"
    if hasattr(value, "pk"):
        return str(value.pk)
    return str(value)


def prefilled(response: Any) -> dict[str, Any]:
    """What the procedure page was prefilled with: the form's and each injectate's values."""
    form = response.context["form"]
    injectates = response.context["injectates"]
    return {
        "form": {name: form[name].value() for name in form.fields},
        "injectates": [{name: sub[name].value() for name in sub.fields} for sub in injectates.forms],
    }


def post_data(response: Any, **changes: str) -> dict[str, str]:
    """The prefilled procedure page as a POST, with the values measured on the day typed in."""
    filled = prefilled(response)
    data: dict[str, str] = {}
    for name, value in filled["form"].items():
        if (text := _value(value)) is not None:
            data[name] = text
    data["candidacy"] = data.get("candidacy") or "good"
    for i, values in enumerate(filled["injectates"]):
        for name, value in values.items():
            if name in ("id", "procedure", "DELETE"):
                continue
            if (text := _value(value)) is not None:
                data[f"injectates-{i}-{name}"] = text
        for name, value in MEASURED.get(values["kind"], {}).items():
            data.setdefault(f"injectates-{i}-{name}", value)
    data |= {
        "injectates-TOTAL_FORMS": str(len(filled["injectates"])),
        "injectates-INITIAL_FORMS": "0",
        "injectates-MIN_NUM_FORMS": "0",
        "injectates-MAX_NUM_FORMS": "6",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "10",
    }
    return data | changes


def record_url(plan_step: PlanStep) -> str:
    patient_pk = plan_step.plan.condition.patient_id
    return reverse("procedure-create", kwargs={"pk": patient_pk}) + f"?step={plan_step.pk}"


def record(client: Any, plan_step: PlanStep, **changes: str) -> Any:
    """Open the step's procedure page, keep what it prefilled, type the measured values, save."""
    url = record_url(plan_step)
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, post_data(page, **changes))


@pytest.fixture
def alice(client: Any, cast: Any) -> Any:
    client.force_login(cast.alice)
    return client


# --------------------------------------------------------------------------- starting a plan


@pytest.mark.parametrize("include_optional", [False, True])
@pytest.mark.parametrize("code", sorted(SUITABLE))
def test_each_shipped_protocol_starts_with_the_dates_of_plan_dates(cast, code, include_optional) -> None:
    assert set(SUITABLE) == set(core_protocols.protocols()), "a shipped protocol has no test condition"
    condition_code, site = SUITABLE[code]
    condition = make_condition(cast.pat, code=condition_code, laterality="left", site=site)
    anchor = today(cast) + dt.timedelta(days=45)
    plan = start(cast, condition, code, anchor, include_optional=include_optional)

    protocol = core_protocols.protocols()[code]
    expected = core_protocols.plan_dates(protocol, anchor, include_optional=include_optional)
    stored = list(plan.steps.all())
    assert [s.code for s in stored] == [p.code for p in expected]  # the same steps, in date order
    for row, planned in zip(stored, expected, strict=True):
        assert (row.planned_on, row.first_planned_on) == (planned.planned_on, planned.planned_on)
        assert (row.window_start, row.window_end) == (planned.window_start, planned.window_end)
        assert (row.name, row.kind, row.optional) == (planned.name, planned.kind, planned.optional)
        assert row.is_anchor == (planned.code == protocol.anchor)
        assert row.session == (planned.session or "")
        assert row.status == PlanStep.Status.PLANNED
        if planned.kind == "procedure":
            assert row.defaults["procedure"] == planned.procedure
            assert row.defaults["guidance"] == planned.guidance
            # A step without a site of its own is at the condition's site (the patient's interspace).
            assert row.defaults["site"] == (planned.site or site)
            assert [i["kind"] for i in row.defaults["injectates"]] == [i.kind for i in planned.injectates]
    assert plan.protocol.code == code and plan.protocol.version == protocol.version
    assert plan.anchor_date == anchor and plan.status == CarePlan.Status.ACTIVE
    if not include_optional:
        assert not any(s.optional for s in stored)


def test_months_are_calendar_months_clamped_to_the_month_end(cast) -> None:
    with at(dt.datetime(2027, 8, 20, 18, tzinfo=UTC)):
        condition = make_condition(cast.pat, code="hallux-rigidus", laterality="left", site="mtp-1")
        plan = start(cast, condition, "hallux-rigidus-bmc", dt.date(2027, 8, 31))
    assert step(plan, "x-ray-6m").planned_on == dt.date(2028, 2, 29)  # a leap year
    assert (step(plan, "x-ray-6m").window_start, step(plan, "x-ray-6m").window_end) == (
        dt.date(2028, 1, 30),
        dt.date(2028, 3, 30),
    )
    assert step(plan, "baseline-x-ray").window_start == dt.date(2027, 8, 1)


def test_the_ankle_plan_from_the_page(alice, cast) -> None:
    condition = ankle(cast.pat)
    url = reverse("plan-start", kwargs={"pk": condition.pk})
    page = alice.get(url)
    # Only the protocols for this condition are offered.
    offered = [v.code for v in page.context["form"].fields["protocol"].queryset]
    assert offered == [ANKLE]
    anchor = today(cast) + dt.timedelta(days=28)
    response = alice.post(
        url,
        {
            "protocol": str(version_of(cast.clinic_a, ANKLE).pk),
            "anchor_date": str(anchor),
            "clinician": str(cast.alice.pk),
        },
    )
    plan = CarePlan.objects.get(condition=condition)
    assert response.status_code == 302 and response["Location"] == reverse(
        "plan-detail", kwargs={"pk": plan.pk}
    )
    assert days(plan) == {
        "primer-1": -28,
        "primer-2": -14,
        "index": 0,
        "orthotics": 7,
        "review": 14,
        "physical-therapy": 14,
        "booster": 42,
    }
    assert plan.clinician == cast.alice
    detail = alice.get(response["Location"]).content.decode()
    assert "Bone-marrow concentrate with PRP to the lateral ligaments" in detail
    assert "day 0" in detail


def test_a_plan_with_a_step_before_birth_is_refused_and_nothing_is_written(alice, cast) -> None:
    condition = ankle(cast.pat)
    before = written()
    # Day 0 three days after birth: the primers four and two weeks earlier would fall before it.
    with pytest.raises(Invalid) as refused:
        start(cast, condition, anchor=dt.date(1970, 5, 20))
    assert "before the patient's date of birth" in refused.value.message
    assert refused.value.field == "anchor"
    assert written() == before

    response = alice.post(
        reverse("plan-start", kwargs={"pk": condition.pk}),
        {
            "protocol": str(version_of(cast.clinic_a, ANKLE).pk),
            "anchor_date": "1970-05-20",
            "clinician": str(cast.alice.pk),
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any("before the patient's date of birth" in e for e in errors["anchor_date"])
    assert written() == before


def test_a_plan_more_than_a_year_ahead_is_refused_and_nothing_is_written(alice, cast) -> None:
    condition = ankle(cast.pat)
    before = written()
    response = alice.post(
        reverse("plan-start", kwargs={"pk": condition.pk}),
        {
            "protocol": str(version_of(cast.clinic_a, ANKLE).pk),
            "anchor_date": str(today(cast) + dt.timedelta(days=400)),
            "clinician": str(cast.alice.pk),
        },
    )
    assert response.status_code == 200
    assert "more than a year ahead" in str(response.context["form"].non_field_errors())
    assert written() == before


def test_a_protocol_for_another_condition_is_refused(alice, cast) -> None:
    before = written()
    with pytest.raises(Invalid) as refused:
        # The ankle protocol on Pat's Morton's neuroma.
        plans.start_plan(cast.pat_condition, version_of(cast.clinic_a, ANKLE), today(cast))
    assert "is not a protocol for" in refused.value.message
    assert written() == before
    # The page does not offer it, and refuses it when posted anyway.
    url = reverse("plan-start", kwargs={"pk": cast.pat_condition.pk})
    offered = {v.code for v in alice.get(url).context["form"].fields["protocol"].queryset}
    assert offered == {"morton-neuroma-conventional", "morton-neuroma-platelet-lysate"}
    response = alice.post(
        url,
        {
            "protocol": str(version_of(cast.clinic_a, ANKLE).pk),
            "anchor_date": str(today(cast)),
            "clinician": str(cast.alice.pk),
        },
    )
    assert response.status_code == 200 and "protocol" in response.context["form"].errors
    assert written() == before


def test_a_second_active_plan_for_a_condition_is_refused(alice, cast) -> None:
    plan = start(cast)
    before = written()
    with pytest.raises(Invalid) as refused:
        start(cast, plan.condition)
    assert "already has an active plan" in refused.value.message
    response = alice.post(
        reverse("plan-start", kwargs={"pk": plan.condition.pk}),
        {
            "protocol": str(plan.protocol.pk),
            "anchor_date": str(today(cast) + dt.timedelta(days=60)),
            "clinician": str(cast.alice.pk),
        },
    )
    assert response.status_code == 200
    assert "already has an active plan" in str(response.context["form"].errors)
    assert written() == before
    # Once it is stopped, a new plan may start.
    plans.stop(plan, "the patient moved")
    start(cast, plan.condition, anchor=today(cast) + dt.timedelta(days=60))


# --------------------------------------------------------------------------- follow-up


def test_day_0_starts_follow_up_and_the_index_procedure_links_to_it(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    (episode,) = Episode.objects.filter(condition=plan.condition)
    assert episode.index_date == plan.anchor_date and episode.index_procedure is None
    assert episode.follow_ups.count() == 7

    response = record(alice, step(plan, "index"))
    assert response.status_code == 302
    index = step(plan, "index")
    (episode,) = Episode.objects.filter(condition=plan.condition)  # no second episode
    assert episode.index_procedure == index.procedure and index.procedure.is_index
    assert episode.ended_on is None


def test_day_0_ahead_then_recorded_on_the_day(alice, cast) -> None:
    with at(dt.datetime(2027, 3, 1, 18, tzinfo=UTC)):
        plan = start(cast, anchor=dt.date(2027, 3, 29))
    with at(dt.datetime(2027, 3, 29, 18, tzinfo=UTC)):
        alice.force_login(cast.alice)  # a session of today would have expired by then
        assert record(alice, step(plan, "index")).status_code == 302
    (episode,) = Episode.objects.filter(condition=plan.condition)
    assert episode.index_date == dt.date(2027, 3, 29)
    assert episode.index_procedure == step(plan, "index").procedure
    assert not step(plan, "index").deviation


def test_an_index_step_done_before_its_day_starts_follow_up_from_the_day_it_was_done(alice, cast) -> None:
    """The patient came early: follow-up is timed from the treatment, not from the plan."""
    plan = start(cast, anchor=today(cast) + dt.timedelta(days=21))
    response = record(alice, step(plan, "index"))
    assert response.status_code == 302
    index = step(plan, "index")
    assert index.status == PlanStep.Status.DONE and index.deviation
    active = Episode.objects.get(condition=plan.condition, ended_on__isnull=True)
    assert active.index_date == today(cast) and active.index_procedure == index.procedure
    planned = Episode.objects.get(condition=plan.condition, index_procedure__isnull=True)
    assert planned.ended_on is not None
    assert not planned.follow_ups.exclude(status=FollowUp.Status.CANCELLED).exists()


def test_a_plan_stopped_before_day_0_stops_its_follow_up(alice, cast) -> None:
    plan = start(cast, anchor=today(cast) + dt.timedelta(days=21))
    response = alice.post(reverse("plan-stop", kwargs={"pk": plan.pk}), {"reason": "surgery instead"})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.STOPPED and plan.stopped_reason == "surgery instead"
    episode = Episode.objects.get(condition=plan.condition)
    assert episode.ended_on == today(cast) and episode.end_reason == Episode.EndReason.STOPPED
    assert not episode.follow_ups.exclude(status=FollowUp.Status.CANCELLED).exists()


def test_a_plan_stopped_after_day_0_keeps_following_the_treatment_given(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    record(alice, step(plan, "index"))
    plans.stop(plan, "booster declined")
    assert Episode.objects.get(condition=plan.condition).ended_on is None


def test_stopping_needs_a_reason(alice, cast) -> None:
    plan = start(cast)
    response = alice.post(reverse("plan-stop", kwargs={"pk": plan.pk}), {"reason": "  "})
    assert response.status_code == 302
    assert messages_of(response) == ["Say why the plan stops."]
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ACTIVE


# --------------------------------------------------------------------------- rescheduling


def test_rescheduling_moves_the_step_and_the_steps_timed_from_it(alice, cast) -> None:
    plan = start(cast)
    index = step(plan, "index")
    new_day = plan.anchor_date + dt.timedelta(days=7)
    response = alice.post(
        reverse("step-reschedule", kwargs={"pk": index.pk}), {"planned_on": str(new_day), "reason": "theatre"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("plan-detail", kwargs={"pk": plan.pk})
    # Every step is timed from day 0, so every one follows it.
    assert days(plan) == {
        "primer-1": -21,
        "primer-2": -7,
        "index": 7,
        "orthotics": 14,
        "review": 21,
        "physical-therapy": 21,
        "booster": 49,
    }
    changes = {c.step.code: c for c in PlanStepChange.objects.select_related("step")}
    assert changes["index"].action == "rescheduled"
    assert (changes["index"].from_date, changes["index"].to_date) == (plan.anchor_date, new_day)
    assert changes["index"].reason == "theatre" and changes["index"].by == cast.alice
    assert {c.action for code, c in changes.items() if code != "index"} == {"followed"}
    assert all(c.reason == "theatre" for c in changes.values())
    assert step(plan, "booster").first_planned_on == plan.anchor_date + dt.timedelta(weeks=6)
    # The moved step keeps its window (a deviation: it is day 0), the followers' windows follow them.
    assert windows(plan)["index"] == (0, 0)
    assert windows(plan)["booster"] == (49, 63)
    assert windows(plan)["review"] == (18, 24)
    text = " ".join(messages_of(response))
    assert "deviation" in text and "Moved with it" in text and "PRP booster" in text


def test_a_step_moved_twice_still_carries_the_steps_timed_from_it(cast) -> None:
    plan = start(cast)
    plans.reschedule(step(plan, "index"), plan.anchor_date + dt.timedelta(days=7), "theatre", cast.alice)
    plans.reschedule(step(plan, "index"), plan.anchor_date + dt.timedelta(days=14), "again", cast.alice)
    assert days(plan)["index"] == 14
    assert days(plan)["booster"] == 56 and days(plan)["review"] == 28
    assert windows(plan)["booster"] == (56, 70)


def test_a_step_moved_by_hand_stays_where_it_was_put(cast) -> None:
    plan = start(cast)
    plans.reschedule(step(plan, "booster"), plan.anchor_date + dt.timedelta(weeks=7), "holiday", cast.alice)
    plans.reschedule(
        step(plan, "review"), plan.anchor_date + dt.timedelta(days=16), "clinic full", cast.alice
    )
    assert days(plan)["booster"] == 49  # not pulled back by the review's move
    assert windows(plan)["booster"] == (42, 56)


def test_rescheduling_moves_a_whole_session(cast) -> None:
    condition = make_condition(cast.pat, code="hallux-rigidus", laterality="left", site="mtp-1")
    plan = start(cast, condition, "hallux-rigidus-bmc")
    plans.reschedule(step(plan, "bmc"), plan.anchor_date + dt.timedelta(days=3), "no room", cast.alice)
    assert days(plan) == {
        "baseline-x-ray": 3,
        "bmc": 3,
        "prolotherapy": 3,
        "shoe-or-orthotic": 3,
        "x-ray-6m": (
            core_protocols.add_months(plan.anchor_date + dt.timedelta(days=3), 6) - plan.anchor_date
        ).days,
    }


def test_rescheduling_a_step_keeps_it_inside_or_flags_the_deviation(alice, cast) -> None:
    plan = start(cast)
    booster = step(plan, "booster")
    url = reverse("step-reschedule", kwargs={"pk": booster.pk})
    inside = alice.post(url, {"planned_on": str(booster.window_end), "reason": "patient away"})
    assert inside.status_code == 302
    assert not any("deviation" in m for m in messages_of(inside))
    outside = alice.post(
        url, {"planned_on": str(booster.window_end + dt.timedelta(days=1)), "reason": "patient away longer"}
    )
    assert outside.status_code == 302
    assert any("outside the protocol's window: a deviation" in m for m in messages_of(outside))
    assert [c.reason for c in step(plan, "booster").changes.all()] == ["patient away", "patient away longer"]


def test_rescheduling_needs_a_reason(alice, cast) -> None:
    plan = start(cast)
    booster = step(plan, "booster")
    with pytest.raises(Invalid) as refused:
        plans.reschedule(booster, booster.planned_on + dt.timedelta(days=2), "   ", cast.alice)
    assert refused.value.field == "reason"
    response = alice.post(
        reverse("step-reschedule", kwargs={"pk": booster.pk}),
        {"planned_on": str(booster.planned_on + dt.timedelta(days=2)), "reason": ""},
    )
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    assert step(plan, "booster").planned_on == booster.planned_on
    assert not PlanStepChange.objects.exists()


def test_a_step_cannot_move_into_the_past_of_the_clinic(alice, cast) -> None:
    # 05:00 UTC on 10 March 2027 is still 9 March in Los Angeles, where clinic A is.
    with at(dt.datetime(2027, 3, 10, 5, 0, tzinfo=UTC)):
        assert today(cast) == dt.date(2027, 3, 9)
        alice.force_login(cast.alice)
        plan = start(cast, anchor=dt.date(2027, 3, 30))
        review = step(plan, "review")
        url = reverse("step-reschedule", kwargs={"pk": review.pk})
        response = alice.post(url, {"planned_on": "2027-03-08", "reason": "sooner"})
        assert response.status_code == 200
        assert "that day has passed" in str(response.context["form"].errors["planned_on"])
        assert step(plan, "review").planned_on == review.planned_on
        # The clinic's today is allowed, though it is already the 10th in UTC.
        response = alice.post(url, {"planned_on": "2027-03-09", "reason": "sooner"})
        assert response.status_code == 302
        assert step(plan, "review").planned_on == dt.date(2027, 3, 9)


def test_the_past_is_the_clinics_own_in_every_time_zone(cast) -> None:
    # 23:30 UTC on 10 July 2027 is already 11 July in London (clinic B).
    with at(dt.datetime(2027, 7, 10, 23, 30, tzinfo=UTC)):
        plan = start(cast, cast.quinn_condition, "morton-neuroma-platelet-lysate", dt.date(2027, 7, 20))
        with pytest.raises(Invalid, match="that day has passed"):
            plans.reschedule(step(plan, "ultrasound-6m"), dt.date(2027, 7, 10), "sooner", cast.olga)
        plans.reschedule(step(plan, "ultrasound-6m"), dt.date(2027, 7, 11), "sooner", cast.olga)


def test_a_done_step_cannot_be_rescheduled_or_skipped(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    record(alice, step(plan, "index"))
    index = step(plan, "index")
    with pytest.raises(Invalid):
        plans.reschedule(index, today(cast) + dt.timedelta(days=1), "oops", cast.alice)
    with pytest.raises(Invalid):
        plans.skip(step(plan, "review"), "", cast.alice)


# --------------------------------------------------------------------------- skip and add


def test_skipping_needs_a_reason_and_never_skips_day_0(alice, cast) -> None:
    plan = start(cast)
    review = step(plan, "review")
    url = reverse("step-skip", kwargs={"pk": review.pk})
    response = alice.post(url, {"reason": ""})
    assert response.status_code == 200 and "reason" in response.context["form"].errors
    with pytest.raises(Invalid, match="Say why"):
        plans.skip(review, "  ", cast.alice)
    assert step(plan, "review").status == PlanStep.Status.PLANNED

    response = alice.post(url, {"reason": "seen by phone"})
    assert response.status_code == 302
    review = step(plan, "review")
    assert review.status == PlanStep.Status.SKIPPED and review.reason == "seen by phone"
    assert [(c.action, c.reason) for c in review.changes.all()] == [("skipped", "seen by phone")]

    index = step(plan, "index")
    with pytest.raises(Invalid, match="cannot be skipped"):
        plans.skip(index, "not wanted", cast.alice)
    response = alice.post(reverse("step-skip", kwargs={"pk": index.pk}), {"reason": "not wanted"})
    assert response.status_code == 200
    assert "cannot be skipped" in str(response.context["form"].errors)
    assert step(plan, "index").status == PlanStep.Status.PLANNED
    # The plan page offers no skip for day 0.
    page = alice.get(reverse("plan-detail", kwargs={"pk": plan.pk})).content.decode()
    assert reverse("step-skip", kwargs={"pk": index.pk}) not in page
    assert reverse("step-skip", kwargs={"pk": step(plan, "booster").pk}) in page


def test_adding_a_step(alice, cast) -> None:
    plan = start(cast)
    day = today(cast) + dt.timedelta(days=50)
    response = alice.post(
        reverse("step-add", kwargs={"pk": plan.pk}),
        {"name": "MRI of the ankle", "kind": "imaging", "planned_on": str(day), "reason": "persistent pain"},
    )
    assert response.status_code == 302
    added = step(plan, "added-1")
    assert (added.name, added.kind, added.planned_on, added.added) == (
        "MRI of the ankle",
        "imaging",
        day,
        True,
    )
    assert [(c.action, c.to_date, c.reason) for c in added.changes.all()] == [
        ("added", day, "persistent pain")
    ]
    second = plans.add_step(plan, "Second review", "review", day, "check", cast.alice)
    assert second.code == "added-2"
    for kwargs, field in (
        ({"kind": "massage"}, "kind"),
        ({"reason": " "}, "reason"),
        ({"planned_on": today(cast) - dt.timedelta(days=1)}, "planned_on"),
    ):
        values = {"name": "x", "kind": "review", "planned_on": day, "reason": "why"} | kwargs
        with pytest.raises(Invalid) as refused:
            plans.add_step(plan, user=cast.alice, **values)
        assert refused.value.field == field
    response = alice.post(reverse("step-add", kwargs={"pk": plan.pk}), {"name": "No reason"}, follow=True)
    assert any("give its name, kind, date and the reason" in m for m in messages_of(response))
    assert plan.steps.filter(added=True).count() == 2


def test_an_added_step_moves_without_a_deviation(cast) -> None:
    plan = start(cast)
    added = plans.add_step(plan, "MRI", "imaging", today(cast) + dt.timedelta(days=10), "pain", cast.alice)
    plans.reschedule(added, today(cast) + dt.timedelta(days=12), "scanner booked", cast.alice)
    added.refresh_from_db()
    assert added.planned_on == today(cast) + dt.timedelta(days=12)
    change = added.changes.get(action="rescheduled")
    assert (change.from_date, change.to_date) == (today(cast) + dt.timedelta(days=10), added.planned_on)
    assert days(plan)["booster"] == 42  # nothing else moves


# --------------------------------------------------------------------------- recording steps


def test_the_procedure_page_is_prefilled_from_the_step(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    page = alice.get(record_url(step(plan, "index")))
    filled = prefilled(page)
    form = filled["form"]
    assert form["condition"] == plan.condition.pk
    assert form["procedure_type"] == ProcedureType.objects.get(code="bmc-injection").pk
    assert form["site"] == plan.condition.site.pk
    assert form["image_guidance"] == "ultrasound"
    assert form["laterality"] == "left"
    assert form["is_index"] is True
    assert form["performed_on"] == today(cast)
    assert form["clinician"] == cast.alice.pk
    assert [i["kind"] for i in filled["injectates"]] == ["bmc", "prp"]
    assert page.context["title"] == "Record: Bone-marrow concentrate with PRP to the lateral ligaments"

    booster = alice.get(record_url(step(plan, "booster")))
    assert prefilled(booster)["form"]["is_index"] is False
    assert prefilled(booster)["form"]["procedure_type"] == ProcedureType.objects.get(code="prp-injection").pk
    primer = prefilled(alice.get(record_url(step(plan, "primer-1"))))
    assert [(i["kind"], i["concentration_pct"]) for i in primer["injectates"]] == [("dextrose", 15)]


def test_recording_a_step_completes_it_and_returns_to_the_plan(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    response = record(alice, step(plan, "index"))
    assert response.status_code == 302
    assert response["Location"] == reverse("plan-detail", kwargs={"pk": plan.pk})
    index = step(plan, "index")
    assert index.status == PlanStep.Status.DONE and index.done_on == today(cast) and not index.deviation
    procedure = index.procedure
    assert procedure.procedure_type.code == "bmc-injection" and procedure.site.code == "atfl-cfl"
    assert procedure.is_index and procedure.image_guidance == "ultrasound"
    assert sorted(procedure.injectates.values_list("kind", flat=True)) == ["bmc", "prp"]
    assert procedure.injectates.get(kind="bmc").aspirate_volume_ml == Decimal("60")
    assert [c.action for c in index.changes.all()] == ["done"]
    page = alice.get(response["Location"]).content.decode()
    assert "Done" in page and "Bone-marrow concentrate injection" in page
    assert "Procedure saved." in messages_of(response)


def test_a_step_recorded_outside_its_window_is_a_deviation(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    # The booster belongs six to eight weeks after day 0; the patient is treated today.
    response = record(alice, step(plan, "booster"))
    assert response.status_code == 302
    booster = step(plan, "booster")
    assert booster.status == PlanStep.Status.DONE and booster.deviation
    assert booster.changes.get(action="done").reason == "outside its window"
    assert any("outside its window: recorded as a deviation" in m for m in messages_of(response))
    assert "deviation" in alice.get(response["Location"]).content.decode()


def test_a_step_done_on_its_day_by_the_primer_window(alice, cast) -> None:
    plan = start(cast, anchor=today(cast) + dt.timedelta(days=28))  # primer 1 is today
    assert step(plan, "primer-1").planned_on == today(cast)
    assert record(alice, step(plan, "primer-1")).status_code == 302
    primer = step(plan, "primer-1")
    assert primer.status == PlanStep.Status.DONE and not primer.deviation
    assert not primer.procedure.is_index
    assert Episode.objects.get(condition=plan.condition).index_procedure is None  # not the index


def test_a_bad_procedure_leaves_the_step_planned(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    url = record_url(step(plan, "index"))
    data = post_data(alice.get(url), **{"injectates-0-aspirate_volume_ml": ""})
    response = alice.post(url, data)
    assert response.status_code == 200
    assert step(plan, "index").status == PlanStep.Status.PLANNED
    assert not Procedure.objects.filter(condition=plan.condition).exists()


def test_a_step_that_is_not_a_procedure_is_marked_done(alice, cast) -> None:
    plan = start(cast, anchor=today(cast) - dt.timedelta(days=14))
    review = step(plan, "review")
    url = reverse("step-done", kwargs={"pk": review.pk})
    assert alice.get(url).context["form"]["done_on"].value() == today(cast)
    response = alice.post(url, {"done_on": str(today(cast) + dt.timedelta(days=1))})
    assert response.status_code == 200 and "done_on" in response.context["form"].errors
    response = alice.post(url, {"done_on": str(today(cast))})
    assert response.status_code == 302
    review = step(plan, "review")
    assert review.status == PlanStep.Status.DONE and review.procedure is None and not review.deviation
    # A procedure step's "done" goes to the procedure page instead.
    booster = step(plan, "booster")
    response = alice.get(reverse("step-done", kwargs={"pk": booster.pk}))
    assert response.status_code == 302 and response["Location"] == record_url(booster)


def test_the_plan_completes_when_no_required_step_is_left(cast) -> None:
    plan = start(cast, anchor=today(cast) - dt.timedelta(days=60), include_optional=True)
    required = [s for s in plan.steps.all() if not s.optional]
    assert step(plan, "primer-3").optional
    *first, last = required
    for s in first:
        plans.complete(s, None, s.planned_on, cast.alice)
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.ACTIVE
    plans.complete(last, None, last.planned_on, cast.alice)
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.COMPLETED  # the optional third primer left planned


def test_a_plan_whose_last_required_step_is_skipped_completes(cast) -> None:
    plan = start(cast, anchor=today(cast) - dt.timedelta(days=30))
    for s in plan.steps.exclude(code="booster"):
        plans.complete(s, None, s.planned_on, cast.alice)
    plans.skip(step(plan, "booster"), "fully recovered", cast.alice)
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.COMPLETED


def test_a_stopped_plans_steps_stay_as_they_are(alice, cast) -> None:
    plan = start(cast, anchor=today(cast))
    url = record_url(step(plan, "index"))
    data = post_data(alice.get(url))  # the page was open when the plan was stopped
    plans.stop(plan, "surgery instead")
    booster = step(plan, "booster")
    for call in (
        lambda: plans.reschedule(booster, booster.planned_on + dt.timedelta(days=1), "x", cast.alice),
        lambda: plans.skip(booster, "x", cast.alice),
        lambda: plans.complete(booster, None, today(cast), cast.alice),
        lambda: plans.add_step(plan, "x", "review", today(cast), "x", cast.alice),
    ):
        with pytest.raises(Invalid, match="stopped"):
            call()
    with pytest.raises(Invalid, match="stopped"):
        plans.stop(plan, "again")
    # The procedure page no longer offers the step; a procedure saved now belongs to no plan.
    assert alice.get(url).context["title"] == "Record a procedure"
    response = alice.post(url, data)
    assert response.status_code == 302
    assert response["Location"] == reverse("patient-detail", kwargs={"pk": cast.pat.pk})
    assert Procedure.objects.filter(condition=plan.condition, is_index=True).exists()
    plan.refresh_from_db()
    assert plan.status == CarePlan.Status.STOPPED
    assert step(plan, "index").status == PlanStep.Status.PLANNED


# --------------------------------------------------------------------------- the worklist


@pytest.fixture
def worklist_cast(cast: Any) -> dict[str, Any]:
    """Three plans: Alice's for Pat (A), Adam's for Robin (A) and Olga's for Quinn (B)."""
    pat_plan = start(cast, anchor=today(cast) + dt.timedelta(days=14))  # primer 1 overdue, primer 2 today
    plans.add_step(
        pat_plan, "Phone call", "review", today(cast) + dt.timedelta(days=3), "check in", cast.alice
    )
    robin = make_patient(cast.clinic_a, "A-002", given_name="Robin", family_name="Hart")
    # Robin's first primer in two days, the second in 16.
    robin_plan = start(cast, ankle(robin), anchor=today(cast) + dt.timedelta(days=30), clinician=cast.adam)
    quinn_plan = start(
        cast,
        cast.quinn_condition,
        "morton-neuroma-platelet-lysate",
        cast.clinic_b.today(),
        clinician=cast.olga,
    )
    return {"pat": pat_plan, "robin": robin_plan, "quinn": quinn_plan}


def groups(client: Any, **filters: str) -> dict[str, list[tuple[str, str]]]:
    response = client.get(reverse("plan-worklist"), filters)
    assert response.status_code == 200
    return {
        name: [(s.plan.condition.patient.record_number, s.code) for s in rows]
        for name, rows in response.context["groups"].items()
    }


def test_the_plan_worklist_groups_overdue_today_and_this_week(alice, cast, worklist_cast) -> None:
    assert groups(alice) == {
        "overdue": [("A-001", "primer-1")],
        "today": [("A-001", "primer-2")],
        "week": [("A-002", "primer-1"), ("A-001", "added-1")],
    }
    page = alice.get(reverse("plan-worklist")).content.decode()
    assert "Pat Lee" in page and "Robin Hart" in page
    assert "Quinn" not in page and "B-001" not in page
    assert "Olga" not in page  # nor another clinic's clinicians in the filter


def test_the_plan_worklist_filters(alice, cast, worklist_cast) -> None:
    from stride.clinics.models import Membership

    assert groups(alice, clinician="me") == {
        "overdue": [("A-001", "primer-1")],
        "today": [("A-001", "primer-2")],
        "week": [("A-001", "added-1")],
    }
    assert groups(alice, clinician=str(cast.adam.pk))["week"] == [("A-002", "primer-1")]
    assert groups(alice, kind="review") == {"overdue": [], "today": [], "week": [("A-001", "added-1")]}
    # Alice also coordinates in clinic B: she sees both, and can narrow to one.
    Membership.objects.create(user=cast.alice, clinic=cast.clinic_b, role="coordinator")
    both = groups(alice)
    assert ("B-001", "injection") in both["today"] + both["overdue"]
    only_b = groups(alice, clinic=str(cast.clinic_b.pk))
    assert {r for rows in only_b.values() for r, _ in rows} == {"B-001"}
    only_a = groups(alice, clinic=str(cast.clinic_a.pk))
    assert {r for rows in only_a.values() for r, _ in rows} == {"A-001", "A-002"}
    # Olga, a clinician of B only, cannot list A by asking for it.
    alice.force_login(cast.olga)
    assert {r for rows in groups(alice, clinic=str(cast.clinic_a.pk)).values() for r, _ in rows} == set()


def test_the_plan_worklist_changes_when_a_step_is_recorded(alice, cast, worklist_cast) -> None:
    plan = worklist_cast["pat"]
    assert record(alice, step(plan, "primer-2")).status_code == 302
    after = groups(alice, clinician="me")
    assert after["today"] == []
    assert after["overdue"] == [("A-001", "primer-1")]
    plans.reschedule(step(plan, "primer-1"), today(cast) + dt.timedelta(days=2), "missed it", cast.alice)
    assert groups(alice, clinician="me") == {
        "overdue": [],
        "today": [],
        "week": [("A-001", "primer-1"), ("A-001", "added-1")],
    }


# --------------------------------------------------------------------------- the ladder


def test_the_ladder_shows_what_was_tried_and_the_clinics_protocols(alice, cast) -> None:
    condition = ankle(cast.pat)
    for code, response, relief in (("physical-therapy", "partial", 6), ("bracing", "none", None)):
        TreatmentHistory.objects.create(
            patient=cast.pat,
            condition=condition,
            treatment=TreatmentKind.objects.get(code=code),
            started_on=dt.date(2024, 6, 1),
            response=response,
            relief_weeks=relief,
        )
    procedure = Procedure.objects.create(
        patient=cast.pat,
        condition=condition,
        performed_on=dt.date(2025, 1, 15),
        clinician=cast.alice,
        procedure_type=ProcedureType.objects.get(code="prolotherapy"),
        laterality="left",
        image_guidance="ultrasound",
    )
    Injectate.objects.create(procedure=procedure, kind="dextrose", concentration_pct=15, volume_ml=5)

    response = alice.get(reverse("ladder", kwargs={"pk": condition.pk}))
    rows = {rung.code: (rung, names) for rung, names, _ in response.context["rows"]}
    assert list(rows) == ["balance-therapy", "bracing", "ligament-injection", "ligament-repair"]
    therapy, _ = rows["balance-therapy"]
    assert [i.code for i in therapy.tried] == ["physical-therapy"]
    assert (therapy.best_response, therapy.longest_relief_weeks) == ("partial", 6)
    assert rows["bracing"][0].best_response == "none"
    injection, names = rows["ligament-injection"]
    assert [(i.source, i.code, i.injectates) for i in injection.tried] == [
        ("procedure", "prolotherapy", ("dextrose",))
    ]
    assert names == ["Ankle instability, regenerative course"]
    assert rows["ligament-repair"][0].tried == ()
    page = response.content.decode()
    assert "Tried: Physical therapy (Jun 2024)." in page  # names, not codes
    assert "Tried: Dextrose prolotherapy (Jan 2025)." in page
    assert "Best response: <strong>partial</strong>" in page
    assert "Best response: <strong>not known</strong>" in page  # a procedure records no response
    assert "longest relief 6 weeks" in page
    assert "Clinic protocols at this step: Ankle instability, regenerative course." in page
    assert "Not tried." in page

    # A clinic's own version of the protocol is the one its ladder names.
    shipped = version_of(cast.clinic_a, ANKLE)
    text = shipped.text.replace(
        'name = "Ankle instability, regenerative course"', 'name = "Lakeside ankle course"'
    )
    plans.save_clinic_version(cast.clinic_a, ANKLE, text, cast.adam)
    response = alice.get(reverse("ladder", kwargs={"pk": condition.pk}))
    assert {r.code: n for r, n, _ in response.context["rows"]}["ligament-injection"] == [
        "Lakeside ankle course"
    ]


def test_a_condition_without_a_ladder_says_so(alice, cast) -> None:
    condition = make_condition(cast.pat, code="foot-muscle-wasting", laterality="left", site="interossei-3")
    response = alice.get(reverse("ladder", kwargs={"pk": condition.pk}))
    assert response.status_code == 200
    assert "No ladder is recorded" in response.content.decode()


# --------------------------------------------------------------------------- calendars


def _ical(body: bytes) -> list[Any]:
    from icalendar import Calendar

    return [c for c in Calendar.from_ical(body).walk("VEVENT")]


def _ics(body: bytes) -> list[Any]:
    import ics

    return list(ics.Calendar(body.decode()).events)


def test_the_plan_calendar_parses_and_keeps_its_uids(alice, cast) -> None:
    plan = start(cast)
    plans.skip(step(plan, "orthotics"), "has orthotics already", cast.alice)
    url = reverse("plan-calendar", kwargs={"pk": plan.pk})
    response = alice.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert "attachment" in response["Content-Disposition"]
    body = response.content

    events = _ical(body)
    kept = plan.steps.exclude(status=PlanStep.Status.SKIPPED)
    assert len(events) == kept.count() == plan.steps.count() - 1
    by_uid = {str(e["uid"]): e for e in events}
    assert set(by_uid) == {f"plan-step-{s.pk}@stride" for s in kept}
    for s in kept:
        event = by_uid[f"plan-step-{s.pk}@stride"]
        start_day, end_day = event.decoded("dtstart"), event.decoded("dtend")
        assert type(start_day) is dt.date and type(end_day) is dt.date  # all-day, no time of day
        assert (start_day, end_day) == (s.planned_on, s.planned_on + dt.timedelta(days=1))
        assert str(event["summary"]) == f"A-001: {s.name}"

    parsed = _ics(body)
    assert len(parsed) == len(events)
    assert {e.uid for e in parsed} == set(by_uid)
    for e in parsed:
        assert e.all_day
    text = body.decode()
    for name in ("Pat", "Lee", "Morton", "instability", "ligamentous"):
        assert name not in text.replace("Ankle instability, regenerative course", ""), name

    booster = step(plan, "booster")
    new_day = booster.planned_on + dt.timedelta(days=5)
    plans.reschedule(booster, new_day, "holiday", cast.alice)
    moved = {str(e["uid"]): e.decoded("dtstart") for e in _ical(alice.get(url).content)}
    assert set(moved) == set(by_uid)  # the same events: a calendar updates them in place
    assert moved[f"plan-step-{booster.pk}@stride"] == new_day
    again = {e.uid: e.begin.date() for e in _ics(alice.get(url).content)}
    assert again[f"plan-step-{booster.pk}@stride"] == new_day


def test_the_clinicians_feed_lists_only_their_plans_steps(client, cast) -> None:
    from stride.care import calendar
    from stride.care.models import CalendarFeed

    own = start(cast)
    robin = make_patient(cast.clinic_a, "A-002", given_name="Robin", family_name="Hart")
    theirs = start(cast, ankle(robin), clinician=cast.adam)
    client.force_login(cast.alice)
    client.post(reverse("my-calendar"), {"action": "new"})
    page = client.get(reverse("my-calendar"))
    assert page.context["count"] == own.steps.count()
    feed = CalendarFeed.objects.get(user=cast.alice, revoked_at__isnull=True)
    url = page.context["url"]
    assert url.endswith(reverse("calendar-feed", kwargs={"token": calendar.feed_token(feed) + ".ics"}))
    client.logout()
    body = client.get(url).content
    uids = {str(e["uid"]) for e in _ical(body)}
    assert uids == {f"plan-step-{s.pk}@stride" for s in own.steps.all()}
    assert not uids & {f"plan-step-{s.pk}@stride" for s in theirs.steps.all()}
    assert len(_ics(body)) == len(uids)
    assert b"A-002" not in body and b"Robin" not in body and b"Pat" not in body
    # A stopped plan leaves the feed.
    plans.stop(own, "moved away")
    assert _ical(client.get(url).content) == []


# --------------------------------------------------------------------------- clinic versions


def _edited(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


def test_a_clinic_admin_saves_the_next_version_for_their_clinic_only(cast) -> None:
    shipped = version_of(cast.clinic_a, ANKLE)
    assert shipped.clinic is None and shipped.version == 1
    old_plan = start(cast)
    text = _edited(
        shipped.text,
        "offset = { weeks = 6 }\nwindow = { after = { weeks = 2 } }",
        "offset = { weeks = 7 }\nwindow = { after = { weeks = 1 } }",
    )
    saved = plans.save_clinic_version(cast.clinic_a, ANKLE, text, cast.adam)
    assert (saved.code, saved.version, saved.clinic, saved.created_by) == (ANKLE, 2, cast.clinic_a, cast.adam)
    assert version_of(cast.clinic_a, ANKLE) == saved
    assert version_of(cast.clinic_b, ANKLE) == shipped  # the other clinic keeps the shipped one
    assert plans.current_versions(cast.clinic_b, "ankle-instability-ligamentous") == [shipped]

    # The running plan keeps its version, and moves by it.
    old_plan.refresh_from_db()
    assert old_plan.protocol == shipped
    plans.reschedule(step(old_plan, "index"), old_plan.anchor_date + dt.timedelta(days=1), "x", cast.alice)
    assert days(old_plan)["booster"] == 43
    # A new plan takes the clinic's version.
    robin = make_patient(cast.clinic_a, "A-002", given_name="Robin", family_name="Hart")
    new_plan = start(cast, ankle(robin))
    assert new_plan.protocol == saved
    assert days(new_plan)["booster"] == 49 and windows(new_plan)["booster"] == (49, 56)
    # Editing again gives version 3, whatever number the text says.
    third = plans.save_clinic_version(cast.clinic_a, ANKLE, text, cast.adam)
    assert third.version == 3 and version_of(cast.clinic_a, ANKLE) == third


def _timed_from(code: str, other: str) -> tuple[str, str]:
    """An edit that times step ``code`` from step ``other``."""
    number = code.rsplit("-", 1)[1]
    head = f'code = "{code}"\nname = "Prolotherapy primer {number}"\nkind = "procedure"'
    return head, f'{head}\nrelative_to = "{other}"'


@pytest.mark.parametrize(
    ("edits", "reason"),
    [
        (
            [_timed_from("primer-1", "primer-2"), _timed_from("primer-2", "primer-1")],
            "cycle: primer-1 → primer-2 → primer-1",
        ),
        ([('kind = "review"', 'kind = "massage"')], "unknown kind 'massage'"),
        ([('anchor = "index"', 'anchor = "bmc"')], "the anchor 'bmc' is not one of the steps"),
        ([("offset = { weeks = 6 }", "offset = { fortnights = 3 }")], "unknown unit(s) 'fortnights'"),
        ([("version = 1", "version = 1\ncolour = 'red'")], "unknown key(s) 'colour'"),
    ],
)
def test_a_broken_clinic_version_is_refused_with_the_reason(cast, edits, reason) -> None:
    shipped = version_of(cast.clinic_a, ANKLE)
    text = shipped.text
    for old, new in edits:
        text = _edited(text, old, new)
    before = ProtocolVersion.objects.count()
    with pytest.raises(CatalogError) as refused:
        plans.save_clinic_version(cast.clinic_a, ANKLE, text, cast.adam)
    assert reason in str(refused.value)
    assert ProtocolVersion.objects.count() == before
    assert version_of(cast.clinic_a, ANKLE) == shipped


def test_a_version_naming_another_protocol_is_refused(cast) -> None:
    text = version_of(cast.clinic_a, "hallux-rigidus-bmc").text
    with pytest.raises(Invalid, match="names protocol 'hallux-rigidus-bmc'"):
        plans.save_clinic_version(cast.clinic_a, ANKLE, text, cast.adam)


def test_a_newer_shipped_version_is_offered_where_the_clinic_has_no_edit(cast) -> None:
    shipped = version_of(cast.clinic_a, ANKLE)
    newer = ProtocolVersion.objects.create(
        code=ANKLE,
        version=2,
        clinic=None,
        name=shipped.name,
        text=shipped.text.replace("version = 1", "version = 2"),
        conditions=shipped.conditions,
    )
    assert version_of(cast.clinic_a, ANKLE) == newer
    own = plans.save_clinic_version(cast.clinic_b, ANKLE, shipped.text, cast.olga)
    assert version_of(cast.clinic_b, ANKLE) == own
    assert version_of(cast.clinic_a, ANKLE) == newer


def test_the_admin_saves_an_edited_protocol_as_the_next_version(client, cast) -> None:
    shipped = version_of(cast.clinic_a, ANKLE)
    client.force_login(cast.adam)
    add = reverse("admin:care_protocolversion_add")
    page = client.get(add, {"code": ANKLE})
    assert page.status_code == 200
    assert page.context["adminform"].form.initial["text"] == shipped.text
    text = shipped.text.replace("Review visit", "Review visit with the physio")
    response = client.post(add, {"clinic": str(cast.clinic_a.pk), "code": ANKLE, "text": text})
    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = version_of(cast.clinic_a, ANKLE)
    assert (saved.version, saved.clinic, saved.created_by) == (2, cast.clinic_a, cast.adam)
    broken = text.replace('kind = "review"', 'kind = "massage"')
    response = client.post(add, {"clinic": str(cast.clinic_a.pk), "code": ANKLE, "text": broken})
    assert response.status_code == 200
    assert any("unknown kind 'massage'" in e for e in response.context["adminform"].form.non_field_errors())
    # Another clinic is not the admin's to edit.
    response = client.post(add, {"clinic": str(cast.clinic_b.pk), "code": ANKLE, "text": text})
    assert response.status_code == 200
    assert version_of(cast.clinic_b, ANKLE) == shipped


def test_when_day_0_is_done_the_steps_meant_for_before_it_are_skipped(alice, cast) -> None:
    plan = start(cast, anchor=today(cast) + dt.timedelta(days=7))  # the primers' days have passed
    assert record(alice, step(plan, "index")).status_code == 302
    for code in ("primer-1", "primer-2"):
        primer = step(plan, code)
        assert (primer.status, primer.reason) == (PlanStep.Status.SKIPPED, "Not done before day 0.")
        assert primer.changes.filter(action="skipped").exists()


def test_day_0_done_on_another_day_re_times_the_steps_that_follow_it(alice, cast) -> None:
    plan = start(cast, anchor=today(cast) + dt.timedelta(days=10))
    booster_before = step(plan, "booster").planned_on
    assert record(alice, step(plan, "index")).status_code == 302  # done today, 10 days early
    booster = step(plan, "booster")
    assert booster.planned_on == booster_before - dt.timedelta(days=10)
    assert (booster.window_start, booster.window_end) == (
        today(cast) + dt.timedelta(weeks=6),
        today(cast) + dt.timedelta(weeks=8),
    )
    assert booster.changes.filter(action="followed").exists()
