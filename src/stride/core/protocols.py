"""Protocols, the plans they give, and the treatment ladders.

A *protocol* is a care template: an index step (the anchor, day 0) and the
steps around it, each with an offset, an optional window and its defaults
(procedure type, site, image guidance, injectate values). Protocols Stride
ships are versioned data files in ``stride/care/protocols/<code>.toml``; a
clinic admin edits one as TOML text and saves a new version, so parsing
works from text and refuses a broken template whole, with
:class:`CatalogError` naming the source and the reason. The file format is
described in ``stride/care/protocols/README.md``.

A *plan* is a protocol laid on a patient's calendar: :func:`plan_dates`
turns an anchor date into a dated step list (months are calendar months,
clamped to the month end), :func:`validate_plan` checks it against the
patient (nothing before birth, no two separate procedures at one site on
one day), and :func:`check_reschedule` checks a clinician's move of one step.

A *ladder* is the usual order of treatment options for a condition
(``ladders.toml``, from domain-reference §6). :func:`ladder_status` states,
rung by rung, what a patient has tried with what response, and which
protocols apply there. It recommends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
import typing
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from stride.core import injectates as injectate_rules
from stride.core.catalog import GUIDANCE, Catalog, ProcedureType, catalog
from stride.core.errors import CatalogError, Invalid
from stride.core.schedule import add_months

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "care" / "protocols"
LADDERS_FILE = PROTOCOL_DIR / "ladders.toml"

STEP_KINDS = ("procedure", "orthotic", "therapy", "review", "imaging", "questionnaire", "advice")
#: Step kinds that may name the catalog treatment they amount to (``treatment = "orthotics"``).
TREATMENT_STEP_KINDS = ("orthotic", "therapy", "advice")
#: Responses to a treatment, best first; ``unknown`` counts only when nothing else was recorded.
RESPONSES = ("full", "partial", "none", "unknown")
TRIED_SOURCES = ("treatment", "procedure")

_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_UNITS = ("months", "weeks", "days")
_PROTOCOL_KEYS = {"protocol", "version", "name", "summary", "conditions", "anchor", "step"}
_STEP_REQUIRED = ("code", "name", "kind")
_STEP_KEYS = {
    *_STEP_REQUIRED,
    *("offset", "relative_to", "window", "optional", "session", "note"),
    *("site", "procedure", "guidance", "injectates", "treatment"),
}
#: Anchors from which a session's steps are checked to fall on one day: two years, one of them leap.
_SESSION_CHECK_FROM = dt.date(2027, 1, 1)
_SESSION_CHECK_DAYS = 731


# --------------------------------------------------------------------------- protocol data


@dataclass(frozen=True)
class Offset:
    """A signed distance in calendar months, weeks and days (months are applied first)."""

    months: int = 0
    weeks: int = 0
    days: int = 0

    @property
    def total_days(self) -> int:
        """The weeks and days part, in days."""
        return self.weeks * 7 + self.days

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.total_days == 0

    def add_to(self, day: dt.date) -> dt.date:
        return add_months(day, self.months) + dt.timedelta(days=self.total_days)

    def subtract_from(self, day: dt.date) -> dt.date:
        return add_months(day, -self.months) - dt.timedelta(days=self.total_days)

    def describe(self) -> str:
        """``+6 weeks``, ``−4 weeks``, ``+6 months``, ``day 0``."""
        parts = [
            f"{'−' if n < 0 else '+'}{abs(n)} {unit if abs(n) != 1 else unit[:-1]}"
            for n, unit in ((self.months, "months"), (self.weeks, "weeks"), (self.days, "days"))
            if n
        ]
        return " ".join(parts) or "day 0"


@dataclass(frozen=True)
class Window:
    """How far before and after its planned day a step may fall without counting as a deviation."""

    before: Offset = Offset()
    after: Offset = Offset()

    def around(self, day: dt.date) -> tuple[dt.date, dt.date]:
        return self.before.subtract_from(day), self.after.add_to(day)


@dataclass(frozen=True)
class InjectateDefault:
    """Default values of one injectate of a procedure step (fields measured on the day may be left out)."""

    kind: str
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    code: str
    name: str
    kind: str
    #: Distance from ``relative_to`` (zero for the anchor).
    offset: Offset = Offset()
    #: The step this one is timed from; ``None`` only for the anchor.
    relative_to: str | None = None
    window: Window = Window()
    optional: bool = False
    session: str | None = None
    note: str = ""
    site: str | None = None
    procedure: str | None = None
    guidance: str | None = None
    injectates: tuple[InjectateDefault, ...] = ()
    treatment: str | None = None


@dataclass(frozen=True)
class Protocol:
    code: str
    version: int
    name: str
    summary: str
    conditions: tuple[str, ...]
    anchor: str
    steps: tuple[Step, ...]
    #: Step codes in dependency order: every step after the step it is timed from.
    order: tuple[str, ...]
    source: str = ""

    def step(self, code: str) -> Step:
        for step in self.steps:
            if step.code == code:
                return step
        raise KeyError(code)

    @property
    def index_step(self) -> Step:
        return self.step(self.anchor)


@dataclass(frozen=True)
class PlannedStep:
    """One step of a patient's plan, with its day, its window and the protocol's defaults."""

    code: str
    name: str
    kind: str
    planned_on: dt.date
    window_start: dt.date
    window_end: dt.date
    optional: bool = False
    session: str | None = None
    procedure: str | None = None
    site: str | None = None
    guidance: str | None = None
    injectates: tuple[InjectateDefault, ...] = ()
    treatment: str | None = None
    note: str = ""
    #: The clinician moved this step (its window stays where the protocol put it).
    moved: bool = False

    def in_window(self, day: dt.date) -> bool:
        return self.window_start <= day <= self.window_end


class Reschedulable(typing.Protocol):
    """What :func:`check_reschedule` needs of a planned step (a model row will do)."""

    name: str
    window_start: dt.date
    window_end: dt.date


# --------------------------------------------------------------------------- parsing


def _fail(source: str, reason: str) -> NoReturn:
    raise CatalogError(f"{source}: {reason}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(data: Mapping[str, Any], key: str, source: str, where: str, *, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        _fail(source, f"{where}{key} must be {'a non-empty' if required else 'a'} text.")
    return value.strip()


def _code(value: Any, source: str, what: str) -> str:
    if not isinstance(value, str) or not _CODE.match(value):
        _fail(source, f"{what} {value!r} must be lower-case words joined by hyphens.")
    return value


def _known(value: Any, known: Mapping[str, Any] | Sequence[str]) -> bool:
    """``value`` is a code among ``known`` (anything that is not text is not)."""
    return isinstance(value, str) and value in known


def _check_keys(data: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        _fail(source, f"{where}unknown key(s) {', '.join(repr(k) for k in unknown)}.")


def _offset(raw: Any, source: str, what: str, *, signed: bool) -> Offset:
    if not isinstance(raw, dict) or not raw:
        _fail(source, f"{what} must be a table such as {{ weeks = 2 }} (months, weeks, days).")
    unknown = sorted(set(raw) - set(_UNITS))
    if unknown:
        _fail(
            source,
            f"{what} has unknown unit(s) {', '.join(repr(u) for u in unknown)}: use months, weeks, days.",
        )
    for unit, value in raw.items():
        if not _is_int(value):
            _fail(source, f"{what}: {unit} must be a whole number, not {value!r}.")
        if not signed and value < 0:
            _fail(source, f"{what}: {unit} is negative ({value}); a window part is a distance, zero or more.")
    return Offset(raw.get("months", 0), raw.get("weeks", 0), raw.get("days", 0))


def _window(raw: Any, source: str, where: str) -> Window:
    if raw is None:
        return Window()
    if not isinstance(raw, dict):
        _fail(source, f"{where}window must be a table with before and/or after.")
    _check_keys(raw, {"before", "after"}, source, f"{where}window: ")
    before = (
        _offset(raw["before"], source, f"{where}window before", signed=False) if "before" in raw else Offset()
    )
    after = (
        _offset(raw["after"], source, f"{where}window after", signed=False) if "after" in raw else Offset()
    )
    return Window(before, after)


#: Stand-ins for injectate fields a default leaves out, so the rest can be checked by the same rule.
_PLACEHOLDERS: dict[str, Any] = {
    **{name: rule.high for name, rule in injectate_rules.FIELDS.items()},
    "drug": "(chosen on the day)",
    "leukocytes": injectate_rules.LEUKOCYTES[0],
    "activation": "none",
}


def _injectate_default(
    raw: Any, procedure: ProcedureType, cat: Catalog, source: str, where: str
) -> InjectateDefault:
    if not isinstance(raw, dict):
        _fail(source, f"{where}each injectate default must be a table with a kind.")
    kind = raw.get("kind")
    if not _known(kind, injectate_rules.REQUIRED):
        _fail(source, f"{where}unknown injectate kind {kind!r}.")
    if kind not in procedure.injectates:
        allowed = ", ".join(procedure.injectates) or "none"
        _fail(source, f"{where}a {procedure.code} procedure does not take {kind} (it takes: {allowed}).")
    values = {name: value for name, value in raw.items() if name != "kind"}
    for name, value in values.items():
        numeric = name in injectate_rules.FIELDS
        if isinstance(value, bool) or not isinstance(value, int | float if numeric else str):
            _fail(
                source,
                f"{where}default {kind} injectate: {name} = {value!r} must be a "
                f"{'number' if numeric else 'text'}.",
            )
    drug_kind = None
    if "drug" in values:
        if not _known(values["drug"], cat.drugs):
            _fail(source, f"{where}default {kind} injectate: unknown drug {values['drug']!r}.")
        drug_kind = cat.drugs[values["drug"]].group
    if "activation" in values and not _known(values["activation"], cat.activations):
        _fail(source, f"{where}default {kind} injectate: unknown activation {values['activation']!r}.")
    filled = {name: _PLACEHOLDERS[name] for name in injectate_rules.REQUIRED[kind] if name not in values}
    try:
        injectate_rules.validate(kind, {**filled, **values}, drug_kind=drug_kind)
    except Invalid as exc:
        _fail(source, f"{where}default {kind} injectate: {exc.message}")
    return InjectateDefault(kind, values)


def _step(raw: Any, number: int, anchor: str, cat: Catalog, source: str) -> Step:
    if not isinstance(raw, dict):
        _fail(source, f"step {number} must be a table ([[step]]).")
    for key in _STEP_REQUIRED:
        if key not in raw:
            named = f" ({raw['code']!r})" if isinstance(raw.get("code"), str) else ""
            _fail(source, f"step {number}{named} lacks the required key {key!r}.")
    code = _code(raw["code"], source, f"step {number} code")
    where = f"step {code!r}: "
    _check_keys(raw, _STEP_KEYS, source, where)
    name = _text(raw, "name", source, where)
    kind = raw["kind"]
    if kind not in STEP_KINDS:
        _fail(source, f"{where}unknown kind {kind!r} (one of: {', '.join(STEP_KINDS)}).")

    if code == anchor:
        if "relative_to" in raw:
            _fail(source, f"{where}the anchor is day 0 of the plan: it is timed from no other step.")
        if raw.get("optional"):
            _fail(source, f"{where}the anchor is day 0 of the plan: it cannot be optional.")
        offset = (
            _offset(raw["offset"], source, f"{where}offset", signed=True) if "offset" in raw else Offset()
        )
        if not offset.is_zero:
            _fail(source, f"{where}the anchor is day 0 of the plan: its offset must be zero.")
        relative_to = None
    else:
        if "offset" not in raw:
            _fail(
                source,
                f"{where}lacks the required key 'offset' (its distance from {anchor!r} or relative_to).",
            )
        offset = _offset(raw["offset"], source, f"{where}offset", signed=True)
        relative_to = _code(raw.get("relative_to", anchor), source, f"{where}relative_to")

    optional = raw.get("optional", False)
    if not isinstance(optional, bool):
        _fail(source, f"{where}optional must be true or false.")
    session = _code(raw["session"], source, f"{where}session") if "session" in raw else None
    site = raw.get("site")
    if site is not None and not _known(site, cat.sites):
        _fail(source, f"{where}unknown site {site!r}.")

    procedure = guidance = treatment = None
    defaults: tuple[InjectateDefault, ...] = ()
    if kind == "procedure":
        if "procedure" not in raw:
            _fail(source, f"{where}a procedure step needs its procedure type (procedure = ...).")
        if not _known(raw["procedure"], cat.procedures):
            _fail(source, f"{where}unknown procedure {raw['procedure']!r}.")
        procedure_type = cat.procedures[raw["procedure"]]
        procedure = procedure_type.code
        guidance = raw.get("guidance", procedure_type.guidance)
        if not _known(guidance, GUIDANCE):
            _fail(source, f"{where}unknown guidance {guidance!r} (one of: {', '.join(GUIDANCE)}).")
        raw_defaults = raw.get("injectates", [])
        if not isinstance(raw_defaults, list):
            _fail(source, f"{where}injectates must be a list of tables.")
        defaults = tuple(_injectate_default(d, procedure_type, cat, source, where) for d in raw_defaults)
        kinds = [d.kind for d in defaults]
        if len(kinds) != len(set(kinds)):
            _fail(source, f"{where}an injectate kind has two defaults.")
        if "treatment" in raw:
            _fail(source, f"{where}a procedure step is identified by its procedure, not a treatment.")
    else:
        for key in ("procedure", "guidance", "injectates"):
            if key in raw:
                _fail(source, f"{where}only a procedure step takes {key!r} (this step is a {kind}).")
        if "treatment" in raw:
            if kind not in TREATMENT_STEP_KINDS:
                _fail(source, f"{where}a {kind} step names no treatment.")
            if not _known(raw["treatment"], cat.treatments):
                _fail(source, f"{where}unknown treatment {raw['treatment']!r}.")
            treatment = raw["treatment"]

    return Step(
        code=code,
        name=name,
        kind=kind,
        offset=offset,
        relative_to=relative_to,
        window=_window(raw.get("window"), source, where),
        optional=optional,
        session=session,
        note=_text(raw, "note", source, where, required=False),
        site=site,
        procedure=procedure,
        guidance=guidance,
        injectates=defaults,
        treatment=treatment,
    )


def _dependency_order(steps: Sequence[Step], source: str) -> tuple[str, ...]:
    """Step codes with each step after the one it is timed from; a cycle is named and refused."""
    by_code = {s.code: s for s in steps}
    position = {s.code: i for i, s in enumerate(steps)}
    order: list[str] = []
    placed: set[str] = set()
    for step in steps:
        path: list[str] = []
        code: str | None = step.code
        while code is not None and code not in placed:
            if code in path:
                cycle = path[path.index(code) :]
                first = min(cycle, key=position.__getitem__)
                start = cycle.index(first)
                cycle = cycle[start:] + cycle[:start]
                _fail(
                    source,
                    f"the steps' relative_to references go round in a cycle: {' → '.join([*cycle, first])}.",
                )
            path.append(code)
            code = by_code[code].relative_to
        for code in reversed(path):
            order.append(code)
            placed.add(code)
    return tuple(order)


def _chain(protocol_steps: Mapping[str, Step], code: str) -> list[Offset]:
    """The offsets from the anchor to ``code``, in the order they are applied."""
    chain: list[Offset] = []
    step = protocol_steps[code]
    while step.relative_to is not None:
        chain.append(step.offset)
        step = protocol_steps[step.relative_to]
    return chain[::-1]


def _normal(chain: Iterable[Offset]) -> tuple[tuple[int, int], ...]:
    """A chain of offsets reduced to (months, days) segments: two equal forms land on the same day always."""
    segments: list[tuple[int, int]] = []
    for offset in chain:
        if offset.months == 0 and segments:
            months, days = segments[-1]
            segments[-1] = (months, days + offset.total_days)
        else:
            segments.append((offset.months, offset.total_days))
    return tuple(s for s in segments if s != (0, 0))


def _apply(chain: Iterable[Offset], anchor: dt.date) -> dt.date:
    day = anchor
    for offset in chain:
        day = offset.add_to(day)
    return day


def _check_sessions(steps: Sequence[Step], source: str) -> None:
    by_code = {s.code: s for s in steps}
    sessions: dict[str, list[Step]] = {}
    for step in steps:
        if step.session is not None:
            sessions.setdefault(step.session, []).append(step)
    for session, members in sessions.items():
        first = members[0]
        first_chain = _chain(by_code, first.code)
        for other in members[1:]:
            other_chain = _chain(by_code, other.code)
            if _normal(first_chain) == _normal(other_chain):
                continue
            for n in range(_SESSION_CHECK_DAYS):
                anchor = _SESSION_CHECK_FROM + dt.timedelta(days=n)
                a, b = _apply(first_chain, anchor), _apply(other_chain, anchor)
                if a != b:
                    _fail(
                        source,
                        f"session {session!r}: steps {first.code!r} and {other.code!r} would fall on "
                        f"different days (from an anchor on {anchor.isoformat()}: {a.isoformat()} and "
                        f"{b.isoformat()}); steps of one session are done in one visit.",
                    )


def parse_protocol(text: str, source: str, *, cat: Catalog | None = None) -> Protocol:
    """Read one protocol from TOML text.

    A broken template is refused whole with :class:`CatalogError` naming ``source`` and the reason.
    """
    cat = cat or catalog()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        _fail(source, f"not valid TOML: {exc}.")
    missing = [
        key
        for key in ("protocol", "version", "name", "summary", "conditions", "anchor", "step")
        if key not in data
    ]
    if missing:
        _fail(source, f"lacks the required key(s) {', '.join(repr(k) for k in missing)}.")
    _check_keys(data, _PROTOCOL_KEYS, source, "")
    code = _code(data["protocol"], source, "protocol code")
    version = data["version"]
    if not _is_int(version) or version < 1:
        _fail(source, "version must be a positive whole number.")
    name = _text(data, "name", source, "")
    summary = _text(data, "summary", source, "")

    conditions = data["conditions"]
    if not isinstance(conditions, list) or not conditions:
        _fail(source, "conditions must list at least one catalog condition code.")
    for condition in conditions:
        if not _known(condition, cat.conditions):
            _fail(source, f"unknown condition {condition!r}.")
    if len(set(conditions)) != len(conditions):
        _fail(source, "a condition is listed twice.")

    anchor = _code(data["anchor"], source, "anchor")
    raw_steps = data["step"]
    if not isinstance(raw_steps, list) or not raw_steps:
        _fail(source, "a protocol needs at least one [[step]].")
    if not any(isinstance(raw, dict) and raw.get("code") == anchor for raw in raw_steps):
        _fail(source, f"the anchor {anchor!r} is not one of the steps.")
    steps: list[Step] = []
    seen: set[str] = set()
    for number, raw in enumerate(raw_steps, start=1):
        step = _step(raw, number, anchor, cat, source)
        if step.code in seen:
            _fail(source, f"step code {step.code!r} appears twice.")
        seen.add(step.code)
        steps.append(step)
    by_code = {s.code: s for s in steps}
    for step in steps:
        if step.relative_to is not None and step.relative_to not in by_code:
            _fail(source, f"step {step.code!r}: relative_to names unknown step {step.relative_to!r}.")
    order = _dependency_order(steps, source)
    for step in steps:
        if step.relative_to is not None and not step.optional and by_code[step.relative_to].optional:
            _fail(
                source,
                f"step {step.code!r} is required but timed from optional step {step.relative_to!r}; "
                "a required step can only depend on required ones.",
            )
    _check_sessions(steps, source)
    return Protocol(code, version, name, summary, tuple(conditions), anchor, tuple(steps), order, source)


def load_protocol(path: Path, *, cat: Catalog | None = None) -> Protocol:
    """Read one protocol file; its code must be its file name."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    protocol = parse_protocol(text, path.name, cat=cat)
    if protocol.code != path.stem:
        _fail(path.name, f"the protocol code {protocol.code!r} must match the file name.")
    return protocol


