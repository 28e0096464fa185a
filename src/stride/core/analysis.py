"""Outcome analysis of a cohort, over plain de-identified rows.

:class:`EpisodeRow` is one index episode as the analysis sees it (no name,
record number or calendar date: a pseudonymous key, ages, and days from the
index date). :func:`analyse` turns a cohort's rows into everything its report
shows for one instrument scale — per time point the score and the change from
baseline (mean and median with confidence intervals), responder rates for each
of the instrument's fixed responder definitions (with the missing counted as
non-responders beside them), the flow of patients, and the durability of
relief as a Kaplan–Meier curve. :func:`compare` sets two or more cohorts side
by side (log-rank, a Cox model and a regression on the change from baseline,
each adjusted for age, sex, BMI and baseline score); :func:`table_one`
describes them at baseline. :func:`hide_small` withholds every group under the
small-cell minimum, for researcher views and exports.

The mathematics is :mod:`stride.core.stats`; this module chooses what is
counted, and says so in each result's method text. Nothing here imports Django.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

import numpy as np

from stride.core import schedule as core_schedule
from stride.core import scoring, stats
from stride.core.errors import Invalid
from stride.core.instruments import Instrument

#: Follow-up states of a time point, as the rows give them.
STATUSES = ("completed", "missed", "due", "pending", "cancelled")

#: Durability events: what ends a patient's relief.
EVENTS: Mapping[str, str] = {
    "retreatment": "re-treatment of the same condition (a new index treatment)",
    "surgery": "surgery on the same condition",
    "loss-of-response": "loss of response after responding",
}
DEFAULT_EVENT = "retreatment"

#: What the adjusted comparisons adjust for (DOMAIN/issue: age, sex, BMI and baseline score).
CASE_MIX = ("age", "sex", "bmi", "baseline")

DAYS_PER_MONTH = 365.25 / 12

#: The fewest events per model term for which a Cox model is fitted (the usual rule of ten).
EVENTS_PER_TERM = 10


def timepoints() -> tuple[str, ...]:
    """The schedule's time point codes in order: baseline, 1m, 3m, 6m, 12m, 24m, 36m."""
    return tuple(point.code for point in core_schedule.schedule().timepoints)


@dataclass(frozen=True)
class InjectateRow:
    kind: str
    leukocytes: str  # PRP: rich / poor ('' otherwise or not recorded)
    activation: str
    drug: str  # catalog drug code ('' when none)


@dataclass(frozen=True)
class EpisodeRow:
    """One index episode of a cohort, de-identified: no names, record numbers or dates."""

    key: str  # pseudonymous, stable within this installation, not reversible
    age: int  # whole years at the index date
    sex: str
    bmi: float | None
    activity_level: str
    clinic: str  # clinic slug
    condition: str  # condition catalog code
    laterality: str
    procedure_type: str  # the index procedure's code ('' when follow-up was started from a date)
    procedure_category: str  # injection / surgery / ''
    injectate_kinds: tuple[str, ...]
    injectates: tuple[InjectateRow, ...]
    baseline: float | None  # the baseline score (same as scores["baseline"])
    scores: Mapping[str, float | None]  # time point → score (None: not answered or not scoreable)
    # time point → completed / missed / due / pending / cancelled; for an image measurement the
    # dataset gives completed (measured), missed (window closed unmeasured), pending or cancelled
    status: Mapping[str, str]
    answer_days: Mapping[str, int | None]  # time point → days from the index date to the answer
    retreated_days: int | None  # a later index treatment of the same condition, days from index
    surgery_days: int | None  # a later surgery on the same condition, days from index
    ended_days: int | None  # the episode's end (censoring), days from index
    end_reason: str  # new-index / withdrawn / stopped / ''
    last_answer_days: int | None  # the last answered follow-up, days from index
    censor_days: int  # episode end if it ended, else the last answered follow-up (0: none)


