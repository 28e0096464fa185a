"""Protocols as FHIR R4 PlanDefinition, care plans as FHIR R4 CarePlan.

Both builders return plain dicts (FHIR JSON) and check them against the
fhir.resources R4B models (:func:`validate`) before returning; the tests
check them against the official R4 JSON Schema too.

How Stride's protocol maps to a **PlanDefinition**:

* ``url`` is the address that serves the resource (``<base>/protocols/<code>/fhir/``);
  ``version`` is the stored protocol version number (a clinic's edit has its
  own number, so url|version names one template); ``identifier`` carries the
  protocol code; ``name`` is the code in CamelCase (a computer-usable name).
* One ``action`` per step, its ``id`` the step code. ``title`` is the step name,
  ``description`` its note. Procedure steps have a ``code`` with the CPT (or,
  for a letter-first code such as M0076, HCPCS Level II) number and Stride's
  procedure type; other steps a code of Stride's step kind and, when they name
  one, the catalog treatment. Optional steps have ``requiredBehavior`` ``could``,
  the others ``must``.
* **Offsets**: every step but the anchor has one ``relatedAction`` naming the step
  it is timed from (``relative_to``, by default the anchor), so chains stay
  chains. A negative offset is ``before-start``, a positive one ``after-start``,
  both with ``offsetDuration`` as a UCUM duration (``mo`` for calendar months,
  ``wk`` for whole weeks, ``d`` otherwise); a zero offset is
  ``concurrent-with-start`` with no duration. The anchor (day 0) is the one
  action without a ``relatedAction``. An offset mixing months with weeks or
  days fits no single duration: it keeps a ``relationship`` (by its approximate
  sign), no ``offsetDuration``, and the exact offset in the extension
  ``<base>/fhir/StructureDefinition/step-offset`` (valueString, Stride's
  notation, months applied first). No shipped protocol has one.
* **Windows**: the extension ``<base>/fhir/StructureDefinition/step-window`` on the
  action, with sub-extensions ``before`` and ``after`` (valueDuration: the
  distance before and after the planned day; a zero part is left out, and no
  extension means no leeway). ``relatedAction.offsetRange`` was not used: it is
  a choice with ``offsetDuration`` (the planned day would be lost), and a
  window such as 6 months ±30 days or day 0 ±3 days is no single-unit,
  one-sided range.
* **Sessions** (steps done in one visit): one grouping action per session
  (``id`` ``session-<code>``, ``groupingBehavior`` ``logical-group``) holding its
  steps' actions, at the place of its first step; each member keeps its own
  timing. Counting actions per step means counting the leaves.

How a Stride plan maps to a **CarePlan**:

* ``status`` active / completed / revoked (a stopped plan; its reason in
  ``note``), ``intent`` plan, ``instantiatesCanonical`` the PlanDefinition's
  url|version, ``subject`` ``Patient/<Stride id>``, ``addresses``
  ``Condition/<id>``, ``created``, and ``period`` from the first to the last day
  of the steps not skipped (a done step counts on the day it was done; for a
  stopped plan the end is the last done step's day, as the stop day is not
  stored).
* One ``activity`` per step, its ``id`` the step code (the PlanDefinition
  action's id). ``detail.code`` as in the PlanDefinition; ``detail.status``
  ``not-started`` (planned), ``completed`` (done), ``cancelled`` (skipped; and
  the planned steps of a stopped plan, or the optional steps left when a plan
  completed), with the reason in ``statusReason.text`` — also the reason a
  planned step was rescheduled. ``scheduledPeriod`` is the window; the planned
  day is in the extension ``<base>/fhir/StructureDefinition/planned-day``
  (valueDate) and, in words, in ``description`` (with the day it moved from).
  A done step has ``progress`` (the day it was done, and whether that was
  outside its window) and, when a procedure records it,
  ``outcomeReference`` ``Procedure/<id>``. Steps from the protocol carry
  ``detail.instantiatesCanonical``; steps added by a clinician do not.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from stride.core.catalog import Catalog, catalog
from stride.core.protocols import Offset, Protocol, Step

if TYPE_CHECKING:
    from stride.care.models import CarePlan, PlanStep

CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
HCPCS_SYSTEM = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
UCUM = "http://unitsofmeasure.org"
PLAN_DEFINITION_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_UNITS = {"mo": "month", "wk": "week", "d": "day"}
_DAYS_PER_MONTH = 30.4375  # only to say whether a mixed months-and-days offset points forward


# --------------------------------------------------------------------------- addresses


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def canonical_url(base_url: str, code: str) -> str:
    """The PlanDefinition's canonical url: the address Stride serves it at."""
    return f"{_base(base_url)}/protocols/{code}/fhir/"


