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
        if model._meta.app_label in {"clinics", "patients", "care", "outcomes", "imaging"}
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
    assert first["imaging.Image"] > 0 and first["imaging.Measurement"] > 0
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


#: The phantom size each measurement type was drawn on.
_DRAWN = {
    "interosseous-thickness": "muscle_mm",
    "neuroma-diameter": "neuroma_mm",
    "mtp1-jsw-medial": "medial_mm",
    "mtp1-jsw-lateral": "lateral_mm",
}


@pytest.mark.django_db
def test_the_story_images_are_filed_measured_and_marked_on_their_phantoms() -> None:
    from stride.core import imaging
    from stride.demo.images import index_date
    from stride.demo.stories import stories
    from stride.imaging import services
    from stride.imaging.models import Annotation, Image, Measurement
    from stride.patients.models import Patient

    counts = load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    assert counts["story patients"] == 3
    told = {s.patient["record_number"]: s for s in stories(Patient.objects.first().clinic.today())}
    assert sorted(Image.objects.values_list("patient__record_number", "modality")) == [
        *[("LFA-1001", "US")] * 4,
        *[("LFA-1002", "DX")] * 2,
    ]
    checked = 0
    for record, story in told.items():
        patient = Patient.objects.get(record_number=record)
        index = index_date(story)
        for spec in story.images:
            taken_on = index + dt.timedelta(days=spec["day"])
            image = Image.objects.get(patient=patient, acquired_on=taken_on, laterality=spec["laterality"])
            assert image.condition.patient_id == patient.pk and image.site.code == spec["site"]
            assert image.view == spec["view"] and image.note == spec["note"]
            assert image.frames == spec["phantom"].get("frames", 1) and image.from_dicom_spacing
            # The file names the story patient, as the upload's identity check requires.
            info = imaging.inspect(services.original_bytes(image))
            assert info.patient_id == record and info.patient_birth_date == patient.date_of_birth
            assert info.patient_name == f"{patient.family_name}^{patient.given_name}"
            pixel_mm = max(image.spacing_row_mm, image.spacing_col_mm)
            stored = {m.type_code: m for m in image.measurements.all()}
            assert set(stored) == {m["type"] for m in spec["measurements"]}
            for wanted in spec["measurements"]:
                measurement = stored[wanted["type"]]
                assert measurement.site.code == wanted["site"]
                assert measurement.qualifiers == wanted.get("qualifiers", {})
                if "value" in wanted:
                    assert (measurement.unit, measurement.value) == ("grade", wanted["value"])
                    continue
                drawn = spec["phantom"][_DRAWN[wanted["type"]]]
                assert measurement.unit == "mm" and measurement.calibrated and measurement.tool == "line"
                assert abs(measurement.value - drawn) <= pixel_mm, (record, wanted["type"])
                checked += 1
            assert len(image.annotations.all()) == len(spec["annotations"])
    assert checked == 6 + 4  # the ultrasound lines (4 thickness, 2 neuroma) and the X-ray widths

    def values(record: str, code: str) -> list[float]:
        rows = Measurement.objects.filter(image__patient__record_number=record, type_code=code)
        return list(rows.order_by("image__acquired_on", "image__laterality").values_list("value", flat=True))

    # Left (wasted, then recovered) against right, before and after; the neuroma smaller after.
    before_left, before_right, after_left, after_right = values("LFA-1001", "interosseous-thickness")
    assert before_left < 0.6 * before_right and after_left > 1.5 * before_left
    assert abs(after_left - after_right) / after_right < 0.1  # within the measurement error
    neuroma_before, neuroma_after = values("LFA-1001", "neuroma-diameter")
    assert neuroma_before > 5.5 and neuroma_after < neuroma_before - 1
    # The runner: the medial joint space narrower than the lateral before, wider after treatment.
    medial_before, medial_after = values("LFA-1002", "mtp1-jsw-medial")
    lateral_before, _ = values("LFA-1002", "mtp1-jsw-lateral")
    assert medial_before < lateral_before and medial_after > medial_before
    assert sorted(Annotation.objects.values_list("kind", "text")) == [
        ("arrow", "Neuroma"),
        ("text", "Medial space narrowed"),
    ]
    # Every image renders; the clip's chosen frame is its first.
    clip = Image.objects.get(frames__gt=1)
    assert clip.frame == 0
    for image in Image.objects.all():
        assert services.rendition(image, size="thumb").startswith(b"\x89PNG")
