"""Synthetic patients: the pure generator and the `stride synth` command."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import random
import statistics
from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from stride.core import injectates, rules, scoring, synth
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.core.catalog import catalog, resolve_condition_codes

TODAY = dt.date(2026, 3, 15)
CLINICS = ["lakeside", "harbour"]
STAFF = {"lakeside": ["alice", "bob"], "harbour": ["olga"]}

#: What each condition may be treated with (DOMAIN.md's ladders and protocols).
PROCEDURES = {
    "morton-neuroma": {
        "digital-nerve-steroid",
        "digital-nerve-alcohol",
        "perineural-platelet-lysate",
        "prp-injection",
        "neurectomy",
    },
    "foot-muscle-wasting": {"prp-injection", "perineural-platelet-lysate"},
    "hallux-rigidus": {
        "small-joint-injection",
        "small-joint-injection-us",
        "bmc-injection",
        "prolotherapy",
        "cheilectomy",
        "mtp-arthrodesis",
    },
    "ankle-instability": {
        "prolotherapy",
        "bmc-injection",
        "prp-injection",
        "lateral-ligament-repair",
    },
    "ankle-instability-ligamentous": {
        "prolotherapy",
        "bmc-injection",
        "prp-injection",
        "lateral-ligament-repair",
    },
    "ankle-sprain": {"prp-injection", "prolotherapy", "ligament-injection"},
    "plantar-fasciitis": {"ligament-injection", "prp-injection"},
    "achilles-tendinopathy": {"tendon-insertion-injection", "prp-injection", "prolotherapy"},
}
for _oa in ("ankle-oa-primary", "ankle-oa-post-traumatic", "ankle-oa-secondary"):
    PROCEDURES[_oa] = {
        "ankle-joint-injection",
        "ankle-joint-injection-us",
        "prp-injection",
        "bmc-injection",
        "ankle-arthrodesis",
    }


def generate(seed: int = 7, n: int = 200, today: dt.date = TODAY) -> list[synth.SynthPatient]:
    return list(synth.generate(seed, n, CLINICS, today, STAFF))


# --------------------------------------------------------------------------- the pure generator


def test_the_same_seed_gives_the_same_patients_and_another_seed_others() -> None:
    first = generate(seed=7)
    assert first == generate(seed=7)
    other = generate(seed=8)
    assert first != other
    assert {p.record_number for p in first}.isdisjoint(p.record_number for p in other)


def test_the_first_patients_do_not_depend_on_how_many_are_asked_for() -> None:
    assert generate(n=200)[:50] == generate(n=50)


def test_record_numbers_encode_the_seed_and_are_unique_and_clinics_take_turns() -> None:
    patients = generate(seed=42, n=120)
    numbers = [p.record_number for p in patients]
    assert len(set(numbers)) == len(numbers)
    assert numbers[0] == "S42-000001" and numbers[-1] == "S42-000120"
    assert all(n.startswith(synth.record_prefix(42)) for n in numbers)
    assert Counter(p.clinic for p in patients) == {"lakeside": 60, "harbour": 60}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_generated_record_passes_the_core_rules(seed: int) -> None:
    cat = catalog()
    for patient in generate(seed=seed):
        synth.check_patient(patient, TODAY, cat)  # every rule at once; then the main ones by hand
        born = patient.date_of_birth
        rules.birth_date(born, TODAY)
        assert patient.sex in {"female", "male", "other", "unknown"}
        assert patient.activity_level in {"sedentary", "recreational", "competitive", ""}
        if patient.height_cm is not None:
            assert 50 <= patient.height_cm <= 250 and 20 <= patient.weight_kg <= 350
        consent = patient.consent
        rules.event_date(consent.consented_on, "consented_on", "consent", born=born, today=TODAY)
        if consent.withdrawn_on:
            assert consent.consented_on <= consent.withdrawn_on <= TODAY
        assert 1 <= len(patient.conditions) <= 2
        for c in patient.conditions:
            condition = cat.conditions[c.condition_type]
            resolve_condition_codes(
                condition, c.laterality, site=c.site, episode=c.episode, qualifiers=c.qualifiers
            )
            assert c.site in condition.sites
            assert c.laterality != "bilateral" or condition.allows_bilateral
            assert bool(c.episode) == (condition.seventh_character or bool(c.qualifiers))
            assert born <= c.onset_date <= TODAY
        for h in patient.history:
            assert h.treatment in cat.treatments
            assert born <= h.started_on <= TODAY
            assert h.relief_weeks is None or h.response in {"partial", "full"}
        for p in patient.procedures:
            condition = patient.conditions[p.condition]
            assert p.procedure_type in PROCEDURES[condition.condition_type], p
            rules.procedure_side(p.laterality, condition.laterality)
            assert p.laterality in {"left", "right"}
            assert max(born, condition.onset_date) <= p.performed_on <= TODAY
            assert p.clinician in STAFF[patient.clinic]
            allowed = cat.procedures[p.procedure_type].injectates
            for i in p.injectates:
                assert i.kind in allowed
                drug_kind = cat.drugs[i.drug].group if i.drug else None
                injectates.validate(i.kind, i.values(), drug_kind=drug_kind)
            for e in p.adverse_events:
                assert e.kind in cat.adverse_events
                assert p.performed_on <= e.onset_date <= TODAY
                assert e.resolved_on is None or e.onset_date <= e.resolved_on <= TODAY


def test_nothing_is_dated_after_today_even_for_a_registry_started_long_ago() -> None:
    for patient in generate(seed=11, today=dt.date(1990, 1, 1)):
        synth.check_patient(patient, dt.date(1990, 1, 1))


def test_the_distributions_are_plausible() -> None:
    patients = generate(seed=5, n=3000)
    conditions = [c for p in patients for c in p.conditions]
    procedures = [x for p in patients for x in p.procedures]

    two = sum(len(p.conditions) == 2 for p in patients) / len(patients)
    assert 0.1 < two < 0.3  # most patients have one condition, some two

    def ages(code: str) -> list[int]:
        return [
            rules.age_on(p.date_of_birth, p.consent.consented_on)
            for p in patients
            if p.conditions[0].condition_type == code
        ]

    neuroma = [p for p in patients if p.conditions[0].condition_type == "morton-neuroma"]
    assert sum(p.sex == "female" for p in neuroma) / len(neuroma) > 0.7
    assert 45 <= statistics.median(ages("morton-neuroma")) <= 58
    assert 25 <= statistics.median(ages("ankle-instability")) <= 40
    assert 45 <= statistics.median(ages("plantar-fasciitis")) <= 56
    assert 45 <= statistics.median(ages("hallux-rigidus")) <= 60

    bmis = [synth.anthropometry.bmi(p.height_cm, p.weight_kg) for p in patients if p.height_cm]
    assert 25 <= statistics.mean(bmis) <= 28
    assert 3 <= statistics.stdev(bmis) <= 5.5

    withdrawn = sum(p.consent.withdrawn_on is not None for p in patients) / len(patients)
    assert 0.01 < withdrawn < 0.05
    events = sum(len(x.adverse_events) for x in procedures) / len(procedures)
    assert 0.015 < events < 0.05
    assert {c.condition_type for c in conditions} == set(catalog().conditions)
    assert any(c.laterality == "bilateral" for c in conditions)
    assert any(c.qualifiers == ("steroid-induced",) for c in conditions)
    assert any(x.procedure_type == "neurectomy" for x in procedures)


# --------------------------------------------------------------------------- follow-up (pure)


def _closed(patients: list[synth.SynthPatient], today: dt.date = TODAY):
    """(patient, episode, follow-up, window) of every follow-up whose window closed by ``today``."""
    plan = core_schedule.schedule()
    for p in patients:
        for e in p.episodes:
            for f, window in zip(e.follow_ups, plan.windows(e.index_date), strict=True):
                if window.accepts_until < today and f.status in ("completed", "missed"):
                    yield p, e, f, window


def test_the_same_seed_gives_the_same_follow_up_and_outcomes_leave_the_clinical_record_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = generate(seed=7)
    assert [p.episodes for p in first] == [p.episodes for p in generate(seed=7)]
    assert sum(len(p.episodes) for p in first) > 100
    # Outcomes draw from a stream of their own: without them, every clinical record is the same.
    monkeypatch.setattr(synth._Outcomes, "episodes", lambda self, *args: ())
    bare = generate(seed=7)
    assert all(not p.episodes for p in bare)
    assert [dataclasses.replace(p, episodes=()) for p in first] != bare  # the index marks differ
    unmarked = [
        dataclasses.replace(
            p, episodes=(), procedures=tuple(dataclasses.replace(x, is_index=False) for x in p.procedures)
        )
        for p in first
    ]
    assert unmarked == bare


def test_index_treatments_start_episodes_per_condition() -> None:
    patients = generate(seed=3, n=600)
    episodes = [(p, e) for p in patients for e in p.episodes]
    assert len(episodes) > 400
    kinds = Counter()
    for p, e in episodes:
        index = p.procedures[e.procedure]
        assert index.is_index and index.condition == e.condition and index.performed_on == e.index_date
        names = {i.kind for i in index.injectates}
        if "steroid" in names:
            kinds["steroid"] += 1
        elif names:
            kinds["regenerative"] += 1
        else:
            kinds["surgery"] += 1
        injections = [
            x
            for x in p.procedures
            if x.condition == e.condition
            and {i.kind for i in x.injectates} & {"steroid", "prp", "platelet-lysate", "bmc", "dextrose"}
        ]
        if names and injections[0] is not index:  # only dextrose primers may come before the index
            assert index.procedure_type == "bmc-injection"
            assert all(x.procedure_type == "prolotherapy" for x in injections[: injections.index(index)])
        if e.end_reason == "new-index":
            later = [x for x in p.episodes if x.condition == e.condition and x.index_date == e.ended_on]
            assert len(later) == 1
    assert kinds["steroid"] and kinds["regenerative"] and kinds["surgery"]
    # the ankle course: the bone-marrow concentrate after the dextrose primers is the index
    course = [
        (p, e)
        for p, e in episodes
        if p.procedures[e.procedure].procedure_type == "bmc-injection"
        and any(
            x.procedure_type == "prolotherapy"
            and x.condition == e.condition
            and x.performed_on < e.index_date
            for x in p.procedures
        )
    ]
    assert course
    # a patient who withdrew is followed no further
    withdrawn = [(p, e) for p, e in episodes if p.consent.withdrawn_on is not None]
    assert any(e.end_reason == "withdrawn" and e.ended_on == p.consent.withdrawn_on for p, e in withdrawn)


def test_follow_ups_follow_the_schedule_and_their_answers_are_valid() -> None:
    plan = core_schedule.schedule()
    library = core_instruments.library()
    statuses = Counter()
    for p in generate(seed=2, n=400):
        synth.check_follow_up(p, TODAY)  # every rule at once; then the main ones by hand
        for e in p.episodes:
            code = p.conditions[e.condition].condition_type
            windows = plan.windows(e.index_date)
            assert [f.timepoint for f in e.follow_ups] == [w.timepoint for w in windows]
            for f, window in zip(e.follow_ups, windows, strict=True):
                statuses[f.status] += 1
                if f.status in ("completed", "missed", "due", "pending"):
                    assert window.state(TODAY, completed=f.status == "completed") == f.status or (
                        f.status == "missed" and e.ended_on is not None
                    )
                if f.status != "completed":
                    assert not f.responses
                    continue
                assert window.opens <= f.collected_on <= min(window.accepts_until, TODAY)
                instruments = [a.instrument for a in f.responses]
                assert instruments == list(
                    plan.instruments_for(code, f.timepoint, lambda c: library[c].baseline)
                )
                assert (f.timepoint == "baseline") == ("percent-improvement" not in instruments)
                for answer_set in f.responses:
                    definition = library[answer_set.instrument]
                    result = scoring.score(definition, list(answer_set.answers))
                    for scale, score in result.scales.items():
                        low, high = definition.scales[scale].range
                        assert score.valid and low <= score.value <= high, (answer_set, scale)
    assert {"completed", "missed", "due", "pending", "cancelled"} <= set(statuses)


def test_response_rates_fall_with_time_and_answering_before_makes_answering_likelier() -> None:
    patients = generate(seed=5, n=900)
    answered: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    after: Counter[tuple[bool, bool]] = Counter()
    for _p, _e, f, _window in _closed(patients):
        closed[f.timepoint] += 1
        answered[f.timepoint] += f.status == "completed"
    rates = {tp: answered[tp] / closed[tp] for tp in closed}
    assert 0.75 <= rates["baseline"] <= 0.95
    assert 0.58 <= rates["1m"] <= 0.82
    assert 0.45 <= rates["3m"] <= 0.75
    assert 0.35 <= rates["6m"] <= 0.65
    assert 0.25 <= rates["12m"] <= 0.55
    assert 0.15 <= rates["24m"] <= 0.45
    assert rates["baseline"] > rates["3m"] > rates["12m"]
    for p in patients:
        for e in p.episodes:
            points = {f.timepoint: f.status for f in e.follow_ups}
            if points["1m"] in ("completed", "missed") and points["3m"] in ("completed", "missed"):
                after[(points["1m"] == "completed", points["3m"] == "completed")] += 1
    likely = after[(True, True)] / (after[(True, True)] + after[(True, False)])
    unlikely = after[(False, True)] / (after[(False, True)] + after[(False, False)])
    assert likely > unlikely + 0.1


def test_contacts_come_before_the_answers_and_stop_at_withdrawal() -> None:
    patients = generate(seed=6, n=700)
    kinds: Counter[tuple[str, str, str]] = Counter()
    for p, e, f, window in _closed(patients):
        start = max(window.opens, p.consent.consented_on)
        reachable = p.consent.withdrawn_on is None or p.consent.withdrawn_on >= e.index_date
        if reachable and start <= window.closes and e.ended_on is None:
            assert f.contacts and f.contacts[0].kind == "invitation"  # every past time point is invited
            assert f.contacts[0].day == start
        answered = f.collected_on
        for c in f.contacts:
            kinds[(c.kind, c.state, c.outcome)] += 1
            if answered is not None:
                assert c.day <= answered
            if p.consent.withdrawn_on is not None:
                assert c.day < p.consent.withdrawn_on
        reminded = any(c.kind == "reminder" for c in f.contacts)
        if answered is not None and answered <= start + dt.timedelta(days=3):
            assert not reminded  # answered before the reminder's day: never reminded
    assert kinds[("invitation", "sent", "sent")] and kinds[("reminder", "sent", "sent")]
    assert kinds[("invitation", "failed", "no-email")]
    assert kinds[("phone-call", "done", "reached")] and kinds[("phone-call", "done", "no-answer")]
    assert kinds[("letter", "done", "letter-sent")]
    assert kinds[("phone-call", "cancelled", "window-closed")]
    invitations = sum(n for (kind, _, _), n in kinds.items() if kind == "invitation")
    calls = sum(n for (kind, _, _), n in kinds.items() if kind == "phone-call")
    assert calls < invitations  # the coordinator phones some, not all


def test_outcomes_differ_by_treatment_steroid_relief_fades() -> None:
    by_kind: dict[tuple[str, str], list[int]] = {}
    for p in generate(seed=8, n=2500):
        for e in p.episodes:
            names = {i.kind for i in p.procedures[e.procedure].injectates}
            kind = "steroid" if "steroid" in names else ("regenerative" if names else "surgery")
            for f in e.follow_ups:
                for answer_set in f.responses:
                    if answer_set.instrument == "percent-improvement":
                        by_kind.setdefault((kind, f.timepoint), []).append(answer_set.answers[0])
    mean = {key: statistics.mean(values) for key, values in by_kind.items()}
    assert mean[("steroid", "1m")] > mean[("steroid", "6m")] + 10  # relief fades by 3-6 months
    assert mean[("regenerative", "6m")] > mean[("steroid", "6m")] + 15
    assert mean[("surgery", "12m")] > mean[("surgery", "1m")] + 20  # slow after an operation
    six = by_kind[("regenerative", "6m")]
    assert 0.3 < sum(v >= 50 for v in six) / len(six) < 0.85  # responders and non-responders
    assert any(v < 0 for v in six)  # some are worse


@pytest.mark.parametrize("code", ["faam-adl", "faam-sports", "lefs", "faos", "cait", "nprs", "sane"])
def test_answers_at_a_level_respect_each_scale_s_direction(code: str) -> None:
    definition = core_instruments.instrument(code)

    def scores(level: float, pattern: int = 0) -> dict[str, float]:
        answers = synth.answers_at(code, level, pattern)
        result = scoring.score(definition, list(answers))
        return {scale: s.value for scale, s in result.scales.items()}

    for scale, value in scores(0.0).items():
        worst, best = definition.scales[scale].range
        if not definition.scales[scale].higher_is_better:
            worst, best = best, worst
        assert value == worst and scores(1.0)[scale] == best
    # better answers score better, whichever way the items are coded
    ladder = [scores(level) for level in (0.1, 0.3, 0.5, 0.7, 0.9)]
    for scale in ladder[0]:
        values = [s[scale] for s in ladder]
        if definition.scales[scale].higher_is_better:
            assert values == sorted(values) and values[0] < values[-1]
        else:
            assert values == sorted(values, reverse=True) and values[0] > values[-1]
    # patterns spread the same total differently
    if len(definition.items) > 4:
        assert synth.answers_at(code, 0.5, 1) != synth.answers_at(code, 0.5, 2)
        assert scores(0.5, 1) == scores(0.5, 2)
    assert synth.answers_at(code, 0.5) == synth.answers_at(code, 0.5)


def test_answers_at_takes_a_level_per_scale() -> None:
    levels = {"symptoms": 0.9, "pain": 0.8, "adl": 1.0, "sport": 0.2, "qol": 0.0}
    result = scoring.score(core_instruments.instrument("faos"), list(synth.answers_at("faos", levels)))
    values = {scale: s.value for scale, s in result.scales.items()}
    assert values["adl"] == 100 and values["qol"] == 0 and values["sport"] == 20
    with pytest.raises(synth.Invalid, match="No level for scale 'pain' of faos"):
        synth.answers_at("faos", {"symptoms": 0.5})


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(synth.Invalid):
        list(synth.generate(1, 5, [], TODAY))
    with pytest.raises(synth.Invalid):
        list(synth.generate(1, 5, ["a", "a"], TODAY))


# --------------------------------------------------------------------------- the command


def _models() -> list[type]:
    from stride.care.models import AdverseEvent, Condition, Injectate, Procedure, TreatmentHistory
    from stride.patients.models import Consent, Patient

    return [Patient, Consent, Condition, TreatmentHistory, Procedure, Injectate, AdverseEvent]


def _outcome_models() -> list[type]:
    from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score

    return [Episode, FollowUp, QuestionnaireResponse, Score, Contact]


def _table_counts() -> dict[str, int]:
    from stride.audit.models import AuditEntry
    from stride.clinics.models import Clinic, Membership, User

    return {
        m.__name__: m.objects.count()
        for m in [*_models(), *_outcome_models(), Clinic, User, Membership, AuditEntry]
    }


def _synth(*args: str) -> str:
    out = io.StringIO()
    call_command("synth", *args, "--no-progress", stdout=out)
    return out.getvalue()


@pytest.fixture
def clinics(db: None) -> list[object]:
    from stride.clinics.models import Clinic

    return [
        Clinic.objects.create(name="Lakeside", slug="lakeside", time_zone="America/Los_Angeles"),
        Clinic.objects.create(name="Harbour", slug="harbour", time_zone="Europe/London"),
    ]


@pytest.mark.django_db
def test_the_command_writes_what_the_generator_generates(clinics: list[object]) -> None:
    from stride.audit.models import AuditEntry
    from stride.care.models import AdverseEvent, Condition, Injectate, Procedure, TreatmentHistory
    from stride.clinics.models import Membership
    from stride.patients.models import Consent, Patient

    output = _synth("--patients", "80", "--seed", "5")

    today = min(c.today() for c in clinics)
    staff = {
        c.slug: sorted(
            Membership.objects.filter(clinic=c, role="clinician").values_list("user__username", flat=True)
        )
        for c in clinics
    }
    expected = list(synth.generate(5, 80, ["harbour", "lakeside"], today, staff))
    procedures = [x for p in expected for x in p.procedures]
    assert Patient.objects.count() == Consent.objects.count() == 80
    assert Patient.objects.filter(clinic__slug="harbour").count() == 40
    assert Condition.objects.count() == sum(len(p.conditions) for p in expected)
    assert TreatmentHistory.objects.count() == sum(len(p.history) for p in expected)
    assert Procedure.objects.count() == len(procedures)
    assert Injectate.objects.count() == sum(len(x.injectates) for x in procedures)
    assert AdverseEvent.objects.count() == sum(len(x.adverse_events) for x in procedures)
    assert set(Patient.objects.values_list("record_number", flat=True)) == {p.record_number for p in expected}

    from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score

    episodes = [e for p in expected for e in p.episodes]
    follow_ups = [f for e in episodes for f in e.follow_ups]
    assert Procedure.objects.filter(is_index=True).count() == len(episodes) == Episode.objects.count()
    assert FollowUp.objects.count() == len(follow_ups)
    assert QuestionnaireResponse.objects.count() == sum(len(f.responses) for f in follow_ups)
    assert Contact.objects.count() == sum(len(f.contacts) for f in follow_ups)
    assert Score.objects.count() >= QuestionnaireResponse.objects.count() > 0

    assert "Added 80 synthetic patients (seed 5)" in output
    summary = dict(line.rsplit(None, 1) for line in output.splitlines()[1:])
    summary = {what.strip(): int(n.replace(",", "")) for what, n in summary.items()}
    assert summary["procedures"] == len(procedures)
    assert summary["injectates"] == Injectate.objects.count()
    assert summary["history"] == TreatmentHistory.objects.count()
    assert summary["episodes"] == len(episodes)
    assert summary["follow-ups"] == len(follow_ups)
    assert summary["responses"] == QuestionnaireResponse.objects.count()
    assert summary["scores"] == Score.objects.count()
    assert summary["contacts"] == Contact.objects.count()

    # one bulk audit entry for the run, none per row
    entry = AuditEntry.objects.get(action="bulk")
    assert entry.detail["command"] == "synth"
    assert entry.detail["patients"] == 80 and entry.detail["seed"] == 5
    assert entry.detail["clinics"] == ["harbour", "lakeside"]
    assert entry.channel == "cli"
    assert not AuditEntry.objects.filter(model="patients.Patient").exists()


@pytest.mark.django_db
def test_clinics_without_a_clinician_get_synthetic_ones_who_cannot_log_in(
    clinics: list[object],
) -> None:
    from stride.care.models import Procedure
    from stride.clinics.models import Membership, User

    real = User.objects.create_user(username="alice", password="correct horse battery")
    Membership.objects.create(user=real, clinic=clinics[0], role="clinician")
    _synth("-n", "60", "--seed", "3")

    synthetic = User.objects.filter(username__startswith="synth-")
    assert synthetic.exists()
    assert not any(u.has_usable_password() for u in synthetic)
    assert set(Membership.objects.filter(user__in=synthetic).values_list("clinic__slug", "role")) == {
        ("harbour", "clinician")
    }
    for procedure in Procedure.objects.select_related("patient", "clinician"):
        assert procedure.clinician is not None
        assert Membership.objects.filter(
            user=procedure.clinician, clinic=procedure.patient.clinic_id, role="clinician"
        ).exists()
    lakeside = Procedure.objects.filter(patient__clinic=clinics[0])
    assert set(lakeside.values_list("clinician__username", flat=True)) == {"alice"}


@pytest.mark.django_db
def test_a_sample_of_written_rows_passes_full_clean(clinics: list[object]) -> None:
    _synth("-n", "150", "--seed", "9")
    pick = random.Random(0)
    for model in [*_models(), *_outcome_models()]:
        ids = list(model.objects.values_list("pk", flat=True))
        assert ids or model.__name__ == "AdverseEvent", model
        for pk in pick.sample(ids, min(25, len(ids))):
            obj = model.objects.get(pk=pk)
            stored = (
                (obj.icd10_code, obj.additional_icd10, obj.snomed_code)
                if model.__name__ == "Condition"
                else None
            )
            try:
                obj.full_clean()
            except ValidationError as exc:
                # Procedure.clean refuses to re-validate an index treatment once a later one (a
                # surgery after the injection) exists on the condition; that later one is valid.
                assert model.__name__ == "Procedure" and set(exc.message_dict) == {"is_index"}
                assert model.objects.filter(
                    condition=obj.condition, is_index=True, performed_on__gt=obj.performed_on
                ).exists()
            if stored is not None:  # the codes written in bulk are those save() would derive
                assert (obj.icd10_code, obj.additional_icd10, obj.snomed_code) == stored


@pytest.mark.django_db
def test_adverse_events_written_pass_full_clean(clinics: list[object]) -> None:
    from stride.care.models import AdverseEvent

    _synth("-n", "200", "--seed", "4")
    events = list(AdverseEvent.objects.all())
    assert events
    for event in events:
        event.full_clean()


@pytest.mark.django_db
def test_the_same_seed_twice_is_refused_and_writes_nothing(clinics: list[object]) -> None:
    _synth("-n", "20", "--seed", "12")
    before = _table_counts()
    with pytest.raises(
        CommandError, match="seed 12 already exist in clinic 'lakeside'; choose another --seed"
    ):
        _synth("-n", "20", "--seed", "12")
    assert _table_counts() == before
    _synth("-n", "20", "--seed", "13")  # another seed is fine
    assert _table_counts()["Patient"] == before["Patient"] + 20


@pytest.mark.django_db
def test_an_unknown_clinic_is_refused_and_nothing_is_written(clinics: list[object]) -> None:
    before = _table_counts()
    with pytest.raises(CommandError, match=r"Unknown clinic 'nowhere' .*harbour, lakeside"):
        _synth("-n", "20", "--clinic", "lakeside", "--clinic", "nowhere")
    assert _table_counts() == before


@pytest.mark.django_db
def test_clinic_restricts_where_patients_go(clinics: list[object]) -> None:
    from stride.patients.models import Patient

    _synth("-n", "30", "--clinic", "lakeside")
    assert set(Patient.objects.values_list("clinic__slug", flat=True)) == {"lakeside"}
    # the same seed may still go to a clinic that does not have it yet
    _synth("-n", "30", "--clinic", "harbour")
    assert Patient.objects.filter(clinic__slug="harbour").count() == 30


@pytest.mark.django_db
def test_without_any_clinic_a_synthetic_clinic_is_created() -> None:
    from stride.clinics.models import Clinic
    from stride.patients.models import Patient

    _synth("-n", "20")
    clinic = Clinic.objects.get()
    assert (clinic.name, clinic.slug) == ("Synthetic Clinic", "synthetic")
    assert Patient.objects.filter(clinic=clinic).count() == 20


@pytest.mark.django_db
@pytest.mark.parametrize("patients", ["0", "1000001", "many"])
def test_a_bad_number_of_patients_is_refused(clinics: list[object], patients: str) -> None:
    with pytest.raises(CommandError, match="patients"):
        _synth("--patients", patients)


@pytest.mark.django_db
def test_progress_is_reported_in_increments_that_add_up(clinics: list[object]) -> None:
    from stride.demo import synth_writer

    steps: list[int] = []
    counts = synth_writer.write_synthetic(patients=45, seed=21, progress=steps.append)
    assert sum(steps) == counts["patients"] == 45
    assert synth_writer.seed_exists(21) and not synth_writer.seed_exists(22)
    assert synth_writer.seed_exists(21, ["lakeside"])


# --------------------------------------------------------------------------- follow-up (written)


@pytest.mark.django_db
def test_follow_up_is_written_as_the_schedule_and_the_worker_see_it(clinics: list[object]) -> None:
    from stride.outcomes.models import Episode, FollowUp
    from stride.outcomes.worker import Worker

    _synth("-n", "200", "--seed", "14")
    today = min(c.today() for c in clinics)
    plan = core_schedule.schedule()
    episodes = Episode.objects.select_related("index_procedure", "condition__condition_type")
    assert episodes.exists()
    for episode in episodes:
        assert episode.index_procedure.is_index
        assert episode.index_procedure.condition_id == episode.condition_id
        assert episode.index_procedure.performed_on == episode.index_date
        assert episode.schedule_version == plan.version
        follow_ups = list(episode.follow_ups.order_by("due_on"))
        windows = plan.windows(episode.index_date)
        assert [f.window for f in follow_ups] == windows
        code = episode.condition.condition_type.code
        for f in follow_ups:
            expected = plan.instruments_for(
                code, f.timepoint, lambda c: core_instruments.library()[c].baseline
            )
            assert f.instruments == list(expected)
            if episode.ended_on is None:
                assert f.status == f.window.state(today, completed=f.status == "completed")
            assert (f.completed_at is not None) == (f.status == "completed")
    # a worker pass finds nothing to open or to close: the states are today's
    counts = Worker().run_once()
    assert counts["opened"] == counts["missed"] == 0
    assert FollowUp.objects.filter(status="due").exists()


@pytest.mark.django_db
def test_written_scores_are_valid_in_range_and_those_of_the_pure_scorer(clinics: list[object]) -> None:
    from django.db.models import Max, Min

    from stride.outcomes.models import QuestionnaireResponse, Score

    _synth("-n", "250", "--seed", "15")
    library = core_instruments.library()
    assert not Score.objects.filter(valid=False).exists()
    assert not Score.objects.filter(value__isnull=True).exists()
    for row in Score.objects.values("instrument", "scale").annotate(low=Min("value"), high=Max("value")):
        low, high = library[row["instrument"]].scales[row["scale"]].range
        assert low <= row["low"] <= row["high"] <= high, row
    responses = list(QuestionnaireResponse.objects.prefetch_related("scores").order_by("pk"))
    assert responses
    for response in random.Random(1).sample(responses, 60):
        definition = library[response.instrument]
        assert response.status == "completed" and response.instrument_version == definition.version
        assert response.flags == list(response.follow_up.window.flags_for(response.collected_on))
        result = scoring.score(definition, response.answers)
        stored = {
            s.scale: (s.value, s.valid, s.answered, s.not_applicable, s.missing, s.policy)
            for s in response.scores.all()
        }
        assert stored == {
            scale: (s.value, s.valid, s.answered, s.na, s.missing, result.policy)
            for scale, s in result.scales.items()
        }


@pytest.mark.django_db
def test_written_follow_up_is_deterministic(clinics: list[object]) -> None:
    from stride.demo import synth_writer
    from stride.outcomes.models import Contact, QuestionnaireResponse

    def outcomes(clinic: str) -> list[tuple[object, ...]]:
        answers = QuestionnaireResponse.objects.filter(patient__clinic__slug=clinic).values_list(
            "patient__record_number",
            "follow_up__timepoint",
            "instrument",
            "answers",
            "collected_on",
            "source",
        )
        contacts = Contact.objects.filter(follow_up__patient__clinic__slug=clinic).values_list(
            "follow_up__patient__record_number", "follow_up__timepoint", "kind", "state", "outcome", "due_at"
        )
        return sorted(answers) + sorted(contacts)

    day = dt.date(2026, 3, 15)
    synth_writer.write_synthetic(patients=60, seed=16, clinic_slugs=["lakeside"], today=day)
    synth_writer.write_synthetic(patients=60, seed=16, clinic_slugs=["harbour"], today=day)
    first = outcomes("lakeside")
    assert first and first == outcomes("harbour")