def canonical(base_url: str, code: str, version_label: str) -> str:
    """``url|version``, as a CarePlan's ``instantiatesCanonical`` names one protocol version."""
    return f"{canonical_url(base_url, code)}|{version_label}"


def structure_url(base_url: str, name: str) -> str:
    return f"{_base(base_url)}/fhir/StructureDefinition/{name}"


def code_system_url(base_url: str, name: str) -> str:
    return f"{_base(base_url)}/fhir/CodeSystem/{name}"


# --------------------------------------------------------------------------- codes and durations


def procedure_system(number: str) -> str:
    """CPT for numeric codes (Category III too: 0232T); HCPCS Level II for letter-first ones (M0076)."""
    return HCPCS_SYSTEM if number[:1].isalpha() else CPT_SYSTEM


def _procedure_concept(
    procedure: str, base_url: str, cat: Catalog, fallback: tuple[str, str] | None = None
) -> dict[str, Any]:
    known = cat.procedures.get(procedure)
    number, name = (known.cpt, known.name) if known is not None else (fallback or ("", procedure))
    coding = []
    if number:
        coding.append({"system": procedure_system(number), "code": number})
    coding.append({"system": code_system_url(base_url, "procedure-type"), "code": procedure, "display": name})
    return {"coding": coding, "text": name}


def _kind_concept(kind: str, treatment: str | None, base_url: str, cat: Catalog) -> dict[str, Any]:
    coding = [{"system": code_system_url(base_url, "plan-step-kind"), "code": kind}]
    text = kind.capitalize()
    if treatment:
        named = cat.treatments.get(treatment)
        text = named.name if named is not None else treatment
        coding.append({"system": code_system_url(base_url, "treatment"), "code": treatment, "display": text})
    return {"coding": coding, "text": text}


def _duration(value: int, code: str) -> dict[str, Any]:
    unit = _UNITS[code] + ("" if value == 1 else "s")
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def duration(offset: Offset) -> dict[str, Any] | None:
    """The distance of ``offset`` (sign dropped) as a UCUM Duration; ``None`` when months mix with days."""
    if offset.months and offset.total_days:
        return None
    if offset.months:
        return _duration(abs(offset.months), "mo")
    if offset.weeks and not offset.days:
        return _duration(abs(offset.weeks), "wk")
    return _duration(abs(offset.total_days), "d")


def _words(offset: Offset) -> str:
    """An unsigned distance in words (``1 month 3 days``), for what no Duration can hold."""
    parts = [
        f"{abs(n)} {unit if abs(n) != 1 else unit[:-1]}"
        for n, unit in ((offset.months, "months"), (offset.weeks, "weeks"), (offset.days, "days"))
        if n
    ]
    return " ".join(parts) or "0 days"


def _related_action(step: Step, base_url: str) -> dict[str, Any]:
    assert step.relative_to is not None
    offset = step.offset
    related: dict[str, Any] = {"actionId": step.relative_to}
    if offset.is_zero:
        related["relationship"] = "concurrent-with-start"
        return related
    forward = offset.months * _DAYS_PER_MONTH + offset.total_days >= 0
    related["relationship"] = "after-start" if forward else "before-start"
    exact = duration(offset)
    if exact is not None:
        related["offsetDuration"] = exact
    else:
        related["extension"] = [
            {"url": structure_url(base_url, "step-offset"), "valueString": offset.describe()}
        ]
    return related


def _window_extension(step: Step, base_url: str) -> dict[str, Any] | None:
    parts = []
    for name, distance in (("before", step.window.before), ("after", step.window.after)):
        if distance.is_zero:
            continue
        value = duration(distance)
        parts.append(
            {"url": name, "valueDuration": value}
            if value is not None
            else {"url": name, "valueString": _words(distance)}
        )
    if not parts:
        return None
    return {"url": structure_url(base_url, "step-window"), "extension": parts}


