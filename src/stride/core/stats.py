"""The statistics of outcome analytics, over plain data.

Lists, tuples and mappings go in; frozen dataclasses come out, each carrying
its N and the method text a report's method notes quote. The mathematics is
done by well-kept libraries — scipy (t and binomial quantiles), statsmodels
(Wilson intervals, OLS), lifelines (Kaplan–Meier, log-rank, Cox) — and this
module only chooses the method, feeds them and reads their answers back into
plain numbers. Nothing here imports Django.

Missing values (``None`` or NaN) are never silently treated as data: each
function says how many it dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from scipy import stats as sps
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.proportion import proportion_confint

from stride.core.errors import Invalid

LEVEL = 0.95
DEFAULT_MINIMUM = 5  # the small-cell minimum of DESIGN/issue 5

Number = float | int


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _floats(values: Iterable[Any]) -> np.ndarray:
    """Values as a float array, a missing one (None) as NaN."""
    return np.array(values if isinstance(values, list | tuple) else list(values), dtype=float)


def _clean(values: Iterable[Any]) -> tuple[list[float], int]:
    array = _floats(values)
    missing = np.isnan(array)
    return array[~missing].tolist(), int(missing.sum())


def _float(value: Any) -> float | None:
    """A plain float, or None for NaN/inf (a bound that does not exist)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise Invalid(f"The confidence level must be between 0 and 1, got {level}.", "level")


# --------------------------------------------------------------------------- summaries


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float | None
    mean_ci: tuple[float, float] | None  # t-based; None when n < 2
    median: float | None
    median_ci: tuple[float, float] | None  # order statistics; None when n is too small for the level
    median_ci_coverage: float | None  # the exact coverage of median_ci (≥ level)
    sd: float | None  # sample SD (n − 1); None when n < 2
    dropped: int = 0  # missing values left out
    level: float = LEVEL
    method: str = ""


def _median_ci(ordered: Sequence[float], level: float) -> tuple[tuple[float, float] | None, float | None]:
    """Distribution-free CI for the median: order statistics x(r), x(n−r+1) with B ~ Bin(n, ½).

    r is the largest rank with P(r ≤ B ≤ n − r) ≥ level, so the coverage is
    exact and at least ``level`` (e.g. n = 10: x(2)…x(9), 97.85 %).
    """
    n = len(ordered)
    alpha = 1 - level
    if n == 0:
        return None, None
    # r = the smallest k with P(B ≤ k) > α/2 (the quantile function gives ≥; step past an exact tie).
    r = int(sps.binom.ppf(alpha / 2, n, 0.5))
    if sps.binom.cdf(r, n, 0.5) <= alpha / 2:
        r += 1
    r = min(r, n)
    if r == 0:
        return None, None
    coverage = 1 - 2 * float(sps.binom.cdf(r - 1, n, 0.5))
    return (ordered[r - 1], ordered[n - r]), coverage


def summary_method(level: float = LEVEL) -> str:
    """How :func:`summary` estimates, in words (for method notes)."""
    return (
        f"Mean with a {level:.0%} t-based confidence interval (mean ± t(n−1) × SD/√n); median with a "
        f"distribution-free {level:.0%} confidence interval from order statistics (exact binomial, "
        "coverage at least the nominal level); SD with n − 1 in the denominator."
    )