@dataclass(frozen=True)
class Completeness:
    """The flow of a cohort's patients at one time point.

    ``treated = due + not_yet_due + withdrawn + retreated + stopped``;
    ``due = answered + missed + open``. ``answered`` counts the rows with an answer of the analysed
    instrument at the time point (or a completed follow-up); ``scored`` those with a score.

    The counts follow the rows' states, so they read the same for any measure: for an image
    measurement the rows mark a time point completed when measured and missed once its window closed
    unmeasured, never open, so ``due`` reads "measured or window closed" and ``answered`` "measured".
    """

    timepoint: str
    treated: int
    due: int  # the window has passed or is open
    answered: int
    scored: int
    missed: int  # the window closed unanswered
    open: int  # the window is open and not answered yet
    not_yet_due: int
    withdrawn: int  # follow-up ended by a withdrawal of consent before the time point
    retreated: int  # follow-up ended by a new index treatment before the time point
    stopped: int  # follow-up stopped by the clinic before the time point

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_ENDED = {"withdrawn": "withdrawn", "new-index": "retreated", "stopped": "stopped"}


#: What a row's time point is, for the flow: answered, missed, open (due, not answered yet), ended
#: (follow-up ended before it: withdrawn / retreated / stopped) or not yet due.
_DUE = frozenset({"answered", "answered-unscored", "missed", "open"})


def _states(rows: Sequence[Any]) -> dict[str, list[str]]:
    """Per time point, each row's state in the flow (one pass; the flow and the responder
    denominators both read it). An answer without a score of the analysed scale is
    "answered-unscored"."""
    states: dict[str, list[str]] = {}
    for point in timepoints():
        column = []
        for row in rows:
            status = row.status.get(point, "pending")
            if row.answer_days.get(point) is not None or status == "completed":
                column.append("answered" if row.scores.get(point) is not None else "answered-unscored")
            elif status == "missed":
                column.append("missed")
            elif status == "due":
                column.append("open")
            elif status == "cancelled":
                column.append(_ENDED.get(row.end_reason, "stopped"))
            else:
                column.append("not_yet_due")
        states[point] = column
    return states


def completeness(
    rows: Sequence[EpisodeRow], states: Mapping[str, list[str]] | None = None
) -> list[Completeness]:
    """Per time point: treated, due (window passed or open), answered, missed, withdrawn, re-treated."""
    states = states if states is not None else _states(rows)
    result = []
    for point in timepoints():
        column = states[point]
        counts = Counter(column)
        answered = counts["answered"] + counts["answered-unscored"]
        result.append(
            Completeness(
                timepoint=point,
                treated=len(rows),
                due=answered + counts["missed"] + counts["open"],
                answered=answered,
                scored=counts["answered"],
                missed=counts["missed"],
                open=counts["open"],
                not_yet_due=counts["not_yet_due"],
                withdrawn=counts["withdrawn"],
                retreated=counts["retreated"],
                stopped=counts["stopped"],
            )
        )
    return result


# --------------------------------------------------------------------------- one cohort


@dataclass(frozen=True)
class ResponderLine:
    """The responder rate by one of the instrument's fixed definitions at one time point."""

    definition: str  # the definition's name in the instrument file (e.g. "mcid", "substantial")
    description: str
    version: str  # "<instrument code> v<version>": the definition version the figure used
    rate: stats.ResponderRate | None  # None: withheld (fewer patients than the small-cell minimum)


@dataclass(frozen=True)
class PointResult:
    """One time point of a cohort: the score, the change from baseline, responders and the flow."""

    timepoint: str
    name: str
    months: int
    score: stats.Summary | None  # None: withheld
    change: stats.Summary | None  # None at baseline, or withheld
    responders: tuple[ResponderLine, ...]
    flow: Completeness
    withheld: tuple[str, ...] = ()  # which figures the small-cell rule withheld


@dataclass(frozen=True)
class Durability:
    """Time to the chosen event, as a Kaplan–Meier curve with its at-risk table."""

    event: str
    description: str
    km: stats.KM | None  # None: the event cannot be studied for this instrument, or withheld
    at_risk: tuple[stats.AtRisk, ...]
    excluded: int | None  # rows not at risk (loss of response: never responded); None: withheld
    method: str
    note: str = ""
    origin: str = "the index treatment"  # time zero of the curve


