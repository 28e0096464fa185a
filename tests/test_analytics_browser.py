"""A researcher builds two cohorts and reads their comparison, in a real browser (headless Chromium)."""

from __future__ import annotations

import pytest

from stride.demo.loader import load_demo
from stride.demo.stories import DEMO_PASSWORD_DEFAULT
from tests.browser import snap

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_a_researcher_compares_two_cohorts_and_downloads_the_numbers(live_server, page) -> None:
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=300, synth_seed=5)
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "researcher")
    page.fill("#id_password", DEMO_PASSWORD_DEFAULT)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview/")

    for name, kind in (("PRP", "prp"), ("Steroid", "steroid")):
        page.goto(f"{live_server.url}/analytics/cohorts/new/")
        page.fill("#id_name", name)
        page.select_option("#id_injectate_kinds", [kind])
        page.click("button:has-text('Save cohort')")
        page.wait_for_selector(f"text=Cohort “{name}” saved")
    snap(page, "analytics-01-home")

    page.check("label:has-text('PRP') input")
    page.check("label:has-text('Steroid') input")
    page.click("button:has-text('Show report')")
    page.wait_for_selector("h1:has-text('PRP vs Steroid')")
    assert page.locator("text=Figures resting on fewer than 5 patients are withheld").is_visible()
    for section in ("Baseline characteristics", "Responder rates", "Follow-up completeness", "Methods"):
        assert page.locator(f"h2:has-text('{section}')").is_visible(), section
    snap(page, "analytics-02-report")

    # The legend toggles a cohort's line on and off (charts.js).
    chart = page.locator("#figure-outcome-score")
    series = chart.locator(".series").first
    assert series.is_visible()
    chart.locator("[data-series]").first.click()
    assert series.is_hidden()
    chart.locator("[data-series]").first.press("Enter")
    assert series.is_visible()

    with page.expect_download() as download:
        page.click("a:has-text('CSV (every number)')")
    path = download.value.path()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("section,cohort,timepoint,item,level,statistic,value")
    assert "responders,PRP,6m" in text