def summary(values: Iterable[Number | None], level: float = LEVEL) -> Summary:
    """Mean (t-based CI), median (exact order-statistic CI) and SD of ``values``; missing ones dropped."""
    _check_level(level)
    data, dropped = _clean(values)
    n = len(data)
    method = f"{summary_method(level)} {dropped} missing value(s) excluded."
    if n == 0:
        return Summary(0, None, None, None, None, None, None, dropped, level, method)
    array = np.asarray(data, dtype=float)
    mean = float(array.mean())
    median = float(np.median(array))
    ordered = sorted(data)
    median_ci, coverage = _median_ci(ordered, level)
    if n < 2:
        return Summary(n, mean, None, median, median_ci, coverage, None, dropped, level, method)
    sd = float(array.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(
        n, mean, (mean - half, mean + half), median, median_ci, coverage, sd, dropped, level, method
    )


def change_from_baseline(
    pairs: Iterable[tuple[Number | None, Number | None]], level: float = LEVEL
) -> Summary:
    """:func:`summary` of follow-up − baseline over (baseline, follow-up) pairs; incomplete pairs dropped."""
    items = np.array(list(pairs), dtype=float).reshape(-1, 2)  # None becomes NaN
    changes = items[:, 1] - items[:, 0]  # NaN where either is missing
    result = summary(changes.tolist(), level)
    return Summary(
        **{
            **result.__dict__,
            "method": "Change = follow-up − baseline, per patient with both values. " + result.method,
        }
    )


# --------------------------------------------------------------------------- proportions


@dataclass(frozen=True)
class Proportion:
    k: int
    n: int
    p: float | None  # None when n == 0
    low: float | None
    high: float | None
    level: float = LEVEL
    method: str = "Wilson score interval (without continuity correction)"


def wilson(successes: int, n: int, level: float = LEVEL) -> Proportion:
    """``successes`` of ``n`` with its Wilson score interval (statsmodels ``proportion_confint``)."""
    _check_level(level)
    if n < 0 or successes < 0 or successes > n:
        raise Invalid(f"{successes} of {n} is not a proportion.", "successes")
    if n == 0:
        return Proportion(0, 0, None, None, None, level)
    low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
    # The limits are exactly 0 at k = 0 and exactly 1 at k = n; floating point can miss by 1e-16.
    low = 0.0 if successes == 0 else max(0.0, float(low))
    high = 1.0 if successes == n else min(1.0, float(high))
    return Proportion(successes, n, successes / n, low, high, level)


@dataclass(frozen=True)
class ResponderRate:
    answered: Proportion  # responders over patients with an answer
    sensitivity: Proportion  # responders over everyone due: the missing count as non-responders
    missing: int
    total: int  # everyone due at the time point (answered + missing)
    missing_as_failure: bool
    method: str

    @property
    def primary(self) -> Proportion:
        """The rate the report leads with; the other one is shown beside it."""
        return self.sensitivity if self.missing_as_failure else self.answered


def responder_rate(
    outcomes: Iterable[bool | None], missing_as_failure: bool = False, level: float = LEVEL
) -> ResponderRate:
    """Responder rate over the answered, and the sensitivity rate counting missing as non-responders.

    ``outcomes`` holds one entry per patient due: ``True`` responder,
    ``False`` not, ``None`` no answer (missed, withdrawn, or cannot say).
    """
    items = list(outcomes)
    yes = sum(1 for o in items if o is True)
    answered = sum(1 for o in items if o is not None)
    missing = len(items) - answered
    method = (
        f"Responders / patients answered, with {level:.0%} Wilson score intervals; sensitivity analysis "
        f"counts the {missing} patient(s) without an answer as non-responders "
        f"({yes}/{len(items)}). Primary: "
        + ("missing counted as non-responders." if missing_as_failure else "patients who answered.")
    )
    return ResponderRate(
        answered=wilson(yes, answered, level),
        sensitivity=wilson(yes, len(items), level),
        missing=missing,
        total=len(items),
        missing_as_failure=missing_as_failure,
        method=method,
    )


# --------------------------------------------------------------------------- Kaplan–Meier

CI_TRANSFORMS = ("log", "log-log")


@dataclass(frozen=True)
class KMPoint:
    time: float
    survival: float
    ci_low: float | None
    ci_high: float | None
    at_risk: int  # at risk just before ``time``
    events: int  # events at ``time``
    censored: int  # censored at ``time``


@dataclass(frozen=True)
class KM:
    label: str
    points: tuple[KMPoint, ...]  # starts at time 0 (survival 1); one point per distinct time
    median: float | None  # None: not reached
    median_ci: tuple[float | None, float | None]  # a None bound: not reached
    n: int
    events: int
    level: float
    ci: str
    method: str

    def survival_at(self, time: float) -> float:
        value = 1.0
        for point in self.points:
            if point.time > time:
                break
            value = point.survival
        return value


def _durations(durations: Sequence[Number], events: Sequence[bool | int]) -> tuple[np.ndarray, np.ndarray]:
    if len(durations) != len(events):
        raise Invalid(f"{len(durations)} durations but {len(events)} event flags.", "events")
    t = np.asarray([float(d) for d in durations], dtype=float)
    if len(t) and (not np.all(np.isfinite(t)) or np.any(t < 0)):
        raise Invalid("Durations must be finite and not negative.", "durations")
    return t, np.asarray([1 if e else 0 for e in events], dtype=int)


_HALF = 0.5 + 1e-9  # products of (1 − d/n) land a hair above 0.5 where they are exactly one half


def _first_crossing(times: Sequence[float], values: Sequence[float | None]) -> float | None:
    """The first time ``values`` is at or below one half; where the curve sits at exactly one half up
    to a later step, the midpoint of that flat stretch (as R's survival package reports it)."""
    for i, (time, value) in enumerate(zip(times, values, strict=True)):
        if value is not None and value <= _HALF:
            if abs(value - 0.5) < 1e-9:
                later = next(
                    (
                        t
                        for t, v in zip(times[i + 1 :], values[i + 1 :], strict=True)
                        if v is None or v < value - 1e-12
                    ),
                    None,
                )
                if later is not None:
                    return (time + later) / 2
            return time
    return None


def kaplan_meier(
    durations: Sequence[Number],
    events: Sequence[bool | int],
    label: str = "",
    *,
    level: float = LEVEL,
    ci: str = "log",
) -> KM:
    """The Kaplan–Meier curve (lifelines ``KaplanMeierFitter``) with pointwise CIs and the median.

    ``ci="log"`` gives Greenwood intervals on the log scale (R survival's
    default, so the figures match its published output); ``ci="log-log"``
    gives lifelines' exponential Greenwood (Kalbfleisch–Prentice) intervals.
    The median is the first time the curve is at or below 0.5; its CI runs
    from the first time the lower band is at or below 0.5 to the first time
    the upper band is (Brookmeyer–Crowley style, as R reports it).
    """
    _check_level(level)
    if ci not in CI_TRANSFORMS:
        raise Invalid(f"Unknown confidence-interval transform {ci!r}; choose log or log-log.", "ci")
    t, e = _durations(durations, events)
    method = (
        f"Kaplan–Meier estimate (lifelines {KaplanMeierFitter.__name__}); pointwise {level:.0%} "
        + (
            "Greenwood confidence intervals on the log scale (as R survival's default)"
            if ci == "log"
            else "Greenwood confidence intervals on the log(−log) scale (exponential Greenwood)"
        )
        + "; median survival = first time S(t) ≤ 0.5, with its CI from the confidence band."
    )
    if len(t) == 0:
        return KM(label, (KMPoint(0.0, 1.0, 1.0, 1.0, 0, 0, 0),), None, (None, None), 0, 0, level, ci, method)
    fitter = KaplanMeierFitter(alpha=1 - level).fit(t, e, label=label or "km")
    table = fitter.event_table
    surv = fitter.survival_function_.iloc[:, 0]
    z = float(sps.norm.ppf(0.5 + level / 2))
    if ci == "log-log":
        band = fitter.confidence_interval_survival_function_
        lows = [_float(v) for v in band.iloc[:, 0]]
        highs = [_float(v) for v in band.iloc[:, 1]]
    else:
        lows, highs = [], []
        greenwood = 0.0
        for time in surv.index:
            d = float(table.loc[time, "observed"])
            r = float(table.loc[time, "at_risk"])
            if d > 0:
                greenwood = greenwood + d / (r * (r - d)) if r > d else math.inf
            s = float(surv.loc[time])
            if s <= 0 or math.isinf(greenwood):
                lows.append(None)
                highs.append(None)
            else:
                spread = z * math.sqrt(greenwood)
                lows.append(s * math.exp(-spread))
                highs.append(min(1.0, s * math.exp(spread)))
    points = []
    for i, time in enumerate(surv.index):
        row = table.loc[time]
        points.append(
            KMPoint(
                time=float(time),
                survival=float(surv.loc[time]),
                ci_low=lows[i],
                ci_high=highs[i],
                at_risk=int(row["at_risk"]),
                events=int(row["observed"]),
                censored=int(row["censored"]),
            )
        )
    if points[0].time != 0.0:
        points.insert(0, KMPoint(0.0, 1.0, 1.0, 1.0, len(t), 0, 0))
    times = [p.time for p in points]
    median = _first_crossing(times, [p.survival for p in points])
    median_ci = (
        _first_crossing(times, [p.ci_low for p in points]),
        _first_crossing(times, [p.ci_high for p in points]),
    )
    return KM(label, tuple(points), median, median_ci, len(t), int(e.sum()), level, ci, method)


@dataclass(frozen=True)
class AtRisk:
    time: float
    at_risk: int  # still followed and event-free just before ``time``
    events: int  # events up to and including ``time``
    censored: int  # censored up to and including ``time``
    survival: float


def at_risk_table(km: KM, times: Iterable[Number]) -> tuple[AtRisk, ...]:
    """The at-risk counts printed under a Kaplan–Meier chart, at the given ``times``."""
    rows = []
    for time in times:
        time = float(time)
        later = [p for p in km.points if p.time >= time and (p.time > 0 or time == 0)]
        at_risk = later[0].at_risk if later else 0
        if time == 0:
            at_risk = km.n
        upto = [p for p in km.points if p.time <= time]
        rows.append(
            AtRisk(
                time=time,
                at_risk=at_risk,
                events=sum(p.events for p in upto),
                censored=sum(p.censored for p in upto),
                survival=km.survival_at(time),
            )
        )
    return tuple(rows)


# --------------------------------------------------------------------------- log-rank


@dataclass(frozen=True)
class LogRank:
    statistic: float
    df: int
    p: float
    n: int
    events: int
    groups: tuple[str, ...]
    method: str


def logrank(groups: Mapping[str, tuple[Sequence[Number], Sequence[bool | int]]]) -> LogRank:
    """Log-rank (Mantel–Haenszel) test of equal survival across ``groups`` (lifelines)."""
    if len(groups) < 2:
        raise Invalid("A log-rank test needs at least two groups.", "groups")
    all_t, all_e, labels = [], [], []
    for label, (durations, events) in groups.items():
        t, e = _durations(durations, events)
        all_t.append(t)
        all_e.append(e)
        labels.extend([label] * len(t))
    t = np.concatenate(all_t)
    e = np.concatenate(all_e)
    result = multivariate_logrank_test(t, labels, e)
    df = int(result.degrees_of_freedom)
    return LogRank(
        statistic=float(result.test_statistic),
        df=df,
        p=float(result.p_value),
        n=len(t),
        events=int(e.sum()),
        groups=tuple(groups),
        method=(
            f"Log-rank test (lifelines multivariate_logrank_test), chi-square on {df} degree(s) of freedom; "
            "tests equality of the survival curves over the whole follow-up, "
            "weighting every event time equally."
        ),
    )


# --------------------------------------------------------------------------- Cox


@dataclass(frozen=True)
class CoxTerm:
    name: str
    coef: float
    se: float
    hr: float
    ci_low: float
    ci_high: float
    p: float


@dataclass(frozen=True)
class CoxResult:
    terms: tuple[CoxTerm, ...]
    n: int
    events: int
    dropped: int  # rows left out for a missing value
    concordance: float
    ties: str
    level: float
    method: str

    def term(self, name: str) -> CoxTerm:
        for term in self.terms:
            if term.name == name:
                return term
        raise Invalid(f"The model has no term {name!r}.", "term")


def _frame(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> tuple[pd.DataFrame, int]:
    for column in columns:
        if rows and all(column not in row for row in rows):
            raise Invalid(f"No row has a value for {column!r}.", column)
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=list(columns))
    complete = frame.dropna()
    return complete.reset_index(drop=True), len(frame) - len(complete)


def _design(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Numbers as they are; booleans as 0/1; text as indicators (the first level sorted is the reference)."""
    parts = []
    for name in covariates:
        column = frame[name]
        if column.map(lambda v: isinstance(v, bool | int | float | np.number)).all():
            parts.append(column.astype(float).rename(name))
        else:
            levels = sorted(column.astype(str).unique())
            for level in levels[1:]:
                parts.append((column.astype(str) == level).astype(float).rename(f"{name}={level}"))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def cox(
    rows: Sequence[Mapping[str, Any]],
    duration: str,
    event: str,
    covariates: Sequence[str],
    *,
    level: float = LEVEL,
) -> CoxResult:
    """Cox proportional-hazards model (lifelines ``CoxPHFitter``, Efron ties) with hazard ratios and CIs."""
    _check_level(level)
    frame, dropped = _frame(rows, [duration, event, *covariates])
    if len(frame) == 0:
        raise Invalid("No complete rows to fit a Cox model.", "rows")
    design = _design(frame, covariates)
    data = pd.concat(
        [
            design,
            frame[duration].astype(float).rename("_T"),
            frame[event].astype(bool).astype(int).rename("_E"),
        ],
        axis=1,
    )
    fitter = CoxPHFitter(alpha=1 - level).fit(data, duration_col="_T", event_col="_E")
    table = fitter.summary
    low_col = next(c for c in table.columns if c.startswith("exp(coef) lower"))
    high_col = next(c for c in table.columns if c.startswith("exp(coef) upper"))
    terms = tuple(
        CoxTerm(
            name=str(name),
            coef=float(row["coef"]),
            se=float(row["se(coef)"]),
            hr=float(row["exp(coef)"]),
            ci_low=float(row[low_col]),
            ci_high=float(row[high_col]),
            p=float(row["p"]),
        )
        for name, row in table.iterrows()
    )
    return CoxResult(
        terms=terms,
        n=len(data),
        events=int(data["_E"].sum()),
        dropped=dropped,
        concordance=float(fitter.concordance_index_),
        ties="Efron",
        level=level,
        method=(
            f"Cox proportional-hazards regression (lifelines CoxPHFitter), Efron's method for tied event "
            f"times; hazard ratios with {level:.0%} Wald confidence intervals; adjusted for "
            f"{', '.join(covariates) or 'nothing'}. Assumes hazards stay proportional over time and "
            f"covariates act log-linearly. {dropped} row(s) with a missing value excluded."
        ),
    )


# --------------------------------------------------------------------------- adjusted comparison


@dataclass(frozen=True)
class Adjusted:
    term: str  # "group=<compared> vs <reference>"
    estimate: float  # adjusted mean difference, compared − reference
    ci: tuple[float, float]
    p: float
    n: int
    dropped: int
    level: float
    method: str


def adjusted_difference(
    rows: Sequence[Mapping[str, Any]],
    outcome: str,
    group: str,
    covariates: Sequence[str] = (),
    *,
    reference: str | None = None,
    level: float = LEVEL,
) -> Adjusted:
    """Difference in ``outcome`` between two groups adjusted for ``covariates`` (statsmodels OLS).

    Typically outcome = change from baseline, covariates = age, sex, BMI and
    baseline score. ``reference`` names the comparison group (default: the
    first label in sorted order).
    """
    _check_level(level)
    frame, dropped = _frame(rows, [outcome, group, *covariates])
    labels = sorted(frame[group].astype(str).unique())
    if len(labels) != 2:
        raise Invalid(
            f"{group!r} must have exactly two groups among complete rows, found {len(labels)}.", group
        )
    ref = labels[0] if reference is None else str(reference)
    if ref not in labels:
        raise Invalid(f"{ref!r} is not one of the groups ({', '.join(labels)}).", "reference")
    other = labels[1] if ref == labels[0] else labels[0]
    name = f"{group}={other} vs {ref}"
    indicator = (frame[group].astype(str) == other).astype(float).rename(name)
    exog = pd.concat(
        [pd.Series(1.0, index=frame.index, name="const"), indicator, _design(frame, covariates)], axis=1
    )
    if len(frame) <= exog.shape[1]:
        raise Invalid(f"{len(frame)} complete rows are too few for {exog.shape[1]} model terms.", "rows")
    fit = OLS(frame[outcome].astype(float), exog).fit()
    low, high = fit.conf_int(alpha=1 - level).loc[name]
    adjusted_for = ", ".join(covariates) if covariates else "nothing (unadjusted)"
    return Adjusted(
        term=name,
        estimate=float(fit.params[name]),
        ci=(float(low), float(high)),
        p=float(fit.pvalues[name]),
        n=len(frame),
        dropped=dropped,
        level=level,
        method=(
            f"Linear regression (statsmodels OLS) of {outcome} on {group} adjusted for {adjusted_for}; "
            f"{level:.0%} t-based confidence interval. Assumes a linear, additive effect of each covariate, "
            "the same treatment difference at every covariate value, "
            "independent errors of constant variance. "
            "Adjusted for case-mix, not randomised: unmeasured confounding remains. "
            f"{dropped} row(s) with a missing value excluded."
        ),
    )


# --------------------------------------------------------------------------- small cells


@dataclass(frozen=True)
class Cell:
    label: str
    n: int | None  # None when suppressed: shown as "fewer than <minimum>"
    value: Any  # the result, or None when suppressed
    suppressed: bool
    minimum: int


def suppress(
    results: Mapping[str, Any], minimum: int = DEFAULT_MINIMUM, n: Callable[[Any], int] | None = None
) -> tuple[Cell, ...]:
    """Withhold every group whose N is below ``minimum`` (value and exact N), flagged as suppressed.

    ``n`` reads a result's N (default: its ``.n``). Groups of 0 are shown (an
    empty group identifies nobody), as in :func:`stride.core.privacy.suppress_small`.
    """
    if minimum < 1:
        raise Invalid(f"The small-cell minimum must be at least 1, got {minimum}.", "minimum")
    size = n or (lambda result: result.n)
    cells = []
    for label, result in results.items():
        count = int(size(result))
        hidden = 0 < count < minimum
        cells.append(Cell(label, None if hidden else count, None if hidden else result, hidden, minimum))
    return tuple(cells)
