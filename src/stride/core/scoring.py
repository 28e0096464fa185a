"""Exact scoring of the questionnaire instruments, change, and responders.

Answers arrive as a list in item order, each an ``int`` as coded on the form,
``None`` (not answered) or ``"NA"`` (not applicable, only where the item
allows it). :func:`score` applies the instrument's scoring rule
(domain-reference §2.2) under a named policy and returns, per scale, the value
with the counts it was computed from, so a later change of policy never needs
the patient to answer again. The policy used is always part of the result.

Nothing here mutates its inputs, and every value is rounded to 4 decimals
(``33.3333``, not ``33.33333333333333``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stride.core.errors import Invalid
from stride.core.instruments import NA, Instrument, Item, Scale

PRORATED = "prorated"
FEW_RATED_ITEMS = "few-rated-items"
DECIMALS = 4


@dataclass(frozen=True)
class ScaleScore:
    value: float | None  # None whenever valid is False
    valid: bool
    answered: int  # items with a numeric answer
    na: int  # items answered "not applicable"
    missing: int  # items left blank
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "valid": self.valid,
            "answered": self.answered,
            "na": self.na,
            "missing": self.missing,
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class Result:
    instrument: str
    version: str
    policy: str
    scales: Mapping[str, ScaleScore] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI and the API give."""
        return {
            "instrument": self.instrument,
            "version": self.version,
            "policy": self.policy,
            "scores": {code: s.as_dict() for code, s in self.scales.items()},
        }


# --------------------------------------------------------------------------- validation


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def validate_answers(instrument: Instrument, answers: Sequence[Any]) -> None:
    """Raise :class:`Invalid` with a one-line message for the first answer at fault."""
    if isinstance(answers, str | bytes) or not isinstance(answers, Sequence):
        raise Invalid("Answers must be a list in item order.", "answers")
    expected = len(instrument.items)
    if len(answers) != expected:
        raise Invalid(f"{instrument.code} expects {expected} answers, got {len(answers)}.", "answers")
    for item, answer in zip(instrument.items, answers, strict=True):
        where = f"Item {item.number} ({item.link_id})"
        if answer is None:
            continue
        if answer == NA and isinstance(answer, str):
            if not item.allows_na:
                raise Invalid(
                    f'{where}: "NA" is not one of its answers ({item.describe_answers()}).', "answers"
                )
            continue
        if isinstance(answer, bool) or not isinstance(answer, int):
            if isinstance(answer, float):
                raise Invalid(
                    f"{where}: {_shown(answer)} is not a whole number ({item.describe_answers()}).", "answers"
                )
            raise Invalid(
                f"{where}: {_shown(answer)} is not one of its answers ({item.describe_answers()}).", "answers"
            )
        if answer not in item.values:
            raise Invalid(
                f"{where}: {answer} is not one of its answers ({item.describe_answers()}).", "answers"
            )


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class _Counts:
    numbers: tuple[int, ...]  # the numeric answers
    maximum: int  # the sum of the highest answer of each numbered item
    answered: int
    na: int
    missing: int


def _counts(items: Sequence[Item], answers: Sequence[Any]) -> _Counts:
    numbers = [a for a in answers if isinstance(a, int)]
    maximum = sum(item.high for item, a in zip(items, answers, strict=True) if isinstance(a, int))
    na = sum(1 for a in answers if a == NA)
    return _Counts(tuple(numbers), maximum, len(numbers), na, sum(1 for a in answers if a is None))


def _value(value: float) -> float:
    return round(float(value), DECIMALS)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _score(counts: _Counts, value: float | None, flags: tuple[str, ...] = ()) -> ScaleScore:
    return ScaleScore(
        value=None if value is None else _value(value),
        valid=value is not None,
        answered=counts.answered,
        na=counts.na,
        missing=counts.missing,
        flags=flags if value is not None else (),
    )


def _percent(counts: _Counts) -> float:
    return 100 * sum(counts.numbers) / counts.maximum


#: A scoring rule: (scale, its counts, policy, the counts of any other scale) → score.
Rule = Callable[[Scale, _Counts, str, Callable[[str], _Counts]], ScaleScore]


