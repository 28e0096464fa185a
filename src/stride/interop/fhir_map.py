"""What FHIR export and import share: code systems, extensions, identifiers, ids and serialisation.

Stride's own code systems and extensions live under the installation's base
address (``STRIDE_BASE_URL``): ``<base>/fhir/CodeSystem/<name>`` and
``<base>/fhir/StructureDefinition/<name>``. Import recognises them by that
path whatever the base, so the files of another Stride installation read the
same way as this one's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings

from stride.interop.fhir_plans import CPT_SYSTEM, HCPCS_SYSTEM, UCUM, code_system_url, structure_url
from stride.interop.fhir_plans import validate as validate

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
CPT = CPT_SYSTEM
HCPCS = HCPCS_SYSTEM
PROCEDURE_SYSTEMS = (CPT_SYSTEM, HCPCS_SYSTEM)
UCUM_SYSTEM = UCUM

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
#: LOINC 59284-0 "Patient Consent", the category of the R4 Consent examples.
CONSENT_CATEGORY_LOINC = "59284-0"

#: mCODE's laterality qualifier (context: Condition.bodySite, Procedure.bodySite, Observation.bodySite).
LATERALITY_EXTENSION = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier"
#: SNOMED CT laterality qualifiers (domain-reference §1.2, verified): right, left, right and left.
LATERALITY_SNOMED = {"right": "24028007", "left": "7771000", "bilateral": "51440002"}
LATERALITY_FROM_SNOMED = {code: side for side, code in LATERALITY_SNOMED.items()}
LATERALITY_TEXT = {"right": "Right", "left": "Left", "bilateral": "Both sides"}

CLINIC_SYSTEM = "urn:stride:clinic"
RECORD_NUMBER_PREFIX = "urn:stride:record-number:"
IMAGE_SYSTEM = "urn:stride:image-sha256"

#: The resource types of a bulk export, in the order import reads them (what they refer to first).
EXPORT_TYPES = (
    "Organization",
    "Patient",
    "Consent",
    "Condition",
    "Procedure",
    "QuestionnaireResponse",
    "Observation",
    "CarePlan",
)

# Stride's code systems and extensions, by name (the last segment of their address).
CS_CONDITION = "condition-type"
CS_BODY_SITE = "body-site"
CS_PROCEDURE = "procedure-type"
CS_INJECTATE = "injectate-kind"
CS_DRUG = "drug"
CS_SCORE = "score"
CS_MEASUREMENT = "measurement"
CS_TOOL = "measurement-tool"

EXT_TIME_ZONE = "time-zone"
EXT_HEIGHT = "height"
EXT_WEIGHT = "weight"
EXT_ACTIVITY = "activity-level"
EXT_EPISODE = "episode"
EXT_QUALIFIER = "condition-qualifier"
EXT_ADDITIONAL_CODE = "additional-code"
EXT_SITE_NOTE = "site-note"
EXT_GUIDANCE = "image-guidance"
EXT_INDEX = "index-treatment"
EXT_CANDIDACY = "candidacy"
EXT_TARGET_NOTE = "target-note"
EXT_INJECTATE = "injectate"
EXT_CONTEXT = "response-context"
EXT_FLAG = "response-flag"
EXT_FOLLOW_UP = "follow-up"
EXT_POLICY = "scoring-policy"
EXT_SCORE_FLAG = "score-flag"
EXT_QUALIFIER_VALUE = "measurement-qualifier"
EXT_POINTS = "measurement-points"
EXT_FRAME = "measurement-frame"
EXT_CATALOG_VERSION = "catalog-version"

CONSENT_FORM_PATH = "/fhir/consent-form/"
QUESTIONNAIRE_PATH = "/fhir/Questionnaire/"

UNCALIBRATED_NOTE = "Not calibrated: the image had no pixel spacing, so the value is in pixels."

_STRIDE_NAME = re.compile(r"/fhir/(CodeSystem|StructureDefinition)/([A-Za-z0-9-]+)$")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def base_url() -> str:
    return str(settings.STRIDE_BASE_URL).rstrip("/")


def system(name: str) -> str:
    """The address of Stride's code system ``name``."""
    return code_system_url(base_url(), name)


