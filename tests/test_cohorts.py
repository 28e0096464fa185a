"""Cohorts: definitions checked against the catalog, the right episodes, de-identified rows, flow counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from stride.analytics.dataset import analysis_rows, episodes_for
from stride.analytics.models import SavedCohort
from stride.core.analysis import completeness
from stride.core.cohorts import CohortSpec, describe, parse_spec
from stride.core.errors import Invalid
from stride.outcomes import services
from stride.outcomes.models import Episode
from tests.conftest import make_condition, make_patient

# --------------------------------------------------------------------------- parse_spec (pure)


def test_a_spec_round_trips_and_reads_as_a_sentence() -> None:
    spec = parse_spec(
        {
            "conditions": ["morton-neuroma"],
            "injectate_kinds": ["prp"],
            "leukocytes": ["poor"],
            "age": {"min": 40, "max": 60},
            "bmi": {"max": 30},
            "prior_treatments": ["steroid-injection"],
            "index_dates": {"min": "2025-01-01"},
            "sexes": ["female"],
        }
    )
    assert spec.age.low == 40 and spec.bmi.high == 30.0 and spec.index_dates.low == dt.date(2025, 1, 1)
    assert parse_spec(spec.to_dict()) == spec
    text = describe(spec)
    assert "leukocyte-poor" in text and "40–60" in text and "steroid injection" in text
    assert "withdrew consent" in text
    assert parse_spec({}) == CohortSpec() and CohortSpec().empty


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"conditions": ["mortons"]}, "conditions", "Unknown condition code 'mortons'"),
        ({"injectate_kinds": ["prp", "snake-oil"]}, "injectate_kinds", "'snake-oil'"),
        ({"prior_treatments": ["steroid"]}, "prior_treatments", "Unknown prior treatment code 'steroid'"),
        ({"protocols": ["nope"]}, "protocols", "Unknown protocol code"),
        ({"leukocytes": ["medium"]}, "leukocytes", "Unknown leukocyte content"),
        ({"age": {"min": 60, "max": 40}}, "age", "age range is inverted"),
        ({"bmi": {"min": 35, "max": 20}}, "bmi", "BMI range is inverted"),
        ({"index_dates": {"min": "2025-02-01", "max": "2025-01-01"}}, "index_dates", "inverted"),
        ({"index_dates": {"min": "yesterday"}}, "index_dates", "must be a date"),
        ({"age": {"min": "old"}}, "age", "must be a number"),
        ({"colour": ["red"]}, "colour", "Unknown cohort criterion"),
        ({"leukocytes": ["poor"], "injectate_kinds": ["steroid"]}, "leukocytes", "describe PRP"),
    ],
)
def test_parse_spec_refuses_with_a_clear_message(data: dict, field: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as caught:
        parse_spec(data)
    assert caught.value.field == field


# --------------------------------------------------------------------------- a small registry


def _procedure(condition, on: dt.date, code: str, injectates: list[dict], is_index: bool = True):
    from stride.care.models import Injectate, Procedure, ProcedureType

    procedure = Procedure.objects.create(
        patient=condition.patient,
        condition=condition,
        performed_on=on,
        procedure_type=ProcedureType.objects.get(code=code),
        laterality=condition.laterality,
        image_guidance="ultrasound",
        is_index=is_index,
    )
    for values in injectates:
        Injectate.objects.create(procedure=procedure, **values)
    return procedure


def _treat(condition, on: dt.date, code: str = "prp-injection", injectates: list[dict] | None = None):
    injectates = (
        [{"kind": "prp", "volume_ml": Decimal("3"), "leukocytes": "poor"}]
        if injectates is None
        else injectates
    )
    procedure = _procedure(condition, on, code, injectates)  # an index procedure starts its episode
    return Episode.objects.get(index_procedure=procedure)


def _answer(episode, timepoint: str, value: int, on: dt.date) -> None:
    from stride.outcomes.models import FollowUp

    follow_up = FollowUp.objects.get(episode=episode, timepoint=timepoint)
    services.save_answers(
        patient=episode.condition.patient,
        follow_up=follow_up,
        instrument="nprs",
        version="1",
        answers=[value],
        source="paper",
        submit=True,
        collected_on=on,
    )


@pytest.fixture
def registry(cast):
    """Five treated patients in A, one in B, one who withdrew."""
    from stride.care.models import TreatmentHistory, TreatmentKind
    from stride.patients.models import Consent

    start = dt.date(2025, 1, 15)
    people = {}
    # poor PRP, 55 years old at index, BMI 24.8, had a steroid injection before; answered, then re-treated
    p1 = make_patient(cast.clinic_a, "C-1", date_of_birth=dt.date(1969, 6, 1))
    c1 = make_condition(p1)
    TreatmentHistory.objects.create(
        patient=p1,
        condition=c1,
        treatment=TreatmentKind.objects.get(code="steroid-injection"),
        started_on=dt.date(2024, 6, 1),
    )
    e1 = _treat(c1, start)
    _answer(e1, "baseline", 8, start)
    _answer(e1, "1m", 5, start + dt.timedelta(days=30))
    _answer(e1, "3m", 3, start + dt.timedelta(days=91))
    e1b = _treat(c1, start + dt.timedelta(days=200), code="neurectomy", injectates=[])
    people["poor"] = e1
    people["poor-second"] = e1b
    # rich PRP, 30 years old, obese, competitive
    p2 = make_patient(
        cast.clinic_a,
        "C-2",
        date_of_birth=dt.date(1994, 1, 1),
        weight_kg=Decimal("95"),
        sex="male",
        activity_level="competitive",
    )
    people["rich"] = _treat(
        make_condition(p2), start, injectates=[{"kind": "prp", "volume_ml": 3, "leukocytes": "rich"}]
    )
    # platelet lysate, hallux condition
    p3 = make_patient(cast.clinic_a, "C-3", date_of_birth=dt.date(1960, 1, 1))
    c3 = make_condition(p3, code="hallux-rigidus", laterality="right", site="")
    people["lysate"] = _treat(
        c3, start, code="prp-injection", injectates=[{"kind": "platelet-lysate", "volume_ml": 2}]
    )
    # clinic B
    p4 = make_patient(cast.clinic_b, "B-9")
    people["harbour"] = _treat(make_condition(p4), start)
    # withdrew consent: never seen
    p5 = make_patient(cast.clinic_a, "C-5")
    people["withdrawn"] = _treat(make_condition(p5), start)
    Consent.objects.filter(patient=p5).update(withdrawn_on=dt.date(2025, 6, 1))
    return people


def _ids(spec: dict, clinics=None) -> set[int]:
    return set(episodes_for(parse_spec(spec), clinics).values_list("pk", flat=True))


def test_cohorts_select_the_right_episodes(cast, registry) -> None:
    r = {name: episode.pk for name, episode in registry.items()}
    everyone = {r["poor"], r["poor-second"], r["rich"], r["lysate"], r["harbour"]}
    assert _ids({}) == everyone  # the withdrawn patient never appears
    assert _ids({}, [cast.clinic_a.pk]) == everyone - {r["harbour"]}
    assert _ids({"clinics": ["harbour"]}) == {r["harbour"]}
    assert _ids({"clinics": ["harbour"]}, [cast.clinic_a.pk]) == set()  # the viewer's clinics bound it
    assert _ids({"conditions": ["hallux-rigidus"]}) == {r["lysate"]}
    assert _ids({"injectate_kinds": ["prp"], "leukocytes": ["poor"]}) == {r["poor"], r["harbour"]}
    assert _ids({"leukocytes": ["rich"]}) == {r["rich"]}
    assert _ids({"injectate_kinds": ["platelet-lysate"]}) == {r["lysate"]}
    assert _ids({"procedure_types": ["neurectomy"]}) == {r["poor-second"]}
    assert _ids({"prior_treatments": ["steroid-injection"]}) == {r["poor"], r["poor-second"]}
    assert _ids({"age": {"min": 55, "max": 55}}) == {r["poor"]}  # 55 on 15 Jan 2025, 56 in August
    assert _ids({"age": {"max": 31}}) == {r["rich"]}
    assert _ids({"bmi": {"min": 30}}) == {r["rich"]}  # 95 kg at 1.68 m: 33.7
    assert _ids({"bmi": {"max": 24.8}, "clinics": ["lakeside"]}) == {r["poor"], r["poor-second"], r["lysate"]}
    assert _ids({"sexes": ["male"], "activity_levels": ["competitive"]}) == {r["rich"]}
    assert _ids({"lateralities": ["right"]}) == {r["lysate"]}
    assert _ids({"sites": ["im-space-3"]}) == everyone - {r["lysate"]}
    assert _ids({"index_dates": {"min": "2025-02-01"}}) == {r["poor-second"]}


def test_rows_carry_scores_durability_and_no_identifiers(cast, registry) -> None:
    rows = analysis_rows(parse_spec({"leukocytes": ["poor"]}), [cast.clinic_a.pk], "nprs", "total")
    assert len(rows) == 1
    row = rows[0]
    assert (row.age, row.sex, row.bmi, row.clinic, row.condition) == (
        55,
        "female",
        24.8,
        "lakeside",
        "morton-neuroma",
    )
    assert row.procedure_type == "prp-injection" and row.injectate_kinds == ("prp",)
    assert row.injectates[0].leukocytes == "poor"
    assert row.baseline == 8
    assert row.scores == {"baseline": 8, "1m": 5, "3m": 3, "6m": None, "12m": None, "24m": None, "36m": None}
    assert row.answer_days["1m"] == 30 and row.answer_days["3m"] == 91 and row.answer_days["6m"] is None
    assert row.status["baseline"] == "missed"  # NPRS answered, the other baseline questionnaires not
    assert row.status["24m"] == "cancelled"  # open when the next index treatment ended the episode
    assert (row.retreated_days, row.surgery_days) == (200, 200)
    assert (row.ended_days, row.end_reason, row.last_answer_days, row.censor_days) == (
        200,
        "new-index",
        91,
        200,
    )
    values = [str(v) for v in dataclasses.asdict(row).values()]
    for secret in ("Pat", "Lee", "C-1", "1969", "2025", str(registry["poor"].pk)):
        assert not any(secret == v for v in values), secret
    assert len(row.key) == 16 and row.key != str(registry["poor"].pk)
    later = analysis_rows(parse_spec({"procedure_types": ["neurectomy"]}), None, "nprs", "total")[0]
    assert later.retreated_days is None and later.surgery_days is None and later.end_reason == ""
    assert later.status["1m"] == "missed" and later.status["24m"] == "pending"


def test_rows_refuse_an_unknown_scale(cast, registry) -> None:
    with pytest.raises(Invalid, match="no scale 'pain'"):
        analysis_rows(CohortSpec(), None, "nprs", "pain")


def test_completeness_adds_up(cast, registry) -> None:
    rows = analysis_rows(CohortSpec(), None, "nprs", "total")
    flow = {c.timepoint: c for c in completeness(rows)}
    for c in flow.values():
        assert c.treated == 5
        assert c.treated == c.due + c.not_yet_due + c.withdrawn + c.retreated + c.stopped
        assert c.due == c.answered + c.missed + c.open
    assert flow["baseline"].answered == 1 and flow["baseline"].missed == 4
    assert flow["24m"].retreated == 1 and flow["36m"].not_yet_due == 5 - 1
    assert flow["3m"].as_dict()["answered"] == 1


def test_analysis_rows_use_a_constant_number_of_queries(cast, django_assert_max_num_queries) -> None:
    from stride.care.models import Condition

    start = dt.date(2025, 1, 15)
    for n in range(60):
        patient = make_patient(cast.clinic_a, f"Q-{n}")
        condition = (
            make_condition(patient)
            if n == 0
            else Condition.objects.create(
                patient=patient, condition_type_id=cast.pat_condition.condition_type_id, laterality="left"
            )
        )
        episode = _treat(condition, start)
        if n % 3 == 0:
            _answer(episode, "baseline", 7, start)
    with django_assert_max_num_queries(8):
        rows = analysis_rows(CohortSpec(), [cast.clinic_a.pk], "nprs", "total")
    assert len(rows) == 60 and sum(row.baseline is not None for row in rows) == 20


def test_saved_cohorts_are_seen_in_their_clinics(cast) -> None:
    spec = parse_spec({"conditions": ["morton-neuroma"]})
    mine = SavedCohort.save_for(cast.rita, "Neuroma", spec)
    assert list(mine.clinics.all()) == [cast.clinic_a]
    assert mine.cohort == spec and "Morton" in mine.describe()
    assert list(SavedCohort.objects.visible_to(cast.rita)) == [mine]
    assert list(SavedCohort.objects.visible_to(cast.olga)) == []
    with pytest.raises(Invalid, match="cannot save a cohort for Harbour"):
        SavedCohort.save_for(cast.rita, "Theirs", spec, clinics=[cast.clinic_b])


# --------------------------------------------------------------------------- rows at the edges


def test_rows_of_an_episode_without_procedure_or_follow_ups(cast) -> None:
    """Follow-up started from a date (no index procedure, no injectates), its follow-ups since removed."""
    from stride.core.analysis import timepoints
    from stride.outcomes.models import FollowUp

    episode = services.start_episode(make_condition(make_patient(cast.clinic_a, "E-1")), dt.date(2025, 1, 15))
    FollowUp.objects.filter(episode=episode).delete()
    [row] = analysis_rows(CohortSpec(), [cast.clinic_a.pk], "nprs", "total")
    assert (row.procedure_type, row.procedure_category) == ("", "")
    assert row.injectates == () and row.injectate_kinds == ()
    assert list(row.status) == list(timepoints()) and set(row.status.values()) == {"pending"}
    assert list(row.scores) == list(timepoints()) and set(row.scores.values()) == {None}
    assert set(row.answer_days.values()) == {None} and row.baseline is None
    assert (row.retreated_days, row.surgery_days) == (None, None)
    assert (row.last_answer_days, row.censor_days) == (None, 0)

    Episode.objects.filter(pk=episode.pk).update(ended_on=dt.date(2025, 3, 1), end_reason="stopped")
    [row] = analysis_rows(CohortSpec(), [cast.clinic_a.pk], "nprs", "total")
    assert set(row.status.values()) == {"cancelled"}  # a time point without a follow-up, after the end
    assert (row.ended_days, row.end_reason, row.censor_days) == (45, "stopped", 45)


def test_rows_leave_out_late_answers_and_keep_the_day_of_unscored_ones(cast) -> None:
    from stride.outcomes.models import QuestionnaireResponse, Score

    start = dt.date(2025, 1, 15)
    episode = _treat(make_condition(make_patient(cast.clinic_a, "E-2")), start)
    _answer(episode, "baseline", 8, start)
    _answer(episode, "1m", 5, start + dt.timedelta(days=30))
    _answer(episode, "3m", 3, start + dt.timedelta(days=91))
    at = {"follow_up__episode": episode, "instrument": "nprs"}
    QuestionnaireResponse.objects.filter(follow_up__timepoint="1m", **at).update(flags=["late"])
    Score.objects.filter(response__follow_up__timepoint="3m", response__follow_up__episode=episode).update(
        valid=False
    )
    [row] = analysis_rows(CohortSpec(), [cast.clinic_a.pk], "nprs", "total")
    assert (row.scores["baseline"], row.scores["1m"], row.scores["3m"]) == (8, None, None)
    assert (row.answer_days["1m"], row.answer_days["3m"]) == (None, 91)  # answered, but withheld
    assert row.last_answer_days == 91 and row.censor_days == 91


def test_rows_read_states_the_worker_has_not_moved_as_of_today(cast) -> None:
    """Stored states stay pending until the worker runs; the rows read them as of the day asked for."""
    from stride.outcomes.models import FollowUp

    episode = _treat(make_condition(make_patient(cast.clinic_a, "E-3")), dt.date(2025, 1, 15))
    FollowUp.objects.filter(episode=episode).update(status="pending")  # as if the worker never ran
    rows = {
        day: analysis_rows(CohortSpec(), [cast.clinic_a.pk], "nprs", "total", today=day)[0]
        for day in (dt.date(2025, 3, 20), dt.date(2025, 4, 5))
    }
    march, april = rows[dt.date(2025, 3, 20)], rows[dt.date(2025, 4, 5)]
    assert [march.status[point] for point in ("baseline", "1m", "3m")] == ["missed", "missed", "pending"]
    assert april.status["3m"] == "due" and april.status["6m"] == "pending"


def test_reading_rows_leaves_the_garbage_collector_and_the_connection_as_they_were(cast, is_postgres) -> None:
    import gc

    from django.db import connection

    def jit() -> str | None:
        if not is_postgres:
            return None
        with connection.cursor() as cursor:
            cursor.execute("SHOW jit")
            return cursor.fetchone()[0]

    _treat(make_condition(make_patient(cast.clinic_a, "E-4")), dt.date(2025, 1, 15))
    before = jit()
    assert gc.isenabled()
    assert len(analysis_rows(CohortSpec(), None, "nprs", "total")) == 1
    assert gc.isenabled() and jit() == before
    gc.disable()
    try:
        analysis_rows(CohortSpec(), None, "nprs", "total")
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(Invalid):
        analysis_rows(CohortSpec(), None, "nprs", "pain")
    assert gc.isenabled() and jit() == before
