"""Follow-up episodes and answers: started by an index treatment, answered once, never lost."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from stride.core.errors import Invalid
from stride.outcomes import services
from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score

FAAM_ADL = [3] * 19 + ["NA", "NA"]  # 57 / 76 = 75.0


def today(cast) -> dt.date:
    return cast.clinic_a.today()


def episode_from(cast, days_ago: int) -> Episode:
    return services.start_episode(cast.pat_condition, today(cast) - dt.timedelta(days=days_ago))


def test_recording_an_index_treatment_starts_the_schedule(client, cast) -> None:
    from tests.test_validation import _procedure_data

    client.force_login(cast.alice)
    data = _procedure_data(cast, performed_on=str(today(cast) - dt.timedelta(days=33)), is_index="on")
    assert client.post(reverse("procedure-create", kwargs={"pk": cast.pat.pk}), data).status_code == 302
    episode = Episode.objects.get(condition=cast.pat_condition)
    assert episode.index_procedure.is_index
    statuses = dict(episode.follow_ups.values_list("timepoint", "status"))
    assert statuses == {
        "baseline": "missed",  # 33 days after the index: past its 21 days of grace
        "1m": "due",
        "3m": "pending",
        "6m": "pending",
        "12m": "pending",
        "24m": "pending",
        "36m": "pending",
    }
    assert episode.follow_ups.get(timepoint="baseline").instruments == ["nprs", "sane", "faam-adl"]
    assert episode.follow_ups.get(timepoint="1m").instruments == [
        "nprs",
        "percent-improvement",
        "sane",
        "faam-adl",
    ]


def test_a_clinician_can_start_follow_up_from_a_date(client, cast) -> None:
    client.force_login(cast.alice)
    url = reverse("follow-up-start", kwargs={"pk": cast.pat_condition.pk})
    response = client.post(url, {"index_date": str(today(cast))})
    assert response.status_code == 302
    assert Episode.objects.get(condition=cast.pat_condition).index_date == today(cast)
    again = client.post(url, {"index_date": str(today(cast))})
    assert "already started" in again.content.decode()
    assert Episode.objects.count() == 1


def test_a_new_index_treatment_ends_the_earlier_episode_and_cancels_what_was_open(cast) -> None:
    first = episode_from(cast, 100)
    second = services.start_episode(cast.pat_condition, today(cast) - dt.timedelta(days=10))
    first.refresh_from_db()
    assert (first.ended_on, first.end_reason) == (second.index_date, "new-index")
    assert first.follow_ups.get(timepoint="6m").status == "cancelled"
    assert first.follow_ups.get(timepoint="baseline").status == "missed"  # the past stays as it was
    with pytest.raises(Invalid, match="later index date"):
        services.start_episode(cast.pat_condition, today(cast) - dt.timedelta(days=50))


def test_an_index_date_before_birth_is_refused(cast) -> None:
    with pytest.raises(Invalid, match="before the patient's date of birth"):
        services.start_episode(cast.pat_condition, dt.date(1960, 1, 1))
    assert not Episode.objects.exists()


def _save(cast, follow_up, instrument="faam-adl", answers=FAAM_ADL, submit=True, version="1", **extra):
    return services.save_answers(
        patient=cast.pat,
        follow_up=follow_up,
        instrument=instrument,
        version=version,
        answers=answers,
        source="patient",
        submit=submit,
        **extra,
    )


def test_answers_are_scored_exactly_and_stored_with_their_policy(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    saved = _save(cast, follow_up)
    assert saved.outcome == "completed"
    score = saved.response.scores.get()
    assert (score.scale, score.value, score.valid, score.answered, score.not_applicable, score.missing) == (
        "total",
        75.0,
        True,
        19,
        2,
        0,
    )
    assert score.policy == "na-counts-as-completed"


def test_partial_answers_are_kept_and_completed_later(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    partial = [3, 2, None] + [None] * 18
    assert _save(cast, follow_up, answers=partial, submit=False).outcome == "saved"
    response = QuestionnaireResponse.objects.get()
    assert (response.status, response.answers[:3]) == ("in-progress", [3, 2, None])
    assert not Score.objects.exists()
    assert _save(cast, follow_up).outcome == "completed"
    assert QuestionnaireResponse.objects.count() == 1


def test_the_follow_up_completes_when_every_instrument_is_answered_and_reminders_stop(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    reminder = Contact.objects.create(
        follow_up=follow_up, kind="reminder", channel="email", due_at=timezone.now(), state="scheduled"
    )
    _save(cast, follow_up, "nprs", [3])
    _save(cast, follow_up, "percent-improvement", [40])
    _save(cast, follow_up, "sane", [70])
    reminder.refresh_from_db()
    assert reminder.state == "scheduled"  # not all answered yet
    _save(cast, follow_up)
    follow_up.refresh_from_db()
    reminder.refresh_from_db()
    assert follow_up.status == "completed"
    assert (reminder.state, reminder.outcome) == ("cancelled", "answered")


def test_a_second_submission_changes_nothing(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    _save(cast, follow_up, "nprs", [3])
    again = _save(cast, follow_up, "nprs", [9])
    assert again.outcome == "already-completed"
    assert QuestionnaireResponse.objects.get().answers == [3]
    assert Score.objects.get().value == 3


@pytest.mark.parametrize(
    ("instrument", "answers", "version", "message"),
    [
        ("nprs", [11], "1", "11 is not one of its answers"),
        ("nprs", [3, 4], "1", "expects 1 answer"),
        ("faam-adl", [5] * 21, "1", "not one of its answers"),
        ("nprs", [3], "0", r"changed \(version 1\) since the page was opened"),
        ("cait", [3] * 9, "1", "not part of this follow-up"),
        ("nprs", ["NA"], "1", "NA"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_written(cast, instrument, answers, version, message) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    with pytest.raises(Invalid, match=message):
        _save(cast, follow_up, instrument, answers, version=version)
    assert not QuestionnaireResponse.objects.exists()


def test_answers_after_the_window_are_kept_flagged_late_and_do_not_complete_it(cast) -> None:
    follow_up = episode_from(cast, 60).follow_ups.get(timepoint="1m")  # closed a few weeks ago
    saved = _save(cast, follow_up, "nprs", [2], collected_on=today(cast))
    assert saved.response.flags == ["late"]
    follow_up.refresh_from_db()
    assert follow_up.status == "missed"


def test_a_baseline_answered_after_the_index_is_flagged(cast) -> None:
    follow_up = episode_from(cast, 5).follow_ups.get(timepoint="baseline")
    saved = _save(cast, follow_up, "nprs", [6])
    assert saved.response.flags == ["baseline-after-index"]


def test_a_coordinator_enters_a_paper_form_with_the_same_scoring(client, cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    client.force_login(cast.carol)
    url = reverse("paper-entry", kwargs={"pk": follow_up.pk, "instrument": "faam-adl"})
    data = {"collected_on": str(today(cast))} | {f"item_{i}": str(a) for i, a in enumerate(FAAM_ADL)}
    assert client.post(url, data).status_code == 302
    response = QuestionnaireResponse.objects.get()
    assert (response.source, response.entered_by, response.scores.get().value) == ("paper", cast.carol, 75.0)
    # Entered twice: nothing changes, and the coordinator is told.
    page = client.post(url, data | {"item_0": "0"}, follow=True).content.decode()
    assert "already answered" in page
    assert QuestionnaireResponse.objects.get().answers[0] == 3


def test_a_paper_form_with_an_impossible_answer_is_refused(client, cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    client.force_login(cast.carol)
    url = reverse("paper-entry", kwargs={"pk": follow_up.pk, "instrument": "nprs"})
    response = client.post(url, {"collected_on": str(today(cast)), "item_0": "12"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not QuestionnaireResponse.objects.exists()


def test_the_patient_page_shows_scores_as_a_chart_with_the_mcid_band(client, cast) -> None:
    episode = episode_from(cast, 35)
    _save(cast, episode.follow_ups.get(timepoint="baseline"), "nprs", [7], collected_on=episode.index_date)
    _save(cast, episode.follow_ups.get(timepoint="1m"), "nprs", [3])
    client.force_login(cast.alice)
    page = client.get(reverse("patient-detail", kwargs={"pk": cast.pat.pk})).content.decode()
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    assert 'class="mcid"' in page  # baseline 7 ± 2
    assert "a change beyond the MCID (better)" in page
    assert 'class="marker' in page  # the procedure on the time axis


def test_the_worklist_shows_due_overdue_and_missed_follow_ups_of_the_users_clinics(client, cast) -> None:
    episode_from(cast, 33)  # 1m due (overdue), baseline missed
    client.force_login(cast.carol)
    page = client.get(reverse("worklist")).content.decode()
    assert "Overdue (1)" in page and "Missed in the last 30 days (1)" in page
    client.force_login(cast.olga)
    assert "Pat Lee" not in client.get(reverse("worklist")).content.decode()


def test_resend_queues_one_more_invitation(client, cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    cast.pat.email = "pat@example.org"
    cast.pat.save()
    client.force_login(cast.carol)
    client.post(reverse("follow-up-resend", kwargs={"pk": follow_up.pk}))
    client.post(reverse("follow-up-resend", kwargs={"pk": follow_up.pk}))
    assert Contact.objects.filter(follow_up=follow_up, kind="resend", state="scheduled").count() == 2
    assert FollowUp.objects.get(pk=follow_up.pk).status == "due"


def test_withdrawing_consent_ends_follow_up(client, cast) -> None:
    episode = episode_from(cast, 30)
    consent = cast.pat.consents.get()
    client.force_login(cast.carol)
    data = {"version": "1", "consented_on": "2025-01-10", "withdrawn_on": str(today(cast)), "notes": ""}
    assert client.post(reverse("consent-edit", kwargs={"pk": consent.pk}), data).status_code == 302
    episode.refresh_from_db()
    assert (episode.ended_on, episode.end_reason) == (today(cast), "withdrawn")
    assert episode.follow_ups.get(timepoint="3m").status == "cancelled"


def test_answers_are_audited_with_the_patient_link_as_actor(client, cast) -> None:
    from stride.audit.models import AuditEntry
    from stride.outcomes import links

    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    token = links.token_for(links.new_link(cast.pat))
    url = reverse(
        "patient-questionnaire", kwargs={"token": token, "follow_up": follow_up.pk, "instrument": "nprs"}
    )
    client.post(url, {"version": "1", "item_0": "4"}, REMOTE_ADDR="198.51.100.7")
    entry = AuditEntry.objects.get(model="outcomes.QuestionnaireResponse", action="create")
    assert (entry.patient_id, entry.channel, entry.ip_address) == (cast.pat.pk, "patient", "198.51.100.7")
    assert entry.username.startswith("patient-link:")


def test_answers_dated_before_the_window_opens_or_in_the_future_are_refused(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    with pytest.raises(Invalid, match="opens on"):
        _save(cast, follow_up, "nprs", [3], collected_on=follow_up.opens_on - dt.timedelta(days=1))
    with pytest.raises(Invalid, match="in the future"):
        _save(cast, follow_up, "nprs", [3], collected_on=today(cast) + dt.timedelta(days=1))
    assert not QuestionnaireResponse.objects.exists()


def test_an_earlier_index_procedure_stays_editable_after_a_later_one(cast) -> None:
    from django.core.exceptions import ValidationError

    from stride.care.models import Procedure

    first = cast.pat_procedure
    first.is_index = True
    first.save()
    later = Procedure.objects.create(
        patient=cast.pat,
        condition=cast.pat_condition,
        performed_on=first.performed_on + dt.timedelta(days=90),
        procedure_type=first.procedure_type,
        laterality="left",
        image_guidance="ultrasound",
        is_index=True,
    )
    first.refresh_from_db()
    first.notes = "edited later"
    first.full_clean()  # unchanged index date: no clash with the later index
    first.performed_on = later.performed_on - dt.timedelta(days=1)  # moved: the rule applies again
    with pytest.raises(ValidationError, match="must come after"):
        first.full_clean()


def test_ending_an_episode_cancels_a_follow_up_whose_window_is_still_open(cast) -> None:
    episode = episode_from(cast, 32)  # 1m is due, its due date passed
    services.end_episode(episode, today(cast), Episode.EndReason.STOPPED)
    assert episode.follow_ups.get(timepoint="1m").status == "cancelled"


def test_no_follow_up_starts_for_a_patient_who_withdrew(cast) -> None:
    from stride.care.models import Procedure

    cast.pat.consents.update(withdrawn_on=dt.date(2025, 1, 20))
    Procedure.objects.create(
        patient=cast.pat,
        condition=cast.pat_condition,
        performed_on=dt.date(2025, 2, 10),
        procedure_type=cast.pat_procedure.procedure_type,
        laterality="left",
        image_guidance="ultrasound",
        is_index=True,
    )
    assert not Episode.objects.exists()


class _Undo(Exception):
    pass


def _state(cast) -> dict[str, object]:
    from stride.audit.models import AuditEntry

    return {
        "responses": sorted(
            QuestionnaireResponse.objects.values_list(
                "follow_up__timepoint", "instrument", "status", "answers", "flags", "collected_on", "context"
            ),
            key=repr,
        ),
        "scores": sorted(
            Score.objects.values_list("response__instrument", "scale", "value", "valid", "policy", "flags"),
            key=repr,
        ),
        "follow_ups": sorted(FollowUp.objects.values_list("episode__index_date", "timepoint", "status")),
        "contacts": sorted(Contact.objects.values_list("state", "outcome")),
        "audit": sorted(AuditEntry.objects.values_list("action", "model", "patient_id")),
    }


def test_many_answer_sets_saved_together_end_as_saved_one_by_one(cast) -> None:
    from django.db import transaction

    recent = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    Contact.objects.create(
        follow_up=recent, kind="reminder", channel="email", due_at=timezone.now(), state="scheduled"
    )
    _save(cast, recent, answers=[3, 2, None] + [None] * 18, submit=False)  # in progress: completed below
    old = services.start_episode(cast.quinn_condition, today(cast) - dt.timedelta(days=60))
    old_1m = old.follow_ups.get(timepoint="1m")  # another patient's, its window closed: answers come late
    sets = [
        ("nprs", recent, [3], None, None),
        ("percent-improvement", recent, [40], None, None),
        ("nprs", recent, [9], None, None),  # a second nprs: changes nothing
        ("nprs", old_1m, [2], None, None),  # late: flagged, does not complete its follow-up
        ("sane", recent, [70], ["imported"], "clinic"),  # flags and context as another system recorded
        ("faam-adl", recent, FAAM_ADL, None, None),  # the last one: completes the follow-up
    ]

    def one_by_one() -> list[str]:
        return [
            services.save_answers(
                patient=f.patient,
                follow_up=f,
                instrument=i,
                version="1",
                answers=a,
                source="patient",
                submit=True,
                collected_on=today(cast),
                recorded_flags=flags,
                context=context,
            ).outcome
            for i, f, a, flags, context in sets
        ]

    def together() -> list[str]:
        saved = services.save_completed_answers(
            [
                services.AnswerSet(f.patient, f, i, "1", a, "patient", today(cast), flags, context)
                for i, f, a, flags, context in sets
            ]
        )
        assert [len(s.scores) for s in saved] == [
            s.response.scores.count() if s.outcome == "completed" else 0 for s in saved
        ]
        return [s.outcome for s in saved]

    states, outcomes = [], []
    for save in (one_by_one, together):
        try:
            with transaction.atomic():
                outcomes.append(save())
                states.append(_state(cast))
                raise _Undo
        except _Undo:
            pass
    assert outcomes[0] == outcomes[1] == ["completed"] * 2 + ["already-completed"] + ["completed"] * 3
    assert states[0] == states[1]
    assert ("completed" in {s for _d, t, s in states[1]["follow_ups"] if t == "1m"}) is True
    assert ("cancelled", "answered") in states[1]["contacts"]


def test_answer_sets_saved_together_are_all_checked_first_and_one_refusal_writes_nothing(cast) -> None:
    follow_up = episode_from(cast, 30).follow_ups.get(timepoint="1m")
    good = services.AnswerSet(cast.pat, follow_up, "nprs", "1", [3], "patient", today(cast))
    bad = services.AnswerSet(cast.pat, follow_up, "sane", "1", [170], "patient", today(cast))
    with pytest.raises(Invalid, match="170 is not one of its answers"):
        services.save_completed_answers([good, bad])
    assert not QuestionnaireResponse.objects.exists() and not Score.objects.exists()
