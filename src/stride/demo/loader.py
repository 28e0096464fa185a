"""Load the demo into the configured database, idempotently.

Clinics and logins are matched by slug and username, story patients by their
record number: whatever already exists is left as it is, so running the
loader twice changes nothing. Every story record goes through ``full_clean``,
the same validation as the pages.

A story's index treatment starts its follow-up as on the pages (the
``post_save`` signal of :mod:`stride.outcomes.signals`). The questionnaires
the story says were answered are then given through
:func:`stride.outcomes.services.save_answers`, as a patient would, on a day
inside their window, after the contacts the worker would have made by then
(the invitation, and the reminder when the answer came after its day). A
follow-up whose window is open today and that the story leaves unanswered
keeps its invitation, reminder and open phone-call task, for the worklist.
A story's images are filed, measured and marked through the imaging services
(:mod:`stride.demo.images`), so their checks run too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from stride.care.models import (
    AdverseEvent,
    AdverseEventKind,
    Condition,
    ConditionType,
    Drug,
    Injectate,
    Procedure,
    ProcedureType,
    Site,
    TreatmentHistory,
    TreatmentKind,
)
from stride.clinics.models import Clinic, Membership, User
from stride.core import instruments as core_instruments
from stride.core import schedule as core_schedule
from stride.demo.images import load_images
from stride.demo.stories import CLINICS, LOGINS, Story, stories, story_answers
from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse
from stride.outcomes.services import save_answers
from stride.patients.models import Consent, Patient

_DECIMALS = {
    "height_cm",
    "weight_kg",
    "dose_mg",
    "volume_ml",
    "concentration_pct",
    "platelet_count",
    "baseline_platelet_count",
    "aspirate_volume_ml",
    "tnc_per_ml",
}


def _decimals(values: dict[str, Any]) -> dict[str, Any]:
    return {k: Decimal(v) if k in _DECIMALS and v is not None else v for k, v in values.items()}


def _saved(obj: Any) -> Any:
    obj.full_clean()
    obj.save()
    return obj


def load_people(password: str) -> tuple[dict[str, Clinic], dict[str, User], Counter[str]]:
    counts: Counter[str] = Counter()
    clinics: dict[str, Clinic] = {}
    for spec in CLINICS:
        clinic = Clinic.objects.filter(slug=spec.slug).first()
        if clinic is None:
            clinic = _saved(Clinic(slug=spec.slug, name=spec.name, time_zone=spec.time_zone))
            counts["clinics"] += 1
        clinics[spec.slug] = clinic
    users: dict[str, User] = {}
    for login in LOGINS:
        user = User.objects.filter(username=login.username).first()
        if user is None:
            user = User(
                username=login.username,
                first_name=login.first_name,
                last_name=login.last_name,
                email=f"{login.username}@stride.example",
                is_staff=login.staff,
                is_superuser=login.superuser,
            )
            user.set_password(password)
            user.save()
            counts["logins"] += 1
        users[login.username] = user
        for slug, role in login.roles.items():
            _, created = Membership.objects.get_or_create(
                user=user, clinic=clinics[slug], defaults={"role": role}
            )
            counts["memberships"] += created
    return clinics, users, counts


def load_story(story: Story, clinic: Clinic, users: dict[str, User]) -> bool:
    """Create one story patient with everything that happened to them; False if already there."""
    if Patient.objects.filter(clinic=clinic, record_number=story.patient["record_number"]).exists():
        return False
    patient = _saved(Patient(clinic=clinic, **_decimals(story.patient)))
    _saved(Consent(patient=patient, recorded_by=users["coordinator"], **story.consent))
    conditions: dict[str, Condition] = {}
    for key, fields in story.conditions.items():
        values = dict(fields)
        values["condition_type"] = ConditionType.objects.get(code=values["condition_type"])
        values["site"] = Site.objects.get(code=values["site"]) if values.get("site") else None
        conditions[key] = _saved(Condition(patient=patient, **values))
    for entry in story.history:
        values = dict(entry)
        values["treatment"] = TreatmentKind.objects.get(code=values["treatment"])
        values["condition"] = conditions[values["condition"]]
        _saved(TreatmentHistory(patient=patient, **values))
    answered: list[tuple[Procedure, dict[str, Any]]] = []
    for spec in story.procedures:
        values = dict(spec)
        injectates = values.pop("injectates", [])
        events = values.pop("adverse_events", [])
        follow_up = values.pop("follow_up", None)
        values["condition"] = conditions[values["condition"]]
        values["procedure_type"] = ProcedureType.objects.get(code=values["procedure_type"])
        values["site"] = Site.objects.get(code=values["site"]) if values.get("site") else None
        values["clinician"] = users[values["clinician"]]
        procedure = _saved(Procedure(patient=patient, **values))
        for injectate in injectates:
            fields = _decimals(injectate)
            if fields.get("drug"):
                fields["drug"] = Drug.objects.get(code=fields["drug"])
            _saved(Injectate(procedure=procedure, **fields))
        for event in events:
            fields = dict(event)
            fields["kind"] = AdverseEventKind.objects.get(code=fields["kind"])
            fields["adjudicated_by"] = users[fields["adjudicated_by"]]
            _saved(AdverseEvent(procedure=procedure, **fields))
        if follow_up is not None:
            answered.append((procedure, follow_up))
    for procedure, follow_up in answered:
        load_follow_up(patient, procedure, follow_up, users)
    load_images(story, patient, conditions, users["clinician"])
    return True


_CHANNELS = {"invitation": "email", "reminder": "email", "phone-call": "phone", "letter": "letter"}


def _at(day: dt.date, hour: int, minute: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def load_follow_up(
    patient: Patient, procedure: Procedure, answered: dict[str, dict[str, Any]], users: dict[str, User]
) -> None:
    """A story's answered questionnaires, with the contacts made before each, for one index treatment.

    ``answered``: time point -> {"after": days from the invitation to the
    answers, "answers": instrument -> answers or level}. Time points the
    story does not answer are left as the schedule has them (due, pending,
    or missed with their contacts).
    """
    episode = Episode.objects.get(index_procedure=procedure)
    zone = ZoneInfo(patient.clinic.time_zone)
    today = patient.clinic.today()
    plan = core_schedule.schedule()
    library = core_instruments.library()
    consented = min(patient.consents.values_list("consented_on", flat=True))
    for follow_up in episode.follow_ups.order_by("due_on"):
        window = follow_up.window
        if window.opens > today:
            continue
        start = max(window.opens, consented)
        spec = answered.get(follow_up.timepoint)
        collected = None
        if spec is not None:
            collected = min(start + dt.timedelta(days=spec.get("after", 1)), window.closes)
            if collected > today:
                collected = None
        for kind in core_schedule.CONTACT_KINDS:
            day = start + dt.timedelta(days=plan.contact_days[kind])
            if day > window.closes or day > today or (collected is not None and day >= collected):
                break
            due = _at(day, 9, 0, zone)
            contact = Contact(follow_up=follow_up, kind=kind, channel=_CHANNELS[kind], due_at=due)
            if contact.channel == Contact.Channel.EMAIL:
                contact.state, contact.outcome, contact.attempts = Contact.State.SENT, Contact.Outcome.SENT, 1
                contact.claimed_by, contact.claimed_at = "demo", due
                contact.finished_at = due + dt.timedelta(minutes=1)
            elif collected is None and window.accepts_until >= today:
                contact.state = Contact.State.OPEN  # on the coordinator's worklist today
            else:
                contact.state = Contact.State.DONE
                letter = kind == "letter"
                contact.outcome = Contact.Outcome.LETTER_SENT if letter else Contact.Outcome.NO_ANSWER
                contact.handled_by = users["coordinator"]
                contact.finished_at = due + dt.timedelta(hours=5)
            _saved(contact)
        if collected is None:
            continue
        for instrument, value in spec["answers"].items():
            save_answers(
                patient=patient,
                follow_up=follow_up,
                instrument=instrument,
                version=library[instrument].version,
                answers=story_answers(instrument, value),
                source="patient",
                submit=True,
                collected_on=collected,
            )
        # Answered that day, not the day the demo was loaded (and not later than now).
        submitted = min(_at(collected, 19, 12, zone), timezone.now())
        QuestionnaireResponse.objects.filter(follow_up=follow_up).update(
            started_at=submitted - dt.timedelta(minutes=4), submitted_at=submitted
        )
        FollowUp.objects.filter(pk=follow_up.pk, completed_at__isnull=False).update(completed_at=submitted)
    Contact.objects.filter(follow_up__episode=episode).update(created_at=F("due_at"))


#: The ankle story's course as a care plan: protocol step → the recorded procedure's note.
ANKLE_PLAN_STEPS = {
    "primer-1": "Primer 1 of 2.",
    "primer-2": "Primer 2 of 2.",
    "booster": "PRP booster at seven weeks.",
}


def load_story_plan(clinic: Clinic, users: dict[str, User]) -> int:
    """The ankle story (LFA-1003) followed the regenerative course: record it as its care plan."""
    from stride.care import plans

    patient = Patient.objects.filter(clinic=clinic, record_number="LFA-1003").first()
    if patient is None:
        return 0
    condition = patient.conditions.get()
    if condition.plans.exists():
        return 0
    index = patient.procedures.get(is_index=True)
    version = next(
        v
        for v in plans.current_versions(clinic, condition.condition_type.code)
        if v.code == "ankle-instability-regenerative"
    )
    plan = plans.start_plan(condition, version, index.performed_on, clinician=users["clinician"])
    steps = {step.code: step for step in plan.steps.all()}
    plans.complete(steps["index"], index, index.performed_on, users["clinician"])
    for code, note in ANKLE_PLAN_STEPS.items():
        procedure = patient.procedures.get(notes=note)
        plans.complete(steps[code], procedure, procedure.performed_on, users["clinician"])
    orthotics = patient.history.get(treatment__code="orthotics")
    plans.complete(steps["orthotics"], None, orthotics.started_on, users["clinician"])
    for code in ("review", "physical-therapy"):
        plans.complete(steps[code], None, steps[code].planned_on, users["clinician"])
    return 1


def load_demo(
    password: str,
    *,
    synth_patients: int,
    synth_seed: int,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Load clinics, logins, the story patients and the synthetic patients; return what was added."""
    with transaction.atomic():
        clinics, users, counts = load_people(password)
        for story in stories(clinics["lakeside"].today()):
            counts["story patients"] += load_story(story, clinics[story.clinic], users)
        counts["care plans"] += load_story_plan(clinics["lakeside"], users)
    if synth_patients:
        from stride.demo.synth_writer import seed_exists, write_synthetic

        if not seed_exists(synth_seed):
            written = write_synthetic(
                patients=synth_patients, seed=synth_seed, clinic_slugs=list(clinics), progress=progress
            )
            counts["synthetic patients"] += written.get("patients", 0)
    return counts