def load_protocols(directory: Path = PROTOCOL_DIR, *, cat: Catalog | None = None) -> dict[str, Protocol]:
    """Every protocol file in ``directory`` (each ``*.toml`` except the ladders), by code."""
    return {
        protocol.code: protocol
        for protocol in (
            load_protocol(path, cat=cat)
            for path in sorted(directory.glob("*.toml"))
            if path.name != LADDERS_FILE.name
        )
    }


@cache
def protocols() -> dict[str, Protocol]:
    """The protocols shipped with this version of Stride (read once per process)."""
    return load_protocols()


# --------------------------------------------------------------------------- plans


def _fmt(day: dt.date) -> str:
    return f"{day:%d %b %Y}"


def _resolve(
    protocol: Protocol, anchor: dt.date, moved: Mapping[str, dt.date]
) -> tuple[dict[str, dt.date], dict[str, dt.date]]:
    """Each step's day, and the day the protocol expects it given the days of the steps before it."""
    dates: dict[str, dt.date] = {}
    expected: dict[str, dt.date] = {}
    for code in protocol.order:
        step = protocol.step(code)
        expected[code] = anchor if step.relative_to is None else step.offset.add_to(dates[step.relative_to])
        dates[code] = moved.get(code, expected[code])
    return dates, expected


