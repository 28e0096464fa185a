"""Bad input gets a clear message next to its field, and nothing is written."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from stride.audit.models import AuditEntry
from stride.care.models import Condition, ConditionType, Injectate, Procedure, ProcedureType, Site
from stride.patients.models import Consent, Patient
from tests.conftest import make_patient


def _counts() -> tuple[int, ...]:
    return (
        Patient.objects.count(),
        Consent.objects.count(),
        Condition.objects.count(),
        Procedure.objects.count(),
        Injectate.objects.count(),
        AuditEntry.objects.filter(action__in=["create", "update", "delete"]).count(),
    )


def _patient_data(**changes: str) -> dict[str, str]:
    return {
        "clinic": "",
        "record_number": "A-777",
        "given_name": "Robin",
        "family_name": "Hale",
        "date_of_birth": "1980-02-02",
        "sex": "male",
        "email": "",
        "phone": "",
        "height_cm": "180",
        "weight_kg": "80",
        "activity_level": "recreational",
        "notes": "",
    } | changes


def _procedure_data(cast: object, **changes: str) -> dict[str, str]:
    data = {
        "condition": str(cast.pat_condition.pk),
        "performed_on": "2025-06-01",
        "procedure_type": str(ProcedureType.objects.get(code="prp-injection").pk),
        "clinician": str(cast.alice.pk),
        "site": str(Site.objects.get(code="im-space-3").pk),
        "target_note": "",
        "laterality": "left",
        "image_guidance": "ultrasound",
        "candidacy": "good",
        "notes": "",
        "injectates-TOTAL_FORMS": "1",
        "injectates-INITIAL_FORMS": "0",
        "injectates-MIN_NUM_FORMS": "0",
        "injectates-MAX_NUM_FORMS": "6",
        "injectates-0-kind": "prp",
        "injectates-0-volume_ml": "3",
        "injectates-0-platelet_count": "1200",
        "injectates-0-baseline_platelet_count": "250",
        "injectates-0-leukocytes": "poor",
        "injectates-0-activation": "none",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "10",
    }
    return data | changes


@pytest.fixture
def alice(client, cast):
    client.force_login(cast.alice)
    return client


def _post(client, url: str, data: dict[str, str]) -> tuple[int, dict[str, list[str]], str]:
    response = client.post(url, data)
    errors: dict[str, list[str]] = {}
    if response.status_code == 200:
        form = response.context["form"]
        errors = {k: [str(m) for m in v] for k, v in form.errors.items()}
        for name in ("injectates", "events"):
            formset = response.context.get(name)
            if formset is not None:
                for sub in formset.forms:
                    for field, messages in sub.errors.items():
                        errors.setdefault(f"{name}.{field}", []).extend(str(m) for m in messages)
    return response.status_code, errors, response.content.decode()


def test_a_valid_patient_is_registered(alice, cast) -> None:
    status, errors, _ = _post(alice, reverse("patient-create"), _patient_data(clinic=str(cast.clinic_a.pk)))
    assert status == 302, errors
    assert Patient.objects.get(record_number="A-777").bmi == 24.7


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"date_of_birth": "2999-01-01"}, "date_of_birth", "The date of birth is in the future."),
        ({"date_of_birth": "1850-01-01"}, "date_of_birth", "more than 125 years ago"),
        (
            {"record_number": "A-001"},
            "record_number",
            "Another patient of this clinic has this record number.",
        ),
        (
            {"record_number": "a-001"},
            "record_number",
            "Another patient of this clinic has this record number.",
        ),
        ({"height_cm": "20"}, "height_cm", "between 50 and 250 cm"),
        ({"weight_kg": "-3"}, "weight_kg", "between 20 and 350 kg"),
        ({"sex": "mle"}, "sex", "Select a valid choice"),
        ({"email": "not-an-address"}, "email", "valid email"),
        ({"phone": "call me"}, "phone", "phone number"),
        ({"record_number": "A 9 / !"}, "record_number", "letters, digits"),
    ],
)
def test_a_bad_patient_is_refused_next_to_its_field(alice, cast, changes, field, message) -> None:
    before = _counts()
    status, errors, _ = _post(
        alice, reverse("patient-create"), _patient_data(clinic=str(cast.clinic_a.pk), **changes)
    )
    assert status == 200
    assert any(message in m for m in errors.get(field, [])), errors
    assert _counts() == before


def test_a_patient_cannot_be_registered_in_a_clinic_the_user_does_not_work_in(alice, cast) -> None:
    before = _counts()
    _, errors, _ = _post(alice, reverse("patient-create"), _patient_data(clinic=str(cast.clinic_b.pk)))
    assert "clinic" in errors
    assert _counts() == before


def test_the_same_record_number_may_exist_in_two_clinics(client, cast) -> None:
    client.force_login(cast.olga)
    status, errors, _ = _post(
        client, reverse("patient-create"), _patient_data(clinic=str(cast.clinic_b.pk), record_number="A-001")
    )
    assert status == 302, errors


def test_consent_cannot_be_withdrawn_before_it_was_given(alice, cast) -> None:
    consent = cast.pat.consents.get()
    before = _counts()
    _, errors, _ = _post(
        alice,
        reverse("consent-edit", kwargs={"pk": consent.pk}),
        {"version": "1", "consented_on": "2025-01-10", "withdrawn_on": "2024-12-31", "notes": ""},
    )
    assert errors["withdrawn_on"] == ["Consent cannot be withdrawn before it was given."]
    assert _counts() == before


def test_a_withdrawn_patient_leaves_the_analysable_set_but_stays_in_the_record(alice, cast) -> None:
    consent = cast.pat.consents.get()
    status, errors, _ = _post(
        alice,
        reverse("consent-edit", kwargs={"pk": consent.pk}),
        {"version": "1", "consented_on": "2025-01-10", "withdrawn_on": "2025-03-01", "notes": ""},
    )
    assert status == 302, errors
    assert not Patient.objects.analysable().filter(pk=cast.pat.pk).exists()
    assert Patient.objects.analysable().filter(pk=cast.quinn.pk).exists()
    assert alice.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk})).status_code == 200


def test_the_analysable_set_is_the_patients_whose_latest_consent_stands(cast) -> None:
    """Against the patient's own consent status, over many histories: none, one, withdrawn, consented
    again, several on one day (the later entry counts), withdrawn before a later consent was entered."""
    import random

    rng = random.Random(7)
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in (0, 0, 30, 60, 90)]
    patients = []
    for n in range(60):
        patient = make_patient(cast.clinic_a, f"AN-{n}")
        patient.consents.all().delete()
        for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
            consented = rng.choice(days)
            withdrawn = consented + dt.timedelta(days=10) if rng.random() < 0.5 else None
            Consent.objects.create(
                patient=patient, version="1", consented_on=consented, withdrawn_on=withdrawn
            )
        patients.append(patient)
    expected = {p.pk for p in patients if p.consent_status == "active"}
    statuses = {p.consent_status for p in patients}
    assert statuses == {"none", "active", "withdrawn"} and 10 < len(expected) < 50
    found = set(
        Patient.objects.analysable().filter(pk__in=[p.pk for p in patients]).values_list("pk", flat=True)
    )
    assert found == expected


def _condition_data(**changes: str) -> dict[str, str]:
    return {
        "condition_type": str(ConditionType.objects.get(code="hallux-rigidus").pk),
        "laterality": "right",
        "site": str(Site.objects.get(code="mtp-1").pk),
        "site_note": "",
        "episode": "",
        "onset_date": "2024-01-01",
        "status": "active",
        "resolved_on": "",
        "severity_notes": "",
    } | changes


def test_a_condition_gets_its_icd10_code_from_the_catalog(alice, cast) -> None:
    url = reverse("condition-create", kwargs={"pk": cast.pat.pk})
    status, errors, _ = _post(alice, url, _condition_data())
    assert status == 302, errors
    assert (
        Condition.objects.get(patient=cast.pat, condition_type__code="hallux-rigidus").icd10_code == "M20.21"
    )


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"laterality": "bilateral"}, "laterality", "no bilateral code for Hallux rigidus"),
        ({"site": "IM3"}, "site", "is not recorded at this site"),
        ({"condition_type": "999999"}, "condition_type", "Select a valid choice"),
        ({"onset_date": "2999-01-01"}, "onset_date", "The onset date is in the future."),
        ({"onset_date": "1960-01-01"}, "onset_date", "before the patient's date of birth"),
        ({"episode": "A"}, "episode", "takes no episode character"),
        ({"resolved_on": "2024-06-01"}, "status", "must have the status 'resolved'"),
        (
            {"status": "resolved", "resolved_on": "2023-06-01"},
            "resolved_on",
            "cannot resolve before its onset",
        ),
    ],
)
def test_a_bad_condition_is_refused_next_to_its_field(alice, cast, changes, field, message) -> None:
    if changes.get("site") == "IM3":
        changes = changes | {"site": str(Site.objects.get(code="im-space-3").pk)}
    before = _counts()
    status, errors, _ = _post(
        alice, reverse("condition-create", kwargs={"pk": cast.pat.pk}), _condition_data(**changes)
    )
    assert status == 200
    assert any(message in m for m in errors.get(field, [])), errors
    assert _counts() == before


def test_a_sprain_needs_its_episode_and_gets_a_seventh_character(alice, cast) -> None:
    sprain = {
        "condition_type": str(ConditionType.objects.get(code="ankle-sprain").pk),
        "site": str(Site.objects.get(code="atfl").pk),
        "laterality": "left",
    }
    status, errors, _ = _post(
        alice, reverse("condition-create", kwargs={"pk": cast.pat.pk}), _condition_data(**sprain)
    )
    assert "needs the episode" in errors["episode"][0]
    status, errors, _ = _post(
        alice, reverse("condition-create", kwargs={"pk": cast.pat.pk}), _condition_data(**sprain, episode="A")
    )
    assert status == 302, errors
    assert (
        Condition.objects.get(patient=cast.pat, condition_type__code="ankle-sprain").icd10_code == "S93.492A"
    )


def test_two_excluding_instability_codes_cannot_stand_on_one_side(alice, cast) -> None:
    for code, expected in (("ankle-instability", 302), ("ankle-instability-ligamentous", 200)):
        data = _condition_data(
            condition_type=str(ConditionType.objects.get(code=code).pk),
            site=str(Site.objects.get(code="atfl").pk),
            laterality="left",
        )
        status, errors, _ = _post(alice, reverse("condition-create", kwargs={"pk": cast.pat.pk}), data)
        assert status == expected, errors
    assert "ICD-10-CM does not allow both" in errors["condition_type"][0]


def test_a_valid_procedure_is_saved_with_its_injectate_and_derived_labels(alice, cast) -> None:
    status, errors, _ = _post(
        alice, reverse("procedure-create", kwargs={"pk": cast.pat.pk}), _procedure_data(cast)
    )
    assert status == 302, errors
    injectate = Injectate.objects.get(procedure__performed_on=dt.date(2025, 6, 1))
    assert injectate.paw == "P3B"
    assert injectate.mishra == "3B"  # 1200 / 250 = 4.8-fold, under 5
    assert injectate.platelet_dose_billions == 3.6


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"performed_on": "1960-01-01"}, "performed_on", "before the patient's date of birth"),
        ({"performed_on": "2999-01-01"}, "performed_on", "The procedure date is in the future."),
        ({"laterality": "right"}, "laterality", "on the left side; the procedure is recorded on the right"),
        ({"procedure_type": "0"}, "procedure_type", "Select a valid choice"),
        ({"injectates-0-volume_ml": "-2"}, "injectates.volume_ml", "must be between"),
        ({"injectates-0-volume_ml": ""}, "injectates.volume_ml", "needs its injected volume"),
        ({"injectates-0-leukocytes": ""}, "injectates.leukocytes", "needs its leukocyte content"),
        ({"injectates-0-platelet_count": "100"}, "injectates.platelet_count", "below the whole-blood count"),
        (
            {"injectates-0-kind": "alcohol", "injectates-0-concentration_pct": "50"},
            "injectates.kind",
            "does not record",
        ),
        ({"injectates-0-activation": "magic"}, "injectates.activation", "Select a valid choice"),
        ({"clinician": ""}, "clinician", "This field is required."),
    ],
)
def test_a_bad_procedure_is_refused_with_nothing_written(alice, cast, changes, field, message) -> None:
    before = _counts()
    status, errors, _ = _post(
        alice, reverse("procedure-create", kwargs={"pk": cast.pat.pk}), _procedure_data(cast, **changes)
    )
    assert status == 200
    assert any(message in m for m in errors.get(field, [])), errors
    assert _counts() == before


def test_a_procedure_cannot_name_another_patients_condition(alice, cast) -> None:
    before = _counts()
    data = _procedure_data(cast, condition=str(cast.quinn_condition.pk))
    _, errors, _ = _post(alice, reverse("procedure-create", kwargs={"pk": cast.pat.pk}), data)
    assert "condition" in errors
    assert _counts() == before


def test_an_adverse_event_cannot_begin_before_its_procedure(alice, cast) -> None:
    from stride.care.models import AdverseEventKind

    before = _counts()
    data = _procedure_data(
        cast,
        **{
            "events-TOTAL_FORMS": "1",
            "events-0-kind": str(AdverseEventKind.objects.get(code="injection-flare").pk),
            "events-0-onset_date": "2025-05-01",
            "events-0-severity": "mild",
            "events-0-relatedness": "related",
        },
    )
    _, errors, _ = _post(alice, reverse("procedure-create", kwargs={"pk": cast.pat.pk}), data)
    assert "cannot begin before its procedure" in errors["events.onset_date"][0]
    assert _counts() == before


def test_a_fourth_steroid_injection_in_six_months_is_flagged(alice, cast) -> None:
    from stride.care.models import Drug

    steroid = {
        "procedure_type": str(ProcedureType.objects.get(code="digital-nerve-steroid").pk),
        "injectates-0-kind": "steroid",
        "injectates-0-drug": str(Drug.objects.get(code="triamcinolone-acetonide").pk),
        "injectates-0-dose_mg": "40",
        "injectates-0-volume_ml": "",
        "injectates-0-platelet_count": "",
        "injectates-0-baseline_platelet_count": "",
        "injectates-0-leukocytes": "",
        "injectates-0-activation": "",
    }
    url = reverse("procedure-create", kwargs={"pk": cast.pat.pk})
    for month in (1, 2, 3):
        response = alice.post(
            url, _procedure_data(cast, performed_on=f"2025-0{month}-10", **steroid), follow=True
        )
        assert "more than three steroid" not in response.content.decode()
    response = alice.post(url, _procedure_data(cast, performed_on="2025-04-10", **steroid), follow=True)
    assert "more than three steroid injections" in response.content.decode()


def test_a_condition_with_procedures_cannot_be_deleted(alice, cast) -> None:
    response = alice.post(reverse("condition-delete", kwargs={"pk": cast.pat_condition.pk}), follow=True)
    assert "has procedures recorded against it" in response.content.decode()
    assert Condition.objects.filter(pk=cast.pat_condition.pk).exists()


def test_a_procedure_before_the_onset_of_its_condition_is_refused(alice, cast) -> None:
    before = _counts()
    url = reverse("procedure-create", kwargs={"pk": cast.pat.pk})
    _, errors, _ = _post(alice, url, _procedure_data(cast, performed_on="2024-02-01"))
    assert "before the onset of this condition (01 Mar 2024)" in errors["performed_on"][0]
    assert _counts() == before


def test_an_adverse_event_cannot_resolve_in_the_future(alice, cast) -> None:
    from stride.care.models import AdverseEventKind

    data = _procedure_data(
        cast,
        **{
            "events-TOTAL_FORMS": "1",
            "events-0-kind": str(AdverseEventKind.objects.get(code="injection-flare").pk),
            "events-0-onset_date": "2025-06-02",
            "events-0-resolved_on": "2999-01-01",
            "events-0-severity": "mild",
            "events-0-relatedness": "related",
        },
    )
    _, errors, _ = _post(alice, reverse("procedure-create", kwargs={"pk": cast.pat.pk}), data)
    assert errors["events.resolved_on"] == ["The resolution date is in the future."]


def test_record_numbers_are_kept_in_capitals(alice, cast) -> None:
    data = _patient_data(clinic=str(cast.clinic_a.pk), record_number=" a-778 ")
    status, errors, _ = _post(alice, reverse("patient-create"), data)
    assert status == 302, errors
    assert Patient.objects.filter(record_number="A-778").exists()


def test_editing_a_conditions_side_recodes_it_but_a_status_change_does_not(alice, cast) -> None:
    condition = cast.pat_condition
    condition.icd10_code = "G57.62-OLD"  # as if coded by an earlier catalog
    Condition.objects.filter(pk=condition.pk).update(icd10_code="G57.62-OLD")
    condition = Condition.objects.get(pk=condition.pk)
    condition.status = "resolved"
    condition.resolved_on = dt.date(2025, 1, 1)
    condition.save()
    assert Condition.objects.get(pk=condition.pk).icd10_code == "G57.62-OLD"
    condition.laterality = "bilateral"
    condition.save()
    assert Condition.objects.get(pk=condition.pk).icd10_code == "G57.63"


def test_the_steroid_limit_counts_one_site_not_one_condition(cast) -> None:
    from stride.care.models import Drug
    from tests.conftest import make_condition

    wasting = make_condition(cast.pat, code="foot-muscle-wasting", site="interossei-3")
    steroid = ProcedureType.objects.get(code="digital-nerve-steroid")
    site = Site.objects.get(code="im-space-3")
    drug = Drug.objects.get(code="triamcinolone-acetonide")
    last = None
    for month, condition in ((1, cast.pat_condition), (2, wasting), (3, cast.pat_condition), (4, wasting)):
        last = Procedure.objects.create(
            patient=cast.pat,
            condition=condition,
            performed_on=dt.date(2025, month, 10),
            procedure_type=steroid,
            site=site,
            laterality="left",
            image_guidance="ultrasound",
        )
        Injectate.objects.create(procedure=last, kind="steroid", drug=drug, dose_mg=40)
    assert (
        last.steroid_limit_exceeded
    )  # four at the 3rd intermetatarsal space, whatever condition they were for
