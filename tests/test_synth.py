"""Synthetic patients: the pure generator and the `stride synth` command."""

from __future__ import annotations

import datetime as dt
import io
import random
import statistics
from collections import Counter

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from stride.core import injectates, rules, synth
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


def _table_counts() -> dict[str, int]:
    from stride.audit.models import AuditEntry
    from stride.clinics.models import Clinic, Membership, User

    return {
        m.__name__: m.objects.count() for m in [*_models(), Clinic, User, Membership, AuditEntry]
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
            Membership.objects.filter(clinic=c, role="clinician").values_list(
                "user__username", flat=True
            )
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
    assert set(Patient.objects.values_list("record_number", flat=True)) == {
        p.record_number for p in expected
    }

    assert "Added 80 synthetic patients (seed 5)" in output
    summary = dict(line.rsplit(None, 1) for line in output.splitlines()[1:])
    summary = {what.strip(): int(n.replace(",", "")) for what, n in summary.items()}
    assert summary["procedures"] == len(procedures)
    assert summary["injectates"] == Injectate.objects.count()
    assert summary["history"] == TreatmentHistory.objects.count()

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
    assert set(
        Membership.objects.filter(user__in=synthetic).values_list("clinic__slug", "role")
    ) == {("harbour", "clinician")}
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
    for model in _models():
        ids = list(model.objects.values_list("pk", flat=True))
        assert ids or model.__name__ == "AdverseEvent", model
        for pk in pick.sample(ids, min(25, len(ids))):
            obj = model.objects.get(pk=pk)
            stored = (
                (obj.icd10_code, obj.additional_icd10, obj.snomed_code)
                if model.__name__ == "Condition"
                else None
            )
            obj.full_clean()
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