# --------------------------------------------------------------------------- PlanDefinition


def _camel(code: str) -> str:
    name = "".join(part.capitalize() for part in code.split("-"))
    return name if name[:1].isalpha() else f"Protocol{name}"


def _action(step: Step, base_url: str, cat: Catalog) -> dict[str, Any]:
    action: dict[str, Any] = {"id": step.code}
    window = _window_extension(step, base_url)
    if window is not None:
        action["extension"] = [window]
    action["title"] = step.name
    if step.note:
        action["description"] = step.note
    if step.kind == "procedure" and step.procedure:
        action["code"] = [_procedure_concept(step.procedure, base_url, cat)]
    else:
        action["code"] = [_kind_concept(step.kind, step.treatment, base_url, cat)]
    if step.relative_to is not None:
        action["relatedAction"] = [_related_action(step, base_url)]
    action["requiredBehavior"] = "could" if step.optional else "must"
    return action


def plan_definition(
    protocol: Protocol, *, version_label: str, base_url: str, cat: Catalog | None = None
) -> dict[str, Any]:
    """The protocol as a FHIR R4 PlanDefinition (one action per step; sessions as groups)."""
    cat = cat or catalog()
    codes = {step.code for step in protocol.steps}
    groups: dict[str, dict[str, Any]] = {}
    actions: list[dict[str, Any]] = []
    for step in protocol.steps:
        action = _action(step, base_url, cat)
        if step.session is None:
            actions.append(action)
            continue
        group = groups.get(step.session)
        if group is None:
            group_id = f"session-{step.session}"
            while group_id in codes:
                group_id = f"{group_id}-group"
            group = {
                "id": group_id,
                "title": step.session.replace("-", " ").capitalize(),
                "description": "Steps done in one visit.",
                "groupingBehavior": "logical-group",
                "action": [],
            }
            groups[step.session] = group
            actions.append(group)
        group["action"].append(action)
    resource: dict[str, Any] = {"resourceType": "PlanDefinition"}
    resource_id = f"{protocol.code}-v{version_label}"
    if _ID.match(resource_id):
        resource["id"] = resource_id
    resource.update(
        {
            "url": canonical_url(base_url, protocol.code),
            "identifier": [{"system": f"{_base(base_url)}/protocols", "value": protocol.code}],
            "version": version_label,
            "name": _camel(protocol.code),
            "title": protocol.name,
            "type": {
                "coding": [
                    {
                        "system": PLAN_DEFINITION_TYPE,
                        "code": "clinical-protocol",
                        "display": "Clinical Protocol",
                    }
                ]
            },
            "status": "active",
            "description": protocol.summary,
            "action": actions,
        }
    )
    validate(resource)
    return resource


# --------------------------------------------------------------------------- CarePlan