@dataclass(frozen=True)
class CohortResult:
    label: str
    n: int  # index episodes in the cohort
    patients: int  # distinct patients among them (None-safe: equals n when not known)
    instrument: str
    instrument_name: str
    instrument_version: str
    scale: str
    scale_name: str
    higher_is_better: bool | None  # None: the measure has no better direction
    mcid: float | None
    points: tuple[PointResult, ...]
    durability: Durability
    minimum: int | None  # the small-cell minimum applied (None: an identified clinician's view)
    withheld: bool = False  # the whole cohort is under the minimum

    def point(self, code: str) -> PointResult:
        for point in self.points:
            if point.timepoint == code:
                return point
        raise Invalid(f"No time point {code!r}.", "timepoint")


class _Responds:
    """``scoring.responder`` for rows, remembered per (baseline, follow-up, definition): scores take
    few distinct values, and a 100,000-row cohort asks about a million times."""

    def __init__(self, instrument: Instrument, scale: str) -> None:
        self.instrument, self.scale = instrument, scale
        self.known: dict[tuple[Any, Any, str], bool | None] = {}

    def __call__(self, row: Any, point: str, definition: str) -> bool | None:
        return self.verdict(row.scores.get("baseline"), row.scores.get(point), definition)

    def verdict(self, baseline: Any, followup: Any, definition: str) -> bool | None:
        key = (baseline, followup, definition)
        try:
            return self.known[key]
        except KeyError:
            answer = self.known[key] = scoring.responder(
                self.instrument, self.scale, baseline, followup, definition=definition
            )
            return answer


def _definitions(instrument: Instrument, scale: str) -> list[tuple[str, str]]:
    """The instrument's responder definitions that apply to ``scale``, the default first."""
    found = []
    for name, rule in instrument.responder.definitions.items():
        if rule.rule in ("change", "change-or-percent") and scale not in rule.points:
            continue
        found.append((name, rule.description))
    found.sort(key=lambda item: item[0] != instrument.responder.default)
    return found


def durability(
    rows: Sequence[Any],
    instrument: Instrument,
    scale: str,
    event: str = DEFAULT_EVENT,
) -> tuple[list[float], list[bool], int, str]:
    """Durations in days (from the index date; for loss of response from the first response), event
    flags, rows left out (never responded), and the method text."""
    if event not in EVENTS:
        raise Invalid(f"Unknown event {event!r}; choose one of {', '.join(EVENTS)}.", "event")
    durations: list[float] = []
    events: list[bool] = []
    excluded = 0
    if event in ("retreatment", "surgery"):
        for row in rows:
            happened = row.retreated_days if event == "retreatment" else row.surgery_days
            if happened is not None:
                durations.append(float(happened))
                events.append(True)
            else:
                durations.append(float(max(row.censor_days, 0)))
                events.append(False)
        text = (
            f"Time from the index treatment to {EVENTS[event]}. Patients without the event are censored "
            "when their follow-up ended (withdrawal, a stop by the clinic) or else at their last answered "
            "follow-up: the registry only knows they were event-free while it heard from them."
        )
        return durations, events, excluded, text
    definition = instrument.responder.default
    if not definition:
        text = f"{instrument.short_name} has no responder definition, so loss of response cannot be studied."
        return durations, events, excluded, text
    responds = _Responds(instrument, scale)
    for row in rows:
        first = None
        loss = None
        last_responding = None
        for point in timepoints()[1:]:
            days = row.answer_days.get(point)
            if days is None:
                continue
            answer = responds(row, point, definition)
            if answer is None:
                continue
            if first is None:
                if answer:
                    first = last_responding = days
                continue
            if answer:
                last_responding = days
            else:
                loss = days
                break
        if first is None:
            excluded += 1
            continue
        if row.retreated_days is not None and row.retreated_days > first:
            loss = row.retreated_days if loss is None else min(loss, row.retreated_days)
        if loss is not None:
            durations.append(float(loss - first))
            events.append(True)
        else:
            durations.append(float((last_responding or first) - first))
            events.append(False)
    text = (
        f"Among patients who responded at some follow-up ({instrument.short_name}, responder definition "
        f"'{definition}' of {instrument.code} v{instrument.version}), time from the first answer that met "
        "the definition to the first later answer that no longer met it, or to a re-treatment of the same "
        "condition, whichever came first; censored at the last answer that still met it. Patients who "
        "never responded are not at risk and are left out."
    )
    return durations, events, excluded, text


