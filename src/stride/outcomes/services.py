"""Follow-up operations: start an episode, take answers, open and close follow-ups.

Views, the worker, the demo and commands call these; none of them writes
follow-up rows by hand. Every function that writes does so in one
transaction: an answer set is stored with its scores, its follow-up's state
and the cancellation of pending reminders together, or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from stride.care.models import Condition, Procedure
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.core import scoring
from stride.core.errors import Invalid
from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Patient

Answer = int | str | None


def _at_baseline(code: str) -> bool:
    return core_instruments.library()[code].baseline


@transaction.atomic
def start_episode(
    condition: Condition,
    index_date: dt.date,
    *,
    procedure: Procedure | None = None,
    user: Any = None,
    today: dt.date | None = None,
) -> Episode:
    """Start follow-up of ``condition`` from ``index_date``; an active earlier episode ends that day."""
    patient = condition.patient
    today = today or patient.clinic.today()
    if index_date < patient.date_of_birth:
        raise Invalid("The index date is before the patient's date of birth.", "index_date")
    if index_date > today + dt.timedelta(days=365):
        raise Invalid("The index date is more than a year ahead.", "index_date")
    for earlier in condition.episodes.filter(ended_on__isnull=True):
        if earlier.index_date > index_date:
            raise Invalid(
                "This condition already has follow-up from a later index date "
                f"({earlier.index_date:%d %b %Y}).",
                "index_date",
            )
        if earlier.index_date == index_date:
            raise Invalid("Follow-up from this index date has already started.", "index_date")
        end_episode(earlier, index_date, Episode.EndReason.NEW_INDEX)
    plan = core_schedule.schedule()
    episode = Episode.objects.create(
        condition=condition,
        index_date=index_date,
        index_procedure=procedure,
        schedule_version=plan.version,
        started_by=user if getattr(user, "is_authenticated", False) else None,
    )
    code = condition.condition_type.code
    follow_ups = []
    for window in plan.windows(index_date):
        follow_ups.append(
            FollowUp(
                episode=episode,
                patient=patient,
                timepoint=window.timepoint,
                opens_on=window.opens,
                due_on=window.due,
                closes_on=window.closes,
                accepts_until=window.accepts_until,
                instruments=list(plan.instruments_for(code, window.timepoint, _at_baseline)),
                status=window.state(today, completed=False),
            )
        )
    FollowUp.objects.bulk_create(follow_ups)
    return episode


def end_episode(episode: Episode, on: dt.date, reason: str) -> None:
    """Censor an episode from ``on``: its follow-ups not yet done are cancelled, and their contacts."""
    episode.ended_on = on
    episode.end_reason = reason
    episode.save(update_fields=["ended_on", "end_reason"])
    # Every follow-up not yet answered or missed ends with the episode, even one whose window is
    # still open: answers after this day would measure the next treatment, not this one.
    open_follow_ups = episode.follow_ups.filter(status__in=[FollowUp.Status.PENDING, FollowUp.Status.DUE])
    cancel_contacts(Contact.objects.filter(follow_up__in=open_follow_ups), Contact.Outcome.EPISODE_ENDED)
    open_follow_ups.update(status=FollowUp.Status.CANCELLED)


def cancel_contacts(contacts: Any, outcome: str) -> int:
    return contacts.filter(state__in=[Contact.State.SCHEDULED, Contact.State.OPEN]).update(
        state=Contact.State.CANCELLED, outcome=outcome, finished_at=timezone.now()
    )


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class Saved:
    """What became of an answer set."""

    response: QuestionnaireResponse
    #: "saved" (in progress), "completed", or "already-completed" (a repeat: nothing changed)
    outcome: str
    #: the scores computed when the answers were completed now (none otherwise)
    scores: tuple[Score, ...] = ()


def save_answers(
    *,
    patient: Patient,
    follow_up: FollowUp | None,
    instrument: str,
    version: str,
    answers: Sequence[Answer],
    source: str,
    submit: bool,
    user: Any = None,
    collected_on: dt.date | None = None,
    recorded_flags: Sequence[str] | None = None,
    context: str | None = None,
) -> Saved:
    """Store an instrument's answers (partial or final) for a patient's follow-up.

    Raises :class:`Invalid` (nothing written) for an instrument not due at the
    follow-up, another version of the instrument than the current one, or an
    answer out of range. A second submission of a completed instrument changes
    nothing and says so. Answers after the window are stored, flagged "late",
    and do not complete the follow-up; baseline answers after the index day
    are flagged "baseline-after-index". Answers brought from another system (an import) keep
    the flags and context it recorded (``recorded_flags``, ``context``) instead of those
    worked out here; whether they complete the follow-up is still worked out here.
    """
    definition = core_instruments.instrument(instrument)
    collected_on = collected_on or patient.clinic.today()
    _check(definition, patient, follow_up, version, answers, collected_on)
    with transaction.atomic():
        if follow_up is not None:
            # Serialise concurrent submissions of one follow-up (a no-op lock on SQLite, which
            # serialises writers anyway); the unique constraint is the last line of defence.
            follow_up = FollowUp.objects.select_for_update().get(pk=follow_up.pk)
            others = list(follow_up.responses.all())  # at most one per instrument (a constraint)
            response = next((r for r in others if r.instrument == instrument), None)
        else:
            others, response = [], None
        if response is not None and response.status == QuestionnaireResponse.Status.COMPLETED:
            return Saved(response, "already-completed")
        if response is None:
            response = QuestionnaireResponse(
                patient=patient,
                follow_up=follow_up,
                instrument=instrument,
                instrument_version=definition.version,
                context=definition.context,
                source=source,
            )
        response.answers = list(answers)
        response.collected_on = collected_on
        if getattr(user, "is_authenticated", False):
            response.entered_by = user
        if context is not None:
            response.context = context
        if not submit:
            if recorded_flags is not None:
                response.flags = list(recorded_flags)
            response.save()
            return Saved(response, "saved")
        window_flags = follow_up.window.flags_for(collected_on) if follow_up is not None else ()
        if recorded_flags is not None:
            response.flags = list(recorded_flags)
        else:
            response.flags = sorted(set(response.flags) | set(window_flags))
        response.status = QuestionnaireResponse.Status.COMPLETED
        response.submitted_at = timezone.now()
        response.save()
        result = scoring.score(definition, list(answers))
        scores = Score.objects.bulk_create(_score_rows(response, result))
        if follow_up is not None and "late" not in window_flags:
            completed = {r.instrument for r in others if r.status == QuestionnaireResponse.Status.COMPLETED}
            _complete_if_done(follow_up, completed | {instrument})
    return Saved(response, "completed", tuple(scores))


def _score_rows(response: QuestionnaireResponse, result: Any) -> list[Score]:
    """The Score rows (unsaved) of a response's scoring result, one per scale."""
    return [
        Score(
            response=response,
            instrument=response.instrument,
            scale=scale,
            value=s.value,
            valid=s.valid,
            answered=s.answered,
            not_applicable=s.na,
            missing=s.missing,
            policy=result.policy,
            flags=list(s.flags),
        )
        for scale, s in result.scales.items()
    ]


