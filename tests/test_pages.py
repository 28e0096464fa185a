"""The pages a clinic uses: the patient list and its search, and the timeline."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from stride.care.models import TreatmentHistory, TreatmentKind
from tests.conftest import make_condition, make_patient


@pytest.fixture
def alice(client, cast):
    client.force_login(cast.alice)
    return client


@pytest.mark.parametrize("query", ["Lee", "lee pat", "A-001", "neuroma", "G57.62", "g57"])
def test_the_patient_list_finds_a_patient_by_name_record_number_or_condition(alice, cast, query) -> None:
    page = alice.get(reverse("patient-list"), {"q": query}).content.decode()
    assert "A-001" in page


def test_a_search_that_matches_nothing_says_so(alice, cast) -> None:
    page = alice.get(reverse("patient-list"), {"q": "zzzz"}).content.decode()
    assert "No patients found." in page


def test_the_patient_list_is_paginated(alice, cast) -> None:
    for i in range(30):
        make_patient(cast.clinic_a, f"P-{i:03d}", family_name=f"Zed{i:03d}")
    first = alice.get(reverse("patient-list")).content.decode()
    assert "Page 1 of 2" in first
    second = alice.get(reverse("patient-list"), {"page": 2}).content.decode()
    assert "Zed029" in second and "Zed029" not in first


def test_an_htmx_search_returns_only_the_results_fragment(alice, cast) -> None:
    response = alice.get(reverse("patient-list"), {"q": "Lee"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "A-001" in body
    assert "<html" not in body


def test_the_timeline_reads_in_date_order(alice, cast) -> None:
    TreatmentHistory.objects.create(
        patient=cast.pat,
        condition=cast.pat_condition,
        treatment=TreatmentKind.objects.get(code="footwear-change"),
        started_on=dt.date(2024, 6, 1),
        response="partial",
    )
    page = alice.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk})).content.decode()
    timeline = page[page.index('class="timeline"') :]
    diagnosis = timeline.index("Diagnosis")  # 1 Mar 2024
    footwear = timeline.index("Footwear change")  # 1 Jun 2024
    consent = timeline.index("Registry consent")  # 10 Jan 2025
    procedure = timeline.index("Perineural platelet lysate injection")  # 1 Feb 2025
    assert diagnosis < footwear < consent < procedure


def test_the_patient_page_shows_codes_bmi_and_consent(alice, cast) -> None:
    page = alice.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk})).content.decode()
    assert "G57.62" in page
    assert "30085007" in page
    assert "BMI 24.8" in page
    assert "Registry consent given" in page


def test_a_coordinator_is_not_offered_buttons_their_role_cannot_use(client, cast) -> None:
    client.force_login(cast.carol)
    page = client.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk})).content.decode()
    assert "Add earlier treatment" in page
    assert "Record procedure" not in page
    assert "Add condition" not in page


def test_a_bilateral_neuroma_is_one_condition_with_the_bilateral_code(cast) -> None:
    condition = make_condition(cast.pat, laterality="bilateral")
    assert condition.icd10_code == "G57.63"


def test_the_overview_counts_only_consented_patients_and_hides_small_groups(client, cast, settings) -> None:
    settings.STRIDE_MIN_CELL_SIZE = 2
    for i in range(3):
        patient = make_patient(cast.clinic_a, f"N-{i}")
        make_condition(patient)
    withdrawn = make_patient(cast.clinic_a, "N-W")
    withdrawn.consents.update(withdrawn_on=dt.date(2025, 2, 1))
    make_condition(withdrawn, code="hallux-rigidus", laterality="right", site="mtp-1")
    client.force_login(cast.rita)
    response = client.get(reverse("overview"))
    assert response.context["total"] == 4  # Pat and three new ones; not the withdrawn patient
    assert ("Morton's neuroma", 4) in response.context["by_condition"]
    assert all(label != "Hallux rigidus (1st MTP arthritis)" for label, _ in response.context["by_condition"])
    assert ("Perineural platelet lysate injection", None) in response.context[
        "by_procedure"
    ]  # one patient: hidden
