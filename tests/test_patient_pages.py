"""The patient's own pages: a personal link, the questionnaires due, nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from stride.audit.models import AuditEntry
from stride.outcomes import links, services
from stride.outcomes.models import FollowUp, PatientLink, QuestionnaireResponse


@pytest.fixture
def open_follow_up(cast) -> FollowUp:
    episode = services.start_episode(cast.pat_condition, cast.clinic_a.today() - dt.timedelta(days=30))
    return episode.follow_ups.get(timepoint="1m")


@pytest.fixture
def token(cast) -> str:
    return links.token_for(links.new_link(cast.pat))


def page(client, token: str, *parts: object) -> str:
    if not parts:
        return reverse("patient-home", kwargs={"token": token})
    follow_up, instrument = parts
    return reverse(
        "patient-questionnaire", kwargs={"token": token, "follow_up": follow_up, "instrument": instrument}
    )


def test_the_link_opens_the_questionnaires_due_now(client, cast, open_follow_up, token) -> None:
    body = client.get(page(client, token)).content.decode()
    assert "Hello Pat" in body
    assert "1 month follow-up" in body
    for name in ("Pain NRS", "SANE", "FAAM ADL"):
        assert name in body
    assert "Lee" not in body and "A-001" not in body  # no more identity than a first name


@pytest.mark.parametrize("how", ["tampered", "unknown", "expired", "revoked"])
def test_a_bad_link_gets_a_friendly_page_that_reveals_nothing(
    client, cast, open_follow_up, token, how
) -> None:
    if how == "tampered":
        # Alter the first character of the signature: every bit of it counts (the last ones of a
        # base64 string may not, so changing them could leave the signature valid).
        key, signature = token.rsplit(".", 1)
        token = f"{key}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    elif how == "unknown":
        token = links.token_for(PatientLink(key="no-such-key"))
    elif how == "expired":
        PatientLink.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    else:
        links.revoke_all(cast.pat)
    response = client.get(page(client, token))
    assert response.status_code == 404
    body = response.content.decode()
    assert "This link does not open anything" in body
    assert "Pat" not in body and "FAAM" not in body


def test_a_link_never_opens_another_patients_follow_up(client, cast, open_follow_up, token) -> None:
    quinn_episode = services.start_episode(
        cast.quinn_condition, cast.clinic_b.today() - dt.timedelta(days=30)
    )
    quinns = quinn_episode.follow_ups.get(timepoint="1m")
    response = client.get(page(client, token, quinns.pk, "nprs"))
    assert response.status_code == 404
    assert "Quinn" not in response.content.decode()
    response = client.post(page(client, token, quinns.pk, "nprs"), {"version": "1", "item_0": "3"})
    assert response.status_code == 404
    assert not QuestionnaireResponse.objects.exists()


def test_answering_saves_scores_and_moves_on(client, cast, open_follow_up, token) -> None:
    response = client.post(page(client, token, open_follow_up.pk, "nprs"), {"version": "1", "item_0": "4"})
    assert response.status_code == 302
    answer = QuestionnaireResponse.objects.get()
    assert (answer.status, answer.source, answer.scores.get().value) == ("completed", "patient", 4.0)
    assert answer.context == "Average pain over the last 7 days"
    home = client.get(page(client, token)).content.decode()
    assert "Continue" in home
    audit = AuditEntry.objects.filter(model="outcomes.QuestionnaireResponse", action="create").get()
    assert audit.username.startswith("patient-link:") and audit.channel == "patient"


def test_partial_answers_survive_a_dropped_connection(client, cast, open_follow_up, token) -> None:
    autosave = reverse(
        "patient-autosave", kwargs={"token": token, "follow_up": open_follow_up.pk, "instrument": "faam-adl"}
    )
    assert client.post(autosave, {"version": "1", "item_0": "3"}).status_code == 200
    assert client.post(autosave, {"version": "1", "item_1": "2"}).status_code == 200
    # The phone drops; later the patient opens the page again and finds both answers.
    body = client.get(page(client, token, open_follow_up.pk, "faam-adl")).content.decode()
    assert body.count("checked") == 2
    assert QuestionnaireResponse.objects.get().answers[:3] == [3, 2, None]


def test_blank_questions_are_pointed_out_once_then_accepted(client, cast, open_follow_up, token) -> None:
    url = page(client, token, open_follow_up.pk, "faam-adl")
    data = {"version": "1"} | {f"item_{i}": "3" for i in range(19)}
    first = client.post(url, data)
    assert first.status_code == 200
    assert "You left questions 20, 21 blank" in first.content.decode()
    assert QuestionnaireResponse.objects.get().status == "in-progress"
    second = client.post(url, data | {"confirm_blanks": "1"})
    assert second.status_code == 302
    score = QuestionnaireResponse.objects.get().scores.get()
    assert (score.valid, score.value, score.missing) == (True, 75.0, 2)


def test_an_answer_out_of_range_is_refused_with_a_message(client, cast, open_follow_up, token) -> None:
    response = client.post(page(client, token, open_follow_up.pk, "nprs"), {"version": "1", "item_0": "14"})
    assert response.status_code == 422
    assert "14 is not one of its answers" in response.content.decode()
    assert not QuestionnaireResponse.objects.filter(status="completed").exists()


def test_an_old_version_of_the_questionnaire_is_refused(client, cast, open_follow_up, token) -> None:
    response = client.post(page(client, token, open_follow_up.pk, "nprs"), {"version": "0", "item_0": "3"})
    assert response.status_code == 422
    assert "please open it again" in response.content.decode()
    assert not QuestionnaireResponse.objects.exists()


def test_a_second_submission_is_not_counted_twice(client, cast, open_follow_up, token) -> None:
    url = page(client, token, open_follow_up.pk, "nprs")
    client.post(url, {"version": "1", "item_0": "4"})
    again = client.post(url, {"version": "1", "item_0": "9"})
    assert again.status_code == 302
    assert QuestionnaireResponse.objects.get().answers == [4]


def test_a_closed_follow_up_says_so(client, cast, open_follow_up, token) -> None:
    FollowUp.objects.filter(pk=open_follow_up.pk).update(
        closes_on=cast.clinic_a.today() - dt.timedelta(days=1),
        accepts_until=cast.clinic_a.today() - dt.timedelta(days=1),
    )
    response = client.post(page(client, token, open_follow_up.pk, "nprs"), {"version": "1", "item_0": "3"})
    assert response.status_code == 410
    assert "This follow-up has closed" in response.content.decode()
    assert not QuestionnaireResponse.objects.exists()


def test_all_done_says_so_clearly(client, cast, open_follow_up, token) -> None:
    answers = {"nprs": [2], "percent-improvement": [50], "sane": [70], "faam-adl": [4] * 21}
    for code, values in answers.items():
        data = {"version": "1"} | {f"item_{i}": str(v) for i, v in enumerate(values)}
        assert client.post(page(client, token, open_follow_up.pk, code), data).status_code == 302
    body = client.get(page(client, token)).content.decode()
    assert "All done — thank you!" in body
    open_follow_up.refresh_from_db()
    assert open_follow_up.status == "completed"


def test_the_pages_work_without_javascript(client, cast, open_follow_up, token) -> None:
    body = client.get(page(client, token, open_follow_up.pk, "faam-adl")).content.decode()
    assert '<form method="post"' in body and 'type="radio"' in body and 'type="submit"' in body


def test_a_clinics_licensed_wording_replaces_the_short_labels(
    client, cast, open_follow_up, token, tmp_path
) -> None:
    import json

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from stride.core.instruments import instrument

    items = instrument("faam-adl").items
    before = client.get(page(client, token, open_follow_up.pk, "faam-adl")).content.decode()
    assert "shown with short labels" in before
    wording = tmp_path / "wording.json"
    wording.write_text(
        json.dumps({item.link_id: f"Official question {n}" for n, item in enumerate(items, 1)})
    )
    call_command("wording", "load", "lakeside", "faam-adl", str(wording), source="clinic licence 2026")
    after = client.get(page(client, token, open_follow_up.pk, "faam-adl")).content.decode()
    assert "Official question 21" in after and "shown with short labels" not in after
    # Another clinic's patients keep the labels.
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({items[0].link_id: "Only one"}))
    with pytest.raises(CommandError, match="no text for"):
        call_command("wording", "load", "lakeside", "faam-adl", str(incomplete))
