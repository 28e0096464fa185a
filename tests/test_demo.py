"""The demo loader: the three stories as complete records, one login per role, idempotent."""

from __future__ import annotations

import pytest
from django.apps import apps

from stride.demo.loader import load_demo
from stride.demo.stories import DEMO_PASSWORD_DEFAULT, LOGINS


def _table_counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in {"clinics", "patients", "care"}
    }


@pytest.mark.django_db
def test_loading_the_demo_twice_changes_nothing() -> None:
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    first = _table_counts()
    again = load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=0, synth_seed=1)
    assert _table_counts() == first
    assert sum(again.values()) == 0


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