def _at_risk_times(durations: Sequence[float]) -> list[float]:
    """Where the at-risk table is printed: 0, 3, 6, 12, 24, 36 months, up to the longest follow-up."""
    longest = max(durations, default=0.0)
    marks = [0, 3, 6, 12, 24, 36]
    return [round(m * DAYS_PER_MONTH) for m in marks if m == 0 or m * DAYS_PER_MONTH <= longest + 1]


def analyse(
    label: str,
    rows: Sequence[Any],
    instrument: Instrument,
    scale: str,
    *,
    event: str = DEFAULT_EVENT,
    minimum: int | None = None,
    level: float = stats.LEVEL,
    patients: int | None = None,
) -> CohortResult:
    """Everything a cohort report shows for one instrument scale.

    ``rows`` are :class:`EpisodeRow` (or anything with their attributes).
    ``minimum`` applies the small-cell rule (researcher views and exports): every figure resting on
    fewer patients than ``minimum`` (but more than none) is withheld.
    """
    target = instrument.scale(scale)
    schedule = core_schedule.schedule()
    states = _states(rows)
    flows = {flow.timepoint: flow for flow in completeness(rows, states)}
    definitions = _definitions(instrument, scale)
    responds = _Responds(instrument, scale)
    version = f"{instrument.code} v{instrument.version}"
    baseline = [row.scores.get("baseline") for row in rows]
    points = []
    for point in schedule.timepoints:
        code = point.code
        values = [row.scores.get(code) for row in rows]
        score = stats.summary(values, level)
        change = None
        responders: list[ResponderLine] = []
        if code != "baseline":
            change = stats.change_from_baseline(zip(baseline, values, strict=True), level)
            # Every patient due counts once; the verdict depends only on (baseline, follow-up).
            due = Counter(
                (b, v) for b, v, state in zip(baseline, values, states[code], strict=True) if state in _DUE
            )
            total = sum(due.values())
            for name, description in definitions:
                yes = answered = 0
                for (b, v), count in due.items():
                    verdict = responds.verdict(b, v, name)
                    if verdict is not None:
                        answered += count
                        yes += count if verdict else 0
                outcomes = chain(
                    repeat(True, yes), repeat(False, answered - yes), repeat(None, total - answered)
                )
                responders.append(
                    ResponderLine(name, description, version, stats.responder_rate(outcomes, level=level))
                )
        points.append(
            PointResult(code, point.name, point.months, score, change, tuple(responders), flows[code])
        )
    durations, events, excluded, text = durability(rows, instrument, scale, event)
    note = ""
    if event == "loss-of-response" and not instrument.responder.default:
        km = None
        at_risk: tuple[stats.AtRisk, ...] = ()
        note = f"{instrument.short_name} has no responder definition, so loss of response cannot be studied."
    else:
        km = stats.kaplan_meier(durations, events, label, level=level)
        at_risk = stats.at_risk_table(km, _at_risk_times(durations))
        text = f"{text} {km.method}"
    result = CohortResult(
        label=label,
        n=len(rows),
        patients=len(rows) if patients is None else patients,
        instrument=instrument.code,
        instrument_name=instrument.short_name,
        instrument_version=instrument.version,
        scale=scale,
        scale_name=target.name,
        higher_is_better=target.higher_is_better if target.direction else None,
        mcid=target.mcid,
        points=tuple(points),
        durability=Durability(
            event,
            EVENTS[event],
            km,
            at_risk,
            excluded,
            text,
            note,
            origin="the first response" if event == "loss-of-response" else "the index treatment",
        ),
        minimum=None,
    )
    return result if minimum is None else hide_small(result, minimum)


# --------------------------------------------------------------------------- small cells


def _small(count: int | None, minimum: int) -> bool:
    return count is not None and 0 < count < minimum


def _hide_flow(flow: Completeness, minimum: int) -> Completeness:
    values = {
        name: (None if _small(value, minimum) else value)
        for name, value in flow.as_dict().items()
        if name != "timepoint"
    }
    return Completeness(timepoint=flow.timepoint, **values)  # type: ignore[arg-type]


