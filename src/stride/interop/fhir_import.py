"""FHIR R4 into Stride: bulk NDJSON files, Bundles (collection, transaction…) and folders of them.

:func:`import_paths` reads files one line (or one Bundle entry) at a time and
never holds a whole file. Resources are read in the order their references
need: Organization, Patient, Condition, Procedure, QuestionnaireResponse,
Observation, Consent (after the treatments, as a withdrawal ends follow-up),
CarePlan. Other resource types (Encounter, MedicationRequest…) have no place
in Stride: they are counted as skipped.

What each resource becomes (the mapping in full is in ``docs/interop.md``):

* **created / updated / linked / unchanged**: it became (or already was) a
  Stride record, written through the same rules as a page: ``full_clean`` on
  the model, questionnaire answers through ``outcomes.services.save_answers``
  (which validates and scores them), measurements through
  ``imaging.services.add_measurement``. Where the record has no field for
  part of the resource (an address, another identifier, a coding from another
  system), that part is kept in the resource's
  :class:`~stride.interop.models.ExternalResource` ``payload``.
* **kept**: Stride has no record for it (a code outside the catalog, a
  condition without a side, a care plan not started from one of Stride's
  protocols, a measurement whose image is not in Stride): it is stored whole,
  with the reason, tied to its patient, and exported again with that patient.
  Nothing read is dropped.
* **rejected**: it breaks a rule (not JSON, not a valid FHIR resource, a date
  in the future, a patient it names that is not there…): reported with its
  file, line and the reason, and nothing of it is written.

Each resource is written in its own savepoint (all of it or nothing); the
savepoints are committed every :data:`BATCH` resources. Importing the same
resource again is recognised by its id and the hash of its content (an
:class:`ExternalResource` per resource) and changes nothing. A run is audited
as one ``bulk`` entry besides the model signals of every record it writes.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import EmailValidator
from django.db import DatabaseError, connection, models, transaction
from django.utils.text import slugify

from stride.audit import log as audit_log
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care.models import (
    BodySite,
    CarePlan,
    Condition,
    ConditionStatus,
    ConditionType,
    Drug,
    Injectate,
    Procedure,
    ProcedureType,
    Site,
)
from stride.clinics.models import Clinic
from stride.core import catalog as core_catalog
from stride.core import instruments as core_instruments
from stride.core.errors import Invalid
from stride.imaging.models import Image, Measurement
from stride.interop import fhir_checks, fhir_files
from stride.interop import fhir_map as fm
from stride.interop.fhir_export import frozen_heap
from stride.interop.models import ExternalResource
from stride.outcomes.models import Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Consent, Patient, Sex

#: The order resources are read in: each phase refers only to the ones before it.
PHASES: tuple[str, ...] = (
    "Organization",
    "Patient",
    "Condition",
    "Procedure",
    "QuestionnaireResponse",
    "Observation",
    "Consent",
    "CarePlan",
)
TAKEN = frozenset(PHASES)
#: Resources per commit (each one is its own savepoint inside).
BATCH = 500
#: Resources whose bookkeeping is read in one query.
PREFETCH = 200
#: Rejected resources listed in full; beyond it they are counted.
MAX_LISTED = 10_000
#: The database's statistics are refreshed when the resources of one type in an import reach this
#: many, and again each time they double (:func:`refresh_statistics`).
FIRST_ANALYZE = 10_000
IMPORTED_CLINIC = ("Imported records", "imported")
OUTCOMES = ("created", "updated", "linked", "unchanged", "kept", "rejected")

Progress = Callable[[str, int], Any]


class Keep(Exception):
    """The resource has no Stride record: keep it whole, for this reason."""

    def __init__(self, category: str, reason: str) -> None:
        super().__init__(reason)
        self.category = category
        self.reason = reason


class Reject(Exception):
    """The resource cannot be taken: report it with this reason and write nothing of it."""


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Rejected:
    where: str  # file:line (entry n)
    resource_type: str
    fhir_id: str
    reason: str

    def __str__(self) -> str:
        what = f"{self.resource_type}/{self.fhir_id}" if self.fhir_id else self.resource_type or "line"
        return f"{self.where}: {what}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did: per resource type how many were created, updated, linked, unchanged, kept
    or rejected; every rejected resource with its place and reason; what was skipped and why."""

    files: list[str] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    kept: Counter[tuple[str, str]] = field(default_factory=Counter)
    kept_examples: dict[tuple[str, str], str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_total: int = 0
    seconds: float = 0.0

    def count(self, resource_type: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(resource_type, Counter())[outcome] += n

    def reject(self, problem: Rejected) -> None:
        self.count(problem.resource_type or "(unreadable)", "rejected")
        if len(self.rejected) < MAX_LISTED:
            self.rejected.append(problem)

    def note(self, text: str) -> None:
        self.notes_total += 1
        if len(self.notes) < MAX_LISTED:
            self.notes.append(text)

    def keep(self, resource_type: str, category: str, reason: str) -> None:
        self.count(resource_type, "kept")
        self.kept[(resource_type, category)] += 1
        self.kept_examples.setdefault((resource_type, category), reason)

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.counts.values())

    @property
    def imported(self) -> int:
        """Resources now in Stride (as records or kept), this run or before."""
        return sum(self.total(outcome) for outcome in OUTCOMES if outcome != "rejected")

    @property
    def nothing_done(self) -> bool:
        return self.imported == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "counts": {t: dict(c) for t, c in self.counts.items()},
            "skipped": dict(self.skipped),
            "rejected": self.total("rejected"),
        }

    def lines(self) -> list[str]:
        """The summary the command prints."""
        out = [f"Read {len(self.files)} file(s) in {self.seconds:.1f} s."]
        if self.counts:
            width = max(len(t) for t in self.counts) + 2
            out.append("  " + "resource".ljust(width) + "".join(f"{o:>11}" for o in OUTCOMES))
            for resource_type in [*PHASES, *sorted(set(self.counts) - TAKEN)]:
                if resource_type in self.counts:
                    c = self.counts[resource_type]
                    out.append("  " + resource_type.ljust(width) + "".join(f"{c[o]:>11,}" for o in OUTCOMES))
        if self.skipped:
            listed = ", ".join(f"{t} {n:,}" for t, n in sorted(self.skipped.items()))
            out.append(f"Skipped (no place in Stride): {listed}.")
        for name in self.skipped_files:
            out.append(f"Skipped file {name}.")
        if self.kept:
            out.append("Kept whole (no Stride record holds them; exported again with their patient):")
            for (resource_type, category), n in sorted(self.kept.items()):
                example = self.kept_examples[(resource_type, category)]
                out.append(f"  {resource_type}: {n:,} ({category}), e.g. {example}")
        out.extend(f"Note: {note}" for note in self.notes)
        if self.notes_total > len(self.notes):
            out.append(f"… and {self.notes_total - len(self.notes):,} more notes.")
        rejected = self.total("rejected")
        if rejected:
            out.append(f"Rejected {rejected:,}:")
            out.extend(f"  {problem}" for problem in self.rejected)
            if rejected > len(self.rejected):
                out.append(f"  … and {rejected - len(self.rejected):,} more.")
        return out


# --------------------------------------------------------------------------- small readers


def _why(error: Exception) -> str:
    if isinstance(error, ValidationError):
        if hasattr(error, "error_dict"):
            parts = []
            for name, errors in error.message_dict.items():
                prefix = "" if name == NON_FIELD_ERRORS else f"{name}: "
                parts.extend(f"{prefix}{message}" for message in errors)
            return "; ".join(parts)
        return "; ".join(error.messages)
    if isinstance(error, Invalid):
        return error.message
    return str(error)


def _date(value: Any) -> dt.date | None:
    """The day of a FHIR date or dateTime as written (``None`` for a partial date or none)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding", []) if isinstance(c, dict)]


def _stride_code(concept: Any, name: str) -> str | None:
    for item in _codings(concept):
        if fm.stride_name(item.get("system")) == name and item.get("code"):
            return str(item["code"])
    return None


def _codes_text(concept: Any) -> str:
    shown = []
    names = {
        fm.ICD10CM: "ICD-10-CM",
        fm.SNOMED: "SNOMED CT",
        fm.LOINC: "LOINC",
        fm.CPT: "CPT",
        fm.HCPCS: "HCPCS",
    }
    for item in _codings(concept):
        system = str(item.get("system", ""))
        shown.append(f"{names.get(system, system or 'no system')} {item.get('code', '?')}")
    if not shown and isinstance(concept, dict) and concept.get("text"):
        shown.append(repr(concept["text"]))
    return ", ".join(shown) or "no code"


def _extensions(element: Any, name: str) -> list[dict[str, Any]]:
    """The Stride extensions ``name`` of an element."""
    if not isinstance(element, dict):
        return []
    return [
        e
        for e in element.get("extension", [])
        if isinstance(e, dict) and fm.stride_name(e.get("url"), "StructureDefinition") == name
    ]


def _extension_value(element: Any, name: str, key: str) -> Any:
    found = _extensions(element, name)
    return found[0].get(key) if found else None


def _parts(extension: dict[str, Any]) -> dict[str, Any]:
    """A complex extension's parts as name → the part (its value[x] keys)."""
    return {p.get("url"): p for p in extension.get("extension", []) if isinstance(p, dict)}


def _laterality(body_sites: Any) -> str | None:
    """The side a bodySite states with a laterality qualifier (mCODE's or any SNOMED laterality)."""
    for site in body_sites if isinstance(body_sites, list) else []:
        for extension in site.get("extension", []) if isinstance(site, dict) else []:
            concept = extension.get("valueCodeableConcept") if isinstance(extension, dict) else None
            for item in _codings(concept):
                if item.get("system") == fm.SNOMED and item.get("code") in fm.LATERALITY_FROM_SNOMED:
                    return fm.LATERALITY_FROM_SNOMED[item["code"]]
    return None


