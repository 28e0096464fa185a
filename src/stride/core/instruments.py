"""The questionnaire library: reading the instrument files into frozen dataclasses.

Each instrument Stride ships is one versioned data file in
``stride/outcomes/instruments/<code>.toml``: its items (a stable link id and a
short label in Stride's own words, never the published wording), their answer
options, its scales with range, direction and MCID, the name of its scoring
rule with the named policies that rule allows, and the responder definitions
fixed in DOMAIN.md. This module reads and cross-checks those files; the
arithmetic lives in :mod:`stride.core.scoring`.

A file that breaks a rule is refused whole with :class:`CatalogError` naming
the file and the reason, so a typo never reaches a patient's score.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stride.core.errors import CatalogError, Invalid

INSTRUMENT_DIR = Path(__file__).resolve().parent.parent / "outcomes" / "instruments"

#: The "not applicable" answer, allowed only where an item's options include it.
NA = "NA"

#: Scoring rules Stride implements, each with the named policies it understands.
SCORING_RULES: Mapping[str, tuple[str, ...]] = {
    "single-value": ("single-answer",),
    "sum": ("complete", "prorate-2"),
    "faam": ("na-counts-as-completed", "na-counts-as-missing"),
    "faos": ("half-answered", "two-missing"),
    "moxfq": ("complete",),
    "ffi": ("total-over-all-items", "mean-of-subscales"),
}

#: Scoring rules whose scales are a percentage of the maximum (0–100).
PERCENT_RULES = ("faam", "faos", "moxfq", "ffi")

#: Responder rules and the parameters each one needs.
RESPONDER_RULES: Mapping[str, tuple[str, ...]] = {
    "change": ("points",),  # improvement (in the scale's direction) of at least `points`
    "percent": ("percent",),  # improvement of at least `percent` % of the baseline
    "change-or-percent": ("points", "percent"),  # either of the two
    "threshold": ("threshold",),  # the follow-up value alone reaches `threshold`
    "cutoff": ("cutoff",),  # a value at or beyond `cutoff` flags a problem; responders are clear of it
}

DIRECTIONS = ("higher-better", "higher-worse")

_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_LOINC = re.compile(r"^([0-9]{1,7}-[0-9])?$")
_LOINC_ANSWER = re.compile(r"^(LA[0-9]{1,7}-[0-9])?$")

Answer = int | str | None


@dataclass(frozen=True)
class AnswerOption:
    value: int | str  # an integer as coded on the form, or "NA"
    label: str
    code: str = ""  # a LOINC answer code, where one is verified


@dataclass(frozen=True)
class Item:
    link_id: str
    number: int  # 1-based position on the form
    label: str  # Stride's own short label; the official wording is loaded by the clinic
    option_set: str
    options: tuple[AnswerOption, ...]
    text: str = ""  # Stride's own question wording (only for Stride's own items)

    @property
    def values(self) -> frozenset[int]:
        return frozenset(o.value for o in self.options if isinstance(o.value, int))

    @property
    def allows_na(self) -> bool:
        return any(o.value == NA for o in self.options)

    @property
    def low(self) -> int:
        return min(self.values)

    @property
    def high(self) -> int:
        return max(self.values)

    def describe_answers(self) -> str:
        """The allowed answers in a few characters: ``0–4 or NA``, ``-100 to 100``."""
        values = sorted(self.values)
        if values == list(range(values[0], values[-1] + 1)):
            text = f"{values[0]} to {values[-1]}" if values[0] < 0 else f"{values[0]}–{values[-1]}"
        else:
            text = ", ".join(str(v) for v in values)
        return f"{text} or NA" if self.allows_na else text


@dataclass(frozen=True)
class Scale:
    code: str
    name: str
    items: tuple[str, ...]
    range: tuple[float, float]
    direction: str
    unit: str
    mcid: float | None = None
    mcid_note: str = ""
    min_answered: int | None = None  # FAAM's 90 % rule, as published per subscale
    subscales: tuple[str, ...] = ()  # a composite scale (FFI total) is built from these

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher-better"


@dataclass(frozen=True)
class ResponderDefinition:
    name: str
    rule: str
    description: str
    points: Mapping[str, float] = field(default_factory=dict)  # per scale; absent = not defined there
    percent: float | None = None
    threshold: float | None = None
    cutoff: float | None = None


@dataclass(frozen=True)
class Responder:
    default: str  # "" when the instrument has no responder definition
    definitions: Mapping[str, ResponderDefinition]
    note: str = ""


@dataclass(frozen=True)
class Instrument:
    code: str
    version: str
    name: str
    short_name: str
    licence: str
    citation: str
    licensed: bool
    loinc: str
    scoring: str
    policy: str
    policies: tuple[str, ...]
    policy_notes: Mapping[str, str]
    baseline: bool
    items: tuple[Item, ...]
    scales: Mapping[str, Scale]
    responder: Responder
    context: str = ""
    contexts: tuple[str, ...] = ()
    note: str = ""

    def scale(self, code: str) -> Scale:
        try:
            return self.scales[code]
        except KeyError:
            known = ", ".join(self.scales)
            raise Invalid(f"{self.code} has no scale {code!r} (its scales: {known}).", "scale") from None

    def item(self, link_id: str) -> Item:
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise Invalid(f"{self.code} has no item {link_id!r}.", "item")

    def scale_items(self, code: str) -> tuple[Item, ...]:
        wanted = set(self.scale(code).items)
        return tuple(item for item in self.items if item.link_id in wanted)

    def resolve_policy(self, policy: str | None) -> str:
        """The policy to score with: ``policy`` when this instrument allows it, else its default."""
        if policy is None or policy == "":
            return self.policy
        if policy not in self.policies:
            raise Invalid(
                f"{self.code} has no scoring policy {policy!r}; choose one of {', '.join(self.policies)}.",
                "policy",
            )
        return policy


# --------------------------------------------------------------------------- reading


def _fail(path: Path, reason: str) -> CatalogError:
    return CatalogError(f"{path.name}: {reason}")


def _text(data: Mapping[str, Any], key: str, path: Path, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(path, f"{key} must be a non-empty string.")
    return value


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, f"{what} must be a number, found {value!r}.")
    return float(value)


def _options(raw: Mapping[str, Any], path: Path) -> tuple[AnswerOption, ...]:
    code = raw.get("code", "")
    where = f"option set {code!r}"
    if "range" in raw:
        if "options" in raw:
            raise _fail(path, f"{where} has both range and options; give one.")
        bounds = raw["range"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
        ):
            raise _fail(path, f"{where}: range must be two whole numbers [low, high].")
        low, high = bounds
        if low >= high:
            raise _fail(path, f"{where}: range low {low} must be below high {high}.")
        labels = raw.get("labels", {})
        for key in labels:
            if not re.fullmatch(r"-?[0-9]+", key) or not low <= int(key) <= high:
                raise _fail(path, f"{where}: label for {key!r}, which is outside its range.")
        options = [AnswerOption(v, labels.get(str(v), str(v))) for v in range(low, high + 1)]
        if raw.get("na"):
            options.append(AnswerOption(NA, str(raw.get("na_label", "Not applicable"))))
        return tuple(options)
    entries = raw.get("options")
    if not isinstance(entries, list) or not entries:
        raise _fail(path, f"{where} has no options.")
    options = []
    seen: set[int | str] = set()
    for entry in entries:
        value = entry.get("value")
        if isinstance(value, bool) or not (isinstance(value, int) or value == NA):
            raise _fail(path, f"{where}: answer value {value!r} must be a whole number or {NA!r}.")
        if value in seen:
            raise _fail(path, f"{where}: answer value {value!r} appears twice.")
        seen.add(value)
        label = entry.get("label", "")
        if not isinstance(label, str) or not label.strip():
            raise _fail(path, f"{where}: answer value {value!r} has no label.")
        answer_code = entry.get("code", "")
        if not _LOINC_ANSWER.match(answer_code):
            raise _fail(path, f"{where}: {answer_code!r} is not a LOINC answer code.")
        options.append(AnswerOption(value, label, answer_code))
    if not any(isinstance(o.value, int) for o in options):
        raise _fail(path, f"{where} has no numeric answer.")
    return tuple(options)


def _items(data: Mapping[str, Any], code: str, path: Path) -> tuple[Item, ...]:
    option_sets: dict[str, tuple[AnswerOption, ...]] = {}
    for raw in data.get("option_set", []):
        set_code = raw.get("code", "")
        if not _CODE.match(set_code):
            raise _fail(path, f"option set code {set_code!r} must be lower-case words joined by hyphens.")
        if set_code in option_sets:
            raise _fail(path, f"option set {set_code!r} appears twice.")
        option_sets[set_code] = _options(raw, path)
    raw_items = data.get("item", [])
    if not isinstance(raw_items, list) or not raw_items:
        raise _fail(path, "the instrument has no items.")
    items: list[Item] = []
    seen: set[str] = set()
    used_sets: set[str] = set()
    for number, raw in enumerate(raw_items, start=1):
        link_id = raw.get("link_id", "")
        if not isinstance(link_id, str) or not _CODE.match(link_id) or not link_id.startswith(f"{code}-"):
            raise _fail(path, f"item {number}: link id {link_id!r} must start with {code + '-'!r}.")
        if link_id in seen:
            raise _fail(path, f"duplicate link id {link_id!r}.")
        seen.add(link_id)
        label = raw.get("label", "")
        if not isinstance(label, str) or not label.strip():
            raise _fail(path, f"item {link_id} has no label.")
        set_code = raw.get("options", "")
        if set_code not in option_sets:
            raise _fail(path, f"item {link_id} names unknown option set {set_code!r}.")
        used_sets.add(set_code)
        items.append(
            Item(link_id, number, label, set_code, option_sets[set_code], text=str(raw.get("text", "")))
        )
    unused = set(option_sets) - used_sets
    if unused:
        raise _fail(path, f"option set(s) {', '.join(sorted(unused))} used by no item.")
    return tuple(items)


def _scales(data: Mapping[str, Any], items: tuple[Item, ...], path: Path) -> dict[str, Scale]:
    link_ids = [item.link_id for item in items]
    scales: dict[str, Scale] = {}
    raw_scales = data.get("scale", [])
    if not isinstance(raw_scales, list) or not raw_scales:
        raise _fail(path, "the instrument has no scales.")
    for raw in raw_scales:
        code = raw.get("code", "")
        if not _CODE.match(code):
            raise _fail(path, f"scale code {code!r} must be lower-case words joined by hyphens.")
        if code in scales:
            raise _fail(path, f"scale {code!r} appears twice.")
        where = f"scale {code}"
        if not isinstance(raw.get("name"), str) or not raw["name"].strip():
            raise _fail(path, f"{where} has no name.")
        scale_items = raw.get("items")
        if scale_items == "all":
            scale_items = list(link_ids)
        if not isinstance(scale_items, list) or not scale_items:
            raise _fail(path, f"{where} uses no items.")
        for link_id in scale_items:
            if link_id not in link_ids:
                raise _fail(path, f"{where} names unknown item {link_id!r}.")
        if len(set(scale_items)) != len(scale_items):
            raise _fail(path, f"{where} names an item twice.")
        if [i for i in link_ids if i in scale_items] != scale_items:
            raise _fail(path, f"{where} lists its items out of form order.")
        bounds = raw.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise _fail(path, f"{where}: range must be [low, high].")
        low, high = (_number(b, f"{where} range", path) for b in bounds)
        if low >= high:
            raise _fail(path, f"{where}: range low {low:g} must be below high {high:g}.")
        direction = raw.get("direction")
        if direction not in DIRECTIONS:
            raise _fail(path, f"{where}: direction {direction!r} must be one of {', '.join(DIRECTIONS)}.")
        mcid = raw.get("mcid")
        if mcid is not None and _number(mcid, f"{where} mcid", path) <= 0:
            raise _fail(path, f"{where}: mcid must be positive.")
        min_answered = raw.get("min_answered")
        if min_answered is not None and (
            isinstance(min_answered, bool)
            or not isinstance(min_answered, int)
            or not 1 <= min_answered <= len(scale_items)
        ):
            raise _fail(path, f"{where}: min_answered must be a whole number from 1 to {len(scale_items)}.")
        scales[code] = Scale(
            code=code,
            name=raw["name"],
            items=tuple(scale_items),
            range=(low, high),
            direction=direction,
            unit=_text(raw, "unit", path),
            mcid=None if mcid is None else float(mcid),
            mcid_note=str(raw.get("mcid_note", "")),
            min_answered=min_answered,
            subscales=tuple(raw.get("subscales", ())),
        )
    for scale in scales.values():
        for sub in scale.subscales:
            if sub not in scales or sub == scale.code or scales[sub].subscales:
                raise _fail(path, f"scale {scale.code} names {sub!r}, which is not one of its subscales.")
        if scale.subscales:
            covered = {i for sub in scale.subscales for i in scales[sub].items}
            if covered != set(scale.items):
                raise _fail(path, f"scale {scale.code}: its subscales do not cover exactly its items.")
    unscored = [i for i in link_ids if not any(i in s.items for s in scales.values())]
    if unscored:
        raise _fail(path, f"item {unscored[0]} belongs to no scale.")
    return scales


def _check_rule(scoring: str, items: tuple[Item, ...], scales: Mapping[str, Scale], path: Path) -> None:
    """The structure each scoring rule needs, and the range it can produce."""
    by_id = {item.link_id: item for item in items}
    na_allowed = scoring in ("faam", "ffi")
    for item in items:
        if item.allows_na and not na_allowed:
            raise _fail(path, f"item {item.link_id} allows NA, which the {scoring} rule does not score.")
    if scoring == "single-value" and (len(items) != 1 or list(scales) != ["total"]):
        raise _fail(path, "the single-value rule needs exactly one item and one scale 'total'.")
    for scale in scales.values():
        members = [by_id[i] for i in scale.items]
        if scoring == "single-value" or scoring == "sum":
            expected = (float(sum(i.low for i in members)), float(sum(i.high for i in members)))
        else:
            if any(i.low != 0 for i in members):
                raise _fail(
                    path, f"scale {scale.code}: the {scoring} rule needs items whose answers start at 0."
                )
            expected = (0.0, 100.0)
        if scale.range != expected:
            raise _fail(
                path,
                f"scale {scale.code}: range [{scale.range[0]:g}, {scale.range[1]:g}] is not what the "
                f"{scoring} rule gives ([{expected[0]:g}, {expected[1]:g}]).",
            )
        if scoring == "faam" and scale.min_answered is None:
            raise _fail(path, f"scale {scale.code}: the faam rule needs min_answered (its 90 % rule).")
        if scoring != "faam" and scale.min_answered is not None:
            raise _fail(path, f"scale {scale.code}: min_answered is used only by the faam rule.")
        if scale.subscales and scoring != "ffi":
            raise _fail(path, f"scale {scale.code}: only the ffi rule builds a scale from subscales.")
    if scoring == "ffi" and sum(1 for s in scales.values() if s.subscales) != 1:
        raise _fail(path, "the ffi rule needs exactly one total scale built from subscales.")


def _responder(data: Any, scales: Mapping[str, Scale], path: Path) -> Responder:
    if not isinstance(data, dict):
        raise _fail(path, "the [responder] table is missing.")
    default = data.get("default", "")
    note = str(data.get("note", ""))
    definitions: dict[str, ResponderDefinition] = {}
    for name, raw in data.items():
        if name in ("default", "note"):
            continue
        where = f"responder definition {name!r}"
        if not isinstance(raw, dict):
            raise _fail(path, f"{where} must be a table.")
        rule = raw.get("rule")
        if rule not in RESPONDER_RULES:
            raise _fail(path, f"{where}: unknown rule {rule!r}.")
        for key in RESPONDER_RULES[rule]:
            if key not in raw:
                raise _fail(path, f"{where}: the {rule} rule needs {key}.")
        unknown = set(raw) - {"rule", "description", *RESPONDER_RULES[rule]}
        if unknown:
            raise _fail(path, f"{where}: {', '.join(sorted(unknown))} not used by the {rule} rule.")
        points: dict[str, float] = {}
        if "points" in raw:
            if isinstance(raw["points"], dict):
                for scale, value in raw["points"].items():
                    if scale not in scales:
                        raise _fail(path, f"{where} names unknown scale {scale!r}.")
                    points[scale] = _number(value, f"{where} points", path)
            else:
                value = _number(raw["points"], f"{where} points", path)
                points = {scale: value for scale in scales}
            if any(v <= 0 for v in points.values()):
                raise _fail(path, f"{where}: points must be positive.")
        numbers = {
            key: (_number(raw[key], f"{where} {key}", path) if key in raw else None)
            for key in ("percent", "threshold", "cutoff")
        }
        definitions[name] = ResponderDefinition(
            name=name,
            rule=rule,
            description=_text(raw, "description", path),
            points=points,
            **numbers,
        )
    if default and default not in definitions:
        raise _fail(path, f"responder default {default!r} is not one of its definitions.")
    if definitions and not default:
        raise _fail(path, "the responder definitions need a default.")
    if not definitions and not note:
        raise _fail(path, "an instrument without a responder definition must say why in responder.note.")
    return Responder(default=default, definitions=definitions, note=note)


def load_instrument(path: Path) -> Instrument:
    """Read and cross-check one instrument file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _fail(path, str(exc)) from None
    code = data.get("instrument", "")
    if not isinstance(code, str) or not _CODE.match(code):
        raise _fail(path, f"instrument code {code!r} must be lower-case words joined by hyphens.")
    if code != path.stem:
        raise _fail(path, f"instrument code {code!r} does not match the file name.")
    version = data.get("version")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9]+(\.[0-9]+)*", version):
        raise _fail(path, f'version must be a string such as "1", found {version!r}.')
    for key in ("licensed", "baseline"):
        if not isinstance(data.get(key), bool):
            raise _fail(path, f"{key} must be true or false.")
    loinc = data.get("loinc", "")
    if not isinstance(loinc, str) or not _LOINC.match(loinc):
        raise _fail(path, f"{loinc!r} is not a LOINC code.")
    scoring = data.get("scoring")
    if scoring not in SCORING_RULES:
        raise _fail(path, f"unknown scoring rule {scoring!r}.")
    policies = data.get("policies")
    if not isinstance(policies, list) or not policies or len(set(policies)) != len(policies):
        raise _fail(path, "policies must be a list of distinct policy names.")
    for name in policies:
        if name not in SCORING_RULES[scoring]:
            raise _fail(path, f"policy {name!r} is not one the {scoring} rule knows.")
    policy = data.get("policy")
    if policy not in policies:
        raise _fail(path, f"policy {policy!r} is not in policies.")
    policy_notes = data.get("policy_notes", {})
    for name in policies:
        if not isinstance(policy_notes.get(name), str) or not policy_notes[name].strip():
            raise _fail(path, f"policy {name!r} has no note in [policy_notes].")
    if set(policy_notes) - set(policies):
        raise _fail(path, "[policy_notes] describes a policy that is not in policies.")
    context = data.get("context", "")
    contexts = tuple(data.get("contexts", ()))
    if contexts and context not in contexts:
        raise _fail(path, f"context {context!r} is not one of its contexts.")

    items = _items(data, code, path)
    scales = _scales(data, items, path)
    _check_rule(scoring, items, scales, path)
    return Instrument(
        code=code,
        version=version,
        name=_text(data, "name", path),
        short_name=_text(data, "short_name", path),
        licence=_text(data, "licence", path),
        citation=_text(data, "citation", path),
        licensed=data["licensed"],
        loinc=loinc,
        scoring=scoring,
        policy=policy,
        policies=tuple(policies),
        policy_notes=dict(policy_notes),
        baseline=data["baseline"],
        items=items,
        scales=scales,
        responder=_responder(data.get("responder"), scales, path),
        context=context,
        contexts=contexts,
        note=str(data.get("note", "")),
    )


def load_library(directory: Path = INSTRUMENT_DIR) -> dict[str, Instrument]:
    """Every instrument file in ``directory``, by code (in file-name order)."""
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise CatalogError(f"{directory}: no instrument files.")
    return {path.stem: load_instrument(path) for path in paths}


@cache
def library() -> dict[str, Instrument]:
    """The instruments shipped with this version of Stride (read once per process)."""
    return load_library()


def instrument(code: str) -> Instrument:
    """The shipped instrument ``code``; :class:`Invalid` when there is none."""
    try:
        return library()[code]
    except KeyError:
        raise Invalid(f"Unknown instrument code {code!r}.", "instrument") from None