def extension_url(name: str) -> str:
    """The address of Stride's extension ``name``."""
    return structure_url(base_url(), name)


def stride_name(url: str | None, kind: str = "CodeSystem") -> str | None:
    """The name of a Stride code system (or extension) from its address, whatever the base; else ``None``."""
    match = _STRIDE_NAME.search(url or "")
    return match.group(2) if match and match.group(1) == kind else None


def record_number_system(slug: str) -> str:
    return f"{RECORD_NUMBER_PREFIX}{slug}"


def questionnaire_url(instrument: str, version: str) -> str:
    return f"{base_url()}{QUESTIONNAIRE_PATH}{instrument}|{version}"


# --------------------------------------------------------------------------- ids


@cache
def _namespace(secret: str) -> uuid.UUID:
    digest = hmac.new(secret.encode(), b"stride fhir resource ids", hashlib.sha256).hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:stride:fhir-ids:{digest}")


def resource_id(label: str, pk: int) -> str:
    """The id a Stride record is exported under when it was not imported: a UUID5 of its model and key.

    The namespace is derived from the installation's ``SECRET_KEY``: stable for one installation,
    different between installations, and no database key can be read back from it.
    """
    return str(uuid.uuid5(_namespace(str(settings.SECRET_KEY)), f"{label}/{pk}"))


def export_id(source: str, resource_type: str, fhir_id: str) -> str:
    """The id an imported resource goes out under: its own, or for a named source (whose ids are
    unique only within it) a UUID5 of source, type and id, so two sources never clash in one export."""
    if not source:
        return fhir_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:stride:source:{source}:{resource_type}/{fhir_id}"))


def score_id(response_id: str, scale: str) -> str:
    """The id of the Observation of one scale of a QuestionnaireResponse: a UUID5 of the response's id.

    A score is computed from its response, so its id follows the response's, in every installation:
    an import recognises its own scores without remembering them.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:stride:score:{response_id}:{scale}"))


# --------------------------------------------------------------------------- serialisation


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(resource: dict[str, Any]) -> str:
    """One resource as one line: ``resourceType`` and ``id`` first, then every other key in sorted order.

    Sorting makes the text independent of the order a dict was built or stored in (PostgreSQL's
    ``jsonb`` reorders keys), so an export read back and written again is the same, byte for byte.
    """
    rest = {key: value for key, value in resource.items() if key not in ("resourceType", "id")}
    body = json.dumps(rest, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_plain)
    head = '{"resourceType":' + json.dumps(resource["resourceType"], ensure_ascii=False)
    if "id" in resource:
        head += ',"id":' + json.dumps(resource["id"], ensure_ascii=False)
    return head + ("," + body[1:] if body != "{}" else "}")


def content_hash(resource: dict[str, Any]) -> str:
    text = json.dumps(resource, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- small builders


def coding(system_url: str, code: str, display: str = "") -> dict[str, Any]:
    item = {"system": system_url, "code": code}
    if display:
        item["display"] = display
    return item


def stride_coding(name: str, code: str, display: str = "") -> dict[str, Any]:
    return coding(system(name), code, display)


def quantity(value: float | Decimal | int, unit: str, code: str | None = None) -> dict[str, Any]:
    """A UCUM quantity (``code`` defaults to ``unit``)."""
    number = float(value) if isinstance(value, Decimal) else value
    return {"value": number, "unit": unit, "system": UCUM, "code": code or unit}


def laterality_extension(side: str) -> dict[str, Any]:
    return {
        "url": LATERALITY_EXTENSION,
        "valueCodeableConcept": {
            "coding": [coding(SNOMED, LATERALITY_SNOMED[side])],
            "text": LATERALITY_TEXT[side],
        },
    }


def reference(resource_type: str, fhir_id: str, display: str = "") -> dict[str, Any]:
    item = {"reference": f"{resource_type}/{fhir_id}"}
    if display:
        item["display"] = display
    return item
