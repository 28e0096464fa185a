"""A patient answering on a phone, in a real browser (headless Chromium at a phone-sized viewport).

Skipped, with the reason printed, where Chromium is not installed; CI sets
STRIDE_REQUIRE_BROWSER=1 so that there a missing browser fails instead.
Screenshots go to STRIDE_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.browser import snap

pytestmark = pytest.mark.browser

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
#: The smallest comfortable tap target, in CSS pixels (WCAG 2.5.5; Apple's and Google's guidance).
TAP = 44

# What the patient answers, and the scores the clinician should then see.
NPRS, IMPROVEMENT, SANE, FAAM_ADL = 3, 40, 70, 3  # FAAM ADL: "Slight difficulty" everywhere → 75


@pytest.fixture
def phone(browser: object) -> Iterator[object]:
    context = browser.new_context(**PHONE)  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def desktop(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def follow_up(cast: object) -> object:
    from stride.outcomes import services

    episode = services.start_episode(cast.pat_condition, cast.clinic_a.today() - dt.timedelta(days=30))  # type: ignore[attr-defined]
    return episode.follow_ups.get(timepoint="1m")


@pytest.fixture
def link(live_server: object, cast: object, follow_up: object) -> str:
    from stride.outcomes import links

    return links.url_for(links.new_link(cast.pat), live_server.url)  # type: ignore[attr-defined]


def fits_the_phone(page: object) -> None:
    """Nothing wider than the screen (no sideways scrolling) and every tap target big enough."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")  # type: ignore[attr-defined]
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    small = page.evaluate(  # type: ignore[attr-defined]
        """min => [...document.querySelectorAll('a[href], label.option, button, input[type=number]')]
            .map(e => [e.textContent.trim() || e.name, e.getBoundingClientRect()])
            .filter(([, r]) => r.width > 0 && (r.width < min || r.height < min))
            .map(([t, r]) => `${t}: ${Math.round(r.width)}x${Math.round(r.height)}`)""",
        TAP,
    )
    assert not small, f"tap targets smaller than {TAP}px: {small}"


def autosaved(page: object) -> object:
    """Wait for the autosave the next tap sends (as a patient waits for "Saved")."""
    return page.expect_response(lambda r: r.url.endswith("/save/") and r.request.method == "POST")  # type: ignore[attr-defined]


def tap_answer(page: object, question: int, value: object) -> None:
    with autosaved(page) as response:
        page.locator(f'#q{question} label.option:has(input[value="{value}"])').tap()  # type: ignore[attr-defined]
    assert response.value.status == 200


def type_answer(page: object, question: int, value: int) -> None:
    field = page.locator(f"#q{question} input[type=number]")  # type: ignore[attr-defined]
    field.tap()
    with autosaved(page) as response:
        field.fill(str(value))
        field.blur()  # the phone's "Done": the change event, and the autosave
    assert response.value.status == 200


def answer_the_page(page: object) -> str:
    """Answer the questionnaire on the page the way the patient does; its instrument code."""
    code = page.url.rstrip("/").rsplit("/", 1)[-1]  # type: ignore[attr-defined]
    if code == "nprs":
        tap_answer(page, 0, NPRS)
    elif code in ("percent-improvement", "sane"):
        type_answer(page, 0, IMPROVEMENT if code == "percent-improvement" else SANE)
    else:
        for question in range(page.locator("fieldset.question").count()):  # type: ignore[attr-defined]
            tap_answer(page, question, FAAM_ADL)
    return code


class RefusedByCsrf(AssertionError):
    """The questionnaire's own submit was refused by Django's CSRF check."""


def send(page: object) -> None:
    """Tap "Send": the form's own POST (not htmx), redirected to the patient's home page."""
    with page.expect_navigation() as sent:  # type: ignore[attr-defined]
        page.get_by_role("button", name="Send", exact=True).tap()  # type: ignore[attr-defined]
    if sent.value.status == 403 and "CSRF" in page.content():  # type: ignore[attr-defined]
        origin = sent.value.request.header_value("origin")
        raise RefusedByCsrf(f"Send was refused by the CSRF check (the browser sent Origin: {origin})")
    assert sent.value.status == 200, sent.value.status


