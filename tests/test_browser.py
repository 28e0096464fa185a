"""A clinician's first minutes, in a real browser (headless Chromium).

Skipped, with the reason printed, where Chromium is not installed; CI sets
STRIDE_REQUIRE_BROWSER=1 so that there a missing browser fails instead.
Screenshots go to STRIDE_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import pytest

from tests.browser import snap

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_a_clinician_logs_in_finds_a_patient_and_records_a_procedure(live_server, cast, page) -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{live_server.url}/")
    snap(page, "01-login")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/patients/")

    page.fill("input[name=q]", "Lee")
    page.wait_for_selector("#results >> text=1 patient match")
    assert page.locator("#results").inner_text().count("A-001") == 1
    assert "B-001" not in page.content()
    snap(page, "02-search")

    page.click("#results >> text=A-001")
    page.wait_for_selector("h1:has-text('Pat Lee')")
    snap(page, "03-patient")

    page.click("text=Record procedure >> nth=0")
    page.wait_for_selector("h1:has-text('Record a procedure')")
    page.fill("#id_performed_on", "2025-09-15")
    page.select_option("#id_procedure_type", label="PRP injection")
    page.select_option("#id_laterality", "left")
    page.select_option("#id_injectates-0-kind", "prp")
    # Only the PRP fields are shown once the kind is chosen.
    assert page.locator("#id_injectates-0-dose_mg").is_hidden()
    assert page.locator("#id_injectates-0-platelet_count").is_visible()
    page.fill("#id_injectates-0-volume_ml", "3")
    page.fill("#id_injectates-0-platelet_count", "1300")
    page.fill("#id_injectates-0-baseline_platelet_count", "240")
    page.select_option("#id_injectates-0-leukocytes", "poor")
    page.select_option("#id_injectates-0-activation", "none")
    snap(page, "04-procedure-form")
    page.click("button:has-text('Save procedure')")

    page.wait_for_selector("text=Procedure saved.")
    timeline = page.locator("ol.timeline").inner_text()
    assert "PRP injection" in timeline
    assert "15 Sep 2025" in timeline
    assert "PAW P4B" in timeline
    snap(page, "05-timeline")


@pytest.mark.django_db(transaction=True)
def test_a_bad_procedure_shows_the_message_next_to_the_field(live_server, cast, page) -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/patients/{cast.pat.pk}/procedures/new/?condition={cast.pat_condition.pk}")
    page.fill("#id_performed_on", "1960-01-01")
    page.select_option("#id_procedure_type", label="Perineural platelet lysate injection")
    page.select_option("#id_injectates-0-kind", "platelet-lysate")
    page.fill("#id_injectates-0-volume_ml", "2")
    page.click("button:has-text('Save procedure')")
    page.wait_for_selector("[data-field=performed_on] small.error")
    errors = page.locator("[data-field=performed_on] small.error").all_inner_texts()
    assert any("before the patient's date of birth" in e for e in errors), errors
    snap(page, "06-procedure-error")
