"""The demo loader: the three stories as complete records, one login per role, idempotent."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps

from stride.core import scoring
from stride.core.instruments import instrument
from stride.demo.loader import load_demo
from stride.demo.stories import DEMO_PASSWORD_DEFAULT, LOGINS, story_answers


def _table_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in {"clinics", "patients", "care", "outcomes"}
    }


def _scores(record_number: str, instrument_code: str) -> dict[str, float]:
    """Time point -> the total score of one instrument, for one story patient."""
    from stride.outcomes.models import Score

    rows = Score.objects.filter(
        response__patient__record_number=record_number, instrument=instrument_code, scale="total"
    ).values_list("response__follow_up__timepoint", "value")
    return dict(rows)


@pytest.mark.django_db
def test_loading_the_demo_twice_changes_nothing() -> None:
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    first = _table_counts()
    assert first["outcomes.QuestionnaireResponse"] > 0 and first["outcomes.Contact"] > 0
    again = load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    assert _table_counts() == first
    assert sum(again.values()) == 0


@pytest.mark.django_db
def test_loading_the_demo_with_synthetic_patients_twice_changes_nothing() -> None:
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=40, synth_seed=3)
    first = _table_counts()
    assert first["outcomes.Episode"] > 3  # the stories' and the synthetic patients'
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=40, synth_seed=3)
    assert _table_counts() == first


@pytest.mark.django_db
def test_the_demo_has_the_three_story_patients_as_complete_records() -> None:
    from stride.patients.models import Patient

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    neuroma = Patient.objects.get(record_number="LFA-1001")
    assert neuroma.age() == 58 and neuroma.sex == "female"
    codes = set(neuroma.conditions.values_list("icd10_code", flat=True))
    assert codes == {"G57.62", "G57.61", "M62.572"}
    wasting = neuroma.conditions.get(condition_type__code="foot-muscle-wasting")
    assert wasting.additional_icd10 == ["T38.0X5S"]
    kinds = list(neuroma.procedures.order_by("performed_on").values_list("procedure_type__code", flat=True))
    assert kinds == ["digital-nerve-steroid", "perineural-platelet-lysate"]
    assert neuroma.history.filter(treatment__code="neurectomy", laterality="right").exists()
    assert (
        neuroma.procedures.get(procedure_type__code="digital-nerve-steroid").adverse_events.get().kind.code
        == "muscle-wasting"
    )

    runner = Patient.objects.get(record_number="LFA-1002")
    assert runner.age() == 40 and runner.activity_level == "competitive"
    assert set(runner.procedures.values_list("procedure_type__code", flat=True)) == {
        "bmc-injection",
        "prolotherapy",
    }
    assert len(set(runner.procedures.values_list("performed_on", flat=True))) == 1  # the same day
    bmc = runner.procedures.get(procedure_type__code="bmc-injection").injectates.get(kind="bmc")
    assert bmc.total_nucleated_cells_millions == 84.0

    ankle = Patient.objects.get(record_number="LFA-1003")
    steps = list(ankle.procedures.order_by("performed_on").values_list("procedure_type__code", flat=True))
    assert steps == ["prolotherapy", "prolotherapy", "bmc-injection", "prp-injection"]
    assert ankle.history.filter(treatment__code="orthotics").exists()
    assert ankle.conditions.get().icd10_code == "M24.272"


@pytest.mark.django_db
def test_there_is_one_working_login_per_role(client) -> None:
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    roles = {role for login in LOGINS for role in login.roles.values()}
    assert roles == {"clinician", "coordinator", "researcher", "admin"}
    for login in LOGINS:
        assert client.login(username=login.username, password=DEMO_PASSWORD_DEFAULT), login.username


@pytest.mark.django_db
def test_the_stories_have_the_follow_up_they_tell() -> None:
    from stride.outcomes.models import Episode

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    index = {
        e.condition.patient.record_number: e.index_procedure.procedure_type.code
        for e in Episode.objects.select_related("condition__patient", "index_procedure__procedure_type")
    }
    assert index == {
        "LFA-1001": "perineural-platelet-lysate",
        "LFA-1002": "bmc-injection",
        "LFA-1003": "bmc-injection",
    }

    # The platelet-lysate patient: about half better at one month, free of pain at the latest time point.
    pain = _scores("LFA-1001", "nprs")
    better = _scores("LFA-1001", "percent-improvement")
    assert pain["baseline"] == 7 and 0.4 <= pain["1m"] / pain["baseline"] <= 0.6
    assert better["1m"] == 50
    latest = max(pain, key=["baseline", "1m", "3m", "6m", "12m", "24m", "36m"].index)
    assert latest == "6m" and pain[latest] == 0 and better[latest] == 100

    # The runner: 60 % better at six months.
    assert _scores("LFA-1002", "percent-improvement")["6m"] == 60
    assert _scores("LFA-1002", "nprs")["6m"] < _scores("LFA-1002", "nprs")["baseline"]

    # The ankle patient: steadily more stable and better in daily life and sport.
    for code in ("cait", "faam-adl", "faam-sports"):
        values = _scores("LFA-1003", code)
        assert values["baseline"] < values["1m"] < values["3m"], code
    assert _scores("LFA-1003", "cait")["baseline"] <= 27  # unstable when he came


@pytest.mark.django_db
def test_story_answers_fall_inside_their_windows_after_their_invitations() -> None:
    from stride.outcomes.models import Contact, FollowUp, QuestionnaireResponse

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    completed = FollowUp.objects.filter(patient__record_number__startswith="LFA-", status="completed")
    assert completed.count() == 11  # 4 + 4 + 3 time points
    for follow_up in completed.select_related("episode", "patient__clinic"):
        responses = list(follow_up.responses.all())
        assert sorted(r.instrument for r in responses) == sorted(follow_up.instruments)
        day = responses[0].collected_on
        assert {r.collected_on for r in responses} == {day}
        assert follow_up.opens_on <= day <= follow_up.closes_on
        assert all(r.flags == [] and r.status == "completed" and r.source == "patient" for r in responses)
        if follow_up.timepoint == "baseline":
            assert day <= follow_up.episode.index_date
        for r in responses:  # the scores are those of the pure scorer
            result = scoring.score(instrument(r.instrument), r.answers)
            assert {s.scale: s.value for s in r.scores.all()} == {
                k: v.value for k, v in result.scales.items()
            }
            assert r.submitted_at.date() <= day + dt.timedelta(days=1)
        contacts = list(follow_up.contacts.order_by("due_at"))
        assert contacts[0].kind == "invitation" and contacts[0].state == "sent"
        assert all(c.due_at.date() <= day for c in contacts)
        for c in contacts:
            c.full_clean()
    assert (
        QuestionnaireResponse.objects.filter(patient__record_number__startswith="LFA-").count()
        == 15 + 19 + 17
    )
    # Reminded only when the answers came after the reminder's day.
    assert Contact.objects.filter(kind="reminder", follow_up__patient__record_number="LFA-1001").count() == 1


@pytest.mark.django_db
def test_the_ankle_patient_s_six_month_questionnaire_is_open_today() -> None:
    from stride.outcomes.models import FollowUp
    from stride.outcomes.services import open_follow_ups
    from stride.patients.models import Patient

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    ankle = Patient.objects.get(record_number="LFA-1003")
    current = open_follow_ups(ankle)
    assert [f.timepoint for f in current] == ["6m"]
    assert current[0].status == "due" and not current[0].responses.exists()
    kinds = dict(current[0].contacts.values_list("kind", "state"))
    assert kinds == {"invitation": "sent", "reminder": "sent", "phone-call": "open"}  # on the worklist
    assert not FollowUp.objects.filter(patient__record_number__startswith="LFA-", status="missed").exists()
    for record in ("LFA-1001", "LFA-1002"):
        assert open_follow_ups(Patient.objects.get(record_number=record)) == []


def test_a_story_level_becomes_answers_in_each_scale_s_direction() -> None:
    assert story_answers("nprs", 7) == [7]
    assert story_answers("faam-adl", 1.0) == [4] * 21
    assert story_answers("faos", 1.0) == [0] * 42  # FAOS codes "no problem" 0
    adl = scoring.score(instrument("faam-adl"), story_answers("faam-adl", 0.5)).scales["total"].value
    assert adl == 50
    assert story_answers("cait", [5, 4, 3, 3, 2, 3, 4, 3, 3]) == [5, 4, 3, 3, 2, 3, 4, 3, 3]
    with pytest.raises(TypeError):
        story_answers("nprs", True)


@pytest.mark.django_db
def test_the_ankle_story_is_recorded_as_its_care_plan() -> None:
    from stride.care.models import CarePlan

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    plan = CarePlan.objects.get(condition__patient__record_number="LFA-1003")
    assert (plan.protocol.code, plan.status) == ("ankle-instability-regenerative", "completed")
    steps = {s.code: s for s in plan.steps.all()}
    assert all(s.status == "done" and not s.deviation for s in steps.values())
    assert steps["index"].procedure.procedure_type.code == "bmc-injection"
    assert steps["booster"].procedure.procedure_type.code == "prp-injection"