def plan_dates(
    protocol: Protocol,
    anchor: dt.date,
    *,
    include_optional: bool = True,
    moved: Mapping[str, dt.date] | None = None,
) -> list[PlannedStep]:
    """The protocol's steps dated from an anchor (the index step's day), in date order.

    ``moved`` holds the days a clinician moved steps to. A moved step takes
    its session with it and the steps timed from it follow; its window stays
    where the protocol expects the step (from the days of the steps before
    it), so a move outside the window shows as a deviation.
    """
    codes = {s.code for s in protocol.steps}
    moved = dict(moved or {})
    for code in moved:
        if code not in codes:
            raise Invalid(f"{protocol.name} has no step {code!r}.", "step")
    for code, day in list(moved.items()):
        session = protocol.step(code).session
        if session is not None:
            for mate in protocol.steps:
                if mate.session == session:
                    moved.setdefault(mate.code, day)
    dates, expected = _resolve(protocol, anchor, moved)
    result = []
    for position, step in enumerate(protocol.steps):
        if step.optional and not include_optional:
            continue
        start, end = step.window.around(expected[step.code])
        result.append(
            (
                dates[step.code],
                position,
                PlannedStep(
                    code=step.code,
                    name=step.name,
                    kind=step.kind,
                    planned_on=dates[step.code],
                    window_start=start,
                    window_end=end,
                    optional=step.optional,
                    session=step.session,
                    procedure=step.procedure,
                    site=step.site,
                    guidance=step.guidance,
                    injectates=step.injectates,
                    treatment=step.treatment,
                    note=step.note,
                    moved=step.code in moved,
                ),
            )
        )
    return [planned for _, _, planned in sorted(result, key=lambda item: item[:2])]