def _check(
    definition: core_instruments.Instrument,
    patient: Patient,
    follow_up: FollowUp | None,
    version: str,
    answers: Sequence[Answer],
    collected_on: dt.date,
) -> None:
    """What an answer set must be, before anything is read or written; raises :class:`Invalid`."""
    if version != definition.version:
        raise Invalid(
            f"This questionnaire changed (version {definition.version}) since the page was opened "
            f"(version {version}); please open it again.",
            "version",
        )
    if follow_up is not None:
        if follow_up.patient_id != patient.pk:
            raise Invalid("That follow-up belongs to another patient.", "follow_up")
        if definition.code not in follow_up.instruments:
            raise Invalid(f"{definition.short_name} is not part of this follow-up.", "instrument")
    scoring.validate_answers(definition, list(answers))
    if follow_up is not None and collected_on < follow_up.opens_on:
        raise Invalid(
            f"The {follow_up.timepoint_name.lower()} follow-up opens on {follow_up.opens_on:%d %b %Y}; "
            "answers from before then belong to an earlier time point.",
            "collected_on",
        )
    if collected_on > patient.clinic.today():
        raise Invalid("The date the answers were given is in the future.", "collected_on")


@dataclass(frozen=True)
class AnswerSet:
    """One completed answer set for a follow-up, as :func:`save_completed_answers` takes them."""

    patient: Patient
    follow_up: FollowUp
    instrument: str
    version: str
    answers: Sequence[Answer]
    source: str
    collected_on: dt.date
    recorded_flags: Sequence[str] | None = None
    context: str | None = None