def _instant(moment: dt.datetime) -> str:
    """A FHIR dateTime in UTC to the second (``2026-03-01T09:30:00Z``)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _day(step: PlanStep) -> dt.date:
    return step.done_on if step.status == "done" and step.done_on else step.planned_on


def _last_reason(step: PlanStep, actions: tuple[str, ...]) -> str:
    for change in reversed(list(step.changes.all())):
        if change.action in actions and change.reason:
            return change.reason
    return step.reason


def _step_concept(step: PlanStep, base_url: str, cat: Catalog) -> dict[str, Any]:
    procedure = (step.defaults or {}).get("procedure")
    if step.kind == "procedure" and procedure:
        fallback = None
        if procedure not in cat.procedures:  # retired from the catalog files, still in the tables
            from stride.care.models import ProcedureType

            row = ProcedureType.objects.filter(code=procedure).first()
            fallback = (row.cpt, row.name) if row is not None else None
        return _procedure_concept(procedure, base_url, cat, fallback)
    return _kind_concept(step.kind, (step.defaults or {}).get("treatment"), base_url, cat)


def _activity(
    step: PlanStep, plan: CarePlan, base_url: str, protocol_canonical: str, cat: Catalog
) -> dict[str, Any]:
    status, reason = "not-started", ""
    if step.status == "done":
        status = "completed"
    elif step.status == "skipped":
        status, reason = "cancelled", _last_reason(step, ("skipped",))
    elif plan.status == "stopped":
        status = "cancelled"
        reason = (
            f"The plan was stopped: {plan.stopped_reason}" if plan.stopped_reason else "The plan was stopped."
        )
    elif plan.status == "completed":
        status, reason = "cancelled", "Not done: the plan was completed without this optional step."
    elif step.planned_on != step.first_planned_on:
        reason = _last_reason(step, ("rescheduled", "followed"))

    words = [f"Planned for {step.planned_on.isoformat()}."]
    if step.planned_on != step.first_planned_on:
        words.append(f"Moved from {step.first_planned_on.isoformat()}.")
    if step.is_anchor:
        words.append("The index step: day 0 of the plan.")
    if step.optional:
        words.append("Optional.")
    if step.added:
        added = _last_reason(step, ("added",))
        words.append(f"Added to the plan: {added.rstrip('.')}." if added else "Added to the plan.")
    if step.note:
        words.append(step.note)

    detail: dict[str, Any] = {
        "extension": [
            {"url": structure_url(base_url, "planned-day"), "valueDate": step.planned_on.isoformat()}
        ]
    }
    if not step.added:
        detail["instantiatesCanonical"] = [protocol_canonical]
    detail["code"] = _step_concept(step, base_url, cat)
    detail["status"] = status
    if reason:
        detail["statusReason"] = {"text": reason}
    detail["scheduledPeriod"] = {"start": step.window_start.isoformat(), "end": step.window_end.isoformat()}
    detail["description"] = " ".join(words)

    activity: dict[str, Any] = {"id": step.code}
    if step.status == "done":
        if step.procedure_id:
            activity["outcomeReference"] = [{"reference": f"Procedure/{step.procedure_id}"}]
        if step.done_on:
            text = f"Done on {step.done_on.isoformat()}"
            text += ", outside its window (a protocol deviation)." if step.deviation else "."
            activity["progress"] = [{"time": step.done_on.isoformat(), "text": text}]
    activity["detail"] = detail
    return activity


def care_plan(plan: CarePlan, *, base_url: str, cat: Catalog | None = None) -> dict[str, Any]:
    """The plan as a FHIR R4 CarePlan (one activity per step)."""
    cat = cat or catalog()
    version = plan.protocol
    protocol_canonical = canonical(base_url, version.code, str(version.version))
    steps = list(plan.steps.prefetch_related("changes").order_by("planned_on", "pk"))
    present = [s for s in steps if s.status != "skipped"]
    period: dict[str, str] = {}
    if present:
        period["start"] = min(_day(s) for s in present).isoformat()
        if plan.status == "stopped":
            done = [_day(s) for s in present if s.status == "done"]
            if done:
                period["end"] = max(done).isoformat()
        else:
            period["end"] = max(_day(s) for s in present).isoformat()
    else:
        period["start"] = plan.anchor_date.isoformat()

    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": str(plan.pk),
        "instantiatesCanonical": [protocol_canonical],
        "status": {"active": "active", "completed": "completed", "stopped": "revoked"}[plan.status],
        "intent": "plan",
        "title": version.name,
        "subject": {"reference": f"Patient/{plan.condition.patient_id}"},
        "period": period,
        "created": _instant(plan.created_at),
        "addresses": [{"reference": f"Condition/{plan.condition_id}"}],
        "activity": [_activity(step, plan, base_url, protocol_canonical, cat) for step in steps],
    }
    if plan.status == "stopped":
        resource["note"] = [
            {"text": f"Stopped: {plan.stopped_reason}" if plan.stopped_reason else "Stopped."}
        ]
    validate(resource)
    return resource


# --------------------------------------------------------------------------- validation


def validate(resource: dict[str, Any]) -> None:
    """Build the fhir.resources model of ``resource`` (R4B, which reads R4); raise if it does not fit.

    The models check structure and data types but not coded values; the tests
    add the official R4 JSON Schema for those.
    """
    from fhir.resources.R4B import get_fhir_model_class

    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
