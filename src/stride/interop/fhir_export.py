"""Stride's records as FHIR R4: one patient as a Bundle, a registry as bulk NDJSON files.

:func:`patient_bundle` returns one patient's record as a Bundle of type
``collection``; :func:`write_bulk` writes the patients of some clinics (or a
cohort) as one NDJSON file per resource type with a manifest, in the style of
the FHIR Bulk Data ``$export`` (``Organization``, ``Patient``, ``Consent``,
``Condition``, ``Procedure``, ``QuestionnaireResponse``, ``Observation``,
``CarePlan``). The mapping is documented in ``docs/interop.md``.

Every resource is built as a plain dict and checked by building its
fhir.resources model (R4B, which reads R4) before it is written; a bulk
export checks its lines a run at a time in a worker process while the next
run is built (:mod:`stride.interop.fhir_checks`). Lines are
written one at a time from querysets read in chunks
(``.iterator(chunk_size=CHUNK)``), so memory stays flat however large the
registry; files are written as ``<Type>.ndjson.part`` and renamed when
complete.

Ids are stable: a record that came in through an import goes out under the
id it came in with (:class:`stride.interop.models.ExternalResource`), any
other under :func:`stride.interop.fhir_map.resource_id` of its model and key.
Resources an import kept whole (no Stride record holds them) go out again,
after the records of their type, with their patient. So an export read into
an empty database and exported again gives the same files, byte for byte.

The bulk export selects patients as every export does: through
``Patient.objects.analysable()`` (consented, not withdrawn). One patient's
Bundle is that patient's clinical record, for whoever may see it: the caller
checks access; the export is audited here either way.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F, Model, OuterRef, QuerySet, Subquery
from django.utils import timezone

from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care.models import (
    BodySite,
    CarePlan,
    Condition,
    ConditionType,
    Drug,
    Procedure,
    ProcedureType,
    Site,
)
from stride.clinics.models import Clinic
from stride.core import instruments as core_instruments
from stride.core import measure as core_measure
from stride.imaging.models import Measurement
from stride.interop import fhir_checks, fhir_plans
from stride.interop import fhir_map as fm
from stride.interop.models import ExternalResource
from stride.outcomes.models import QuestionnaireResponse, Score
from stride.patients.models import Consent, Patient

#: Rows read from the database at a time.
CHUNK = 2000
#: Lines of a bulk export checked together (:func:`_checked_lines`).
CHECK_RUN = 500
MANIFEST = "manifest.json"

Progress = Callable[[str, int], Any]
#: A resource and what it was built from, for the message should it not be valid FHIR.
Labelled = tuple[dict[str, Any], str]


class ExportError(Exception):
    """A record could not be written as a valid FHIR resource (a bug in the mapping, named precisely)."""


# --------------------------------------------------------------------------- ids


class _Ids:
    """The id each record is exported under: the one it was imported with, else the deterministic one."""

    def __init__(self) -> None:
        self._types: dict[type[Model], int] = {}

    def content_type(self, model: type[Model]) -> int:
        if model not in self._types:
            self._types[model] = ContentType.objects.get_for_model(model).pk
        return self._types[model]

    def annotation(self, model: type[Model], field: str = "pk") -> Subquery:
        """A subquery giving the imported id of the ``model`` record whose key is ``field`` of the row."""
        mapped = ExternalResource.objects.filter(
            status=ExternalResource.Status.MAPPED,
            content_type_id=self.content_type(model),
            object_id=OuterRef(field),
        ).order_by("pk")
        return Subquery(mapped.values("export_id")[:1])

    @staticmethod
    def of(model: type[Model], pk: int, mapped: str | None) -> str:
        return mapped or fm.resource_id(model._meta.label, pk)

    def lookup(self, model: type[Model], pks: Iterable[int]) -> dict[int, str]:
        wanted = {pk for pk in pks if pk is not None}
        found: dict[int, str] = {}
        rows = (
            ExternalResource.objects.filter(
                status=ExternalResource.Status.MAPPED,
                content_type_id=self.content_type(model),
                object_id__in=wanted,
            )
            .order_by("-pk")
            .values_list("object_id", "export_id")
        )
        for object_id, fhir_id in rows:
            found[object_id] = fhir_id  # the earliest mapping wins (rows come newest first)
        return {pk: found.get(pk) or fm.resource_id(model._meta.label, pk) for pk in wanted}


# --------------------------------------------------------------------------- the catalog, once


class _Catalog:
    """The catalog tables by key (a few hundred rows), so no record needs a join to be written."""

    def __init__(self) -> None:
        self.body_sites = {row.pk: row for row in BodySite.objects.all()}
        self.sites = {row.pk: row for row in Site.objects.all()}
        self.condition_types = {row.pk: row for row in ConditionType.objects.all()}
        self.procedure_types = {row.pk: row for row in ProcedureType.objects.all()}
        self.drugs = {row.pk: row for row in Drug.objects.all()}
        self.clinics = {row.pk: row for row in Clinic.objects.all()}
        self.library = core_instruments.library()
        self.measurements = core_measure.measurement_types()


# --------------------------------------------------------------------------- the builders


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": fm.extension_url(name), **value}


def _drop_empty(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if value not in (None, "", [], {})}


class _Builder:
    def __init__(self) -> None:
        self.ids = _Ids()
        self.cat = _Catalog()

    # ----------------------------------------------------------------- shared parts

    def body_site(
        self, side: str, site_pk: int | None, body_pk: int | None, note: str = ""
    ) -> dict[str, Any]:
        site = self.cat.sites.get(site_pk) if site_pk else None
        body = self.cat.body_sites[site.body_site_id] if site else self.cat.body_sites.get(body_pk or 0)
        named = site or body
        codings = []
        if body is not None and body.snomed:
            codings.append(fm.coding(fm.SNOMED, body.snomed))
        if named is not None:
            codings.append(fm.stride_coding(fm.CS_BODY_SITE, named.code, named.name))
        extensions = [fm.laterality_extension(side)] if side else []
        if note:
            extensions.append(_ext(fm.EXT_SITE_NOTE, valueString=note))
        words = fm.LATERALITY_TEXT.get(side, "").lower()
        text = f"{named.name}, {words}" if named is not None and words else (named.name if named else words)
        return _drop_empty({"extension": extensions, "coding": codings, "text": text})

    def patient_reference(self, pk: int, mapped: str | None) -> dict[str, Any]:
        return fm.reference("Patient", self.ids.of(Patient, pk, mapped))

    # ----------------------------------------------------------------- Organization

    def organization(self, clinic: Clinic, mapped: str | None) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "id": self.ids.of(Clinic, clinic.pk, mapped),
            "extension": [_ext(fm.EXT_TIME_ZONE, valueCode=clinic.time_zone)],
            "identifier": [{"system": fm.CLINIC_SYSTEM, "value": clinic.slug}],
            "active": True,
            "name": clinic.name,
        }

    # ----------------------------------------------------------------- Patient

    def patient(self, patient: Patient, clinic_fid: str) -> dict[str, Any]:
        clinic = self.cat.clinics[patient.clinic_id]
        extensions = []
        if patient.height_cm is not None:
            extensions.append(_ext(fm.EXT_HEIGHT, valueQuantity=fm.quantity(patient.height_cm, "cm")))
        if patient.weight_kg is not None:
            extensions.append(_ext(fm.EXT_WEIGHT, valueQuantity=fm.quantity(patient.weight_kg, "kg")))
        if patient.activity_level:
            extensions.append(_ext(fm.EXT_ACTIVITY, valueCode=patient.activity_level))
        telecom = []
        if patient.phone:
            telecom.append({"system": "phone", "value": patient.phone})
        if patient.email:
            telecom.append({"system": "email", "value": patient.email})
        return _drop_empty(
            {
                "resourceType": "Patient",
                "id": self.ids.of(Patient, patient.pk, getattr(patient, "_fid", None)),
                "extension": extensions,
                "identifier": [
                    {"system": fm.record_number_system(clinic.slug), "value": patient.record_number}
                ],
                "name": [{"use": "official", "family": patient.family_name, "given": [patient.given_name]}],
                "telecom": telecom,
                "gender": patient.sex,
                "birthDate": patient.date_of_birth.isoformat(),
                "managingOrganization": fm.reference("Organization", clinic_fid, clinic.name),
            }
        )

    # ----------------------------------------------------------------- Consent

    def consent(self, consent: Consent, clinic_id: int, clinic_fid: str) -> dict[str, Any]:
        from urllib.parse import quote

        period = {"start": consent.consented_on.isoformat()}
        if consent.withdrawn_on:
            period["end"] = consent.withdrawn_on.isoformat()
        return {
            "resourceType": "Consent",
            "id": self.ids.of(Consent, consent.pk, getattr(consent, "_fid", None)),
            "status": "inactive" if consent.withdrawn_on else "active",
            "scope": {"coding": [fm.coding(fm.CONSENT_SCOPE, "research")], "text": "Registry participation"},
            "category": [{"coding": [fm.coding(fm.LOINC, fm.CONSENT_CATEGORY_LOINC)]}],
            "patient": self.patient_reference(consent.patient_id, getattr(consent, "_patient_fid", None)),
            "dateTime": consent.consented_on.isoformat(),
            "organization": [fm.reference("Organization", clinic_fid)],
            "policy": [{"uri": f"{fm.base_url()}{fm.CONSENT_FORM_PATH}{quote(consent.version, safe='')}"}],
            "provision": {"period": period},
        }

    # ----------------------------------------------------------------- Condition

    def condition(self, condition: Condition) -> dict[str, Any]:
        ctype = self.cat.condition_types[condition.condition_type_id]
        codings = [fm.coding(fm.ICD10CM, condition.icd10_code)]
        if condition.snomed_code:
            codings.append(fm.coding(fm.SNOMED, condition.snomed_code))
        codings.append(fm.stride_coding(fm.CS_CONDITION, ctype.code, ctype.name))
        extensions = []
        if condition.episode:
            extensions.append(_ext(fm.EXT_EPISODE, valueCode=condition.episode))
        for qualifier in condition.qualifiers or []:
            extensions.append(_ext(fm.EXT_QUALIFIER, valueCode=qualifier))
        for extra in condition.additional_icd10 or []:
            extensions.append(_ext(fm.EXT_ADDITIONAL_CODE, valueCoding=fm.coding(fm.ICD10CM, extra)))
        return _drop_empty(
            {
                "resourceType": "Condition",
                "id": self.ids.of(Condition, condition.pk, getattr(condition, "_fid", None)),
                "extension": extensions,
                "clinicalStatus": {"coding": [fm.coding(fm.CONDITION_CLINICAL, condition.status)]},
                "category": [{"coding": [fm.coding(fm.CONDITION_CATEGORY, "problem-list-item")]}],
                "code": {"coding": codings, "text": ctype.name},
                "bodySite": [
                    self.body_site(
                        condition.laterality, condition.site_id, ctype.body_site_id, condition.site_note
                    )
                ],
                "subject": self.patient_reference(
                    condition.patient_id, getattr(condition, "_patient_fid", None)
                ),
                "onsetDateTime": _day(condition.onset_date),
                "abatementDateTime": _day(condition.resolved_on),
                "note": [{"text": condition.severity_notes}] if condition.severity_notes else None,
            }
        )

    # ----------------------------------------------------------------- Procedure

    _INJECTATE_QUANTITIES = (
        ("dose_mg", "dose-mg", "mg", "mg"),
        ("volume_ml", "volume-ml", "mL", "mL"),
        ("concentration_pct", "concentration-pct", "%", "%"),
        ("platelet_count", "platelet-count", "10*3/uL", "10*3/uL"),
        ("baseline_platelet_count", "baseline-platelet-count", "10*3/uL", "10*3/uL"),
        ("aspirate_volume_ml", "aspirate-volume-ml", "mL", "mL"),
        ("tnc_per_ml", "tnc-per-ml", "10*6/mL", "10*6/mL"),
    )

    def injectate(self, injectate: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The injectate as an extension (every value) and as a ``usedCode`` (its kind and drug)."""
        parts: list[dict[str, Any]] = [{"url": "kind", "valueCode": injectate.kind}]
        drug = self.cat.drugs.get(injectate.drug_id) if injectate.drug_id else None
        if drug is not None:
            parts.append({"url": "drug", "valueCoding": fm.stride_coding(fm.CS_DRUG, drug.code, drug.name)})
        for field, name, unit, code in self._INJECTATE_QUANTITIES:
            value = getattr(injectate, field)
            if value is not None:
                parts.append({"url": name, "valueQuantity": fm.quantity(value, unit, code)})
        for field, name in (("leukocytes", "leukocytes"), ("activation", "activation")):
            if getattr(injectate, field):
                parts.append({"url": name, "valueCode": getattr(injectate, field)})
        for field, name in (("series_number", "series-number"), ("sites_injected", "sites-injected")):
            if getattr(injectate, field) is not None:
                parts.append({"url": name, "valueInteger": getattr(injectate, field)})
        if injectate.notes:
            parts.append({"url": "note", "valueString": injectate.notes})
        label = injectate.get_kind_display()
        used = [fm.stride_coding(fm.CS_INJECTATE, injectate.kind, label)]
        if drug is not None:
            used.append(fm.stride_coding(fm.CS_DRUG, drug.code, drug.name))
        return (
            _ext(fm.EXT_INJECTATE, extension=parts),
            {"coding": used, "text": drug.name if drug is not None else label},
        )

    def procedure(self, procedure: Procedure) -> dict[str, Any]:
        ptype = self.cat.procedure_types[procedure.procedure_type_id]
        codings = []
        if ptype.cpt:
            codings.append(fm.coding(fhir_plans.procedure_system(ptype.cpt), ptype.cpt))
        codings.append(fm.stride_coding(fm.CS_PROCEDURE, ptype.code, ptype.name))
        extensions = [
            _ext(fm.EXT_GUIDANCE, valueCode=procedure.image_guidance),
            _ext(fm.EXT_INDEX, valueBoolean=procedure.is_index),
        ]
        if procedure.candidacy:
            extensions.append(_ext(fm.EXT_CANDIDACY, valueCode=procedure.candidacy))
        if procedure.target_note:
            extensions.append(_ext(fm.EXT_TARGET_NOTE, valueString=procedure.target_note))
        used = []
        for injectate in procedure.injectates.all():
            extension, code = self.injectate(injectate)
            extensions.append(extension)
            used.append(code)
        ctype = self.cat.condition_types.get(getattr(procedure, "_condition_type", None) or 0)
        return _drop_empty(
            {
                "resourceType": "Procedure",
                "id": self.ids.of(Procedure, procedure.pk, getattr(procedure, "_fid", None)),
                "extension": extensions,
                "status": "completed",
                "code": {"coding": codings, "text": ptype.name},
                "subject": self.patient_reference(
                    procedure.patient_id, getattr(procedure, "_patient_fid", None)
                ),
                "performedDateTime": procedure.performed_on.isoformat(),
                "reasonReference": [
                    fm.reference(
                        "Condition",
                        self.ids.of(
                            Condition, procedure.condition_id, getattr(procedure, "_condition_fid", None)
                        ),
                    )
                ],
                "bodySite": [
                    self.body_site(
                        procedure.laterality, procedure.site_id, ctype.body_site_id if ctype else None
                    )
                ],
                "note": [{"text": procedure.notes}] if procedure.notes else None,
                "usedCode": used,
            }
        )

    # ----------------------------------------------------------------- QuestionnaireResponse

    def questionnaire_response(self, response: QuestionnaireResponse) -> dict[str, Any]:
        definition = self.cat.library.get(response.instrument)
        items = []
        answers = list(response.answers or [])
        link_ids = (
            [item.link_id for item in definition.items]
            if definition is not None and len(definition.items) == len(answers)
            else [f"{response.instrument}-{n:02d}" for n in range(1, len(answers) + 1)]
        )
        labels = (
            [item.label for item in definition.items]
            if definition is not None and len(definition.items) == len(answers)
            else [""] * len(answers)
        )
        for link_id, label, answer in zip(link_ids, labels, answers, strict=True):
            item: dict[str, Any] = {"linkId": link_id}
            if label:
                item["text"] = label
            if answer == core_instruments.NA:
                item["answer"] = [{"valueCoding": fm.coding(fm.DATA_ABSENT_REASON, "not-applicable")}]
            elif answer is not None:
                item["answer"] = [{"valueInteger": int(answer)}]
            items.append(item)
        extensions = []
        if response.context:
            extensions.append(_ext(fm.EXT_CONTEXT, valueString=response.context))
        for flag in response.flags or []:
            extensions.append(_ext(fm.EXT_FLAG, valueCode=flag))
        follow_up = response.follow_up
        if follow_up is not None:
            episode = follow_up.episode
            extensions.append(
                _ext(
                    fm.EXT_FOLLOW_UP,
                    extension=[
                        {
                            "url": "condition",
                            "valueReference": fm.reference(
                                "Condition",
                                self.ids.of(
                                    Condition, episode.condition_id, getattr(response, "_condition_fid", None)
                                ),
                            ),
                        },
                        {"url": "index-date", "valueDate": episode.index_date.isoformat()},
                        {"url": "timepoint", "valueCode": follow_up.timepoint},
                    ],
                )
            )
        subject = self.patient_reference(response.patient_id, getattr(response, "_patient_fid", None))
        return _drop_empty(
            {
                "resourceType": "QuestionnaireResponse",
                "id": self.ids.of(QuestionnaireResponse, response.pk, getattr(response, "_fid", None)),
                "extension": extensions,
                "questionnaire": fm.questionnaire_url(response.instrument, response.instrument_version),
                "status": response.status,
                "subject": subject,
                "authored": response.collected_on.isoformat(),
                "source": subject if response.source == QuestionnaireResponse.Source.PATIENT else None,
                "item": items,
            }
        )

    # ----------------------------------------------------------------- Observation: scores

    def score(self, score: Score) -> dict[str, Any]:
        response = score.response
        definition = self.cat.library.get(score.instrument)
        scale = definition.scales.get(score.scale) if definition is not None else None
        codings = []
        if definition is not None and definition.loinc and score.scale == "total":
            codings.append(fm.coding(fm.LOINC, definition.loinc))
        name = f"{definition.short_name} {scale.name}" if definition and scale else f"{score.instrument}"
        codings.append(fm.stride_coding(fm.CS_SCORE, f"{score.instrument}:{score.scale}", name))
        extensions = [_ext(fm.EXT_POLICY, valueCode=score.policy)] if score.policy else []
        extensions += [_ext(fm.EXT_SCORE_FLAG, valueCode=flag) for flag in score.flags or []]
        response_fid = self.ids.of(QuestionnaireResponse, response.pk, getattr(score, "_response_fid", None))
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": getattr(score, "_fid", None) or fm.score_id(response_fid, score.scale),
            "extension": extensions,
            "status": "final",
            "category": [{"coding": [fm.coding(fm.OBSERVATION_CATEGORY, "survey")]}],
            "code": {"coding": codings, "text": name},
            "subject": self.patient_reference(response.patient_id, getattr(score, "_patient_fid", None)),
            "effectiveDateTime": response.collected_on.isoformat(),
            "derivedFrom": [fm.reference("QuestionnaireResponse", response_fid)],
        }
        if score.value is None:
            resource["dataAbsentReason"] = {
                "coding": [fm.coding(fm.DATA_ABSENT_REASON, "not-performed")],
                "text": "Not scored: the scoring rules withhold a score from these answers.",
            }
        elif scale is not None and scale.unit == "%":
            resource["valueQuantity"] = fm.quantity(score.value, "%")
        else:
            resource["valueQuantity"] = fm.quantity(score.value, "{score}")
        return _drop_empty(resource)

    # ----------------------------------------------------------------- Observation: measurements

    _UCUM = {"mm": "mm", "mm2": "mm2", "cm2": "cm2", "deg": "deg", "ratio": "1"}

    def measurement(self, measurement: Measurement) -> dict[str, Any]:
        image = measurement.image
        kind = self.cat.measurements.get(measurement.type_code)
        name = kind.name if kind is not None else measurement.type_code
        codings = []
        if kind is not None and kind.loinc:
            codings.append(fm.coding(fm.LOINC, kind.loinc))
        if kind is not None and kind.snomed:
            codings.append(fm.coding(fm.SNOMED, kind.snomed))
        codings.append(fm.stride_coding(fm.CS_MEASUREMENT, measurement.type_code, name))
        extensions = [
            _ext(fm.EXT_CATALOG_VERSION, valueInteger=measurement.catalog_version),
            _ext(fm.EXT_FRAME, valueInteger=measurement.frame),
        ]
        if measurement.points:
            extensions.append(_ext(fm.EXT_POINTS, valueString=json.dumps(measurement.points)))
        for code, option in sorted((measurement.qualifiers or {}).items()):
            extensions.append(
                _ext(
                    fm.EXT_QUALIFIER_VALUE,
                    extension=[
                        {"url": "qualifier", "valueCode": code},
                        {"url": "value", "valueCode": option},
                    ],
                )
            )
        notes = []
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": self.ids.of(Measurement, measurement.pk, getattr(measurement, "_fid", None)),
            "extension": extensions,
            "status": "final",
            "category": [{"coding": [fm.coding(fm.OBSERVATION_CATEGORY, "imaging")]}],
            "code": {"coding": codings, "text": name},
            "subject": self.patient_reference(image.patient_id, getattr(measurement, "_patient_fid", None)),
            "effectiveDateTime": image.acquired_on.isoformat(),
        }
        if measurement.unit == "grade":
            resource["valueInteger"] = int(measurement.value)
        elif measurement.unit in self._UCUM:
            resource["valueQuantity"] = fm.quantity(
                measurement.value, measurement.unit, self._UCUM[measurement.unit]
            )
        else:  # px, px2: not calibrated, not a UCUM unit
            resource["valueQuantity"] = {"value": measurement.value, "unit": measurement.unit}
        if not measurement.calibrated:
            notes.append({"text": fm.UNCALIBRATED_NOTE})
        if measurement.note:
            notes.append({"text": measurement.note})
        resource["note"] = notes
        resource["bodySite"] = self.body_site(image.laterality, measurement.site_id or image.site_id, None)
        resource["method"] = {"coding": [fm.stride_coding(fm.CS_TOOL, measurement.tool)]}
        kind_of_file = "ImagingStudy" if image.format == "dicom" else "Media"
        resource["derivedFrom"] = [
            {
                "type": kind_of_file,
                "identifier": {"system": fm.IMAGE_SYSTEM, "value": image.sha256},
                "display": f"{image.get_modality_display()} of {image.acquired_on.isoformat()}",
            }
        ]
        return _drop_empty(resource)

    # ----------------------------------------------------------------- CarePlan

    def care_plan(
        self, plan: CarePlan, patient_fid: str, condition_fid: str, plan_fid: str
    ) -> dict[str, Any]:
        resource = fhir_plans.care_plan(plan, base_url=fm.base_url())
        resource["id"] = plan_fid
        resource["subject"] = fm.reference("Patient", patient_fid)
        resource["addresses"] = [fm.reference("Condition", condition_fid)]
        done = [
            int(ref["reference"].split("/", 1)[1])
            for activity in resource.get("activity", [])
            for ref in activity.get("outcomeReference", [])
        ]
        if done:
            procedures = self.ids.lookup(Procedure, done)
            for activity in resource.get("activity", []):
                for ref in activity.get("outcomeReference", []):
                    ref["reference"] = f"Procedure/{procedures[int(ref['reference'].split('/', 1)[1])]}"
        return resource


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Everything allocated so far set aside from the cycle collector (``gc.freeze``), so that
    collecting once a chunk (:func:`_collected`) looks only at what the export itself made."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def read_snapshot() -> Iterator[None]:
    """A long export's reads in one transaction on PostgreSQL (REPEATABLE READ).

    Outside a transaction Django's server-side cursors are declared WITH HOLD, which PostgreSQL
    answers by running the whole query and storing its result before the first row comes back
    (minutes and gigabytes of temporary files for a million questionnaire responses); inside one
    they stream. And every query then sees the registry as it was when the export began, so the
    files agree with each other however long it takes. Elsewhere (SQLite, or a caller's transaction
    already open) nothing changes.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _collected(rows: Iterator[Any]) -> Iterator[Any]:
    """``rows``, with Python's cycle collector run after every chunk of them.

    A record read with its related rows (a procedure and its injectates) and a validated model are
    reference cycles: freed only by the cycle collector, which otherwise waits long enough for them to
    pile up in proportion to the export. Collecting once a chunk keeps memory flat; with the heap
    frozen first (:func:`frozen_heap`) each collection is cheap.
    """
    for n, row in enumerate(rows, 1):
        yield row
        if n % CHUNK == 0:
            gc.collect()


def _checked(resource: dict[str, Any], what: str) -> dict[str, Any]:
    """``resource``, checked here by its fhir.resources model; :class:`ExportError` naming ``what`` if it
    does not fit."""
    problem = fhir_checks.problem(resource)
    if problem is not None:
        raise ExportError(f"{what} is {problem}")
    return resource


def _checked_lines(labelled: Iterator[Labelled], checker: fhir_checks.Checker) -> Iterator[str]:
    """The NDJSON line of each resource of ``labelled``, in order, once its line has been checked.

    Lines are checked a run at a time, each run by ``checker``'s worker processes while the next ones
    are built, or here when the workers already have two runs each in hand (checking is about twice
    the work of building, so on two cores the export process builds every run and checks some,
    the worker checks the rest). Runs are written in order as their checks come back; the first
    problem raises :class:`ExportError` naming the record, before its run is written.
    """
    pending: deque[tuple[list[str], list[str], Future[list[str | None]]]] = deque()
    in_hand = 2 * checker.workers  # runs the workers may hold: one being checked, one waiting, each
    most = in_hand + 4  # runs held here at most (memory), checked or not

    def settled() -> list[str]:
        lines, whats, future = pending.popleft()
        for what, problem in zip(whats, future.result(), strict=True):
            if problem is not None:
                raise ExportError(f"{what} is {problem}")
        return lines

    lines: list[str] = []
    whats: list[str] = []
    for resource, what in labelled:
        lines.append(fm.dumps(resource))
        whats.append(what)
        if len(lines) == CHECK_RUN:
            if sum(not future.done() for *_, future in pending) < in_hand:
                future = checker.submit(lines, fhir_checks.line_problems)
            else:  # the workers are behind (or there are none): this one is checked here
                future = fhir_checks.checked_here(lines, fhir_checks.line_problems)
            pending.append((lines, whats, future))
            lines, whats = [], []
            while pending and (pending[0][2].done() or len(pending) > most):
                yield from settled()
    if lines:  # a short run, the last of its type (or all of a small export): not worth a process
        pending.append((lines, whats, fhir_checks.checked_here(lines, fhir_checks.line_problems)))
    while pending:
        yield from settled()


# --------------------------------------------------------------------------- what one selection holds


class _Selection:
    """The records of a set of patients, type by type, each a queryset read in chunks, in key order."""

    def __init__(
        self, patients: QuerySet[Patient], builder: _Builder, clinics: QuerySet[Clinic] | None = None
    ) -> None:
        self.patients = patients
        #: The clinics written as Organizations: those asked for, else those of the patients.
        self.clinic_rows = (
            clinics if clinics is not None else Clinic.objects.filter(pk__in=patients.values("clinic_id"))
        )
        self.b = builder
        self.ids = builder.ids
        self.keys = patients.values("pk")

    def _rows(self, queryset: QuerySet[Any]) -> Iterator[Any]:
        return _collected(queryset.order_by("pk").iterator(chunk_size=CHUNK))

    def clinics(self) -> Iterator[Labelled]:
        rows = self.clinic_rows.annotate(_fid=self.ids.annotation(Clinic))
        for clinic in self._rows(rows):
            yield self.b.organization(clinic, clinic._fid), f"Clinic {clinic.slug}"

    def clinic_ids(self) -> dict[int, str]:
        return self.ids.lookup(Clinic, self.b.cat.clinics)

    def patient_resources(self, clinic_fids: dict[int, str]) -> Iterator[Labelled]:
        rows = Patient.objects.filter(pk__in=self.keys).annotate(_fid=self.ids.annotation(Patient))
        for patient in self._rows(rows):
            yield self.b.patient(patient, clinic_fids[patient.clinic_id]), f"Patient {patient.pk}"

    def consents(self, clinic_fids: dict[int, str]) -> Iterator[Labelled]:
        rows = Consent.objects.filter(patient__in=self.keys).annotate(
            _fid=self.ids.annotation(Consent),
            _patient_fid=self.ids.annotation(Patient, "patient_id"),
            _clinic=F("patient__clinic_id"),
        )
        for consent in self._rows(rows):
            yield (
                self.b.consent(consent, consent._clinic, clinic_fids[consent._clinic]),
                f"Consent {consent.pk}",
            )

    def conditions(self) -> Iterator[Labelled]:
        rows = Condition.objects.filter(patient__in=self.keys).annotate(
            _fid=self.ids.annotation(Condition), _patient_fid=self.ids.annotation(Patient, "patient_id")
        )
        for condition in self._rows(rows):
            yield self.b.condition(condition), f"Condition {condition.pk}"

    def procedures(self) -> Iterator[Labelled]:
        rows = (
            Procedure.objects.filter(patient__in=self.keys)
            .annotate(
                _fid=self.ids.annotation(Procedure),
                _patient_fid=self.ids.annotation(Patient, "patient_id"),
                _condition_fid=self.ids.annotation(Condition, "condition_id"),
                _condition_type=Subquery(
                    Condition.objects.filter(pk=OuterRef("condition_id")).values("condition_type_id")[:1]
                ),
            )
            .prefetch_related("injectates")
        )
        for procedure in self._rows(rows):
            yield self.b.procedure(procedure), f"Procedure {procedure.pk}"

    def responses(self) -> Iterator[Labelled]:
        rows = (
            QuestionnaireResponse.objects.filter(patient__in=self.keys)
            .select_related("follow_up__episode")
            .annotate(
                _fid=self.ids.annotation(QuestionnaireResponse),
                _patient_fid=self.ids.annotation(Patient, "patient_id"),
                _condition_fid=self.ids.annotation(Condition, "follow_up__episode__condition_id"),
            )
        )
        for response in self._rows(rows):
            yield self.b.questionnaire_response(response), f"QuestionnaireResponse {response.pk}"

    def observations(self) -> Iterator[Labelled]:
        scores = (
            Score.objects.filter(response__patient__in=self.keys)
            .select_related("response")
            .only(
                "instrument",
                "scale",
                "value",
                "policy",
                "flags",
                "response__patient",
                "response__collected_on",
            )
            .annotate(
                _fid=self.ids.annotation(Score),
                _patient_fid=self.ids.annotation(Patient, "response__patient_id"),
                _response_fid=self.ids.annotation(QuestionnaireResponse, "response_id"),
            )
        )
        for score in self._rows(scores):
            yield self.b.score(score), f"Score {score.pk}"
        measurements = (
            Measurement.objects.filter(image__patient__in=self.keys)
            .select_related("image")
            .defer("image__calibration", "image__masks", "image__note")
            .annotate(
                _fid=self.ids.annotation(Measurement),
                _patient_fid=self.ids.annotation(Patient, "image__patient_id"),
            )
        )
        for measurement in self._rows(measurements):
            yield self.b.measurement(measurement), f"Measurement {measurement.pk}"

    def care_plans(self) -> Iterator[Labelled]:
        rows = (
            CarePlan.objects.filter(condition__patient__in=self.keys)
            .select_related("protocol", "condition")
            .annotate(
                _fid=self.ids.annotation(CarePlan),
                _patient_fid=self.ids.annotation(Patient, "condition__patient_id"),
                _condition_fid=self.ids.annotation(Condition, "condition_id"),
            )
        )
        for plan in self._rows(rows):
            resource = self.b.care_plan(
                plan,
                self.ids.of(Patient, plan.condition.patient_id, plan._patient_fid),
                self.ids.of(Condition, plan.condition_id, plan._condition_fid),
                self.ids.of(CarePlan, plan.pk, plan._fid),
            )
            yield resource, f"CarePlan {plan.pk}"

    def kept(self, resource_type: str) -> Iterator[Labelled]:
        rows = ExternalResource.objects.filter(
            status=ExternalResource.Status.KEPT, resource_type=resource_type, patient__in=self.keys
        ).values_list("pk", "payload")
        for pk, payload in _collected(rows.order_by("pk").iterator(chunk_size=CHUNK)):
            yield payload, f"Kept resource {pk}"

    def resources(self, resource_type: str, clinic_fids: dict[int, str]) -> Iterator[Labelled]:
        """Every resource of ``resource_type``: Stride's records, then the kept ones."""
        native: dict[str, Callable[[], Iterator[Labelled]]] = {
            "Organization": self.clinics,
            "Patient": lambda: self.patient_resources(clinic_fids),
            "Consent": lambda: self.consents(clinic_fids),
            "Condition": self.conditions,
            "Procedure": self.procedures,
            "QuestionnaireResponse": self.responses,
            "Observation": self.observations,
            "CarePlan": self.care_plans,
        }
        yield from native[resource_type]()
        if resource_type != "Organization":
            yield from self.kept(resource_type)


