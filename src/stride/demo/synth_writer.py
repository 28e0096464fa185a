"""Write synthetic patients (:mod:`stride.core.synth`) to the database, fast.

The generator guarantees that every record obeys the core rules, so rows are
written with ``bulk_create`` in large batches, without ``full_clean`` and
without a query per row: catalog codes are resolved to table rows once, up
front, and the ICD-10-CM codes a condition's ``save()`` would derive are set
here from the catalog files (``bulk_create`` bypasses ``save()``).

Everything happens in one transaction: a run either writes all its patients
or nothing. Bulk writes bypass the audit signals, so a run writes one
``bulk`` audit entry naming the command, the seed, the clinics and the count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

from django.db import transaction

from stride.audit.log import record
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
from stride.clinics.models import Clinic, Membership, Role, User
from stride.core import synth
from stride.core.catalog import Catalog, Coding, catalog, resolve_condition_codes
from stride.core.errors import Invalid
from stride.patients.models import Consent, Patient

MAX_PATIENTS = 1_000_000
#: Patients generated and written per round (their conditions, procedures... follow them).
CHUNK = 2_000
#: Synthetic clinicians created in a clinic that has none.
CLINICIANS_PER_CLINIC = 3
SYNTHETIC_CLINIC = ("Synthetic Clinic", "synthetic")

Progress = Callable[[int], Any]


# --------------------------------------------------------------------------- before writing


def target_clinics(slugs: Sequence[str] | None) -> list[Clinic]:
    """The clinics to write to: those named (in the order given), or else all of them.

    With no clinic in the database at all, one named "Synthetic Clinic" is created.
    """
    if slugs:
        wanted = list(dict.fromkeys(slugs))
        found = {c.slug: c for c in Clinic.objects.filter(slug__in=wanted)}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            known = (
                ", ".join(Clinic.objects.order_by("slug").values_list("slug", flat=True)) or "none"
            )
            raise Invalid(
                f"Unknown clinic {', '.join(repr(s) for s in unknown)} (known clinics: {known}).",
                "clinic",
            )
        return [found[slug] for slug in wanted]
    clinics = list(Clinic.objects.order_by("slug"))
    if not clinics:
        name, slug = SYNTHETIC_CLINIC
        clinics = [Clinic.objects.create(name=name, slug=slug)]
    return clinics


def clinic_with_seed(seed: int, clinics: Sequence[Clinic] | None = None) -> Clinic | None:
    """The first clinic (of ``clinics``, or of all) already holding patients of ``seed``."""
    patients = Patient.objects.filter(record_number__startswith=synth.record_prefix(seed))
    if clinics is not None:
        patients = patients.filter(clinic__in=list(clinics))
    clinic_id = patients.order_by("clinic_id").values_list("clinic_id", flat=True).first()
    return None if clinic_id is None else Clinic.objects.get(pk=clinic_id)


def seed_exists(seed: int, clinic_slugs: Sequence[str] | None = None) -> bool:
    """Whether synthetic patients of ``seed`` are already in any (or one of the named) clinics."""
    patients = Patient.objects.filter(record_number__startswith=synth.record_prefix(seed))
    if clinic_slugs:
        patients = patients.filter(clinic__slug__in=list(clinic_slugs))
    return patients.exists()


def clinicians(clinics: Sequence[Clinic]) -> dict[str, dict[str, int]]:
    """Per clinic slug: its clinicians' usernames → user ids, creating synthetic ones where none.

    Synthetic clinicians cannot log in (unusable password) until an admin sets one.
    """
    result: dict[str, dict[str, int]] = {c.slug: {} for c in clinics}
    slugs = {c.pk: c.slug for c in clinics}
    rows = Membership.objects.filter(clinic__in=list(clinics), role=Role.CLINICIAN).values_list(
        "clinic_id", "user__username", "user_id"
    )
    for clinic_id, username, user_id in rows:
        result[slugs[clinic_id]][username] = user_id
    for clinic in clinics:
        if result[clinic.slug]:
            continue
        for number in range(1, CLINICIANS_PER_CLINIC + 1):
            username = f"synth-{clinic.slug}-clinician-{number}"
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(
                    username=username,
                    first_name="Synthetic",
                    last_name=f"Clinician {number}",
                    email=f"{username}@stride.example",
                )
                user.set_unusable_password()
                user.save()
            Membership.objects.update_or_create(
                user=user, clinic=clinic, defaults={"role": Role.CLINICIAN}
            )
            result[clinic.slug][username] = user.pk
    return result


def _codes(model: Any, wanted: Sequence[str], what: str) -> dict[str, int]:
    ids = dict(model.objects.filter(code__in=list(wanted)).values_list("code", "pk"))
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise Invalid(
            f"The catalog table of {what} lacks {', '.join(missing)}: "
            "run `stride migrate` (or `stride catalog sync`) first."
        )
    return ids


class _Lookups:
    """Catalog codes → primary keys, resolved once."""

    def __init__(self, cat: Catalog) -> None:
        self.conditions = _codes(ConditionType, list(cat.conditions), "conditions")
        self.sites = _codes(Site, list(cat.sites), "sites")
        self.procedures = _codes(ProcedureType, list(cat.procedures), "procedures")
        self.treatments = _codes(TreatmentKind, list(cat.treatments), "treatments")
        self.drugs = _codes(Drug, list(cat.drugs), "drugs")
        self.adverse_events = _codes(AdverseEventKind, list(cat.adverse_events), "adverse events")
        self.cat = cat
        self._coding: dict[tuple[str, str, str, str, tuple[str, ...]], Coding] = {}

    def coding(self, c: synth.SynthCondition) -> Coding:
        key = (c.condition_type, c.laterality, c.site, c.episode, c.qualifiers)
        coding = self._coding.get(key)
        if coding is None:
            coding = resolve_condition_codes(
                self.cat.conditions[c.condition_type],
                c.laterality,
                site=c.site,
                episode=c.episode,
                qualifiers=c.qualifiers,
            )
            self._coding[key] = coding
        return coding


# --------------------------------------------------------------------------- writing


class _Maker:
    """Builds unsaved instances of one model from a few named values, the rest at their defaults.

    Instances are built positionally (one value per concrete field, in
    order), Django's fast path, with the field positions worked out once:
    it matters for a million rows. Defaults are computed once and shared, so
    the instances are for writing only (a mutable default such as a JSON
    list would be one object for all of them).
    """

    def __init__(self, model: Any, *names: str) -> None:
        fields = model._meta.concrete_fields
        position = {f.attname: i for i, f in enumerate(fields)}
        unknown = [name for name in names if name not in position]
        if unknown:
            raise LookupError(f"{model.__name__} has no field {', '.join(unknown)}.")
        self.model = model
        self.positions = [position[name] for name in names]
        self.base = [None if f.primary_key else f.get_default() for f in fields]

    def __call__(self, *values: Any) -> Any:
        row = self.base.copy()
        for i, value in zip(self.positions, values, strict=True):
            row[i] = value
        return self.model(*row)


def _chunks(
    patients: Iterator[synth.SynthPatient], size: int
) -> Iterator[list[synth.SynthPatient]]:
    while chunk := list(islice(patients, size)):
        yield chunk


class _Writer:
    """Writes chunks of generated patients; keeps the counts."""

    def __init__(
        self,
        clinic_ids: dict[str, int],
        clinician_ids: dict[str, dict[str, int]],
        lookups: _Lookups,
    ) -> None:
        self.clinic_ids = clinic_ids
        self.clinician_ids = clinician_ids
        self.lookups = lookups
        self.counts = dict.fromkeys(
            ("patients", "consents", "conditions", "history", "procedures", "injectates"), 0
        )
        self.counts["adverse events"] = 0
        self.patient = _Maker(
            Patient,
            "clinic_id",
            "record_number",
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "email",
            "phone",
            "height_cm",
            "weight_kg",
            "activity_level",
        )
        self.consent = _Maker(Consent, "patient_id", "version", "consented_on", "withdrawn_on")
        self.condition = _Maker(
            Condition,
            "patient_id",
            "condition_type_id",
            "laterality",
            "site_id",
            "episode",
            "qualifiers",
            "icd10_code",
            "additional_icd10",
            "snomed_code",
            "onset_date",
            "status",
            "resolved_on",
        )
        self.history = _Maker(
            TreatmentHistory,
            "patient_id",
            "condition_id",
            "treatment_id",
            "laterality",
            "started_on",
            "date_precision",
            "provider",
            "response",
            "relief_weeks",
        )
        self.procedure = _Maker(
            Procedure,
            "patient_id",
            "condition_id",
            "performed_on",
            "clinician_id",
            "procedure_type_id",
            "site_id",
            "laterality",
            "image_guidance",
            "candidacy",
        )
        self.injectate = _Maker(
            Injectate,
            "procedure_id",
            "kind",
            "drug_id",
            "dose_mg",
            "volume_ml",
            "concentration_pct",
            "platelet_count",
            "baseline_platelet_count",
            "leukocytes",
            "activation",
            "aspirate_volume_ml",
            "tnc_per_ml",
            "series_number",
            "sites_injected",
        )
        self.event = _Maker(
            AdverseEvent,
            "procedure_id",
            "kind_id",
            "onset_date",
            "severity",
            "relatedness",
            "adjudicated_by_id",
            "resolved_on",
        )

    def write(self, chunk: list[synth.SynthPatient]) -> None:
        lookups = self.lookups
        sites = lookups.sites
        make = self.patient
        patients = [
            make(
                self.clinic_ids[p.clinic],
                p.record_number,
                p.given_name,
                p.family_name,
                p.date_of_birth,
                p.sex,
                p.email,
                p.phone,
                p.height_cm,
                p.weight_kg,
                p.activity_level,
            )
            for p in chunk
        ]
        Patient.objects.bulk_create(patients)

        consents: list[Consent] = []
        conditions: list[Condition] = []
        for p, patient in zip(chunk, patients, strict=True):
            pk = patient.pk
            consent = p.consent
            consents.append(
                self.consent(pk, consent.version, consent.consented_on, consent.withdrawn_on)
            )
            for c in p.conditions:
                coding = lookups.coding(c)
                conditions.append(
                    self.condition(
                        pk,
                        lookups.conditions[c.condition_type],
                        c.laterality,
                        sites[c.site] if c.site else None,
                        c.episode,
                        list(c.qualifiers),
                        coding.icd10,
                        list(coding.additional_icd10),
                        coding.snomed,
                        c.onset_date,
                        c.status,
                        c.resolved_on,
                    )
                )
        Consent.objects.bulk_create(consents)
        Condition.objects.bulk_create(conditions)

        history: list[TreatmentHistory] = []
        procedures: list[Procedure] = []
        specs: list[synth.SynthProcedure] = []
        offset = 0
        for p, patient in zip(chunk, patients, strict=True):
            pk = patient.pk
            own = conditions[offset : offset + len(p.conditions)]
            offset += len(p.conditions)
            for h in p.history:
                history.append(
                    self.history(
                        pk,
                        own[h.condition].pk,
                        lookups.treatments[h.treatment],
                        h.laterality,
                        h.started_on,
                        h.date_precision,
                        h.provider,
                        h.response,
                        h.relief_weeks,
                    )
                )
            staff = self.clinician_ids[p.clinic]
            for s in p.procedures:
                procedures.append(
                    self.procedure(
                        pk,
                        own[s.condition].pk,
                        s.performed_on,
                        staff.get(s.clinician),
                        lookups.procedures[s.procedure_type],
                        sites[s.site] if s.site else None,
                        s.laterality,
                        s.image_guidance,
                        s.candidacy,
                    )
                )
                specs.append(s)
        TreatmentHistory.objects.bulk_create(history)
        Procedure.objects.bulk_create(procedures)

        injectates: list[Injectate] = []
        events: list[AdverseEvent] = []
        drugs = lookups.drugs
        for s, procedure in zip(specs, procedures, strict=True):
            for i in s.injectates:
                injectates.append(
                    self.injectate(
                        procedure.pk,
                        i.kind,
                        drugs[i.drug] if i.drug else None,
                        i.dose_mg,
                        i.volume_ml,
                        i.concentration_pct,
                        i.platelet_count,
                        i.baseline_platelet_count,
                        i.leukocytes,
                        i.activation,
                        i.aspirate_volume_ml,
                        i.tnc_per_ml,
                        i.series_number,
                        i.sites_injected,
                    )
                )
            for e in s.adverse_events:
                events.append(
                    self.event(
                        procedure.pk,
                        lookups.adverse_events[e.kind],
                        e.onset_date,
                        e.severity,
                        e.relatedness,
                        procedure.clinician_id,
                        e.resolved_on,
                    )
                )
        Injectate.objects.bulk_create(injectates)
        AdverseEvent.objects.bulk_create(events)

        counts = self.counts
        counts["patients"] += len(patients)
        counts["consents"] += len(consents)
        counts["conditions"] += len(conditions)
        counts["history"] += len(history)
        counts["procedures"] += len(procedures)
        counts["injectates"] += len(injectates)
        counts["adverse events"] += len(events)


def write_synthetic(
    *,
    patients: int,
    seed: int,
    clinic_slugs: Sequence[str] | None = None,
    progress: Progress | None = None,
    today: dt.date | None = None,
) -> dict[str, int]:
    """Generate and write ``patients`` synthetic patients; return the rows written per kind.

    ``progress`` is called with the number of patients just written (an
    increment, as ``tqdm.update`` takes it). ``today`` defaults to the
    earliest "today" among the target clinics (their time zones differ), so
    no record is dated in any clinic's future. Raises :class:`Invalid` and
    writes nothing when a clinic is unknown or the seed was already used
    there.
    """
    if not 1 <= patients <= MAX_PATIENTS:
        raise Invalid(f"The number of patients must be between 1 and {MAX_PATIENTS:,}.", "patients")
    cat = catalog()
    with transaction.atomic():
        clinics = target_clinics(clinic_slugs)
        clash = clinic_with_seed(seed, clinics)
        if clash is not None:
            raise Invalid(
                f"Synthetic patients for seed {seed} already exist in clinic {clash.slug!r}; "
                "choose another --seed.",
                "seed",
            )
        lookups = _Lookups(cat)
        staff = clinicians(clinics)
        day = today or min(clinic.today() for clinic in clinics)
        generated = synth.generate(
            seed,
            patients,
            [c.slug for c in clinics],
            day,
            {slug: sorted(users) for slug, users in staff.items()},
            cat=cat,
        )
        writer = _Writer({c.slug: c.pk for c in clinics}, staff, lookups)
        for chunk in _chunks(generated, CHUNK):
            writer.write(chunk)
            if progress is not None:
                progress(len(chunk))
        record(
            "bulk",
            clinic_id=clinics[0].pk if len(clinics) == 1 else None,
            detail={
                "command": "synth",
                "patients": patients,
                "seed": seed,
                "clinics": [c.slug for c in clinics],
                "rows": writer.counts,
            },
        )
    return writer.counts
