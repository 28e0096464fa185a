"""Load the demo into the configured database, idempotently.

Clinics and logins are matched by slug and username, story patients by their
record number: whatever already exists is left as it is, so running the
loader twice changes nothing. Every story record goes through ``full_clean``,
the same validation as the pages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import transaction

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
from stride.demo.stories import CLINICS, LOGINS, Story, stories
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
    for spec in story.procedures:
        values = dict(spec)
        injectates = values.pop("injectates", [])
        events = values.pop("adverse_events", [])
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
    return True


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
    if synth_patients:
        from stride.demo.synth_writer import seed_exists, write_synthetic

        if not seed_exists(synth_seed):
            written = write_synthetic(
                patients=synth_patients, seed=synth_seed, clinic_slugs=list(clinics), progress=progress
            )
            counts["synthetic patients"] += written.get("patients", 0)
    return counts