def selected_patients(
    clinic_ids: Iterable[int] | None, patient_ids: Iterable[int] | None = None
) -> QuerySet[Patient]:
    """The patients a bulk export covers: analysable (consent stands), of ``clinic_ids`` (``None``: all)."""
    patients = Patient.objects.analysable()
    if clinic_ids is not None:
        patients = patients.filter(clinic_id__in=list(clinic_ids))
    if isinstance(patient_ids, QuerySet):
        patients = patients.filter(pk__in=patient_ids)  # a subquery (a cohort): never a long list
    elif patient_ids is not None:
        patients = patients.filter(pk__in=list(patient_ids))
    return patients


# --------------------------------------------------------------------------- one patient


def patient_bundle(patient: Patient) -> dict[str, Any]:
    """``patient``'s record as a FHIR R4 Bundle of type collection (the caller has checked access)."""
    builder = _Builder()
    selection = _Selection(Patient.objects.filter(pk=patient.pk), builder)
    clinic_fids = selection.clinic_ids()
    entries = []
    for resource_type in fm.EXPORT_TYPES:
        for resource, what in selection.resources(resource_type, clinic_fids):
            _checked(resource, what)
            entries.append(
                {"fullUrl": f"{fm.base_url()}/fhir/{resource_type}/{resource['id']}", "resource": resource}
            )
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": timezone.now().isoformat(timespec="seconds"),
        "entry": entries,
    }
    record(AuditEntry.Action.EXPORT, patient, detail={"format": "fhir-bundle", "resources": len(entries)})
    return bundle


