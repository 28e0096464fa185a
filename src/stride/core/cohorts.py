"""Cohort definitions: which index treatments an analysis looks at, as plain data.

A :class:`CohortSpec` says which episodes of follow-up belong to a cohort:
the condition (and its side and site), the index procedure and what was
injected, the protocol, the patient at the index date (age, sex, BMI,
activity), what was tried before, the clinic and when. Every criterion left
empty lets everything through; the values of one criterion are alternatives
("PRP or platelet lysate"), different criteria must all hold.

:func:`parse_spec` reads a spec from a form, a saved cohort or a command
line (a dict of lists and ``{"min": …, "max": …}`` ranges), checking every
code against the catalog; :meth:`CohortSpec.to_dict` gives the dict back for
saving, and :func:`describe` the sentence a report header shows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from stride.core import injectates
from stride.core.catalog import LATERALITIES, Catalog, catalog
from stride.core.errors import Invalid
from stride.core.protocols import protocols

SEXES = ("female", "male", "other", "unknown")
ACTIVITY_LEVELS = ("sedentary", "recreational", "competitive")
AGE_LIMITS = (0, 130)
BMI_LIMITS = (10.0, 80.0)


@dataclass(frozen=True)
class Range:
    """A closed interval; either end may be open (``None``)."""

    low: Any = None
    high: Any = None

    def __bool__(self) -> bool:
        return self.low is not None or self.high is not None

    def contains(self, value: Any) -> bool:
        if value is None:
            return not self
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def to_dict(self) -> dict[str, Any] | None:
        if not self:
            return None
        convert = (lambda v: v.isoformat()) if isinstance(self.low or self.high, dt.date) else (lambda v: v)
        return {
            "min": None if self.low is None else convert(self.low),
            "max": None if self.high is None else convert(self.high),
        }


@dataclass(frozen=True)
class CohortSpec:
    """Which index episodes belong to a cohort (empty criteria select everything)."""

    conditions: tuple[str, ...] = ()  # condition catalog codes
    lateralities: tuple[str, ...] = ()  # left / right / bilateral
    sites: tuple[str, ...] = ()  # site or body-site catalog codes (the condition's)
    procedure_types: tuple[str, ...] = ()  # the index procedure's catalog code
    injectate_kinds: tuple[str, ...] = ()  # an injectate of the index procedure of one of these kinds
    leukocytes: tuple[str, ...] = ()  # PRP detail: rich / poor (same injectate as the kind)
    activations: tuple[str, ...] = ()  # PRP detail: catalog activation codes
    drugs: tuple[str, ...] = ()  # steroid / anaesthetic detail: catalog drug codes
    protocols: tuple[str, ...] = ()  # protocol codes of the care plan the index procedure belongs to
    age: Range = Range()  # whole years at the index date
    sexes: tuple[str, ...] = ()
    bmi: Range = Range()  # kg/m² (the patient's current height and weight)
    activity_levels: tuple[str, ...] = ()
    prior_treatments: tuple[str, ...] = ()  # treatment-history codes tried before the index date
    clinics: tuple[str, ...] = ()  # clinic slugs
    index_dates: Range = Range()  # index date range (dates)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data (only criteria that are set); ``parse_spec`` reads it back."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Range):
                if value:
                    data[item.name] = value.to_dict()
            elif value:
                data[item.name] = list(value)
        return data

    @property
    def empty(self) -> bool:
        return not self.to_dict()


# --------------------------------------------------------------------------- parsing

_CODE_LISTS = (
    "conditions",
    "lateralities",
    "sites",
    "procedure_types",
    "injectate_kinds",
    "leukocytes",
    "activations",
    "drugs",
    "protocols",
    "sexes",
    "activity_levels",
    "prior_treatments",
    "clinics",
)
_RANGES = ("age", "bmi", "index_dates")
_LABELS = {
    "conditions": "condition",
    "lateralities": "side",
    "sites": "site",
    "procedure_types": "procedure",
    "injectate_kinds": "injectate kind",
    "leukocytes": "leukocyte content",
    "activations": "activation",
    "drugs": "drug",
    "protocols": "protocol",
    "sexes": "sex",
    "activity_levels": "activity level",
    "prior_treatments": "prior treatment",
    "clinics": "clinic",
}


def _codes(raw: Any, name: str) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Iterable) or isinstance(raw, Mapping):
        raise Invalid(f"Give the {_LABELS[name]} codes as a list.", name)
    codes: list[str] = []
    for value in raw:
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"{value!r} is not a {_LABELS[name]} code.", name)
        code = value.strip()
        if code not in codes:
            codes.append(code)
    return tuple(codes)


def _check_known(codes: tuple[str, ...], known: Iterable[str], name: str) -> None:
    known = set(known)
    unknown = [code for code in codes if code not in known]
    if unknown:
        listed = ", ".join(repr(code) for code in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise Invalid(f"Unknown {_LABELS[name]} code{plural} {listed}.", name)


def _number(value: Any, name: str, label: str, *, whole: bool) -> float | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Invalid(f"The {label} must be a number.", name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Invalid(f"The {label} must be a number, not {value!r}.", name) from None
    if whole:
        if number != int(number):
            raise Invalid(f"The {label} must be a whole number of years.", name)
        return int(number)
    return number


def _date(value: Any, name: str, label: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"The {label} must be a date (YYYY-MM-DD), not {value!r}.", name) from None


def _range(raw: Any, name: str) -> Range:
    if raw is None or raw == "":
        return Range()
    if isinstance(raw, Range):
        raw = {"min": raw.low, "max": raw.high}
    if isinstance(raw, list | tuple) and len(raw) == 2:
        raw = {"min": raw[0], "max": raw[1]}
    if not isinstance(raw, Mapping) or set(raw) - {"min", "max"}:
        raise Invalid(f"Give the {name.replace('_', ' ')} as {{'min': …, 'max': …}}.", name)
    if name == "index_dates":
        low = _date(raw.get("min"), name, "first index date")
        high = _date(raw.get("max"), name, "last index date")
    else:
        what = "age" if name == "age" else "BMI"
        low = _number(raw.get("min"), name, f"lowest {what}", whole=name == "age")
        high = _number(raw.get("max"), name, f"highest {what}", whole=name == "age")
        limits = AGE_LIMITS if name == "age" else BMI_LIMITS
        for value in (low, high):
            if value is not None and not limits[0] <= value <= limits[1]:
                raise Invalid(f"The {what} must lie between {limits[0]:g} and {limits[1]:g}.", name)
    if low is not None and high is not None and low > high:
        what = {"age": "age range", "bmi": "BMI range", "index_dates": "index date range"}[name]
        raise Invalid(f"The {what} is inverted: its minimum {low} is above its maximum {high}.", name)
    return Range(low, high)


def parse_spec(
    data: Mapping[str, Any],
    *,
    cat: Catalog | None = None,
    protocol_codes: Iterable[str] | None = None,
    clinic_slugs: Iterable[str] | None = None,
) -> CohortSpec:
    """Read and check a cohort definition; :class:`Invalid` names the criterion at fault.

    Codes are checked against the catalog; protocol codes against
    ``protocol_codes`` (the shipped protocols when not given) and clinic
    slugs against ``clinic_slugs`` when given (the caller knows the clinics).
    """
    if not isinstance(data, Mapping):
        raise Invalid("A cohort definition must be a mapping of criteria.", None)
    unknown = sorted(set(data) - set(_CODE_LISTS) - set(_RANGES))
    if unknown:
        raise Invalid(f"Unknown cohort criterion {', '.join(map(repr, unknown))}.", unknown[0])
    cat = cat or catalog()
    values: dict[str, Any] = {name: _codes(data.get(name), name) for name in _CODE_LISTS}
    values |= {name: _range(data.get(name), name) for name in _RANGES}
    if protocol_codes is None:
        protocol_codes = protocols()
    known: dict[str, Iterable[str] | None] = {
        "conditions": cat.conditions,
        "lateralities": LATERALITIES,
        "sites": [*cat.sites, *cat.body_sites],
        "procedure_types": cat.procedures,
        "injectate_kinds": cat.injectate_kinds,
        "leukocytes": injectates.LEUKOCYTES,
        "activations": cat.activations,
        "drugs": cat.drugs,
        "protocols": protocol_codes,
        "sexes": SEXES,
        "activity_levels": ACTIVITY_LEVELS,
        "prior_treatments": cat.treatments,
        "clinics": clinic_slugs,
    }
    for name, codes in known.items():
        if codes is not None:
            _check_known(values[name], codes, name)
    if (values["leukocytes"] or values["activations"]) and values["injectate_kinds"] not in ((), ("prp",)):
        raise Invalid(
            "Leukocyte content and activation describe PRP: choose PRP as the injectate.", "leukocytes"
        )
    return CohortSpec(**values)


# --------------------------------------------------------------------------- describing


def _names(codes: Iterable[str], names: Mapping[str, Any] | None = None) -> str:
    words = [getattr(names.get(code), "name", code) if names else code for code in codes]
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _span(r: Range, unit: str = "") -> str:
    def fmt(v: Any) -> str:
        return f"{v:%d %b %Y}" if isinstance(v, dt.date) else f"{v:g}{unit}"

    if r.low is not None and r.high is not None:
        return f"{fmt(r.low)}–{fmt(r.high)}"
    if r.low is not None:
        return f"{fmt(r.low)} or more" if not isinstance(r.low, dt.date) else f"from {fmt(r.low)}"
    return f"up to {fmt(r.high)}" if not isinstance(r.high, dt.date) else f"until {fmt(r.high)}"


def describe(spec: CohortSpec, *, cat: Catalog | None = None) -> str:
    """One sentence for a report header: "Index treatments of Morton's neuroma with PRP (leukocyte-poor)…"."""
    cat = cat or catalog()
    parts: list[str] = []
    what = "Index treatments"
    if spec.conditions:
        what += f" of {_names(spec.conditions, cat.conditions)}"
    if spec.lateralities:
        what += f" ({_names(spec.lateralities)} side)"
    if spec.sites:
        sites = {**cat.body_sites, **cat.sites}
        what += f" at {_names(spec.sites, sites)}"
    parts.append(what)
    if spec.procedure_types:
        parts.append(f"by {_names(spec.procedure_types, cat.procedures)}")
    if spec.injectate_kinds or spec.leukocytes or spec.activations or spec.drugs:
        injected = (
            _names(spec.injectate_kinds, cat.injectate_kinds) if spec.injectate_kinds else "an injectate"
        )
        details = []
        if spec.leukocytes:
            details.append(_names(f"leukocyte-{code}" for code in spec.leukocytes))
        if spec.activations:
            details.append("activated by " + _names(spec.activations, cat.activations))
        if spec.drugs:
            details.append(_names(spec.drugs, cat.drugs))
        parts.append(f"with {injected}" + (f" ({'; '.join(details)})" if details else ""))
    if spec.protocols:
        parts.append(f"under the protocol {_names(spec.protocols)}")
    people = []
    if spec.age:
        people.append(f"aged {_span(spec.age)}")
    if spec.bmi:
        people.append(f"BMI {_span(spec.bmi)}")
    if spec.activity_levels:
        people.append(f"{_names(spec.activity_levels)} activity")
    if people or spec.sexes:
        who = f"in {_names(spec.sexes)} patients" if spec.sexes else "in patients"
        parts.append(" ".join([who, ", ".join(people)]).strip() + ("," if spec.prior_treatments else ""))
    if spec.prior_treatments:
        parts.append(f"who had {_names(spec.prior_treatments, cat.treatments).lower()} before")
    if spec.clinics:
        parts.append(f"at {_names(spec.clinics)}")
    if spec.index_dates:
        parts.append(f"with index dates {_span(spec.index_dates)}")
    sentence = " ".join(parts)
    return sentence + "; patients who withdrew consent are never included."