def hide_small(result: CohortResult, minimum: int) -> CohortResult:
    """The result with every figure that rests on 1 … ``minimum − 1`` patients withheld.

    A summary is withheld when its N is small; a responder rate when either denominator is; a flow
    count when it is small itself. The Kaplan–Meier curve stops where fewer than ``minimum`` remain
    at risk (the tail of a curve reveals single patients' event times), and small at-risk counts are
    withheld. A cohort under the minimum shows nothing but that fact.
    """
    if minimum < 1:
        raise Invalid(f"The small-cell minimum must be at least 1, got {minimum}.", "minimum")
    if _small(result.n, minimum):
        empty = Durability(result.durability.event, result.durability.description, None, (), 0, "", "")
        return dataclasses.replace(
            result, n=0, patients=0, points=(), durability=empty, minimum=minimum, withheld=True
        )
    points = []
    for point in result.points:
        withheld = []
        score, change = point.score, point.change
        if score is not None and _small(score.n, minimum):
            score = None
            withheld.append("score")
        if change is not None and _small(change.n, minimum):
            change = None
            withheld.append("change")
        lines = []
        for line in point.responders:
            rate = line.rate
            if rate is not None and (_small(rate.answered.n, minimum) or _small(rate.total, minimum)):
                rate = None
                withheld.append(f"responders:{line.definition}")
            lines.append(dataclasses.replace(line, rate=rate))
        points.append(
            dataclasses.replace(
                point,
                score=score,
                change=change,
                responders=tuple(lines),
                flow=_hide_flow(point.flow, minimum),
                withheld=tuple(withheld),
            )
        )
    durability_ = result.durability
    km = durability_.km
    if km is not None:
        if _small(km.n, minimum):
            km = None
        else:
            kept = tuple(p for p in km.points if p.at_risk >= minimum or p.time == 0)
            shown_until = kept[-1].time

            def within(time: float | None) -> float | None:
                return time if time is not None and time <= shown_until else None

            km = dataclasses.replace(
                km,
                points=kept,
                median=within(km.median),
                median_ci=(within(km.median_ci[0]), within(km.median_ci[1])),
            )
        at_risk = tuple(
            dataclasses.replace(row, at_risk=row.at_risk if not _small(row.at_risk, minimum) else -1)
            for row in durability_.at_risk
        )
        note = durability_.note or (
            f"The curve is drawn while at least {minimum} patients remain at risk (a median beyond that "
            f"is withheld); at-risk counts under {minimum} are withheld."
        )
        durability_ = dataclasses.replace(durability_, km=km, at_risk=at_risk if km else (), note=note)
    if _small(durability_.excluded, minimum):
        durability_ = dataclasses.replace(durability_, excluded=None)
    return dataclasses.replace(result, points=tuple(points), durability=durability_, minimum=minimum)


# --------------------------------------------------------------------------- Table 1


@dataclass(frozen=True)
class Table1Cell:
    n: int | None  # patients in the cohort (categories) or with a value (continuous); None: withheld
    count: int | None = None  # categorical: patients in the level
    percent: float | None = None
    mean: float | None = None
    sd: float | None = None
    median: float | None = None
    q1: float | None = None
    q3: float | None = None
    missing: int = 0
    hidden: bool = False  # withheld by the small-cell rule

    @property
    def text(self) -> str:
        if self.hidden:
            return "withheld"
        if self.count is not None:
            return f"{self.count} ({self.percent:.0f} %)" if self.percent is not None else str(self.count)
        if self.mean is None:
            return "–"
        text = f"{self.mean:.1f} ({self.sd:.1f})" if self.sd is not None else f"{self.mean:.1f}"
        if self.median is not None and self.q1 is not None and self.q3 is not None:
            text += f"; {self.median:.1f} [{self.q1:.1f}–{self.q3:.1f}]"
        return text


@dataclass(frozen=True)
class Table1Row:
    characteristic: str
    level: str  # "" for a continuous characteristic
    kind: str  # "count" / "continuous" / "category"
    cells: tuple[Table1Cell, ...]  # one per cohort, in order


def _continuous(values: Iterable[Any]) -> Table1Cell:
    kept, missing = stats._clean(values)
    if not kept:
        return Table1Cell(n=0, missing=missing)
    array = np.asarray(kept, dtype=float)
    q1, median, q3 = (float(v) for v in np.percentile(array, [25, 50, 75]))
    sd = float(array.std(ddof=1)) if len(kept) > 1 else None
    return Table1Cell(
        n=len(kept), mean=float(array.mean()), sd=sd, median=median, q1=q1, q3=q3, missing=missing
    )