def save_completed_answers(sets: Sequence[AnswerSet]) -> list[Saved]:
    """Completed answer sets of follow-ups, many at once (an import): what :func:`save_answers`
    with ``submit=True`` does for each in turn, with a handful of queries for all of them.

    Every set is checked first and :class:`Invalid` raised for the first one refused (nothing
    written). In order, as one by one: a set whose follow-up already has that instrument completed
    (before, or earlier in ``sets``) changes nothing ("already-completed"); an answer set in progress
    is completed; a new one is created and audited; each is scored; a follow-up is completed (and
    its reminders cancelled) when a set inside its window brings its last instrument.
    """
    definitions = [core_instruments.instrument(s.instrument) for s in sets]
    for answer_set, definition in zip(sets, definitions, strict=True):
        _check(
            definition,
            answer_set.patient,
            answer_set.follow_up,
            answer_set.version,
            answer_set.answers,
            answer_set.collected_on,
        )
    from stride.audit.log import record
    from stride.audit.models import AuditEntry

    with transaction.atomic():
        ids = {s.follow_up.pk for s in sets}
        locked = {f.pk: f for f in FollowUp.objects.select_for_update().filter(pk__in=ids)}
        if len(locked) != len(ids):
            raise Invalid("A follow-up of these answers is no longer there.", "follow_up")
        responses = {
            (r.follow_up_id, r.instrument): r
            for r in QuestionnaireResponse.objects.filter(follow_up_id__in=ids)
        }
        results: list[tuple[QuestionnaireResponse, str, Any]] = []
        new: list[QuestionnaireResponse] = []
        completed: list[FollowUp] = []
        now = timezone.now()
        for answer_set, definition in zip(sets, definitions, strict=True):
            follow_up = locked[answer_set.follow_up.pk]
            response = responses.get((follow_up.pk, answer_set.instrument))
            if response is not None and response.status == QuestionnaireResponse.Status.COMPLETED:
                results.append((response, "already-completed", None))
                continue
            if response is None:
                response = QuestionnaireResponse(
                    patient=answer_set.patient,
                    follow_up=follow_up,
                    instrument=answer_set.instrument,
                    instrument_version=definition.version,
                    context=definition.context,
                    source=answer_set.source,
                )
                new.append(response)
                responses[(follow_up.pk, answer_set.instrument)] = response
            window_flags = follow_up.window.flags_for(answer_set.collected_on)
            response.answers = list(answer_set.answers)
            response.collected_on = answer_set.collected_on
            if answer_set.context is not None:
                response.context = answer_set.context
            if answer_set.recorded_flags is not None:
                response.flags = list(answer_set.recorded_flags)
            else:
                response.flags = sorted(set(response.flags) | set(window_flags))
            response.status = QuestionnaireResponse.Status.COMPLETED
            response.submitted_at = now
            if response.pk is not None:
                response.save()  # an answer set in progress, now completed (audited as a change)
            results.append((response, "completed", scoring.score(definition, list(answer_set.answers))))
            if "late" not in window_flags and follow_up.status != FollowUp.Status.COMPLETED:
                done = {
                    i
                    for (f, i), r in responses.items()
                    if f == follow_up.pk and r.status == QuestionnaireResponse.Status.COMPLETED
                }
                if set(follow_up.instruments) <= done:
                    follow_up.status, follow_up.completed_at = FollowUp.Status.COMPLETED, now
                    completed.append(follow_up)
        QuestionnaireResponse.objects.bulk_create(new)
        for response in new:
            record(AuditEntry.Action.CREATE, response)
        scores: dict[int, list[Score]] = {}  # by the set's place in ``sets``
        for n, (response, _outcome, result) in enumerate(results):
            if result is None:
                continue
            scores[n] = _score_rows(response, result)
        Score.objects.bulk_create([score for group in scores.values() for score in group])
        if completed:
            FollowUp.objects.filter(pk__in=[f.pk for f in completed]).update(
                status=FollowUp.Status.COMPLETED, completed_at=now
            )
            cancel_contacts(Contact.objects.filter(follow_up__in=completed), Contact.Outcome.ANSWERED)
    return [Saved(r, outcome, tuple(scores.get(n, ()))) for n, (r, outcome, _) in enumerate(results)]


def _complete_if_done(follow_up: FollowUp, done: set[str]) -> None:
    """Complete the follow-up (locked by the caller) once every instrument in ``done`` is answered."""
    if set(follow_up.instruments) <= done and follow_up.status != FollowUp.Status.COMPLETED:
        follow_up.status = FollowUp.Status.COMPLETED
        follow_up.completed_at = timezone.now()
        follow_up.save(update_fields=["status", "completed_at"])
        # A patient who has answered is never reminded: in the same transaction.
        cancel_contacts(follow_up.contacts.all(), Contact.Outcome.ANSWERED)


def open_follow_ups(patient: Patient, today: dt.date | None = None) -> list[FollowUp]:
    """The follow-ups a patient can answer today, oldest first."""
    today = today or patient.clinic.today()
    return list(
        FollowUp.objects.filter(
            patient=patient,
            status__in=[FollowUp.Status.PENDING, FollowUp.Status.DUE],
            opens_on__lte=today,
            accepts_until__gte=today,
            episode__ended_on__isnull=True,
        )
        .select_related("episode__condition__condition_type", "episode__condition__site")
        .prefetch_related("responses")
        .order_by("due_on", "pk")
    )
