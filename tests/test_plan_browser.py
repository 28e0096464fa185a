"""A clinician plans the ankle protocol, moves the booster and records the index step, in a real browser.

Skipped, with the reason printed, where Chromium is not installed; CI sets
STRIDE_REQUIRE_BROWSER=1 so that there a missing browser fails instead.
Screenshots go to STRIDE_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.browser import snap

pytestmark = pytest.mark.browser


def _day(day: dt.date) -> str:
    """A date as the pages write it in a step row ("Mon 7 Dec 2026")."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def _worklist(page: object, url: str) -> dict[str, str]:
    """The plan worklist's groups, each section's text by its heading's first word."""
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector("h1:has-text('Plan worklist')")  # type: ignore[attr-defined]
    sections = page.locator("main section")  # type: ignore[attr-defined]
    return {
        sections.nth(i).locator("h2").inner_text().split()[0]: sections.nth(i).inner_text()
        for i in range(sections.count())
    }


@pytest.mark.django_db(transaction=True)
def test_a_clinician_plans_the_ankle_protocol_moves_the_booster_and_records_day_0(
    live_server, cast, page
) -> None:
    from stride.care.models import CarePlan, PlanStep
    from stride.outcomes.models import Episode
    from tests.conftest import PASSWORD, make_condition

    make_condition(cast.pat, code="ankle-instability-ligamentous", laterality="left", site="atfl-cfl")
    today = cast.clinic_a.today()
    # Day 0 a week ahead: the BMC injection is on the worklist's "This week", the primers before it.
    day0 = today + dt.timedelta(days=7)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/patients/")

    # The patient's page: the ankle condition's row offers the protocol.
    page.goto(f"{live_server.url}/patients/{cast.pat.pk}/")
    page.wait_for_selector("h1:has-text('Pat Lee')")
    row = page.locator("tr", has_text="ankle instability")
    row.get_by_role("link", name="Start protocol").click()
    page.wait_for_selector("h1:has-text('Start a protocol for')")
    options = page.locator("#id_protocol option").all_inner_texts()
    assert [o for o in options if "Morton" in o or "MTP" in o] == []  # only what applies to the ankle
    page.select_option("#id_protocol", label="Ankle instability, regenerative course (v1)")
    page.fill("#id_anchor_date", day0.isoformat())
    assert page.locator("#id_clinician option:checked").inner_text() == "Alice"
    snap(page, "plan-01-start")
    page.click("button:has-text('Save')")

    page.wait_for_selector("text=Ankle instability, regenerative course planned from")
    page.wait_for_selector("h1:has-text('Ankle instability, regenerative course')")
    plan = CarePlan.objects.get(condition__patient=cast.pat)
    booster_day = day0 + dt.timedelta(weeks=6)
    assert _day(booster_day) in page.locator("#step-booster").inner_text()
    assert _day(day0) in page.locator("#step-index").inner_text()
    assert "day 0" in page.locator("#step-index").inner_text()
    snap(page, "plan-02-plan")

    before = _worklist(page, f"{live_server.url}/plan-worklist/?clinician=me")
    assert "Bone-marrow concentrate with PRP" in before["This"]
    assert "Prolotherapy primer 2" in before["Overdue"]
    snap(page, "plan-03-worklist-before")

    # Move the booster a week later (inside its 6-8-week window), with the reason.
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    page.wait_for_selector("#step-booster")
    page.locator("#step-booster").get_by_role("link", name="Reschedule").click()
    page.wait_for_selector("h1:has-text('Reschedule PRP booster')")
    assert page.input_value("#id_planned_on") == booster_day.isoformat()
    new_booster_day = booster_day + dt.timedelta(days=7)
    page.fill("#id_planned_on", new_booster_day.isoformat())
    page.fill("#id_reason", "Patient away on holiday")
    snap(page, "plan-04-reschedule")
    page.click("button:has-text('Save')")
    page.wait_for_selector(f"text=PRP booster moved to {new_booster_day:%d %b %Y}.")
    booster_row = page.locator("#step-booster").inner_text()
    assert _day(new_booster_day) in booster_row
    assert "Patient away on holiday" in booster_row
    assert "deviation" not in page.locator("main").inner_text()
    snap(page, "plan-05-rescheduled")

    # Record the BMC injection (day 0) today: the patient could come early.
    page.locator("#step-index").get_by_role("link", name="Record").click()
    page.wait_for_selector("h1:has-text('Record: Bone-marrow concentrate with PRP')")
    assert (
        page.locator("#id_procedure_type option:checked").inner_text()
        == "Bone-marrow concentrate injection (same day)"
    )
    assert page.locator("#id_site option:checked").inner_text().startswith("Lateral ligaments")
    assert page.input_value("#id_laterality") == "left"
    assert page.input_value("#id_image_guidance") == "ultrasound"
    assert page.input_value("#id_performed_on") == today.isoformat()
    assert page.is_checked("#id_is_index")
    assert page.input_value("#id_injectates-0-kind") == "bmc"
    assert page.input_value("#id_injectates-1-kind") == "prp"
    # Only the fields of each prefilled kind are shown.
    assert page.locator("#id_injectates-0-aspirate_volume_ml").is_visible()
    assert page.locator("#id_injectates-0-platelet_count").is_hidden()
    assert page.locator("#id_injectates-1-platelet_count").is_visible()
    page.fill("#id_injectates-0-volume_ml", "4")
    page.fill("#id_injectates-0-aspirate_volume_ml", "60")
    page.fill("#id_injectates-1-volume_ml", "3")
    page.fill("#id_injectates-1-platelet_count", "1200")
    page.select_option("#id_injectates-1-leukocytes", "poor")
    page.select_option("#id_injectates-1-activation", "none")
    snap(page, "plan-06-record")
    page.click("button:has-text('Save procedure')")

    # Back on the plan: day 0 done (a week early: a deviation), the booster where it was moved.
    page.wait_for_selector("text=Procedure saved.")
    page.wait_for_selector("#step-index >> text=Done")
    index_row = page.locator("#step-index").inner_text()
    assert "deviation" in index_row and "Bone-marrow concentrate injection" in index_row
    assert "recorded as a deviation" in page.locator("main").inner_text()
    assert _day(new_booster_day) in page.locator("#step-booster").inner_text()
    snap(page, "plan-07-recorded")
    index = plan.steps.get(code="index")
    assert index.status == PlanStep.Status.DONE and index.procedure is not None
    assert (
        Episode.objects.get(condition=plan.condition, ended_on__isnull=True).index_procedure
        == index.procedure
    )

    after = _worklist(page, f"{live_server.url}/plan-worklist/?clinician=me")
    assert "Bone-marrow concentrate with PRP" not in after["This"]
    # Day 0 is done: the primers meant to come before it leave the list (skipped, with the reason).
    assert "Prolotherapy primer 2" not in after["Overdue"]
    snap(page, "plan-08-worklist-after")

    # The ladder: the BMC injection counts for the ligament-injection rung, where the protocol sits.
    page.goto(f"{live_server.url}/plans/{plan.pk}/")
    page.get_by_role("button", name="Treatment ladder").click()  # a link styled as a button
    page.wait_for_selector("h1:has-text('Treatment ladder')")
    rung = page.locator("li.rung", has_text="Ligament injection").inner_text()
    assert "Tried:" in rung and "Ankle instability, regenerative course" in rung
    snap(page, "plan-09-ladder")