def table_one(
    groups: Mapping[str, Sequence[Any]],
    *,
    minimum: int | None = None,
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[Table1Row, ...]:
    """Baseline characteristics per cohort: N, age, sex, BMI, activity, side, procedure, injectate,
    baseline score. ``labels`` maps a characteristic to names for its codes; ``minimum`` withholds
    category counts (and summaries) that rest on 1 … minimum − 1 patients."""
    labels = labels or {}
    cohorts = list(groups.values())

    def withheld(cell: Table1Cell) -> Table1Cell:
        if minimum is None:
            return cell
        if cell.count is not None and _small(cell.count, minimum):
            return Table1Cell(n=cell.n, hidden=True)
        if cell.count is None and _small(cell.n, minimum):
            return Table1Cell(n=None, missing=cell.missing, hidden=True)
        return cell

    table: list[Table1Row] = [
        Table1Row(
            "Index treatments",
            "",
            "count",
            tuple(Table1Cell(n=len(rows), count=len(rows)) for rows in cohorts),
        )
    ]
    continuous = (
        ("Age at index (years)", lambda row: row.age),
        ("BMI (kg/m²)", lambda row: row.bmi),
        ("Baseline score", lambda row: row.baseline),
    )
    categorical = (
        ("Sex", "sex", lambda row: (row.sex,)),
        ("Activity level", "activity_level", lambda row: (row.activity_level or "not recorded",)),
        ("Side", "laterality", lambda row: (row.laterality,)),
        ("Condition", "condition", lambda row: (row.condition,)),
        (
            "Index procedure",
            "procedure_type",
            lambda row: (row.procedure_type or "follow-up started from a date",),
        ),
        ("Injectate", "injectate_kinds", lambda row: row.injectate_kinds or ("none",)),
        ("Clinic", "clinic", lambda row: (row.clinic,)),
    )
    for name, read in continuous:
        table.append(
            Table1Row(
                name,
                "",
                "continuous",
                tuple(withheld(_continuous(read(r) for r in rows)) for rows in cohorts),
            )
        )
    for name, key, read in categorical:
        counts = [Counter(level for row in rows for level in read(row)) for rows in cohorts]
        levels = sorted(
            {level for count in counts for level in count}, key=lambda lv: (-sum(c[lv] for c in counts), lv)
        )
        names = labels.get(key, {})
        for level in levels:
            cells = []
            for rows, count in zip(cohorts, counts, strict=True):
                k = count.get(level, 0)
                pct = 100 * k / len(rows) if rows else None
                cells.append(withheld(Table1Cell(n=len(rows), count=k, percent=pct)))
            table.append(Table1Row(name, names.get(level, level), "category", tuple(cells)))
    return tuple(table)


# --------------------------------------------------------------------------- comparing cohorts


@dataclass(frozen=True)
class Comparison:
    labels: tuple[str, ...]
    reference: str
    timepoint: str  # the time point the change-from-baseline regression looks at
    event: str
    logrank: stats.LogRank | None
    cox: stats.CoxResult | None
    adjusted: tuple[stats.Adjusted, ...]  # each cohort against the reference
    shared: int  # episodes in more than one cohort, left out of the tests
    notes: tuple[str, ...]  # what could not be computed, and why


def _case_mix(row: Any) -> dict[str, Any]:
    """Age, sex (female or not: the rarer answers are too few to model), BMI and baseline score."""
    female = None if row.sex in ("", "unknown") else row.sex == "female"
    return {"age": row.age, "female": female, "bmi": row.bmi, "baseline": row.baseline}


def _terms(covariates: Sequence[str]) -> list[str]:
    return ["female" if name == "sex" else name for name in covariates]


def compare(
    groups: Mapping[str, Sequence[Any]],
    instrument: Instrument,
    scale: str,
    *,
    timepoint: str = "6m",
    event: str = DEFAULT_EVENT,
    covariates: Sequence[str] = CASE_MIX,
    level: float = stats.LEVEL,
) -> Comparison:
    """Compare two or more cohorts: log-rank and an adjusted Cox model on the durability event, and an
    adjusted regression on the change from baseline at ``timepoint`` (each against the first cohort).

    An episode in more than one cohort would count twice against itself; such episodes are left out
    of the tests and counted in ``shared``.
    """
    if len(groups) < 2:
        raise Invalid("Choose at least two cohorts to compare.", "cohorts")
    if timepoint not in timepoints()[1:]:
        raise Invalid(f"{timepoint!r} is not a follow-up time point.", "timepoint")
    for name in covariates:
        if name not in CASE_MIX:
            raise Invalid(f"Cannot adjust for {name!r}; choose from {', '.join(CASE_MIX)}.", "covariates")
    seen = Counter(row.key for rows in groups.values() for row in rows)
    shared = sum(1 for count in seen.values() if count > 1)
    clean = {label: [row for row in rows if seen[row.key] == 1] for label, rows in groups.items()}
    labels = tuple(groups)
    reference = labels[0]
    notes: list[str] = []
    if shared:
        notes.append(
            f"{shared} index treatment(s) belong to more than one cohort and are left out of the tests, "
            "which assume separate groups."
        )
    survival = {}
    modelled: list[dict[str, Any]] = []
    for label, rows in clean.items():
        durations, events, _, _ = durability(rows, instrument, scale, event)
        survival[label] = (durations, events)
        if event != "loss-of-response":
            for row, d, e in zip(rows, durations, events, strict=True):
                modelled.append({"cohort": label, "_t": d, "_e": e, **_case_mix(row)})
    logrank = None
    if all(len(d) for d, _ in survival.values()) and sum(sum(e) for _, e in survival.values()):
        logrank = stats.logrank(survival)
    else:
        notes.append("No log-rank test: a cohort is empty or nobody had the event.")
    cox = None
    if event == "loss-of-response":
        notes.append(
            "No Cox model for loss of response: only responders are at risk, so the cohorts are no longer "
            "comparable on their case-mix at the index date."
        )
    elif modelled:
        terms = len(labels) - 1 + len(covariates)
        used = _terms(covariates)
        happened = sum(1 for row in modelled if row["_e"] and all(row[name] is not None for name in used))
        if happened < EVENTS_PER_TERM * terms:
            notes.append(
                f"No Cox model: {happened} event(s) for {terms} model terms; an adjusted model needs at "
                f"least {EVENTS_PER_TERM} events per term to give hazard ratios worth reading."
            )
            modelled = []
        for row in modelled:
            row["cohort"] = "0 " + row["cohort"] if row["cohort"] == reference else "1 " + row["cohort"]
    if modelled:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cox = stats.cox(modelled, "_t", "_e", ["cohort", *_terms(covariates)], level=level)
            notes.extend(f"Cox model: {_reason(w.message)}." for w in caught if _is_fit_warning(w))  # type: ignore[arg-type]
            names = {f"cohort=1 {label}": f"{label} vs {reference}" for label in labels[1:]}
            cox = dataclasses.replace(
                cox, terms=tuple(dataclasses.replace(t, name=names.get(t.name, t.name)) for t in cox.terms)
            )
        except Exception as error:  # lifelines' convergence and singular-matrix errors
            notes.append(f"The Cox model could not be fitted ({_reason(error)}).")
    adjusted = []
    for label in labels[1:]:
        rows_ = [
            {"group": name, "change": _change(row, timepoint), **_case_mix(row)}
            for name in (reference, label)
            for row in clean[name]
        ]
        try:
            adjusted.append(
                stats.adjusted_difference(
                    rows_, "change", "group", _terms(covariates), reference=reference, level=level
                )
            )
        except Invalid as error:
            notes.append(f"{label} vs {reference}: no adjusted difference ({error.message}).")
        except Exception as error:
            notes.append(f"{label} vs {reference}: no adjusted difference ({_reason(error)}).")
    return Comparison(
        labels, reference, timepoint, event, logrank, cox, tuple(adjusted), shared, tuple(notes)
    )


def _is_fit_warning(caught: warnings.WarningMessage) -> bool:
    return "Convergence" in type(caught.message).__name__ or "converge" in str(caught.message).lower()


def _change(row: Any, point: str) -> float | None:
    baseline, value = row.scores.get("baseline"), row.scores.get(point)
    if baseline is None or value is None:
        return None
    return float(value) - float(baseline)


def _reason(error: Exception) -> str:
    """The first sentence of a library's error, for a note."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(". ")[0].rstrip(".")[:200]