def _single_value(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    return _score(c, c.numbers[0] if c.answered == 1 else None)


def _sum(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    total = len(scale.items)
    if c.missing == 0:
        return _score(c, sum(c.numbers))
    if policy == "prorate-2" and c.missing <= 2:
        return _score(c, _round_half_up(sum(c.numbers) / c.answered * total), (PRORATED,))
    return _score(c, None)


def _faam(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    needed = scale.min_answered or len(scale.items)
    completed = c.answered + c.na if policy == "na-counts-as-completed" else c.answered
    if completed < needed or c.answered == 0:
        return _score(c, None)
    return _score(c, _percent(c), (FEW_RATED_ITEMS,) if c.answered < needed else ())


def _faos(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    total = len(scale.items)
    ok = c.answered >= math.ceil(total / 2) if policy == "half-answered" else c.missing <= 2
    if not ok or c.answered == 0:
        return _score(c, None)
    return _score(c, 100 - _percent(c))


def _moxfq(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    return _score(c, _percent(c) if c.missing == 0 else None)


def _ffi(scale: Scale, c: _Counts, policy: str, counts_of: Callable[[str], _Counts]) -> ScaleScore:
    if scale.subscales and policy == "mean-of-subscales":
        parts = [counts_of(sub) for sub in scale.subscales]
        if not all(_ffi_valid(p) for p in parts):
            return _score(c, None)
        return _score(c, sum(_percent(p) for p in parts) / len(parts))
    return _score(c, _percent(c) if _ffi_valid(c) else None)


def _ffi_valid(c: _Counts) -> bool:
    """Every item answered or marked NA, and at least one applicable."""
    return c.missing == 0 and c.answered > 0


RULES: Mapping[str, Rule] = {
    "single-value": _single_value,
    "sum": _sum,
    "faam": _faam,
    "faos": _faos,
    "moxfq": _moxfq,
    "ffi": _ffi,
}


def score(instrument: Instrument, answers: Sequence[Any], policy: str | None = None) -> Result:
    """Score ``answers`` (item order) on every scale of ``instrument`` under ``policy``."""
    used = instrument.resolve_policy(policy)
    validate_answers(instrument, answers)
    by_id = dict(zip((item.link_id for item in instrument.items), answers, strict=True))
    rule = RULES[instrument.scoring]

    def counts_of(code: str) -> _Counts:
        items = instrument.scale_items(code)
        return _counts(items, [by_id[item.link_id] for item in items])

    return Result(
        instrument=instrument.code,
        version=instrument.version,
        policy=used,
        scales={
            code: rule(scale, counts_of(code), used, counts_of) for code, scale in instrument.scales.items()
        },
    )


# --------------------------------------------------------------------------- change and responders


def change(baseline: float | None, followup: float | None) -> float | None:
    """Follow-up minus baseline (for pain, negative means better)."""
    if baseline is None or followup is None:
        return None
    return _value(followup - baseline)


def percent_change(baseline: float | None, followup: float | None) -> float | None:
    """The reduction from baseline in percent: (baseline − follow-up) / baseline × 100.

    ``None`` when either value is missing or the baseline is 0 (undefined).
    """
    if baseline is None or followup is None or baseline == 0:
        return None
    return _value((baseline - followup) / baseline * 100)


def _improvement(scale: Scale, baseline: float, followup: float) -> float:
    return _value((followup - baseline) if scale.higher_is_better else (baseline - followup))


def _improvement_percent(scale: Scale, baseline: float, followup: float) -> float | None:
    if baseline == 0:
        return None
    return _value(_improvement(scale, baseline, followup) / abs(baseline) * 100)


_EPSILON = 1e-9


def responder(
    instrument: Instrument,
    scale: str,
    baseline: float | None,
    followup: float | None,
    *,
    definition: str | None = None,
    cutoff: float | None = None,
) -> bool | None:
    """Whether the change from ``baseline`` to ``followup`` meets a responder definition.

    ``definition`` names one of the instrument's definitions (its default when
    omitted: for NPRS ``mcid``, with ``substantial`` the ≥ 50 % one).
    ``cutoff`` replaces the file's cut-off for a cut-off rule (CAIT). Threshold
    and cut-off rules look at the follow-up value alone, so ``baseline`` may be
    ``None`` there. ``None`` means "cannot say": a value is missing, the
    percentage is undefined (baseline 0), or the instrument defines no
    responder for this scale.
    """
    target = instrument.scale(scale)
    name = definition or instrument.responder.default
    if not name:
        return None
    try:
        rule = instrument.responder.definitions[name]
    except KeyError:
        known = ", ".join(instrument.responder.definitions) or "none"
        raise Invalid(
            f"{instrument.code} has no responder definition {name!r} (its definitions: {known}).",
            "definition",
        ) from None
    if cutoff is not None and rule.rule != "cutoff":
        raise Invalid(f"The {name} responder definition of {instrument.code} has no cut-off.", "cutoff")
    if followup is None:
        return None
    better = 1 if target.higher_is_better else -1
    if rule.rule == "threshold":
        assert rule.threshold is not None
        return better * (followup - rule.threshold) >= -_EPSILON
    if rule.rule == "cutoff":
        limit = rule.cutoff if cutoff is None else cutoff
        assert limit is not None
        return better * (followup - limit) > _EPSILON
    if baseline is None:
        return None
    points = rule.points.get(scale)
    if rule.rule in ("change", "change-or-percent") and points is None:
        return None
    if rule.rule in ("change", "change-or-percent"):
        assert points is not None
        if _improvement(target, baseline, followup) >= points - _EPSILON:
            return True
        if rule.rule == "change":
            return False
    assert rule.percent is not None
    pct = _improvement_percent(target, baseline, followup)
    if pct is None:
        return False if rule.rule == "change-or-percent" else None
    return pct >= rule.percent - _EPSILON


def flagged(
    instrument: Instrument, scale: str, value: float | None, *, cutoff: float | None = None
) -> bool | None:
    """Whether ``value`` is at or beyond the instrument's cut-off (CAIT ≤ 27: instability).

    ``None`` when the value is missing or the instrument has no cut-off.
    """
    target = instrument.scale(scale)
    rules = [r for r in instrument.responder.definitions.values() if r.rule == "cutoff"]
    if value is None or not rules:
        return None
    limit = rules[0].cutoff if cutoff is None else cutoff
    assert limit is not None
    better = 1 if target.higher_is_better else -1
    return better * (value - limit) <= _EPSILON
