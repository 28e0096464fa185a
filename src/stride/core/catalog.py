"""The clinical catalog: reading its data files and deriving codes from it.

The catalog files (``stride/care/catalog/*.toml``) are the single source of
the conditions, body sites, procedures, injectates and treatments Stride
knows. This module reads them into frozen dataclasses, checks them (unknown
references, duplicate codes, malformed ICD-10-CM codes) and answers the
questions the rest of Stride asks of them, above all: *which ICD-10-CM code
does this condition, on this side, at this site, have?*
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stride.core.errors import CatalogError, Invalid

CATALOG_DIR = Path(__file__).resolve().parent.parent / "care" / "catalog"

LATERALITIES = ("left", "right", "bilateral")
EPISODES = {"A": "initial encounter", "D": "subsequent encounter", "S": "sequela"}
PROCEDURE_CATEGORIES = ("injection", "surgery")
TREATMENT_CATEGORIES = ("conservative", "injection", "surgery")
GUIDANCE = ("ultrasound", "fluoroscopy", "none")
INJECTATE_KINDS = ("steroid", "local-anaesthetic", "prp", "platelet-lysate", "bmc", "dextrose", "alcohol")

_ICD10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?-?$")
_CPT = re.compile(r"^([0-9]{5}|[0-9]{4}[A-Z]|[A-Z][0-9]{4})$")
_SNOMED = re.compile(r"^([0-9]{6,18})?$")
_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class BodySite:
    code: str
    name: str
    snomed: str
    lateral: bool


@dataclass(frozen=True)
class Site:
    code: str
    name: str
    body_site: str


@dataclass(frozen=True)
class Qualifier:
    code: str
    name: str
    icd10: str


@dataclass(frozen=True)
class ConditionType:
    code: str
    name: str
    snomed: str
    body_site: str
    sites: tuple[str, ...]
    icd10: Mapping[str, str]
    icd10_by_site: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    seventh_character: bool = False
    excludes: tuple[str, ...] = ()
    qualifiers: tuple[Qualifier, ...] = ()

    @property
    def allows_bilateral(self) -> bool:
        return "bilateral" in self.icd10


@dataclass(frozen=True)
class ProcedureType:
    code: str
    name: str
    cpt: str
    category: str
    injectates: tuple[str, ...]
    guidance: str
    code_verified: bool = True


@dataclass(frozen=True)
class Named:
    """A catalog entry that is just a code and a name (with an optional group)."""

    code: str
    name: str
    group: str = ""


@dataclass(frozen=True)
class Catalog:
    versions: Mapping[str, int]
    body_sites: Mapping[str, BodySite]
    sites: Mapping[str, Site]
    conditions: Mapping[str, ConditionType]
    procedures: Mapping[str, ProcedureType]
    adverse_events: Mapping[str, Named]
    injectate_kinds: Mapping[str, Named]
    drugs: Mapping[str, Named]
    activations: Mapping[str, Named]
    treatments: Mapping[str, Named]

    def condition(self, code: str) -> ConditionType:
        try:
            return self.conditions[code]
        except KeyError:
            raise Invalid(f"Unknown condition code {code!r}.", "condition_type") from None

    def procedure(self, code: str) -> ProcedureType:
        try:
            return self.procedures[code]
        except KeyError:
            raise Invalid(f"Unknown procedure code {code!r}.", "procedure_type") from None


# --------------------------------------------------------------------------- reading


def _read(path: Path, expected: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    if data.get("catalog") != expected:
        raise CatalogError(f"{path.name}: expected catalog = {expected!r}, found {data.get('catalog')!r}.")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise CatalogError(f"{path.name}: version must be a positive whole number.")
    return data


def _entries(data: dict[str, Any], key: str, source: str) -> list[dict[str, Any]]:
    entries = data.get(key, [])
    seen: set[str] = set()
    for entry in entries:
        code = entry.get("code", "")
        if not _CODE.match(code):
            raise CatalogError(f"{source}: {key} code {code!r} must be lower-case words joined by hyphens.")
        if code in seen:
            raise CatalogError(f"{source}: {key} code {code!r} appears twice.")
        if not entry.get("name"):
            raise CatalogError(f"{source}: {key} {code!r} has no name.")
        seen.add(code)
    return list(entries)


def _check_icd10(code: str, where: str) -> str:
    if not _ICD10.match(code):
        raise CatalogError(f"{where}: {code!r} is not an ICD-10-CM code.")
    return code


def load_catalog(directory: Path = CATALOG_DIR) -> Catalog:
    """Read and cross-check every catalog file in ``directory``."""
    sites_data = _read(directory / "body_sites.toml", "body-sites")
    conditions_data = _read(directory / "conditions.toml", "conditions")
    procedures_data = _read(directory / "procedures.toml", "procedures")
    injectates_data = _read(directory / "injectates.toml", "injectates")
    treatments_data = _read(directory / "treatments.toml", "treatments")

    body_sites = {
        e["code"]: BodySite(e["code"], e["name"], e.get("snomed", ""), bool(e.get("lateral", True)))
        for e in _entries(sites_data, "body_site", "body_sites.toml")
    }
    for body_site in body_sites.values():
        if not _SNOMED.match(body_site.snomed):
            raise CatalogError(f"body_sites.toml: {body_site.code} has a malformed SNOMED CT id.")
    sites: dict[str, Site] = {}
    for e in _entries(sites_data, "site", "body_sites.toml"):
        if e["code"] in body_sites:
            raise CatalogError(f"body_sites.toml: site {e['code']!r} clashes with a body site code.")
        if e.get("body_site") not in body_sites:
            raise CatalogError(
                f"body_sites.toml: site {e['code']!r} names unknown body site {e.get('body_site')!r}."
            )
        sites[e["code"]] = Site(e["code"], e["name"], e["body_site"])

    conditions: dict[str, ConditionType] = {}
    for e in _entries(conditions_data, "condition", "conditions.toml"):
        conditions[e["code"]] = _condition(e, body_sites, sites)
    for condition in conditions.values():
        for other in condition.excludes:
            if other not in conditions:
                raise CatalogError(f"conditions.toml: {condition.code} excludes unknown condition {other!r}.")

    kinds = {
        e["code"]: Named(e["code"], e["name"]) for e in _entries(injectates_data, "kind", "injectates.toml")
    }
    if set(kinds) != set(INJECTATE_KINDS):
        raise CatalogError(f"injectates.toml: the kinds must be exactly {', '.join(INJECTATE_KINDS)}.")
    drugs: dict[str, Named] = {}
    for e in _entries(injectates_data, "drug", "injectates.toml"):
        if e.get("kind") not in kinds:
            raise CatalogError(f"injectates.toml: drug {e['code']!r} names unknown kind {e.get('kind')!r}.")
        drugs[e["code"]] = Named(e["code"], e["name"], e["kind"])
    activations = {
        e["code"]: Named(e["code"], e["name"])
        for e in _entries(injectates_data, "activation", "injectates.toml")
    }

    procedures: dict[str, ProcedureType] = {}
    for e in _entries(procedures_data, "procedure", "procedures.toml"):
        procedures[e["code"]] = _procedure(e, kinds)
    adverse_events = {
        e["code"]: Named(e["code"], e["name"])
        for e in _entries(procedures_data, "adverse_event", "procedures.toml")
    }

    treatments: dict[str, Named] = {}
    for e in _entries(treatments_data, "treatment", "treatments.toml"):
        if e.get("category") not in TREATMENT_CATEGORIES:
            raise CatalogError(f"treatments.toml: {e['code']} has unknown category {e.get('category')!r}.")
        treatments[e["code"]] = Named(e["code"], e["name"], e["category"])

    return Catalog(
        versions={
            "body-sites": sites_data["version"],
            "conditions": conditions_data["version"],
            "procedures": procedures_data["version"],
            "injectates": injectates_data["version"],
            "treatments": treatments_data["version"],
        },
        body_sites=body_sites,
        sites=sites,
        conditions=conditions,
        procedures=procedures,
        adverse_events=adverse_events,
        injectate_kinds=kinds,
        drugs=drugs,
        activations=activations,
        treatments=treatments,
    )


def _side_codes(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not {"left", "right"} <= set(raw):
        raise CatalogError(f"{where}: needs ICD-10-CM codes for both 'left' and 'right'.")
    unknown = set(raw) - set(LATERALITIES)
    if unknown:
        raise CatalogError(f"{where}: unknown side(s) {', '.join(sorted(unknown))}.")
    return {side: _check_icd10(code, where) for side, code in raw.items()}


def _condition(
    e: dict[str, Any], body_sites: Mapping[str, BodySite], sites: Mapping[str, Site]
) -> ConditionType:
    where = f"conditions.toml: {e['code']}"
    if e.get("body_site") not in body_sites:
        raise CatalogError(f"{where}: unknown body site {e.get('body_site')!r}.")
    if not _SNOMED.match(e.get("snomed", "")):
        raise CatalogError(f"{where}: malformed SNOMED CT id {e.get('snomed')!r}.")
    for site in e.get("sites", []):
        if site not in sites:
            raise CatalogError(f"{where}: unknown site {site!r}.")
    by_site = {
        site: _side_codes(codes, f"{where} site {site}") for site, codes in e.get("icd10_by_site", {}).items()
    }
    for site in by_site:
        if site not in e.get("sites", []):
            raise CatalogError(f"{where}: icd10_by_site names {site!r}, which is not one of its sites.")
    qualifiers = tuple(
        Qualifier(q["code"], q["name"], _check_icd10(q["icd10"], f"{where} qualifier {q['code']}"))
        for q in e.get("qualifiers", [])
    )
    return ConditionType(
        code=e["code"],
        name=e["name"],
        snomed=e.get("snomed", ""),
        body_site=e["body_site"],
        sites=tuple(e.get("sites", [])),
        icd10=_side_codes(e.get("icd10"), where),
        icd10_by_site=by_site,
        seventh_character=bool(e.get("seventh_character", False)),
        excludes=tuple(e.get("excludes", [])),
        qualifiers=qualifiers,
    )


def _procedure(e: dict[str, Any], kinds: Mapping[str, Named]) -> ProcedureType:
    where = f"procedures.toml: {e['code']}"
    if not _CPT.match(e.get("cpt", "")):
        raise CatalogError(f"{where}: {e.get('cpt')!r} is not a CPT or HCPCS code number.")
    if e.get("category") not in PROCEDURE_CATEGORIES:
        raise CatalogError(f"{where}: unknown category {e.get('category')!r}.")
    if e.get("guidance", "none") not in GUIDANCE:
        raise CatalogError(f"{where}: unknown image guidance {e.get('guidance')!r}.")
    for kind in e.get("injectates", []):
        if kind not in kinds:
            raise CatalogError(f"{where}: unknown injectate kind {kind!r}.")
    return ProcedureType(
        code=e["code"],
        name=e["name"],
        cpt=e["cpt"],
        category=e["category"],
        injectates=tuple(e.get("injectates", [])),
        guidance=e.get("guidance", "none"),
        code_verified=bool(e.get("code_verified", True)),
    )


@cache
def catalog() -> Catalog:
    """The catalog shipped with this version of Stride (read once per process)."""
    return load_catalog()


# --------------------------------------------------------------------------- codes


@dataclass(frozen=True)
class Coding:
    """The codes a condition carries, derived from the catalog."""

    icd10: str
    additional_icd10: tuple[str, ...]
    snomed: str


def resolve_condition_codes(
    condition: ConditionType,
    laterality: str,
    site: str = "",
    episode: str = "",
    qualifiers: Iterable[str] = (),
) -> Coding:
    """The ICD-10-CM (and SNOMED CT) codes of ``condition`` on one side.

    Raises :class:`Invalid` naming the input at fault when the combination
    has no code: a bilateral condition without a bilateral code, a site the
    condition does not occur at, a missing or unknown episode character.
    """
    if laterality not in LATERALITIES:
        raise Invalid(f"Laterality must be one of {', '.join(LATERALITIES)}.", "laterality")
    if site and site not in condition.sites:
        raise Invalid(f"{condition.name} is not recorded at this site.", "site")
    codes = condition.icd10_by_site.get(site, condition.icd10)
    if laterality not in codes:
        raise Invalid(
            f"ICD-10-CM has no bilateral code for {condition.name}: record one condition per side.",
            "laterality",
        )
    if condition.seventh_character or any(
        q.icd10.endswith("-") for q in condition.qualifiers if q.code in qualifiers
    ):
        if episode not in EPISODES:
            raise Invalid(
                f"{condition.name} needs the episode: initial encounter, subsequent encounter or sequela.",
                "episode",
            )
    elif episode:
        raise Invalid(f"{condition.name} takes no episode character.", "episode")
    primary = codes[laterality] + (episode if condition.seventh_character else "")
    known = {q.code: q for q in condition.qualifiers}
    additional = []
    for name in qualifiers:
        if name not in known:
            raise Invalid(f"{condition.name} has no finding {name!r}.", "qualifiers")
        code = known[name].icd10
        additional.append(code[:-1] + episode if code.endswith("-") else code)
    return Coding(icd10=primary, additional_icd10=tuple(additional), snomed=condition.snomed)


def icd10_index(cat: Catalog) -> dict[str, tuple[str, str]]:
    """Every base ICD-10-CM code in the catalog → (condition code, laterality)."""
    index: dict[str, tuple[str, str]] = {}
    for condition in cat.conditions.values():
        tables = [condition.icd10, *condition.icd10_by_site.values()]
        for table in tables:
            for side, code in table.items():
                index.setdefault(code, (condition.code, side))
    return index