def _body_site_code(body_sites: Any) -> str | None:
    for site in body_sites if isinstance(body_sites, list) else []:
        code = _stride_code(site, fm.CS_BODY_SITE)
        if code:
            return code
    return None


def _normal_icd10(code: str) -> str:
    code = code.strip().upper()
    if "." not in code and len(code) > 3:
        code = f"{code[:3]}.{code[3:]}"
    return code


_RECORD_NUMBER = re.compile(r"[^A-Za-z0-9./_-]+")


def _record_number(value: str) -> str:
    cleaned = _RECORD_NUMBER.sub("-", value.strip()).strip("-./_")
    return cleaned[:40].upper()


_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def _rewrite_references(value: Any, urls: dict[str, tuple[str, str]], source: str) -> Any:
    """``value`` with every reference named as it is exported: a ``urn:uuid:`` a Bundle resolves as
    ``Type/id``, and for a named source every ``Type/id`` with the id it goes out under."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if item in urls:
                    item = "/".join(urls[item])
                match = _RELATIVE.match(item) if source else None
                out[key] = f"{match[1]}/{fm.export_id(source, match[1], match[2])}" if match else item
            else:
                out[key] = _rewrite_references(item, urls, source)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, urls, source) for item in value]
    return value


# --------------------------------------------------------------------------- what a resource became


@dataclass
class _Done:
    outcome: str  # created, updated, linked, unchanged
    record: models.Model
    patient_id: int | None = None
    payload: dict[str, Any] | None = None
    remember: bool = True  # False: Stride finds the record from the resource itself (a score's id)


@dataclass
class _ResponsePlan:
    """A QuestionnaireResponse read and checked, ready to be saved."""

    patient: Patient
    follow_up: Any  # FollowUp | None
    code: str
    version: str
    answers: list[Any]
    source: str
    submit: bool
    collected: dt.date
    flags: list[str] | None
    context: str | None
    existing: QuestionnaireResponse | None
    rest: dict[str, Any] | None

    @property
    def together(self) -> bool:
        """A new completed response of a follow-up: it can be written with others."""
        return self.existing is None and self.follow_up is not None and self.submit


@dataclass
class _Together:
    """A QuestionnaireResponse to be written with others (see ``_Importer.write_together``)."""

    entry: fhir_files.Entry
    urls: dict[str, tuple[str, str]]
    fhir_id: str
    digest: str
    plan: _ResponsePlan


class _Alone(Exception):
    """This resource is imported on its own (it needs something written first)."""


def _apply(obj: models.Model, values: dict[str, Any]) -> list[str]:
    """Set ``values`` on ``obj``; the names of those that changed."""
    changed = []
    for name, value in values.items():
        if isinstance(value, models.Model) or (value is None and hasattr(obj, f"{name}_id")):
            current: Any = getattr(obj, f"{name}_id", None)
            new = value.pk if isinstance(value, models.Model) else None
        else:
            current, new = getattr(obj, name), value
        if current != new:
            setattr(obj, name, value)
            changed.append(name)
    return changed


def _save(obj: models.Model, values: dict[str, Any]) -> str:
    """Create or update ``obj`` with ``values`` through the model's rules; the outcome."""
    new = obj.pk is None
    changed = _apply(obj, values)
    if not new and not changed:
        return "unchanged"
    # Every rule runs; only the existence of the related records given (just read) is not asked again.
    obj.full_clean(exclude=[name for name, value in values.items() if isinstance(value, models.Model)])
    obj.save()
    return "created" if new else "updated"


def _rest(resource: dict[str, Any], reads: Iterable[str], **partial: Any) -> dict[str, Any] | None:
    """What of ``resource`` no Stride field holds: the elements not read, and the parts of read
    elements that were not used (``partial``: element → its unused part, or ``None``)."""
    skip = {"resourceType", "id", *reads, *partial}
    rest = {key: value for key, value in resource.items() if key not in skip}
    for key, value in partial.items():
        if value not in (None, [], {}):
            rest[key] = value
    return rest or None


def _foreign_extensions(resource: dict[str, Any], known: Iterable[str] = ()) -> list[dict[str, Any]]:
    allowed = set(known)
    return [
        e
        for e in resource.get("extension", [])
        if not (
            isinstance(e, dict)
            and (fm.stride_name(e.get("url"), "StructureDefinition") is not None or e.get("url") in allowed)
        )
    ]


# --------------------------------------------------------------------------- the importer


