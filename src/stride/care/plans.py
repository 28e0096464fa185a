"""Care plans: a protocol started on a condition, its dated steps, and every change to them.

Date arithmetic and the plan rules live in :mod:`stride.core.protocols`;
this module stores their results. Every change is one transaction and leaves
a :class:`PlanStepChange` with its reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from stride.care.models import CarePlan, Condition, PlanStep, PlanStepChange, Procedure, ProtocolVersion
from stride.clinics.models import Clinic
from stride.core import protocols as core_protocols
from stride.core.errors import Invalid

#: Sent after a plan is started (``plan``); the outcomes app starts follow-up from its anchor.
plan_started = Signal()
#: Sent after a plan is stopped (``plan``, ``on``: the clinic's day); the outcomes app ends the
#: follow-up the plan started if its index step was never done.
plan_stopped = Signal()


def _require_active(plan: CarePlan, field: str) -> None:
    if plan.status != CarePlan.Status.ACTIVE:
        raise Invalid(f"This plan is {plan.get_status_display().lower()}: its steps no longer change.", field)


def sync_protocols() -> int:
    """Bring the shipped protocol versions into the table (new versions only; text never rewritten)."""
    added = 0
    for protocol in core_protocols.protocols().values():
        path = core_protocols.PROTOCOL_DIR / f"{protocol.code}.toml"
        _, created = ProtocolVersion.objects.get_or_create(
            code=protocol.code,
            version=protocol.version,
            clinic=None,
            defaults={
                "name": protocol.name,
                "text": path.read_text(encoding="utf-8"),
                "conditions": list(protocol.conditions),
            },
        )
        added += created
    return added


def parsed(version: ProtocolVersion) -> core_protocols.Protocol:
    return core_protocols.parse_protocol(version.text, f"{version.code} v{version.version}")


def current_versions(clinic: Clinic, condition_code: str | None = None) -> list[ProtocolVersion]:
    """The newest version of each protocol this clinic uses: its own edit if any, else the shipped one."""
    latest: dict[str, ProtocolVersion] = {}
    for version in ProtocolVersion.objects.filter(retired=False).order_by("version"):
        if version.clinic_id not in (None, clinic.pk):
            continue
        held = latest.get(version.code)
        # The clinic's own edit wins over any shipped version; among equals the higher number wins.
        rank = (version.clinic_id is not None, version.version)
        if held is None or rank >= (held.clinic_id is not None, held.version):
            latest[version.code] = version
    result = sorted(latest.values(), key=lambda v: v.name)
    if condition_code is not None:
        result = [v for v in result if condition_code in v.conditions]
    return result


@transaction.atomic
def save_clinic_version(clinic: Clinic, code: str, text: str, user: Any) -> ProtocolVersion:
    """A clinic admin's edit of a protocol: checked in full, stored as the next version."""
    protocol = core_protocols.parse_protocol(text, f"{code} (edited)")
    if protocol.code != code:
        raise Invalid(f"The text names protocol {protocol.code!r}; this page edits {code!r}.", "text")
    highest = (
        ProtocolVersion.objects.filter(code=code)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    number = (highest or 0) + 1
    # The version written in the text is informational; the stored number is the next one.
    return ProtocolVersion.objects.create(
        code=code,
        version=number,
        clinic=clinic,
        name=protocol.name,
        text=text,
        conditions=list(protocol.conditions),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


@transaction.atomic
def start_plan(
    condition: Condition,
    version: ProtocolVersion,
    anchor: dt.date,
    *,
    clinician: Any = None,
    user: Any = None,
    include_optional: bool = False,
) -> CarePlan:
    """Date the protocol from ``anchor`` (its index step's day) for this condition, or refuse."""
    protocol = parsed(version)
    if condition.condition_type.code not in protocol.conditions:
        raise Invalid(f"{protocol.name} is not a protocol for {condition.condition_type.name}.", "protocol")
    if condition.plans.filter(status=CarePlan.Status.ACTIVE).exists():
        raise Invalid("This condition already has an active plan; stop it first.", "protocol")
    planned = core_protocols.plan_dates(protocol, anchor, include_optional=include_optional)
    core_protocols.validate_plan(planned, born=condition.patient.date_of_birth)
    plan = CarePlan.objects.create(
        condition=condition, protocol=version, anchor_date=anchor, clinician=clinician
    )
    PlanStep.objects.bulk_create(
        PlanStep(
            plan=plan,
            code=p.code,
            name=p.name,
            kind=p.kind,
            planned_on=p.planned_on,
            first_planned_on=p.planned_on,
            window_start=p.window_start,
            window_end=p.window_end,
            optional=p.optional,
            is_anchor=p.code == protocol.anchor,
            session=p.session or "",
            note=p.note,
            defaults=_defaults(p, condition),
        )
        for p in planned
    )
    plan_started.send(sender=CarePlan, plan=plan, user=user)
    return plan


def _defaults(step: core_protocols.PlannedStep, condition: Condition) -> dict[str, Any]:
    if step.kind != "procedure":
        return {"treatment": step.treatment} if step.treatment else {}
    return {
        "procedure": step.procedure,
        "site": step.site or (condition.site.code if condition.site_id else None),
        "guidance": step.guidance,
        "injectates": [{"kind": i.kind, **dict(i.values)} for i in step.injectates],
    }


def _record(step: PlanStep, action: str, user: Any, reason: str = "", **dates: Any) -> None:
    PlanStepChange.objects.create(
        step=step,
        action=action,
        reason=reason,
        by=user if getattr(user, "is_authenticated", False) else None,
        **dates,
    )


@transaction.atomic
def reschedule(step: PlanStep, new_date: dt.date, reason: str, user: Any) -> list[PlanStep]:
    """Move a planned step (its session and the steps timed from it follow); return the steps moved."""
    if step.status != PlanStep.Status.PLANNED:
        raise Invalid("Only a planned step can be rescheduled.", "planned_on")
    plan = step.plan
    _require_active(plan, "planned_on")
    if not reason.strip():
        raise Invalid("Say why the step moves.", "reason")
    patient = plan.condition.patient
    core_protocols.check_reschedule(step, new_date, patient.clinic.today(), patient.date_of_birth)
    if step.added:
        # An added step is no protocol's: its window is its day, and moves with it.
        _record(step, "rescheduled", user, reason, from_date=step.planned_on, to_date=new_date)
        step.planned_on = step.window_start = step.window_end = new_date
        step.reason = reason
        moved_steps = [step]
    else:
        moved_steps = _redate(plan, {step.code: new_date}, user, reason, by_hand=step)
    if step.added:
        step.save(update_fields=["planned_on", "window_start", "window_end", "reason"])
    return moved_steps


def _redate(
    plan: CarePlan, moved_now: dict[str, dt.date], user: Any, reason: str, by_hand: PlanStep | None = None
) -> list[PlanStep]:
    """Re-date the plan's open protocol steps around the days fixed so far; return the steps that moved.

    Fixed: the steps a clinician moved by hand, ``moved_now``, and every step done (on its day).
    The steps timed from them follow, and so do their windows.
    """
    protocol = parsed(plan.protocol)
    patient = plan.condition.patient
    steps = {s.code: s for s in plan.steps.all()}
    # Only the steps a clinician moved stay put; the ones that followed them follow again.
    by_hand_codes = set(
        PlanStepChange.objects.filter(step__plan=plan, action="rescheduled").values_list(
            "step__code", flat=True
        )
    )
    moved = {s.code: s.planned_on for s in steps.values() if not s.added and s.code in by_hand_codes}
    moved.update(moved_now)
    for s in steps.values():  # what is done stays where it was done
        if s.status == PlanStep.Status.DONE and not s.added:
            moved.setdefault(s.code, s.done_on or s.planned_on)
    planned = core_protocols.plan_dates(protocol, plan.anchor_date, include_optional=True, moved=moved)
    present = [p for p in planned if p.code in steps and steps[p.code].status != PlanStep.Status.SKIPPED]
    core_protocols.validate_plan(present, born=patient.date_of_birth)
    moved_steps = []
    for p in present:
        row = steps[p.code]
        # A step's window is where the protocol expects it, given the days of the steps before
        # it: the window of a step that follows another moves with it.
        window = (p.window_start, p.window_end)
        if row.status != PlanStep.Status.PLANNED or (
            row.planned_on == p.planned_on and window == (row.window_start, row.window_end)
        ):
            continue
        if row.planned_on != p.planned_on:
            action = "rescheduled" if by_hand is not None and row.pk == by_hand.pk else "followed"
            _record(row, action, user, reason, from_date=row.planned_on, to_date=p.planned_on)
            row.planned_on = p.planned_on
            row.reason = reason
            moved_steps.append(row)
        row.window_start, row.window_end = window
        row.save(update_fields=["planned_on", "window_start", "window_end", "reason"])
    return moved_steps


@transaction.atomic
def skip(step: PlanStep, reason: str, user: Any) -> None:
    if step.status != PlanStep.Status.PLANNED:
        raise Invalid("Only a planned step can be skipped.", "reason")
    _require_active(step.plan, "reason")
    if step.is_anchor:
        raise Invalid("The index step cannot be skipped: stop the plan instead.", "reason")
    if not reason.strip():
        raise Invalid("Say why the step is skipped.", "reason")
    step.status = PlanStep.Status.SKIPPED
    step.reason = reason
    step.save(update_fields=["status", "reason"])
    _record(step, "skipped", user, reason, from_date=step.planned_on)
    _finish_if_complete(step.plan)


@transaction.atomic
def add_step(plan: CarePlan, name: str, kind: str, planned_on: dt.date, reason: str, user: Any) -> PlanStep:
    patient = plan.condition.patient
    _require_active(plan, "name")
    if kind not in core_protocols.STEP_KINDS:
        raise Invalid(f"Unknown step kind {kind!r}.", "kind")
    if not reason.strip():
        raise Invalid("Say why the step is added.", "reason")
    if planned_on < patient.clinic.today():
        raise Invalid("A step cannot be added in the past.", "planned_on")
    number = plan.steps.filter(added=True).count() + 1
    step = PlanStep.objects.create(
        plan=plan,
        code=f"added-{number}",
        name=name,
        kind=kind,
        planned_on=planned_on,
        first_planned_on=planned_on,
        window_start=planned_on,
        window_end=planned_on,
        added=True,
        reason=reason,
    )
    _record(step, "added", user, reason, to_date=planned_on)
    return step


@transaction.atomic
def complete(step: PlanStep, procedure: Procedure | None, on: dt.date, user: Any) -> PlanStep:
    """Mark a step done (by its procedure, if it is one); a day outside its window is a deviation."""
    if step.status != PlanStep.Status.PLANNED:
        raise Invalid("This step is already done or skipped.", "step")
    _require_active(step.plan, "step")
    step.status = PlanStep.Status.DONE
    step.procedure = procedure
    step.done_on = on
    step.deviation = not (step.window_start <= on <= step.window_end)
    step.save(update_fields=["status", "procedure", "done_on", "deviation"])
    _record(step, "done", user, "outside its window" if step.deviation else "", to_date=on)
    if step.is_anchor:
        _after_day_zero(step, on, user)
    _finish_if_complete(step.plan)
    return step


def _after_day_zero(anchor: PlanStep, on: dt.date, user: Any) -> None:
    """Day 0 is done: what was meant to come before it and did not is skipped, the rest re-timed.

    A step planned before day 0 (a primer) cannot usefully happen after it; and when day 0 was
    done on another day than planned, the steps timed from it follow the day it was done.
    """
    for step in anchor.plan.steps.filter(
        status=PlanStep.Status.PLANNED, added=False, first_planned_on__lt=anchor.first_planned_on
    ):
        step.status = PlanStep.Status.SKIPPED
        step.reason = "Not done before day 0."
        step.save(update_fields=["status", "reason"])
        _record(step, "skipped", user, step.reason, from_date=step.planned_on)
    if on != anchor.planned_on:
        _redate(anchor.plan, {}, user, f"Day 0 was done on {on:%d %b %Y}.")


def _finish_if_complete(plan: CarePlan) -> None:
    if not plan.steps.filter(status=PlanStep.Status.PLANNED, optional=False).exists():
        plan.status = CarePlan.Status.COMPLETED
        plan.save(update_fields=["status"])


@transaction.atomic
def stop(plan: CarePlan, reason: str) -> None:
    _require_active(plan, "reason")
    if not reason.strip():
        raise Invalid("Say why the plan stops.", "reason")
    plan.status = CarePlan.Status.STOPPED
    plan.stopped_reason = reason
    plan.save(update_fields=["status", "stopped_reason"])
    plan_stopped.send(sender=CarePlan, plan=plan, on=plan.condition.patient.clinic.today())