def validate_plan(planned: Sequence[PlannedStep], *, born: dt.date) -> None:
    """Raise :class:`Invalid` for a plan the patient cannot have.

    A step before the date of birth (field ``anchor``, or ``planned_on`` for a
    moved step); steps of one session on different days; two procedures at
    the same site on the same day in separate visits ("impossible overlap").
    Procedure steps without a site are at the plan's own site, so they count
    as one site.
    """
    for step in planned:
        if step.planned_on < born:
            raise Invalid(
                f"{step.name} would fall on {_fmt(step.planned_on)}, before the patient's date of birth "
                f"({_fmt(born)}).",
                "planned_on" if step.moved else "anchor",
            )
    sessions: dict[str, PlannedStep] = {}
    for step in planned:
        if step.session is None:
            continue
        first = sessions.setdefault(step.session, step)
        if first.planned_on != step.planned_on:
            raise Invalid(
                f"{first.name} and {step.name} are one visit but would fall on {_fmt(first.planned_on)} and "
                f"{_fmt(step.planned_on)}.",
                "planned_on",
            )
    procedures = [s for s in planned if s.kind == "procedure"]
    for i, a in enumerate(procedures):
        for b in procedures[i + 1 :]:
            same_visit = a.session is not None and a.session == b.session
            if a.site == b.site and a.planned_on == b.planned_on and not same_visit:
                where = f"at {a.site}" if a.site else "at the same site"
                raise Invalid(
                    f"Impossible overlap: {a.name} and {b.name} are both {where} on {_fmt(a.planned_on)}, "
                    "in separate visits.",
                    "planned_on",
                )