# A referrer policy of "no-referrer" once made Chromium send "Origin: null" with the form's POST,
# which Django's CSRF check refuses; send() names that failure if it ever comes back.
@pytest.mark.django_db(transaction=True)
def test_a_patient_answers_on_a_phone_and_the_clinician_sees_the_scores(
    live_server, cast, follow_up, link, phone, desktop
) -> None:
    from tests.conftest import PASSWORD

    phone.goto(link)
    phone.wait_for_selector("h1:has-text('Hello Pat')")
    assert "1 month follow-up" in phone.content()
    snap(phone, "patient-01-home")
    fits_the_phone(phone)
    phone.get_by_role("button", name="Start").tap()

    answered = []
    for _ in range(len(follow_up.instruments)):
        phone.wait_for_selector("form fieldset.question")
        code = answer_the_page(phone)
        snap(phone, f"patient-02-{len(answered) + 1}-{code}")
        fits_the_phone(phone)
        answered.append(code)
        send(phone)
        phone.wait_for_url(link)
        if len(answered) < len(follow_up.instruments):
            assert "✓" in phone.locator("ol.checklist").inner_text()
            phone.get_by_role("button", name="Continue").tap()
    assert answered == follow_up.instruments
    phone.wait_for_selector("text=All done — thank you!")
    assert "Your answers have reached Lakeside." in phone.content()
    snap(phone, "patient-03-all-done")
    fits_the_phone(phone)

    desktop.goto(f"{live_server.url}/login/")
    desktop.fill("#id_username", "alice")
    desktop.fill("#id_password", PASSWORD)
    desktop.click("button[type=submit]")
    desktop.wait_for_url("**/patients/")
    desktop.goto(f"{live_server.url}/patients/{cast.pat.pk}/")
    panel = desktop.locator("section.follow-up")
    panel.locator(".charts figure.chart svg").first.wait_for()
    assert panel.locator(".charts figure.chart svg").count() == 4  # one per instrument with a score
    captions = panel.locator(".charts figcaption").all_inner_texts()
    assert any(c.startswith(f"Pain NRS: latest {NPRS}") for c in captions), captions
    assert any(c.startswith("FAAM ADL: latest 75") for c in captions), captions
    row = panel.locator("table.follow-ups tr.status-completed")
    assert row.locator("td").first.inner_text() == "1 month"
    chips = row.locator(".chip").all_inner_texts()
    assert chips == [f"Pain NRS {NPRS}", f"% improvement {IMPROVEMENT}", f"SANE {SANE}", "FAAM ADL 75"]
    panel.scroll_into_view_if_needed()
    snap(desktop, "patient-04-clinician-scores")


@pytest.mark.django_db(transaction=True)
def test_a_tampered_link_shows_the_friendly_page_on_a_phone(live_server, link, phone) -> None:
    base, token = link.rstrip("/").rsplit("/", 1)
    key, signature = token.rsplit(".", 1)
    tampered = f"{base}/{key}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}/"
    response = phone.goto(tampered)
    assert response.status == 404
    phone.wait_for_selector("h1:has-text('This link does not open anything')")
    assert "contact your clinic" in phone.content()
    assert "Pat" not in phone.content()
    snap(phone, "patient-05-tampered-link")
    fits_the_phone(phone)


@pytest.mark.django_db(transaction=True)
def test_answers_survive_a_reload_half_way(live_server, browser, cast, follow_up, link, phone) -> None:
    from stride.outcomes.models import QuestionnaireResponse

    questionnaire = f"{link}{follow_up.pk}/faam-adl/"
    phone.goto(questionnaire)
    chosen = {0: 4, 1: 3, 2: "NA", 5: 0}
    for question, value in chosen.items():
        tap_answer(phone, question, value)
    phone.wait_for_selector("#save-state >> text=Saved")  # htmx swaps the indicator just after the response
    snap(phone, "patient-06-half-way")

    phone.reload()
    phone.wait_for_selector("form fieldset.question")
    checked = phone.locator("fieldset.question input:checked")
    assert checked.count() == len(chosen)
    for question, value in chosen.items():
        assert phone.locator(f'#q{question} input[value="{value}"]').is_checked()
    snap(phone, "patient-07-after-reload")

    # Not the browser remembering the form: the answers are on the server, in progress.
    response = QuestionnaireResponse.objects.get(follow_up=follow_up, instrument="faam-adl")
    assert response.status == "in-progress"
    assert [response.answers[q] for q in chosen] == list(chosen.values())
    assert sum(a is not None for a in response.answers) == len(chosen)
    fresh = browser.new_context(**PHONE)
    try:
        again = fresh.new_page()
        again.goto(questionnaire)
        assert again.locator("fieldset.question input:checked").count() == len(chosen)
    finally:
        fresh.close()