class _Importer:
    def __init__(
        self, source: str, report: ImportReport, progress: Progress | None, workers: int | None = None
    ) -> None:
        self.source = source
        self.workers = workers
        self.report = report
        self.progress = progress
        self.urls: dict[str, tuple[str, str]] = {}
        self._pks: dict[tuple[str, str], int | None] = {}
        self._objects: dict[tuple[str, str], models.Model] = {}
        self._known: dict[tuple[str, str], ExternalResource | None] = {}
        self._fresh: set[int] = set()  # patients this run created
        self._follow_ups: dict[tuple[int, dt.date], dict[str, Any]] = {}
        self._scores: dict[int, dict[str, Score]] = {}  # the scores of the responses this run saved
        self._staged_scores: tuple[int, dict[str, Score]] | None = None
        self.audit = audit_log.Pending()  # replaced by run's, which writes them
        self._new_externals: dict[tuple[str, str], ExternalResource] = {}
        self._read: Counter[str] = Counter()  # resources read, by type
        self._next_analyze: dict[str, int] = {}
        self._types: dict[type[models.Model], ContentType] = {}
        cat = core_catalog.catalog()
        self.catalog = cat
        self.library = core_instruments.library()
        self.condition_types = {row.code: row for row in ConditionType.objects.select_related("body_site")}
        self.sites = {row.code: row for row in Site.objects.all()}
        self.body_sites = {row.code: row for row in BodySite.objects.all()}
        self.procedure_types = {row.code: row for row in ProcedureType.objects.all()}
        self.drugs = {row.code: row for row in Drug.objects.all()}
        self.by_cpt: dict[str, list[str]] = {}
        for row in self.procedure_types.values():
            if not row.retired:
                self.by_cpt.setdefault(row.cpt, []).append(row.code)
        self.by_icd10: dict[str, list[tuple[str, str, str]]] = {}
        self.by_snomed: dict[str, list[str]] = {}
        for condition in cat.conditions.values():
            for side, code in condition.icd10.items():
                self.by_icd10.setdefault(code, []).append((condition.code, side, ""))
            for site, table in condition.icd10_by_site.items():
                for side, code in table.items():
                    self.by_icd10.setdefault(code, []).append((condition.code, side, site))
            if condition.snomed:
                self.by_snomed.setdefault(condition.snomed, []).append(condition.code)
        self.by_loinc = {i.loinc: code for code, i in self.library.items() if i.loinc}

    # ----------------------------------------------------------------- bookkeeping

    def content_type(self, model: type[models.Model]) -> ContentType:
        if model not in self._types:
            self._types[model] = ContentType.objects.get_for_model(model)
        return self._types[model]

    def external(self, resource_type: str, fhir_id: str) -> ExternalResource | None:
        key = (resource_type, fhir_id)
        if key in self._known:
            return self._known[key]
        return ExternalResource.objects.filter(
            source=self.source, resource_type=resource_type, fhir_id=fhir_id
        ).first()

    def prefetch(self, entries: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]) -> None:
        """Read the bookkeeping of a run of resources in one query instead of one each."""
        keys = {
            (str(e.resource.get("resourceType")), found)
            for e, _urls in entries
            if e.resource is not None and (found := fhir_files.resource_id(e.resource, e.full_url))
        }
        self._known = dict.fromkeys(keys)
        if not keys:
            return
        rows = ExternalResource.objects.filter(
            source=self.source,
            resource_type__in={t for t, _ in keys},
            fhir_id__in={i for _, i in keys},
        ).select_related("content_type")
        for er in rows:
            if (er.resource_type, er.fhir_id) in self._known:
                self._known[(er.resource_type, er.fhir_id)] = er
        self._prefetch_scores(entries)
        self._prefetch_referred(entries)

    def _prefetch_scores(self, entries: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]) -> None:
        """The scores of the responses a run's Observations are derived from, in two queries instead of
        two each (the responses were imported earlier, in their own phase, too many ago to be at hand)."""
        wanted: set[tuple[str, str]] = set()
        for entry, urls in entries:
            resource = entry.resource
            if resource is None or resource.get("resourceType") != "Observation":
                continue
            self.urls = urls
            for ref in resource.get("derivedFrom", []):
                found = self.target(ref)
                if found is not None and found[0] == "QuestionnaireResponse":
                    wanted.add(found)
        self.urls = {}
        pks = {key: self._pks.get(key) for key in wanted}
        unknown = {fhir_id for (_t, fhir_id), pk in pks.items() if pk is None}
        if unknown:
            found_pks = self._mapped_pks("QuestionnaireResponse", QuestionnaireResponse, unknown)
            for key in wanted:
                if pks[key] is None and key[1] in found_pks:
                    pks[key] = found_pks[key[1]]
        missing = {pk for pk in pks.values() if pk is not None and pk not in self._scores}
        if not missing:
            return
        scores: dict[int, dict[str, Score]] = {}
        for score in Score.objects.filter(response_id__in=missing).select_related("response"):
            scores.setdefault(score.response_id, {})[score.scale] = score
        if len(self._scores) > 20_000:
            self._scores.clear()
        self._scores.update(scores)  # only responses that are there (and were scored)
        for key, pk in pks.items():
            if pk in scores:
                self._remember_pk(key, pk)

    def _prefetch_referred(self, entries: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]) -> None:
        """The patients and conditions a run's resources refer to, read in two queries a type instead of
        two each (:meth:`lookup`; in a large import most were imported too many resources ago to be at
        hand). What is not found here (not imported, kept, or from this same run) is looked up as usual."""
        wanted: dict[str, set[str]] = {kind: set() for kind in _REFERRED}
        for entry, urls in entries:
            if entry.resource is None:
                continue
            self.urls = urls
            for ref in _references(entry.resource):
                found = self.target(ref)
                if found is not None and found[0] in wanted and found not in self._objects:
                    wanted[found[0]].add(found[1])
        self.urls = {}
        for kind, model in _REFERRED.items():
            if not wanted[kind]:
                continue
            pks = self._mapped_pks(kind, model, wanted[kind])
            records = _with_related(model).in_bulk(set(pks.values()))
            for fhir_id, pk in pks.items():
                if pk in records:
                    self._remember((kind, fhir_id), records[pk])

    def _mapped_pks(
        self, resource_type: str, model: type[models.Model], fhir_ids: set[str]
    ) -> dict[str, int]:
        """The keys of the ``model`` records the resources ``resource_type``/``fhir_ids`` were imported as.

        Asked by the unique key alone, so the database uses that index: with the status or content type
        in the query, SQLite without statistics read every response's row for each run.
        """
        mapped, content_type = ExternalResource.Status.MAPPED, self.content_type(model).pk
        rows = ExternalResource.objects.filter(
            source=self.source, resource_type=resource_type, fhir_id__in=fhir_ids
        ).values_list("fhir_id", "object_id", "status", "content_type_id")
        return {i: pk for i, pk, status, ct in rows if status == mapped and ct == content_type}

    def _remember_pk(self, key: tuple[str, str], pk: int) -> None:
        if len(self._pks) > 100_000:
            self._pks.clear()
        self._pks[key] = pk

    def target(self, ref: Any) -> tuple[str, str] | None:
        """The (type, id) a Reference names, if it names one by address."""
        text = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(text, str) or not text:
            return None
        if text.startswith("urn:"):
            return self.urls.get(text)
        if "?" in text or text.startswith("#"):
            return None  # a conditional or contained reference: nothing to look up
        parts = text.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return (parts[-2], parts[-1]) if len(parts) >= 2 else None

    def lookup(self, ref: Any, model: type[models.Model], resource_type: str) -> tuple[Any, str | None]:
        """The Stride record a Reference names (or ``None``) and, when there is none, why."""
        found = self.target(ref)
        if found is None:
            return None, "no reference"
        kind, fhir_id = found
        if kind != resource_type:
            return None, f"refers to {kind}/{fhir_id}, not a {resource_type}"
        key = (kind, fhir_id)
        cached = self._objects.get(key)
        if cached is not None and isinstance(cached, model):
            return cached, None
        pk = self._pks.get(key)
        if pk is None:
            er = self.external(kind, fhir_id)
            if er is None:
                return None, f"{kind}/{fhir_id} is not in Stride"
            if er.status == ExternalResource.Status.KEPT:
                return None, f"{kind}/{fhir_id} was kept as it was ({er.reason})"
            pk = er.object_id
        obj = _with_related(model).filter(pk=pk).first()
        if obj is None:
            return None, f"{kind}/{fhir_id} was imported but its record has been deleted"
        self._remember(key, obj)
        return obj, None

    def _remember(self, key: tuple[str, str], obj: models.Model | None) -> None:
        """Remember what a (type, id) became: its key, and the record itself for what is referred to most."""
        if len(self._pks) > 100_000:
            self._pks.clear()
        if len(self._objects) > 5_000:
            self._objects.clear()
        self._pks[key] = obj.pk if obj is not None else None
        if obj is not None and isinstance(obj, _CACHED):
            self._objects[key] = obj
        else:
            self._objects.pop(key, None)

    def score_of(self, ref: Any, scale: str) -> tuple[Score | None, str | None]:
        """The score of ``scale`` of the response a Reference names, in one query; or why there is none."""
        found = self.target(ref)
        pk = self._pks.get(found) if found is not None else None
        if pk is None:
            response, why = self.lookup(ref, QuestionnaireResponse, "QuestionnaireResponse")
            if response is None:
                return None, why
            pk = response.pk
        saved = self._scores.get(pk)
        if saved is not None:  # scored in this run: its scores are at hand
            return saved.get(scale), None
        score = Score.objects.select_related("response").filter(response_id=pk, scale=scale).first()
        if score is None and not QuestionnaireResponse.objects.filter(pk=pk).exists():
            return (
                None,
                f"{found[0]}/{found[1]} was imported but its record has been deleted" if found else "gone",
            )
        return score, None

    def _remember_scores(self, saved: Any) -> None:
        """Keep the scores a response was given, for its Observations; kept once the resource is in
        (see :meth:`handle`), as a rejection rolls them back."""
        if saved.scores:
            self._staged_scores = (saved.response.pk, {score.scale: score for score in saved.scores})

    def patient_of(self, resource: dict[str, Any], element: str = "subject") -> Patient:
        patient, why = self.lookup(resource.get(element), Patient, "Patient")
        if patient is None:
            raise Reject(f"its patient ({element}) {why}" if why != "no reference" else f"no {element}")
        return patient

    def own(self, records: Callable[[], models.QuerySet[Any]], fhir_id: str, patient: Patient) -> Any:
        """The record of ``records()`` this installation exported under ``fhir_id``, if any (none for a
        patient this run created: such a patient has no records from before, and nothing is asked)."""
        if patient.pk in self._fresh:
            return None
        queryset = records()
        label = queryset.model._meta.label
        for pk in queryset.values_list("pk", flat=True):
            if fm.resource_id(label, pk) == fhir_id:
                return queryset.get(pk=pk)
        return None

    def mapped(self, er: ExternalResource | None, model: type[models.Model]) -> Any:
        if er is None or er.status != ExternalResource.Status.MAPPED:
            return None
        if er.content_type_id != self.content_type(model).pk:
            return None
        return model._default_manager.filter(pk=er.object_id).first()

    # ----------------------------------------------------------------- clinics

    def clinic_named(self, name: str, slug_hint: str = "") -> Clinic:
        name = (name or slug_hint or "Imported clinic").strip()[:200]
        clinic = Clinic.objects.filter(name=name).first()
        if clinic is not None:
            return clinic
        base = slugify(slug_hint or name)[:44] or "clinic"
        slug, n = base, 1
        while Clinic.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        clinic = Clinic(name=name, slug=slug, time_zone="UTC")
        clinic.full_clean()
        clinic.save()
        return clinic

    def clinic_of(self, ref: Any) -> Clinic:
        """The clinic a foreign patient's managingOrganization names (made when needed), else 'imported'."""
        found = self.target(ref)
        if found is not None and found[0] == "Organization":
            er = self.external(*found)
            if er is not None and er.status == ExternalResource.Status.MAPPED:
                clinic = Clinic.objects.filter(pk=er.object_id).first()
                if clinic is not None:
                    return clinic
            if er is not None and er.status == ExternalResource.Status.KEPT:
                clinic = self.clinic_named(str((er.payload or {}).get("name") or ""), "")
                er.status, er.reason = ExternalResource.Status.MAPPED, ""
                er.content_type, er.object_id = self.content_type(Clinic), clinic.pk
                er.payload = _rest(er.payload or {}, ("name",))
                er.save()
                return clinic
        display = ref.get("display") if isinstance(ref, dict) else None
        if isinstance(display, str) and display.strip():
            return self.clinic_named(display)
        clinic = Clinic.objects.filter(slug=IMPORTED_CLINIC[1]).first()
        return clinic or self.clinic_named(*IMPORTED_CLINIC)

    # ----------------------------------------------------------------- Organization

    def organization(self, r: dict[str, Any], er: ExternalResource | None) -> _Done:
        slug = next(
            (
                i.get("value")
                for i in r.get("identifier", [])
                if isinstance(i, dict) and i.get("system") == fm.CLINIC_SYSTEM
            ),
            None,
        )
        if not slug:
            raise Keep("not a Stride clinic", "an organization without a urn:stride:clinic identifier")
        time_zone = _extension_value(r, fm.EXT_TIME_ZONE, "valueCode") or "UTC"
        name = str(r.get("name") or slug)
        clinic = self.mapped(er, Clinic)
        payload = _rest(
            r,
            ("name", "active"),
            identifier=[i for i in r.get("identifier", []) if i.get("system") != fm.CLINIC_SYSTEM],
            extension=_foreign_extensions(r),
        )
        if clinic is not None:  # imported before: the file's version wins
            return _Done(
                _save(clinic, {"name": name, "slug": slug, "time_zone": time_zone}), clinic, None, payload
            )
        clinic = Clinic.objects.filter(slug=slug).first()
        if clinic is not None:  # a clinic of this installation: linked, never renamed by a file
            return _Done("linked", clinic, None, payload)
        clinic = Clinic(name=name, slug=slug, time_zone=time_zone)
        return _Done(_save(clinic, {}), clinic, None, payload)

    # ----------------------------------------------------------------- Patient

    def patient(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        identifiers = [i for i in r.get("identifier", []) if isinstance(i, dict)]
        stride_id = next(
            (i for i in identifiers if str(i.get("system", "")).startswith(fm.RECORD_NUMBER_PREFIX)), None
        )
        existing: Patient | None = self.mapped(er, Patient)
        if stride_id is not None:
            slug = str(stride_id["system"])[len(fm.RECORD_NUMBER_PREFIX) :]
            clinic = Clinic.objects.filter(slug=slug).first()
            if clinic is None:
                display = (r.get("managingOrganization") or {}).get("display", "")
                clinic = self.clinic_named(str(display or slug), slug)
                if clinic.slug != slug:
                    raise Reject(f"its clinic {slug!r} is not in Stride and cannot be made under that code")
            record_number = str(stride_id.get("value") or "")
            used_identifier = stride_id
        else:
            clinic = (
                existing.clinic if existing is not None else self.clinic_of(r.get("managingOrganization"))
            )
            first = next((i for i in identifiers if i.get("value")), None)
            record_number = _record_number(str(first["value"])) if first else ""
            record_number = record_number or _record_number(fhir_id)
            used_identifier = first
        names = [n for n in r.get("name", []) if isinstance(n, dict)]
        name = next((n for n in names if n.get("use") == "official"), names[0] if names else None)
        family = str((name or {}).get("family") or "").strip()
        given = " ".join(str(g) for g in (name or {}).get("given", []) if g).strip()
        if not family or not given:
            raise Reject("Stride needs a family and a given name (name.family, name.given)")
        born = _date(r.get("birthDate"))
        if born is None:
            raise Reject("Stride needs a full date of birth (birthDate)")
        values: dict[str, Any] = {
            "clinic": clinic,
            "record_number": record_number.upper(),
            "given_name": given,
            "family_name": family,
            "date_of_birth": born,
            "sex": r.get("gender") if r.get("gender") in Sex.values else Sex.UNKNOWN,
        }
        telecom = [t for t in r.get("telecom", []) if isinstance(t, dict)]
        unused_telecom = list(telecom)
        for kind, field_name in (("phone", "phone"), ("email", "email")):
            values[field_name] = ""
            for item in telecom:
                if item.get("system") != kind or not item.get("value"):
                    continue
                candidate = str(item["value"]).strip()
                if self._valid_contact(field_name, candidate):
                    values[field_name] = candidate
                    unused_telecom.remove(item)
                    break
        height = _extension_value(r, fm.EXT_HEIGHT, "valueQuantity")
        weight = _extension_value(r, fm.EXT_WEIGHT, "valueQuantity")
        values["height_cm"] = _decimal((height or {}).get("value"))
        values["weight_kg"] = _decimal((weight or {}).get("value"))
        values["activity_level"] = _extension_value(r, fm.EXT_ACTIVITY, "valueCode") or ""
        rest = _rest(
            r,
            ("birthDate", "gender", "managingOrganization"),
            identifier=[i for i in identifiers if i is not used_identifier],
            name=names if len(names) > 1 else None,
            telecom=unused_telecom,
            extension=_foreign_extensions(r),
        )
        linked = False
        if existing is None:
            existing = Patient.objects.filter(  # kept in capitals: the index finds it
                clinic=clinic, record_number=values["record_number"]
            ).first()
            if existing is not None and existing.date_of_birth != born:
                raise Reject(
                    f"record number {values['record_number']} of {clinic.name} belongs to another patient "
                    f"(born {existing.date_of_birth.isoformat()}, not {born.isoformat()})"
                )
            linked = existing is not None
            existing = existing or Patient()
        outcome = _save(existing, values)
        if linked and outcome == "unchanged":
            outcome = "linked"
        return _Done(outcome, existing, existing.pk, rest)

    @staticmethod
    def _valid_contact(field_name: str, value: str) -> bool:
        if field_name == "email":
            try:
                EmailValidator()(value)
            except ValidationError:
                return False
            return len(value) <= 254
        return bool(re.fullmatch(r"\+?[0-9 ()./-]{6,30}", value))

    # ----------------------------------------------------------------- Condition

    def _condition_type(self, r: dict[str, Any]) -> tuple[str, set[str], set[str], str]:
        """(condition code, sides the ICD-10-CM code allows, sites it names, episode character)."""
        code = r.get("code")
        stride = _stride_code(code, fm.CS_CONDITION)
        sides: set[str] = set()
        sites: set[str] = set()
        episode = ""
        found: set[str] = set()
        for item in _codings(code):
            if item.get("system") != fm.ICD10CM or not item.get("code"):
                continue
            given = _normal_icd10(str(item["code"]))
            hits = self.by_icd10.get(given, [])
            if not hits and len(given) >= 8:
                hits = [
                    h
                    for h in self.by_icd10.get(given[:-1], [])
                    if self.catalog.conditions[h[0]].seventh_character
                ]
                if hits:
                    episode = given[-1]
            for condition, side, site in hits:
                found.add(condition)
                sides.add(side)
                if site:
                    sites.add(site)
        if stride and stride in self.condition_types:
            return (
                stride,
                sides if found <= {stride} else set(),
                sites if found <= {stride} else set(),
                episode,
            )
        if len(found) > 1:
            raise Keep(
                "ambiguous code",
                f"{_codes_text(code)} fits several Stride conditions ({', '.join(sorted(found))})",
            )
        if found:
            return found.pop(), sides, sites, episode
        by_snomed = {
            c
            for item in _codings(code)
            if item.get("system") == fm.SNOMED
            for c in self.by_snomed.get(str(item.get("code")), [])
        }
        if len(by_snomed) == 1:
            return by_snomed.pop(), set(), set(), ""
        if by_snomed:
            raise Keep(
                "ambiguous code",
                f"{_codes_text(code)} fits several Stride conditions ({', '.join(sorted(by_snomed))}); "
                "an ICD-10-CM code would tell them apart",
            )
        raise Keep("unknown code", f"no Stride condition for {_codes_text(code)}")

    def condition(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        patient = self.patient_of(r)
        code, icd_sides, icd_sites, icd_episode = self._condition_type(r)
        ctype = self.condition_types[code]
        core = self.catalog.conditions.get(code)
        side = _laterality(r.get("bodySite"))
        if side is None and len(icd_sides) == 1:
            side = next(iter(icd_sides))
        if side is None:
            raise Keep(
                "no side",
                f"{ctype.name} ({_codes_text(r.get('code'))}) without a side: Stride records a condition on "
                "one side (a side-specific ICD-10-CM code or a bodySite laterality qualifier)",
            )
        if icd_sides and side not in icd_sides:
            raise Reject(
                f"its ICD-10-CM code is for the {'/'.join(sorted(icd_sides))} side but bodySite says {side}"
            )
        site_code = _body_site_code(r.get("bodySite"))
        site = self.sites.get(site_code) if site_code else None
        if site is None and len(icd_sites) == 1:
            site = self.sites.get(next(iter(icd_sites)))
        episode = _extension_value(r, fm.EXT_EPISODE, "valueCode") or icd_episode
        if core is not None and core.seventh_character and not episode:
            raise Keep(
                "no episode",
                f"{ctype.name} needs the episode (the 7th character of its ICD-10-CM code: A, D or S)",
            )
        qualifiers = [e.get("valueCode") for e in _extensions(r, fm.EXT_QUALIFIER) if e.get("valueCode")]
        if not qualifiers and core is not None:
            extra = [
                _normal_icd10(str((e.get("valueCoding") or {}).get("code", "")))
                for e in _extensions(r, fm.EXT_ADDITIONAL_CODE)
            ]
            for qualifier in core.qualifiers:
                stem = qualifier.icd10.rstrip("-")
                if any(code_.startswith(stem) for code_ in extra):
                    qualifiers.append(qualifier.code)
        clinical = next(
            (
                c.get("code")
                for c in _codings(r.get("clinicalStatus"))
                if c.get("system") == fm.CONDITION_CLINICAL
            ),
            "active",
        )
        resolved = clinical in ("inactive", "remission", "resolved")
        body_sites = r.get("bodySite") if isinstance(r.get("bodySite"), list) else []
        site_note = (
            next((_extension_value(b, fm.EXT_SITE_NOTE, "valueString") for b in body_sites), None) or ""
        )
        notes = "\n\n".join(
            str(n.get("text")) for n in r.get("note", []) if isinstance(n, dict) and n.get("text")
        )
        values = {
            "patient": patient,
            "condition_type": ctype,
            "laterality": side,
            "site": site,
            "site_note": site_note,
            "episode": episode,
            "qualifiers": qualifiers,
            "onset_date": _date(r.get("onsetDateTime")) or _date((r.get("onsetPeriod") or {}).get("start")),
            "status": ConditionStatus.RESOLVED if resolved else ConditionStatus.ACTIVE,
            "resolved_on": _date(r.get("abatementDateTime")) if resolved else None,
            "severity_notes": notes,
        }
        existing = self.mapped(er, Condition) or self.own(
            lambda: Condition.objects.filter(patient=patient), fhir_id, patient
        )
        obj = existing or Condition()
        outcome = _save(obj, values)
        if existing is not None and er is None and outcome == "unchanged":
            outcome = "linked"
        given = [
            _normal_icd10(str(c.get("code")))
            for c in _codings(r.get("code"))
            if c.get("system") == fm.ICD10CM and c.get("code")
        ]
        if given and obj.icd10_code not in given:
            self.report.note(
                f"Condition/{fhir_id}: the file codes it {', '.join(given)}; Stride derives {obj.icd10_code} "
                "from its condition, side, site and episode, and keeps that."
            )
        known_systems = {fm.ICD10CM, fm.SNOMED}
        unknown_codings = [
            c
            for c in _codings(r.get("code"))
            if c.get("system") not in known_systems and fm.stride_name(c.get("system")) != fm.CS_CONDITION
        ]
        rest = _rest(
            r,
            ("clinicalStatus", "category", "subject", "onsetDateTime", "note", "bodySite"),
            code={"coding": unknown_codings} if unknown_codings else None,
            extension=_foreign_extensions(r),
            abatementDateTime=r.get("abatementDateTime") if not resolved else None,
            onsetPeriod=r.get("onsetPeriod") if values["onset_date"] is None else None,
        )
        return _Done(outcome, obj, patient.pk, rest)

    # ----------------------------------------------------------------- Procedure

    _QUANTITIES = {
        "dose-mg": "dose_mg",
        "volume-ml": "volume_ml",
        "concentration-pct": "concentration_pct",
        "platelet-count": "platelet_count",
        "baseline-platelet-count": "baseline_platelet_count",
        "aspirate-volume-ml": "aspirate_volume_ml",
        "tnc-per-ml": "tnc_per_ml",
    }

    def _injectates(self, r: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for extension in _extensions(r, fm.EXT_INJECTATE):
            parts = _parts(extension)
            values: dict[str, Any] = dict.fromkeys(_INJECTATE_FIELDS)
            values.update({"leukocytes": "", "activation": "", "notes": ""})
            values["kind"] = (parts.get("kind") or {}).get("valueCode") or ""
            drug = ((parts.get("drug") or {}).get("valueCoding") or {}).get("code")
            if drug:
                if drug not in self.drugs:
                    raise Reject(f"injectate drug {drug!r} is not in Stride's catalog")
                values["drug"] = self.drugs[drug]
            for name, field_name in self._QUANTITIES.items():
                if name in parts:
                    values[field_name] = _decimal((parts[name].get("valueQuantity") or {}).get("value"))
            for name in ("leukocytes", "activation"):
                values[name] = (parts.get(name) or {}).get("valueCode") or ""
            for name, field_name in (
                ("series-number", "series_number"),
                ("sites-injected", "sites_injected"),
            ):
                if name in parts:
                    values[field_name] = parts[name].get("valueInteger")
            values["notes"] = (parts.get("note") or {}).get("valueString") or ""
            found.append(values)
        return found

    def procedure(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        patient = self.patient_of(r)
        status = r.get("status")
        if status != "completed":
            raise Keep("not done", f"status {status!r}: Stride records procedures that were done")
        code = _stride_code(r.get("code"), fm.CS_PROCEDURE)
        if code not in self.procedure_types:
            numbers = {
                str(c.get("code"))
                for c in _codings(r.get("code"))
                if c.get("system") in fm.PROCEDURE_SYSTEMS and c.get("code")
            }
            fits = sorted({t for n in numbers for t in self.by_cpt.get(n, [])})
            if len(fits) > 1:
                raise Keep(
                    "ambiguous code",
                    f"{_codes_text(r.get('code'))} fits several Stride procedures ({', '.join(fits)})",
                )
            if not fits:
                raise Keep("unknown code", f"no Stride procedure for {_codes_text(r.get('code'))}")
            code = fits[0]
        ptype = self.procedure_types[code]
        reasons = [ref for ref in r.get("reasonReference", []) if isinstance(ref, dict)]
        condition = None
        why = "no reasonReference to a condition"
        for ref in reasons:
            condition, why = self.lookup(ref, Condition, "Condition")
            if condition is not None:
                break
        if condition is None:
            raise Keep("no condition", f"{ptype.name} without a Stride condition: {why}")
        if condition.patient_id != patient.pk:
            raise Reject("its reasonReference is a condition of another patient")
        side = _laterality(r.get("bodySite"))
        if side is None and condition.laterality != "bilateral":
            side = condition.laterality
        if side is None:
            raise Keep("no side", f"{ptype.name} on a bilateral condition without a bodySite laterality")
        performed = _date(r.get("performedDateTime")) or _date((r.get("performedPeriod") or {}).get("start"))
        if performed is None:
            raise Reject("Stride needs the day it was done (performedDateTime)")
        site_code = _body_site_code(r.get("bodySite"))
        notes = "\n\n".join(
            str(n.get("text")) for n in r.get("note", []) if isinstance(n, dict) and n.get("text")
        )
        values = {
            "patient": patient,
            "condition": condition,
            "performed_on": performed,
            "procedure_type": ptype,
            "site": self.sites.get(site_code) if site_code else None,
            "target_note": _extension_value(r, fm.EXT_TARGET_NOTE, "valueString") or "",
            "laterality": side,
            "image_guidance": _extension_value(r, fm.EXT_GUIDANCE, "valueCode") or ptype.default_guidance,
            "is_index": bool(_extension_value(r, fm.EXT_INDEX, "valueBoolean")),
            "candidacy": _extension_value(r, fm.EXT_CANDIDACY, "valueCode") or "",
            "notes": notes,
        }
        injectates = self._injectates(r)
        existing = self.mapped(er, Procedure) or self.own(
            lambda: Procedure.objects.filter(patient=patient), fhir_id, patient
        )
        obj = existing or Procedure()
        outcome = _save(obj, values)
        current = (
            []
            if outcome == "created"
            else [
                {name: getattr(i, name) for name in _INJECTATE_FIELDS} for i in obj.injectates.order_by("pk")
            ]
        )
        if current != injectates:
            if outcome != "created":
                obj.injectates.all().delete()
            for given in injectates:
                injectate = Injectate(procedure=obj, **given)
                injectate.full_clean(exclude=["procedure", "drug"])
                injectate.save()
            outcome = "updated" if outcome == "unchanged" else outcome
        if existing is not None and er is None and outcome == "unchanged":
            outcome = "linked"
        unknown = [
            c
            for c in _codings(r.get("code"))
            if c.get("system") not in fm.PROCEDURE_SYSTEMS
            and fm.stride_name(c.get("system")) != fm.CS_PROCEDURE
        ]
        rest = _rest(
            r,
            ("status", "subject", "performedDateTime", "reasonReference", "bodySite", "note", "usedCode"),
            code={"coding": unknown} if unknown else None,
            extension=_foreign_extensions(r),
            performedPeriod=r.get("performedPeriod") if "performedDateTime" in r else None,
        )
        return _Done(outcome, obj, patient.pk, rest)

    # ----------------------------------------------------------------- QuestionnaireResponse

    def _instrument(self, canonical: Any) -> tuple[str, str] | None:
        if not isinstance(canonical, str) or fm.QUESTIONNAIRE_PATH not in canonical:
            return None
        code, _, version = canonical.split(fm.QUESTIONNAIRE_PATH, 1)[1].partition("|")
        return (code, version) if code in self.library else None

    @staticmethod
    def _answer(item: core_instruments.Item, answers: list[Any]) -> Any:
        if not answers:
            return None
        answer = answers[0] if isinstance(answers[0], dict) else {}
        if "valueInteger" in answer:
            return answer["valueInteger"]
        if "valueDecimal" in answer and float(answer["valueDecimal"]).is_integer():
            return int(answer["valueDecimal"])
        coding = answer.get("valueCoding") or {}
        if coding.get("system") == fm.DATA_ABSENT_REASON and coding.get("code") == "not-applicable":
            return core_instruments.NA
        for option in item.options:
            if option.code and coding.get("code") == option.code:
                return option.value
        raise Reject(f"item {item.link_id}: an answer Stride cannot read ({sorted(answer)})")

    def questionnaire_response(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        from stride.outcomes.services import save_answers

        plan = self._response_plan(r, er, fhir_id, start=True)
        if isinstance(plan, _Done):
            return plan
        try:
            saved = save_answers(
                patient=plan.patient,
                follow_up=plan.follow_up,
                instrument=plan.code,
                version=plan.version,
                answers=plan.answers,
                source=plan.source,
                submit=plan.submit,
                collected_on=plan.collected,
                # As the Stride that wrote the file recorded them (its window, its wording).
                recorded_flags=plan.flags,
                context=plan.context,
            )
        except Invalid as error:
            raise Reject(error.message) from None
        response = saved.response
        self._remember_scores(saved)
        if saved.outcome == "already-completed" and plan.existing is None:
            return _Done("linked", response, plan.patient.pk, plan.rest)
        outcome = "created" if plan.existing is None else "updated"
        return _Done(outcome, response, plan.patient.pk, plan.rest)

    def _response_plan(
        self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str, *, start: bool
    ) -> _ResponsePlan | _Done:
        """What a QuestionnaireResponse becomes (raising Keep or Reject), nothing written but, with
        ``start``, the episode of its follow-up when none is there (without: :class:`_Alone`)."""
        from stride.outcomes.services import start_episode

        patient = self.patient_of(r)
        named = self._instrument(r.get("questionnaire"))
        if named is None:
            named_text = (
                f"questionnaire {r['questionnaire']!r}" if r.get("questionnaire") else "no questionnaire"
            )
            raise Keep("not a Stride instrument", f"{named_text}: not one of Stride's instruments")
        code, version = named
        definition = self.library[code]
        status = r.get("status")
        if status not in ("completed", "in-progress"):
            raise Keep("status", f"status {status!r}: Stride keeps responses in progress or completed")
        given = {}
        for item in r.get("item", []):
            if isinstance(item, dict):
                given[item.get("linkId")] = item.get("answer", [])
        known = {item.link_id for item in definition.items}
        stray = [str(link) for link in given if link not in known]
        if stray:
            raise Reject(f"item {stray[0]!r} is not an item of {code} (version {definition.version})")
        answers = [self._answer(item, given.get(item.link_id, [])) for item in definition.items]
        collected = _date(r.get("authored"))
        if collected is None:
            raise Reject("Stride needs the day the answers were given (authored)")
        follow_up = None
        link = _extensions(r, fm.EXT_FOLLOW_UP)
        if link:
            parts = _parts(link[0])
            condition, why = self.lookup(
                (parts.get("condition") or {}).get("valueReference"), Condition, "Condition"
            )
            if condition is None:
                raise Reject(f"its follow-up's condition {why}")
            if condition.patient_id != patient.pk:
                raise Reject("its follow-up is of another patient's condition")
            index_date = _date((parts.get("index-date") or {}).get("valueDate"))
            timepoint = (parts.get("timepoint") or {}).get("valueCode")
            if index_date is None or not timepoint:
                raise Reject("its follow-up extension needs index-date and timepoint")
            follow_ups = self._follow_ups.get((condition.pk, index_date))
            if follow_ups is None:
                episode = Episode.objects.filter(condition=condition, index_date=index_date).first()
                if episode is None and not start:
                    raise _Alone()
                if episode is None:  # not started by its index procedure: started here (not remembered
                    try:  # until the response is saved, as a rejection rolls it back)
                        episode = start_episode(condition, index_date)
                    except Invalid as error:
                        raise Reject(f"its follow-up cannot be started: {error.message}") from None
                    follow_ups = {f.timepoint: f for f in episode.follow_ups.all()}
                else:
                    follow_ups = {f.timepoint: f for f in episode.follow_ups.all()}
                    if len(self._follow_ups) > 5_000:
                        self._follow_ups.clear()
                    self._follow_ups[(condition.pk, index_date)] = follow_ups
            follow_up = follow_ups.get(timepoint)
            if follow_up is None:
                raise Reject(f"the follow-up from {index_date.isoformat()} has no time point {timepoint!r}")
        source_ref = self.target(r.get("source"))
        subject_ref = self.target(r.get("subject"))
        source = (
            QuestionnaireResponse.Source.PATIENT
            if source_ref is not None and source_ref == subject_ref
            else QuestionnaireResponse.Source.PAPER
        )
        stride_shaped = bool(_extensions(r, fm.EXT_CONTEXT) or _extensions(r, fm.EXT_FLAG) or link)
        flags = [e.get("valueCode") for e in _extensions(r, fm.EXT_FLAG) if e.get("valueCode")]
        context = _extension_value(r, fm.EXT_CONTEXT, "valueString") or ""
        submit = status == "completed"
        existing = self.mapped(er, QuestionnaireResponse) or self.own(
            lambda: QuestionnaireResponse.objects.filter(patient=patient), fhir_id, patient
        )
        rest = _rest(
            r,
            ("questionnaire", "status", "subject", "authored", "source", "item"),
            extension=_foreign_extensions(r),
        )
        if existing is not None:
            same = (
                existing.answers == answers
                and existing.status == status
                and existing.collected_on == collected
                and existing.instrument == code
            )
            if same:
                return _Done("linked" if er is None else "unchanged", existing, patient.pk, rest)
            if existing.status == QuestionnaireResponse.Status.COMPLETED:
                raise Reject("a completed response is never changed in Stride (its answers were scored)")
            if existing.follow_up_id is None:
                raise Reject("an unfinished response without a follow-up cannot be updated; enter it again")
        return _ResponsePlan(
            patient=patient,
            follow_up=follow_up,
            code=code,
            version=version,
            answers=answers,
            source=source,
            submit=submit,
            collected=collected,
            flags=flags if stride_shaped else None,
            context=context if stride_shaped else None,
            existing=existing,
            rest=rest,
        )

    # ----------------------------------------------------------------- Observation

    def observation(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        patient = self.patient_of(r)
        code = r.get("code")
        score_code = _stride_code(code, fm.CS_SCORE)
        scale = None
        if score_code and ":" in score_code:
            instrument, _, scale = score_code.partition(":")
        else:
            loinc = next(
                (
                    str(c.get("code"))
                    for c in _codings(code)
                    if c.get("system") == fm.LOINC and c.get("code") in self.by_loinc
                ),
                None,
            )
            instrument, scale = (self.by_loinc[loinc], "total") if loinc else ("", None)
        if scale is not None and instrument in self.library:
            return self._score(r, er, fhir_id, patient, instrument, scale)
        measurement = _stride_code(code, fm.CS_MEASUREMENT)
        if measurement:
            return self._measurement(r, er, fhir_id, patient, measurement)
        raise Keep("unknown code", f"no Stride score or measurement for {_codes_text(code)}")

    def _score(
        self,
        r: dict[str, Any],
        er: ExternalResource | None,
        fhir_id: str,
        patient: Patient,
        code: str,
        scale: str,
    ) -> _Done:
        from stride.outcomes.services import save_answers

        definition = self.library[code]
        if scale not in definition.scales:
            raise Reject(f"{code} has no scale {scale!r}")
        value = (r.get("valueQuantity") or {}).get("value")
        if value is None and "valueInteger" in r:
            value = r["valueInteger"]
        rest = _rest(
            r,
            (
                "status",
                "category",
                "code",
                "subject",
                "effectiveDateTime",
                "derivedFrom",
                "valueQuantity",
                "valueInteger",
                "dataAbsentReason",
            ),
            extension=_foreign_extensions(r),
        )
        existing = self.mapped(er, Score)
        derived = [
            ref
            for ref in r.get("derivedFrom", [])
            if (self.target(ref) or ("",))[0] == "QuestionnaireResponse"
        ]
        if derived:
            score, why = self.score_of(derived[0], scale)
            if score is None and why is not None:
                if "was kept" in why:
                    raise Keep("no response", f"a {definition.short_name} score whose response {why}")
                raise Reject(f"derivedFrom {why}")
            if score is not None and score.response.patient_id != patient.pk:
                raise Reject("derivedFrom a response of another patient")
            if score is None:
                raise Reject(f"Stride has no {scale} score of that response (it was not scored)")
            if value is not None and score.value is not None and abs(float(value) - score.value) > 1e-6:
                self.report.note(
                    f"Observation/{fhir_id}: the file gives {value}, Stride scores the answers {score.value} "
                    f"({score.policy}); Stride's score is kept."
                )
            found = self.target(derived[0])
            if er is None and rest is None and found and fhir_id == fm.score_id(found[1], scale):
                # Stride's own score of that response: found again from its id, nothing to remember.
                return _Done("linked", score, patient.pk, None, remember=False)
            outcome = "unchanged" if existing is not None and existing.pk == score.pk else "linked"
            return _Done(outcome, score, patient.pk, rest)
        if existing is not None:
            return _Done("unchanged", existing, patient.pk, rest)
        own = self.own(lambda: Score.objects.filter(response__patient=patient), fhir_id, patient)
        if own is not None:
            return _Done("linked", own, patient.pk, rest)
        if definition.scoring != "single-value" or len(definition.items) != 1:
            raise Keep(
                "score without answers",
                f"a {definition.short_name} score without its QuestionnaireResponse: Stride stores answers "
                "and scores them",
            )
        if value is None or not float(value).is_integer():
            raise Reject(f"a {definition.short_name} score must be a whole number, not {value!r}")
        collected = _date(r.get("effectiveDateTime")) or _date((r.get("effectivePeriod") or {}).get("start"))
        if collected is None:
            raise Reject("Stride needs the day it was taken (effectiveDateTime)")
        try:
            saved = save_answers(
                patient=patient,
                follow_up=None,
                instrument=code,
                version=definition.version,
                answers=[int(float(value))],
                source=QuestionnaireResponse.Source.PAPER,
                submit=True,
                collected_on=collected,
                recorded_flags=["imported"],
                context="",
            )
        except Invalid as error:
            raise Reject(error.message) from None
        score = next(s for s in saved.scores if s.scale == scale)
        return _Done("created", score, patient.pk, rest)

    def _measurement(
        self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str, patient: Patient, code: str
    ) -> _Done:
        from stride.imaging.services import add_measurement

        rest = _rest(
            r,
            (
                "status",
                "category",
                "code",
                "subject",
                "effectiveDateTime",
                "valueQuantity",
                "valueInteger",
                "note",
                "bodySite",
                "method",
                "derivedFrom",
            ),
            extension=_foreign_extensions(r),
        )
        existing = self.mapped(er, Measurement) or self.own(
            lambda: Measurement.objects.filter(image__patient=patient), fhir_id, patient
        )
        if existing is not None:
            return _Done("unchanged" if er is not None else "linked", existing, patient.pk, rest)
        digests = [
            (ref.get("identifier") or {}).get("value")
            for ref in r.get("derivedFrom", [])
            if isinstance(ref, dict) and (ref.get("identifier") or {}).get("system") == fm.IMAGE_SYSTEM
        ]
        image = Image.objects.filter(patient=patient, sha256__in=[d for d in digests if d]).first()
        if image is None:
            raise Keep(
                "no image",
                "a measurement whose image is not in Stride "
                "(measurements are imported onto an uploaded image)",
            )
        points_text = _extension_value(r, fm.EXT_POINTS, "valueString")
        try:
            points = json.loads(points_text) if points_text else []
        except ValueError:
            raise Reject("its measurement-points extension is not JSON") from None
        qualifiers = {}
        for extension in _extensions(r, fm.EXT_QUALIFIER_VALUE):
            parts = _parts(extension)
            qualifiers[(parts.get("qualifier") or {}).get("valueCode")] = (parts.get("value") or {}).get(
                "valueCode"
            )
        notes = [
            str(n.get("text"))
            for n in r.get("note", [])
            if isinstance(n, dict) and n.get("text") and n.get("text") != fm.UNCALIBRATED_NOTE
        ]
        site = _body_site_code(r.get("bodySite"))
        data = {
            "type": code,
            "tool": _stride_code(r.get("method"), fm.CS_TOOL) or "",
            "points": points,
            "frame": _extension_value(r, fm.EXT_FRAME, "valueInteger") or 0,
            "qualifiers": qualifiers,
            "site": site if site in self.sites else "",
            "note": "\n".join(notes),
            "value": r.get("valueInteger"),
        }
        try:
            measurement = add_measurement(image, data, user=None)
        except Invalid as error:
            raise Reject(error.message) from None
        return _Done("created", measurement, patient.pk, rest)

    # ----------------------------------------------------------------- Consent

    def consent(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        patient = self.patient_of(r, "patient")
        scopes = {c.get("code") for c in _codings(r.get("scope")) if c.get("system") == fm.CONSENT_SCOPE}
        if scopes and "research" not in scopes:
            raise Keep(
                "not a registry consent", f"a consent of scope {', '.join(sorted(scopes))}, not research"
            )
        status = r.get("status")
        if status not in ("active", "inactive"):
            raise Keep(
                "status", f"status {status!r}: Stride keeps consents given (active) or withdrawn (inactive)"
            )
        period = (r.get("provision") or {}).get("period") or {}
        consented = _date(r.get("dateTime")) or _date(period.get("start"))
        if consented is None:
            raise Reject("Stride needs the day consent was given (dateTime)")
        withdrawn = None
        if status == "inactive":
            withdrawn = _date(period.get("end"))
            if withdrawn is None:
                raise Reject("an inactive consent needs its withdrawal day (provision.period.end)")
        version = "imported"
        for policy in r.get("policy", []):
            uri = policy.get("uri") if isinstance(policy, dict) else None
            if isinstance(uri, str) and fm.CONSENT_FORM_PATH in uri:
                version = unquote(uri.rsplit(fm.CONSENT_FORM_PATH, 1)[1])[:40] or version
                break
        values = {
            "patient": patient,
            "version": version,
            "consented_on": consented,
            "withdrawn_on": withdrawn,
        }
        existing = self.mapped(er, Consent) or self.own(
            lambda: Consent.objects.filter(patient=patient), fhir_id, patient
        )
        if existing is None:
            existing = Consent.objects.filter(
                patient=patient, version=version, consented_on=consented
            ).first()
            if existing is not None and er is None:
                outcome = _save(existing, values)
                return _Done("linked" if outcome == "unchanged" else outcome, existing, patient.pk, None)
        obj = existing or Consent()
        outcome = _save(obj, values)
        if existing is not None and er is None and outcome == "unchanged":
            outcome = "linked"
        rest = _rest(
            r,
            ("status", "scope", "category", "patient", "dateTime", "organization", "policy", "provision"),
            extension=_foreign_extensions(r),
        )
        return _Done(outcome, obj, patient.pk, rest)

    # ----------------------------------------------------------------- CarePlan

    def care_plan(self, r: dict[str, Any], er: ExternalResource | None, fhir_id: str) -> _Done:
        patient = self.patient_of(r)
        own = self.own(lambda: CarePlan.objects.filter(condition__patient=patient), fhir_id, patient)
        if own is not None:
            return _Done("linked", own, patient.pk, None)
        raise Keep(
            "not from a Stride protocol",
            "care plans are started in Stride from its protocols; an imported plan is kept as it is",
        )

    # ----------------------------------------------------------------- one resource

    def handle(self, entry: fhir_files.Entry, problem: str | None) -> None:
        """Import one resource; ``problem`` is what checking it found (see :mod:`fhir_checks`)."""
        resource = entry.resource
        resource_type = str(resource.get("resourceType")) if resource is not None else ""
        if self.progress is not None:
            self.progress(resource_type, 1)
        if entry.error or resource is None:
            self.report.reject(Rejected(entry.where, "", "", entry.error or "unreadable"))
            return
        if resource_type not in TAKEN:
            self.report.skipped[resource_type] += 1
            return
        fhir_id = fhir_files.resource_id(resource, entry.full_url) or ""
        digest = fm.content_hash(resource)
        if not fhir_id:
            fhir_id = f"sha256-{digest[:57]}"
        if not fm.FHIR_ID.match(fhir_id):
            self.report.reject(Rejected(entry.where, resource_type, fhir_id[:64], "its id is not a FHIR id"))
            return
        if problem is not None:
            self.report.reject(Rejected(entry.where, resource_type, fhir_id, problem))
            return
        er = self.external(resource_type, fhir_id)
        if er is not None and er.content_hash == digest and self._still_there(er):
            self.report.count(resource_type, "unchanged")
            return
        self._known.pop((resource_type, fhir_id), None)  # read again after this, whatever happens
        handler = getattr(self, _HANDLERS[resource_type])
        mark = self.audit.mark()
        self._staged_scores = None
        key = (resource_type, fhir_id)
        staged = self._new_externals.get(key)
        # A savepoint for what may write; none for what only reads (on PostgreSQL two round trips less).
        guard = nullcontext() if self._reads_only(resource_type, resource, er) else transaction.atomic()
        try:
            try:
                with guard:
                    if resource_type == "Organization":
                        done = handler(resource, er)
                    else:
                        done = handler(resource, er, fhir_id)
                    if done.remember:
                        self._map(er, resource_type, fhir_id, digest, done)
            except BaseException:
                self.audit.discard(mark)  # rolled back with the savepoint: never happened
                if staged is None:
                    self._new_externals.pop(key, None)
                raise
        except Keep as keep:
            self._keep(entry, er, resource_type, fhir_id, digest, keep)
            return
        except Reject as error:
            self.report.reject(Rejected(entry.where, resource_type, fhir_id, str(error)))
            return
        except (ValidationError, Invalid) as error:
            self.report.reject(Rejected(entry.where, resource_type, fhir_id, _why(error)))
            return
        except DatabaseError as error:
            self.report.reject(
                Rejected(entry.where, resource_type, fhir_id, f"the database refused it: {error}")
            )
            return
        except Exception as error:  # one resource Stride cannot make sense of never stops the rest
            reason = f"Stride could not read it ({type(error).__name__}: {error})"
            self.report.reject(Rejected(entry.where, resource_type, fhir_id, reason))
            return
        self._remember((resource_type, fhir_id), done.record)
        if self._staged_scores is not None:
            if len(self._scores) > 20_000:
                self._scores.clear()
            self._scores[self._staged_scores[0]] = self._staged_scores[1]
        if resource_type == "Patient" and done.outcome == "created":
            self._fresh.add(done.record.pk)
        self.report.count(resource_type, done.outcome)

    def _reads_only(self, resource_type: str, resource: dict[str, Any], er: ExternalResource | None) -> bool:
        """Whether importing this resource writes nothing to the database: a new score Observation of a
        response this run scored (it is linked to that score; a refusal is kept outside)."""
        if resource_type != "Observation" or er is not None:
            return False
        code = resource.get("code")
        score = _stride_code(code, fm.CS_SCORE)
        if not (score and ":" in score) and not any(
            c.get("system") == fm.LOINC and c.get("code") in self.by_loinc for c in _codings(code)
        ):
            return False  # a measurement (written) or something kept
        derived = [ref for ref in resource.get("derivedFrom", []) if isinstance(ref, dict)]
        found = self.target(derived[0]) if derived else None
        if found is None or found[0] != "QuestionnaireResponse":
            return False
        pk = self._pks.get(found)
        return pk is not None and pk in self._scores

    @staticmethod
    def _still_there(er: ExternalResource) -> bool:
        if er.status == ExternalResource.Status.KEPT:
            return True
        model = er.content_type.model_class() if er.content_type is not None else None
        return model is not None and model._default_manager.filter(pk=er.object_id).exists()

    def _map(
        self, er: ExternalResource | None, resource_type: str, fhir_id: str, digest: str, done: _Done
    ) -> None:
        er = er or ExternalResource(source=self.source, resource_type=resource_type, fhir_id=fhir_id)
        er.export_id = fm.export_id(self.source, resource_type, fhir_id)
        er.status = ExternalResource.Status.MAPPED
        er.content_type = self.content_type(type(done.record))
        er.object_id = done.record.pk
        er.patient_id = done.patient_id
        er.content_hash = digest
        er.payload = done.payload
        er.reason = ""
        if er.pk is None:  # written with the others at the end of the run (see _write_externals)
            self._new_externals[(resource_type, fhir_id)] = er
        else:
            er.save()
        self._known[(resource_type, fhir_id)] = er

    def _keep(
        self,
        entry: fhir_files.Entry,
        er: ExternalResource | None,
        resource_type: str,
        fhir_id: str,
        digest: str,
        keep: Keep,
    ) -> None:
        resource = entry.resource or {}
        if er is not None and er.status == ExternalResource.Status.MAPPED:
            self.report.reject(
                Rejected(
                    entry.where,
                    resource_type,
                    fhir_id,
                    f"it was imported before as a record and now cannot be one ({keep.reason}); "
                    "the record is left as it was",
                )
            )
            return
        patient_id = None
        if resource_type != "Organization":
            element = "patient" if resource_type == "Consent" else "subject"
            patient, why = self.lookup(resource.get(element), Patient, "Patient")
            if patient is None:
                self.report.reject(
                    Rejected(entry.where, resource_type, fhir_id, f"{keep.reason}; and its {element} {why}")
                )
                return
            patient_id = patient.pk
        payload = _rewrite_references(resource, self.urls, self.source)
        payload["id"] = fm.export_id(self.source, resource_type, fhir_id)
        with transaction.atomic():
            er = er or ExternalResource(source=self.source, resource_type=resource_type, fhir_id=fhir_id)
            er.export_id = payload["id"]
            er.status = ExternalResource.Status.KEPT
            er.content_type, er.object_id = None, None
            er.patient_id = patient_id
            er.content_hash = digest
            er.payload = payload
            er.reason = keep.reason[:300]
            er.save()
        self._known[(resource_type, fhir_id)] = er
        self._remember((resource_type, fhir_id), None)
        self.report.keep(resource_type, keep.category, keep.reason)

    # ----------------------------------------------------------------- files

    @staticmethod
    def entries(
        sources: list[fhir_files.Source],
    ) -> Iterator[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]:
        """Every resource to read, phase by phase, with the fullUrls of the Bundle it is in."""
        for phase in PHASES:
            for source in sources:
                if source.kind == "bundle" and source.types.get(phase):
                    for entry in fhir_files.read(source, {phase}):
                        yield entry, source.urls
                elif source.kind in ("ndjson", "resource") and source.resource_type == phase:
                    for entry in fhir_files.read(source):
                        yield entry, {}

    def run(self, sources: list[fhir_files.Source]) -> None:
        for source in sources:
            self.report.files.append(str(source.path))
            if source.kind == "other":
                self.report.skipped_files.append(f"{source.path.name}: {source.note}")
            elif source.kind == "bundle":
                for resource_type, n in source.types.items():
                    if resource_type not in TAKEN:
                        self.report.skipped[resource_type] += n
                        if self.progress is not None:
                            self.progress(resource_type, n)
                for line, index, reason in source.problems:
                    where = f"{source.path.name}:{line}" + (
                        f" (entry {index + 1})" if index is not None else ""
                    )
                    self.report.reject(Rejected(where, "", "", reason))
            elif source.resource_type not in TAKEN:
                self.report.skipped[source.resource_type or "(unknown)"] += source.lines or 1
                if self.progress is not None:
                    self.progress(source.resource_type or "(unknown)", source.lines or 1)
        with (
            fhir_checks.Checker(self.workers) as checker,
            audit_log.batched() as self.audit,
            _batches(before_commit=self._write_pending) as tick,
        ):
            # Each run is checked (in a worker) while the one before it is written.
            waiting: tuple[list[Any], Future[list[str | None]]] | None = None
            for run in self.runs(sources):
                checking = (run, checker.submit([_to_check(entry) for entry, _ in run]))
                if waiting is not None:
                    self._handle_all(*waiting, tick)
                    self._count_for_statistics(waiting[0])
                waiting = checking
            if waiting is not None:
                self._handle_all(*waiting, tick)

    def _count_for_statistics(self, run: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]) -> None:
        """Refresh the database's statistics as each type's records pile up (see refresh_statistics)."""
        for entry, _urls in run:
            kind = str((entry.resource or {}).get("resourceType"))
            self._read[kind] += 1
            if self._read[kind] >= self._next_analyze.get(kind, FIRST_ANALYZE):
                self._write_pending()  # the bookkeeping rows too: they are what most lookups read
                refresh_statistics()
                self._next_analyze[kind] = 2 * self._read[kind]

    def runs(
        self, sources: list[fhir_files.Source]
    ) -> Iterator[list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]]]:
        """The resources to read, PREFETCH at a time."""
        run: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]] = []
        for item in self.entries(sources):
            run.append(item)
            if len(run) == PREFETCH:
                yield run
                run = []
        if run:
            yield run

    def _handle_all(
        self,
        run: list[tuple[fhir_files.Entry, dict[str, tuple[str, str]]]],
        checked: Future[list[str | None]],
        tick: Callable[[], None],
    ) -> None:
        self.prefetch(run)
        group: list[_Together] = []
        for (entry, urls), problem in zip(run, checked.result(), strict=True):
            self.urls = urls
            together = self.together(entry, urls, problem)
            if together is not None:
                group.append(together)
                continue
            if group:
                self.write_together(group, tick)
                group = []
            self.urls = urls
            self.handle(entry, problem)
            tick()
        if group:
            self.write_together(group, tick)
        self._write_externals()  # before the next run's prefetch reads them
        self.urls, self._known = {}, {}

    def together(
        self, entry: fhir_files.Entry, urls: dict[str, tuple[str, str]], problem: str | None
    ) -> _Together | None:
        """A new completed QuestionnaireResponse of a follow-up, checked, to be written with others;
        ``None`` for anything else (imported on its own by :meth:`handle`, which reports it)."""
        resource = entry.resource
        if entry.error or problem or resource is None:
            return None
        if resource.get("resourceType") != "QuestionnaireResponse":
            return None
        fhir_id = fhir_files.resource_id(resource, entry.full_url) or ""
        if not fm.FHIR_ID.match(fhir_id) or self.external("QuestionnaireResponse", fhir_id) is not None:
            return None
        try:
            plan = self._response_plan(resource, None, fhir_id, start=False)
        except Exception:  # Keep, Reject, _Alone…: handle() says what becomes of it
            return None
        if isinstance(plan, _Done) or not plan.together:
            return None
        return _Together(entry, urls, fhir_id, fm.content_hash(resource), plan)

    def write_together(self, group: list[_Together], tick: Callable[[], None]) -> None:
        """Write new completed responses with :func:`save_completed_answers`, in one savepoint: the
        same records, scores, follow-up states and audit entries as one by one, in a handful of
        queries. If that fails, each is imported on its own instead (and rejected on its own)."""
        from stride.outcomes.services import AnswerSet, save_completed_answers

        mark = self.audit.mark()
        keys = [("QuestionnaireResponse", t.fhir_id) for t in group]
        try:
            with transaction.atomic():
                saved = save_completed_answers(
                    [
                        AnswerSet(
                            patient=t.plan.patient,
                            follow_up=t.plan.follow_up,
                            instrument=t.plan.code,
                            version=t.plan.version,
                            answers=t.plan.answers,
                            source=t.plan.source,
                            collected_on=t.plan.collected,
                            recorded_flags=t.plan.flags,
                            context=t.plan.context,
                        )
                        for t in group
                    ]
                )
                done = [
                    _Done(
                        "linked" if s.outcome == "already-completed" else "created",
                        s.response,
                        t.plan.patient.pk,
                        t.plan.rest,
                    )
                    for t, s in zip(group, saved, strict=True)
                ]
                for t, d in zip(group, done, strict=True):
                    self._map(None, "QuestionnaireResponse", t.fhir_id, t.digest, d)
        except Exception:
            self.audit.discard(mark)
            for key in keys:
                self._new_externals.pop(key, None)
                self._known[key] = None
            for t in group:
                self.urls = t.urls
                self.handle(t.entry, None)
                tick()
            return
        for key, s, d in zip(keys, saved, done, strict=True):
            if self.progress is not None:
                self.progress("QuestionnaireResponse", 1)
            self._remember(key, d.record)
            if s.scores:
                if len(self._scores) > 20_000:
                    self._scores.clear()
                self._scores[s.response.pk] = {score.scale: score for score in s.scores}
            self.report.count("QuestionnaireResponse", d.outcome)
            tick()

    def _write_externals(self) -> None:
        """Insert the bookkeeping rows of the resources mapped since the last call, in one query.

        Called between resources (no savepoint open), so a row is written only for a resource that
        went in; the rows of a rejected resource were taken out by :meth:`handle`."""
        rows = [er for er in self._new_externals.values() if er.pk is None]
        self._new_externals = {}
        if rows:
            ExternalResource.objects.bulk_create(rows)

    def _write_pending(self) -> None:
        self._write_externals()
        self.audit.flush()


def _to_check(entry: fhir_files.Entry) -> dict[str, Any] | None:
    """What of an entry is checked against the FHIR models: a resource of a type Stride takes."""
    resource = entry.resource
    return resource if resource is not None and resource.get("resourceType") in TAKEN else None


_CACHED = (Patient, Condition, QuestionnaireResponse)
#: What a run's references are read ahead for (:meth:`_Importer._prefetch_referred`).
_REFERRED: dict[str, type[models.Model]] = {"Patient": Patient, "Condition": Condition}


def _with_related(model: type[models.Model]) -> models.QuerySet[Any]:
    """``model``'s records with what importing a resource that refers to one reads of it: a patient's
    clinic (its time zone, its name); a condition's patient and type (the follow-up an index treatment
    starts reads both)."""
    queryset = model._default_manager.all()
    if model is Patient:
        return queryset.select_related("clinic")
    if model is Condition:
        return queryset.select_related("patient__clinic", "condition_type")
    return queryset


def _references(value: Any) -> Iterator[dict[str, Any]]:
    """Every Reference in ``value`` (an element with a ``reference``), however deep, but not in a
    QuestionnaireResponse's answers or contained resources."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for key, item in value.items():
            if isinstance(item, (dict, list)) and key not in ("item", "contained"):
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


_INJECTATE_FIELDS = (
    "kind",
    "drug",
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
    "notes",
)

_HANDLERS = {
    "Organization": "organization",
    "Patient": "patient",
    "Condition": "condition",
    "Procedure": "procedure",
    "QuestionnaireResponse": "questionnaire_response",
    "Observation": "observation",
    "Consent": "consent",
    "CarePlan": "care_plan",
}


#: The tables an import writes, whose statistics it refreshes.
_ANALYZED: tuple[type[models.Model], ...] = (
    ExternalResource,
    AuditEntry,
    Clinic,
    Patient,
    Consent,
    Condition,
    Procedure,
    Injectate,
    Episode,
    FollowUp,
    QuestionnaireResponse,
    Score,
)


def refresh_statistics() -> None:
    """Let the database's query planner see the tables an import writes as they are now.

    The planner picks an index by what it believes of a table's size and contents. Into an empty
    registry, what it believes is "empty" until statistics are gathered: SQLite gathers none unless
    asked, and PostgreSQL's autovacuum may be off or behind. Then a lookup by (source, type, id) for
    a run of 200 responses used only the first two columns of the unique index and read every
    response imported so far (PostgreSQL, 100,000 patients: 77 ms a run at 98,000 responses and
    growing). On SQLite the sample is bounded (``analysis_limit``), so this costs milliseconds.
    """
    tables = [connection.ops.quote_name(model._meta.db_table) for model in _ANALYZED]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE " + ", ".join(tables))
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA analysis_limit = 1000")
            for table in tables:
                cursor.execute(f"ANALYZE {table}")


@contextmanager
def _batches(before_commit: Callable[[], None]) -> Iterator[Callable[[], None]]:
    """A transaction committed every BATCH resources (each resource is a savepoint within it);
    ``before_commit`` runs just before each commit (between resources: no savepoint is open)."""
    state = {"atomic": transaction.atomic(), "n": 0}
    state["atomic"].__enter__()

    def tick() -> None:
        state["n"] += 1
        if state["n"] % BATCH == 0:
            if state["n"] % (BATCH * 10) == 0:
                gc.collect()  # records and models hold cycles: free them as the run goes, not at its end
            before_commit()
            state["atomic"].__exit__(None, None, None)
            state["atomic"] = transaction.atomic()
            state["atomic"].__enter__()

    try:
        yield tick
    except BaseException as error:
        state["atomic"].__exit__(type(error), error, error.__traceback__)
        raise
    before_commit()
    state["atomic"].__exit__(None, None, None)


def import_paths(
    paths: Iterable[Path | str],
    *,
    progress: Progress | None = None,
    source: str = "",
    total: Callable[[int], Any] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import FHIR NDJSON files, Bundles, single resources and folders of them; see the module docstring.

    ``source`` names the system the files come from: resource ids are taken as unique within it (leave it
    empty for ids that are unique anyway, such as Stride's and Synthea's UUIDs). ``progress(type, n)`` is
    called as resources are read (``n`` of them); ``total(n)`` once, before, with how many there are.
    ``workers``: processes that check resources against the FHIR models while others are written
    (default: one when there is more than one core; 0 checks them here).
    Raises :class:`stride.interop.fhir_files.FileError` for a path that is
    not there; every other problem is in the report.
    """
    started = time.perf_counter()
    report = ImportReport()
    sources = fhir_files.plan(paths)
    if total is not None:
        total(sum(fhir_files.count(source) for source in sources))
    importer = _Importer(source, report, progress, workers)
    with frozen_heap():
        importer.run(sources)
    report.seconds = time.perf_counter() - started
    record(
        AuditEntry.Action.BULK,
        model="interop.externalresource",
        detail={"operation": "fhir import", "source": source, **report.as_dict()},
    )
    return report