def today_in(zone: str, now: dt.datetime) -> dt.date:
    """The day it is at the clinic: ``now`` (an aware datetime) in the clinic's time zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("today_in needs an aware datetime (with its time zone).")
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"Unknown time zone {zone!r}.", "time_zone") from None
    return now.astimezone(tz).date()


def check_reschedule(step: Reschedulable, new_date: dt.date, today: dt.date, born: dt.date) -> bool:
    """Check a clinician's move of ``step`` to ``new_date``; return whether it leaves the window.

    A day before ``today`` (the clinic's today, see :func:`today_in`) or
    before the patient's birth is refused with :class:`Invalid`. A day
    outside the step's window is allowed but is a protocol deviation: the
    return value says so, for the page to show and the plan to record.
    """
    if new_date < today:
        raise Invalid(f"{step.name} cannot move to {_fmt(new_date)}: that day has passed.", "planned_on")
    if new_date < born:
        raise Invalid(
            f"{step.name} cannot move to {_fmt(new_date)}: that is before the patient's date of birth.",
            "planned_on",
        )
    return not step.window_start <= new_date <= step.window_end


# --------------------------------------------------------------------------- ladders


@dataclass(frozen=True)
class LadderRung:
    code: str
    name: str
    #: Position on the ladder (1 = first); an alternative shares the level of the rung it replaces.
    level: int
    alternative_to: str | None
    #: Treatment-history codes that count as having tried this rung.
    treatments: tuple[str, ...]
    #: Procedure types that count whatever was injected.
    procedures: tuple[str, ...]
    #: Procedure types that count only with one of these injectate kinds.
    procedure_injectates: Mapping[str, tuple[str, ...]]
    note: str = ""

    def counts(
        self, *, treatment: str | None = None, procedure: str | None = None, injectates: Iterable[str] = ()
    ) -> bool:
        if treatment is not None:
            return treatment in self.treatments
        if procedure is None:
            return False
        if procedure in self.procedures:
            return True
        return bool(set(self.procedure_injectates.get(procedure, ())) & set(injectates))


@dataclass(frozen=True)
class Ladder:
    code: str
    name: str
    conditions: tuple[str, ...]
    rungs: tuple[LadderRung, ...]
    reference: str = ""


@dataclass(frozen=True)
class TriedItem:
    """Something a patient tried for a condition: a history entry or a recorded procedure."""

    source: str  # "treatment" (history) or "procedure"
    code: str  # a catalog treatment code or procedure type code
    on: dt.date | None = None
    response: str = "unknown"  # full, partial, none or unknown
    relief_weeks: float | None = None
    injectates: tuple[str, ...] = ()  # for a procedure: the injectate kinds given


@dataclass(frozen=True)
class Rung:
    """One rung of a patient's ladder: what was tried there, and which protocols apply."""

    code: str
    name: str
    level: int
    alternative_to: str | None
    tried: tuple[TriedItem, ...]
    best_response: str | None
    longest_relief_weeks: float | None
    protocols: tuple[str, ...]
    note: str = ""


def _codes_list(
    raw: Mapping[str, Any], key: str, known: Mapping[str, Any], source: str, where: str
) -> tuple[str, ...]:
    values = raw.get(key, [])
    if not isinstance(values, list):
        _fail(source, f"{where}{key} must be a list of codes.")
    for value in values:
        if not _known(value, known):
            _fail(source, f"{where}unknown {key[:-1].replace('_', ' ')} {value!r}.")
    return tuple(values)


def parse_ladders(text: str, source: str, *, cat: Catalog | None = None) -> dict[str, Ladder]:
    """Read the ladders from TOML text; each condition maps to its ladder."""
    cat = cat or catalog()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        _fail(source, f"not valid TOML: {exc}.")
    if data.get("catalog") != "ladders":
        _fail(source, f"expected catalog = 'ladders', found {data.get('catalog')!r}.")
    if not _is_int(data.get("version")) or data["version"] < 1:
        _fail(source, "version must be a positive whole number.")
    _check_keys(data, {"catalog", "version", "ladder"}, source, "")
    by_condition: dict[str, Ladder] = {}
    codes: set[str] = set()
    raw_ladders = data.get("ladder", [])
    if not isinstance(raw_ladders, list) or not raw_ladders:
        _fail(source, "the file needs at least one [[ladder]].")
    for raw in raw_ladders:
        if not isinstance(raw, dict):
            _fail(source, "each ladder must be a table ([[ladder]]).")
        code = _code(raw.get("code"), source, "ladder code")
        where = f"ladder {code!r}: "
        if code in codes:
            _fail(source, f"ladder code {code!r} appears twice.")
        codes.add(code)
        _check_keys(raw, {"code", "name", "conditions", "reference", "rung"}, source, where)
        conditions = _codes_list(raw, "conditions", cat.conditions, source, where)
        if not conditions:
            _fail(source, f"{where}conditions must list at least one condition.")
        rungs = _rungs(raw.get("rung", []), cat, source, where)
        ladder = Ladder(
            code,
            _text(raw, "name", source, where),
            conditions,
            rungs,
            _text(raw, "reference", source, where, required=False),
        )
        for condition in conditions:
            if condition in by_condition:
                _fail(
                    source,
                    f"condition {condition!r} has two ladders ({by_condition[condition].code}, {code}).",
                )
            by_condition[condition] = ladder
    return by_condition


def _rungs(raw_rungs: Any, cat: Catalog, source: str, where: str) -> tuple[LadderRung, ...]:
    if not isinstance(raw_rungs, list) or not raw_rungs:
        _fail(source, f"{where}a ladder needs at least one [[ladder.rung]].")
    rungs: list[LadderRung] = []
    by_code: dict[str, LadderRung] = {}
    treatment_rung: dict[str, str] = {}
    procedure_rung: dict[str, str] = {}
    kind_rung: dict[tuple[str, str], str] = {}
    level = 0
    for raw in raw_rungs:
        if not isinstance(raw, dict):
            _fail(source, f"{where}each rung must be a table ([[ladder.rung]]).")
        code = _code(raw.get("code"), source, f"{where}rung code")
        at = f"{where}rung {code!r}: "
        if code in by_code:
            _fail(source, f"{where}rung code {code!r} appears twice.")
        _check_keys(
            raw,
            {"code", "name", "alternative_to", "treatments", "procedures", "procedure_injectates", "note"},
            source,
            at,
        )
        alternative_to = raw.get("alternative_to")
        if alternative_to is None:
            level += 1
            rung_level = level
        else:
            target = by_code.get(alternative_to) if isinstance(alternative_to, str) else None
            if target is None:
                _fail(source, f"{at}alternative_to must name an earlier rung, not {alternative_to!r}.")
            if target.alternative_to is not None:
                _fail(source, f"{at}is an alternative to {alternative_to!r}, itself an alternative.")
            rung_level = target.level
        treatments = _codes_list(raw, "treatments", cat.treatments, source, at)
        procedures = _codes_list(raw, "procedures", cat.procedures, source, at)
        raw_pi = raw.get("procedure_injectates", {})
        if not isinstance(raw_pi, dict):
            _fail(source, f"{at}procedure_injectates must be a table: procedure code = [injectate kinds].")
        procedure_injectates: dict[str, tuple[str, ...]] = {}
        for procedure, kinds in raw_pi.items():
            if not _known(procedure, cat.procedures):
                _fail(source, f"{at}unknown procedure {procedure!r}.")
            if not isinstance(kinds, list) or not kinds:
                _fail(source, f"{at}procedure_injectates.{procedure} must list injectate kinds.")
            for kind in kinds:
                if not _known(kind, cat.procedures[procedure].injectates):
                    _fail(source, f"{at}a {procedure} procedure does not take {kind!r}.")
            procedure_injectates[procedure] = tuple(kinds)
        for treatment in treatments:
            if treatment in treatment_rung:
                _fail(
                    source,
                    f"{at}treatment {treatment!r} already counts for rung {treatment_rung[treatment]!r}.",
                )
            treatment_rung[treatment] = code
        for procedure in procedures:
            owner = procedure_rung.get(procedure) or next(
                (rung for (p, _), rung in kind_rung.items() if p == procedure), None
            )
            if owner is not None:
                _fail(source, f"{at}procedure {procedure!r} already counts for rung {owner!r}.")
            procedure_rung[procedure] = code
        for procedure, kinds in procedure_injectates.items():
            if procedure in procedure_rung:
                _fail(
                    source,
                    f"{at}procedure {procedure!r} already counts for rung {procedure_rung[procedure]!r}.",
                )
            for kind in kinds:
                if (procedure, kind) in kind_rung:
                    _fail(
                        source,
                        f"{at}procedure {procedure!r} with {kind} already counts for rung "
                        f"{kind_rung[procedure, kind]!r}.",
                    )
                kind_rung[procedure, kind] = code
        rung = LadderRung(
            code=code,
            name=_text(raw, "name", source, at),
            level=rung_level,
            alternative_to=alternative_to,
            treatments=treatments,
            procedures=procedures,
            procedure_injectates=procedure_injectates,
            note=_text(raw, "note", source, at, required=False),
        )
        by_code[code] = rung
        rungs.append(rung)
    return tuple(rungs)


def load_ladders(path: Path = LADDERS_FILE, *, cat: Catalog | None = None) -> dict[str, Ladder]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    return parse_ladders(text, path.name, cat=cat)


@cache
def ladders() -> dict[str, Ladder]:
    """The treatment ladders shipped with this version of Stride, by condition code."""
    return load_ladders()


def _check_tried(item: TriedItem, cat: Catalog) -> None:
    if item.source not in TRIED_SOURCES:
        raise Invalid(f"A tried item is a treatment or a procedure, not {item.source!r}.", "tried")
    known = cat.treatments if item.source == "treatment" else cat.procedures
    if item.code not in known:
        raise Invalid(f"Unknown {item.source} code {item.code!r}.", "tried")
    if item.response not in RESPONSES:
        raise Invalid(f"The response must be one of {', '.join(RESPONSES)}, not {item.response!r}.", "tried")
    if item.relief_weeks is not None and item.relief_weeks < 0:
        raise Invalid("Weeks of relief cannot be negative.", "tried")
    for kind in item.injectates:
        if kind not in cat.injectate_kinds:
            raise Invalid(f"Unknown injectate kind {kind!r}.", "tried")


def _step_counts(rung: LadderRung, step: Step) -> bool:
    if step.kind == "procedure":
        return rung.counts(procedure=step.procedure, injectates=[d.kind for d in step.injectates])
    return step.treatment is not None and rung.counts(treatment=step.treatment)


def ladder_status(
    condition_code: str,
    tried: Iterable[TriedItem],
    *,
    offered: Mapping[str, Protocol] | None = None,
    ladder_index: Mapping[str, Ladder] | None = None,
    cat: Catalog | None = None,
) -> list[Rung]:
    """The condition's ladder, rung by rung: what was tried there and which protocols apply there.

    ``tried`` is what the patient tried for this condition (history and
    recorded procedures). An item counts for the rung that lists its code;
    a procedure listed under ``procedure_injectates`` counts only with one of
    the named injectate kinds; an item no rung lists is left out. Each rung
    reports the items (in date order), the best response recorded (``full`` >
    ``partial`` > ``none``; ``unknown`` only when no response was recorded),
    the longest relief, and the codes of the ``offered`` protocols (default:
    the shipped ones) that apply to the condition and whose index step counts
    for the rung. A condition without a ladder has no rungs. Nothing here is
    a recommendation.
    """
    cat = cat or catalog()
    cat.condition(condition_code)
    ladder = (ladders() if ladder_index is None else ladder_index).get(condition_code)
    if ladder is None:
        return []
    items = list(tried)
    for item in items:
        _check_tried(item, cat)
    offered = protocols() if offered is None else offered
    applicable = [p for p in offered.values() if condition_code in p.conditions]
    result = []
    for rung in ladder.rungs:
        matched = [
            item
            for item in items
            if (
                rung.counts(treatment=item.code)
                if item.source == "treatment"
                else rung.counts(procedure=item.code, injectates=item.injectates)
            )
        ]
        matched.sort(key=lambda item: (item.on is None, item.on or dt.date.min))
        responses = {item.response for item in matched}
        best = next((r for r in RESPONSES if r in responses), None)
        reliefs = [item.relief_weeks for item in matched if item.relief_weeks is not None]
        result.append(
            Rung(
                code=rung.code,
                name=rung.name,
                level=rung.level,
                alternative_to=rung.alternative_to,
                tried=tuple(matched),
                best_response=best,
                longest_relief_weeks=max(reliefs) if reliefs else None,
                protocols=tuple(sorted(p.code for p in applicable if _step_counts(rung, p.index_step))),
                note=rung.note,
            )
        )
    return result