# --------------------------------------------------------------------------- bulk


class _Files:
    """One NDJSON file per resource type, opened at its first line, renamed into place when complete."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.handles: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def write(self, resource_type: str, line: str) -> None:
        handle = self.handles.get(resource_type)
        if handle is None:
            handle = (self.out_dir / f"{resource_type}.ndjson.part").open("w", encoding="utf-8", newline="\n")
            self.handles[resource_type] = handle
            self.counts[resource_type] = 0
        handle.write(line)
        handle.write("\n")
        self.counts[resource_type] += 1

    def finish(self) -> None:
        for resource_type, handle in self.handles.items():
            handle.close()
            os.replace(
                self.out_dir / f"{resource_type}.ndjson.part", self.out_dir / f"{resource_type}.ndjson"
            )
        self.handles = {}
        # A type with nothing this time leaves no file of an earlier export behind.
        for resource_type in fm.EXPORT_TYPES:
            stale = self.out_dir / f"{resource_type}.ndjson"
            if resource_type not in self.counts and stale.exists():
                stale.unlink()

    def abandon(self) -> None:
        for resource_type, handle in self.handles.items():
            handle.close()
            (self.out_dir / f"{resource_type}.ndjson.part").unlink(missing_ok=True)
        self.handles = {}


def write_bulk(
    out_dir: Path | str,
    *,
    clinic_ids: Iterable[int] | None,
    patient_ids: Iterable[int] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict[str, int]:
    """Write the analysable patients of ``clinic_ids`` (``None``: every clinic), or of those of them in
    ``patient_ids``, as bulk NDJSON files in ``out_dir`` with ``manifest.json``; return the lines per type.

    ``progress(resource_type, n)`` is called as lines are written. Every line is checked against the
    fhir.resources models before it is written, by ``workers`` processes (``None``: one when there is
    a second core; 0: here). Audited as one export entry.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builder = _Builder()
    patients = selected_patients(clinic_ids, patient_ids)
    clinics = None
    if patient_ids is None:
        clinics = (
            Clinic.objects.all() if clinic_ids is None else Clinic.objects.filter(pk__in=list(clinic_ids))
        )
    selection = _Selection(patients, builder, clinics)
    clinic_fids = selection.clinic_ids()
    started = timezone.now()
    files = _Files(out)
    try:
        with frozen_heap(), read_snapshot(), fhir_checks.Checker(workers) as checker:
            for resource_type in fm.EXPORT_TYPES:
                for line in _checked_lines(selection.resources(resource_type, clinic_fids), checker):
                    files.write(resource_type, line)
                    if progress is not None:
                        progress(resource_type, 1)
    except BaseException:
        files.abandon()
        raise
    files.finish()
    counts = {t: files.counts[t] for t in fm.EXPORT_TYPES if t in files.counts}
    manifest = {
        "transactionTime": started.isoformat(timespec="seconds"),
        "request": f"{fm.base_url()}/fhir/$export",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": f"{t}.ndjson", "count": n} for t, n in counts.items()],
        "error": [],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    record(
        AuditEntry.Action.EXPORT,
        model="interop.fhir-bulk",
        detail={
            "format": "fhir-ndjson",
            "clinics": sorted(clinic_ids) if clinic_ids is not None else "all",
            "patients": counts.get("Patient", 0),
            "resources": counts,
        },
    )
    return counts
