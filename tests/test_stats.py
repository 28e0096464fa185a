"""The analytics statistics against published reference results (R's own output), plus properties.

Every expected number below is R's printed output for a public data set
(tests/data/README.md), to the precision R printed it.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stride.core import stats
from stride.core.errors import Invalid

DATA = Path(__file__).parent / "data"


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as handle:
        return list(csv.DictReader(handle))


def _aml(group: str) -> tuple[list[float], list[int]]:
    rows = [r for r in _rows("aml.csv") if r["x"] == group]
    return [float(r["time"]) for r in rows], [int(r["status"]) for r in rows]


def _sleep() -> tuple[list[float], list[float]]:
    rows = _rows("sleep.csv")
    one = {r["ID"]: float(r["extra"]) for r in rows if r["group"] == "1"}
    two = {r["ID"]: float(r["extra"]) for r in rows if r["group"] == "2"}
    ids = sorted(one, key=int)
    return [one[i] for i in ids], [two[i] for i in ids]


# --------------------------------------------------------------------------- Kaplan–Meier: aml

# summary(survfit(Surv(time, status) ~ x, data = aml)), R survival, log CIs (its default):
# x=Maintained: time n.risk n.event survival std.err lower 95% CI upper 95% CI
MAINTAINED = [
    (9, 11, 1, 0.909, 0.7541, 1.000),
    (13, 10, 1, 0.818, 0.6192, 1.000),
    (18, 8, 1, 0.716, 0.4884, 1.000),
    (23, 7, 1, 0.614, 0.3769, 0.999),
    (31, 5, 1, 0.491, 0.2549, 0.946),
    (34, 4, 1, 0.368, 0.1549, 0.875),
    (48, 2, 1, 0.184, 0.0359, 0.944),
]
NONMAINTAINED = [
    (5, 12, 2, 0.8333, 0.6470, 1.000),
    (8, 10, 2, 0.6667, 0.4468, 0.995),
    (12, 8, 1, 0.5833, 0.3616, 0.941),
    (23, 6, 1, 0.4861, 0.2675, 0.883),
    (27, 5, 1, 0.3889, 0.1854, 0.816),
    (30, 4, 1, 0.2917, 0.1148, 0.741),
    (33, 3, 1, 0.1944, 0.0569, 0.664),
    (43, 2, 1, 0.0972, 0.0153, 0.620),
    (45, 1, 1, 0.0000, None, None),
]


def _decimals(value: float) -> int:
    text = f"{value}"
    return len(text.split(".")[1]) if "." in text else 0


@pytest.mark.parametrize(
    ("group", "expected"), [("Maintained", MAINTAINED), ("Nonmaintained", NONMAINTAINED)]
)
def test_kaplan_meier_matches_r_summary_survfit_for_aml(group, expected) -> None:
    """R survival: summary(survfit(Surv(time, status) ~ x, data = aml)) (the aml help page's data;
    output as printed, e.g. in the bookdown notes on survival analysis with R's example7a = aml)."""
    km = stats.kaplan_meier(*_aml(group), group)
    events = {p.time: p for p in km.points if p.events}
    assert sorted(events) == [row[0] for row in expected]
    for time, at_risk, n_events, survival, low, high in expected:
        point = events[time]
        assert point.at_risk == at_risk
        assert point.events == n_events
        assert point.survival == pytest.approx(survival, abs=0.5 * 10 ** -_decimals(survival))
        if low is None:
            assert point.ci_low is None and point.ci_high is None
        else:
            assert point.ci_low == pytest.approx(low, abs=0.5 * 10 ** -_decimals(low) + 1e-12)
            assert point.ci_high == pytest.approx(high, abs=5e-4)


def test_kaplan_meier_medians_match_r_print_survfit_for_aml() -> None:
    """R: survfit(Surv(time, status) ~ x, data = aml) prints
    x=Maintained 11 7 31 18 NA; x=Nonmaintained 12 11 23 8 NA (n, events, median, 0.95LCL, 0.95UCL)."""
    maintained = stats.kaplan_meier(*_aml("Maintained"), "Maintained")
    non = stats.kaplan_meier(*_aml("Nonmaintained"), "Nonmaintained")
    assert (maintained.n, maintained.events, maintained.median, maintained.median_ci) == (
        11,
        7,
        31,
        (18, None),
    )
    assert (non.n, non.events, non.median, non.median_ci) == (12, 11, 23, (8, None))
    assert "log scale" in maintained.method


def test_log_log_intervals_are_lifelines_and_contain_the_estimate() -> None:
    km = stats.kaplan_meier(*_aml("Maintained"), "Maintained", ci="log-log")
    assert "log(−log)" in km.method
    for point in km.points[1:]:
        assert point.ci_low <= point.survival <= point.ci_high
    with pytest.raises(Invalid):
        stats.kaplan_meier([1], [1], ci="plain")


def test_at_risk_table_counts_who_is_still_followed() -> None:
    km = stats.kaplan_meier(*_aml("Maintained"), "Maintained")
    table = stats.at_risk_table(km, [0, 10, 20, 50, 200])
    # durations ≥ t among 9 13 13+ 18 23 28+ 31 34 45+ 48 161+
    assert [row.at_risk for row in table] == [11, 10, 7, 1, 0]
    assert [row.events for row in table] == [0, 1, 3, 7, 7]
    assert [row.censored for row in table] == [0, 0, 1, 3, 4]
    assert table[2].survival == pytest.approx(0.716, abs=5e-4)


def test_empty_curve() -> None:
    km = stats.kaplan_meier([], [], "none")
    assert (km.n, km.events, km.median) == (0, 0, None)
    with pytest.raises(Invalid):
        stats.kaplan_meier([1, 2], [1])
    with pytest.raises(Invalid):
        stats.kaplan_meier([-1], [1])


# --------------------------------------------------------------------------- log-rank and Cox: aml


def test_logrank_matches_r_survdiff_for_aml() -> None:
    """R: survdiff(Surv(time, status) ~ x, data = aml) → Chisq= 3.4 on 1 degrees of freedom, p= 0.07."""
    result = stats.logrank({"Maintained": _aml("Maintained"), "Nonmaintained": _aml("Nonmaintained")})
    assert round(result.statistic, 1) == 3.4
    assert result.df == 1
    assert round(result.p, 2) == 0.07
    assert (result.n, result.events) == (23, 18)
    with pytest.raises(Invalid):
        stats.logrank({"only": _aml("Maintained")})


def test_cox_matches_r_coxph_for_aml() -> None:
    """R: coxph(Surv(time, status) ~ x, data = aml) →
    xNonmaintained coef 0.9155 exp(coef) 2.4981 se(coef) 0.5119 z 1.788 p 0.0737; n= 23, events= 18."""
    rows = [
        {"time": float(r["time"]), "status": int(r["status"]), "nonmaintained": r["x"] == "Nonmaintained"}
        for r in _rows("aml.csv")
    ]
    result = stats.cox(rows, "time", "status", ["nonmaintained"])
    term = result.term("nonmaintained")
    assert term.coef == pytest.approx(0.9155, abs=5e-5)
    assert term.hr == pytest.approx(2.4981, abs=5e-5)
    assert term.se == pytest.approx(0.5119, abs=5e-5)
    assert term.p == pytest.approx(0.0737, abs=5e-5)
    assert term.ci_low < term.hr < term.ci_high
    assert (result.n, result.events, result.ties) == (23, 18, "Efron")
    assert "Efron" in result.method
    with pytest.raises(Invalid):
        result.term("age")


def test_cox_drops_incomplete_rows_and_says_so() -> None:
    rows = [{"t": t, "e": e, "x": x} for t, e, x in [(1, 1, 0), (2, 1, 1), (3, 0, 0), (4, 1, 1), (5, 1, 0)]]
    rows.append({"t": 6, "e": 1, "x": None})
    result = stats.cox(rows, "t", "e", ["x"])
    assert (result.n, result.dropped) == (5, 1)
    assert "1 row(s)" in result.method


# --------------------------------------------------------------------------- means, medians, change: sleep


def test_change_from_baseline_matches_r_paired_t_test_on_sleep() -> None:
    """R: t.test(extra ~ group, data = sleep, paired = TRUE) → mean of the differences −1.58,
    95 percent CI −2.4598858 −0.7001142 (group 1 − group 2; here follow-up = group 2, so the sign flips)."""
    baseline, followup = _sleep()
    result = stats.change_from_baseline(list(zip(baseline, followup, strict=True)))
    assert result.n == 10
    assert result.mean == pytest.approx(1.58, abs=1e-9)
    assert result.mean_ci == pytest.approx((0.7001142, 2.4598858), abs=5e-8)
    assert "follow-up − baseline" in result.method


def test_median_ci_uses_exact_binomial_order_statistics() -> None:
    # n = 10: x(2)…x(9); coverage 1 − 2·P(Bin(10, ½) ≤ 1) = 1 − 2·11/1024.
    result = stats.summary(range(1, 11))
    assert result.median == 5.5
    assert result.median_ci == (2, 9)
    assert result.median_ci_coverage == pytest.approx(1 - 22 / 1024)
    # n = 5: even (x(1), x(5)) covers only 1 − 2/32 < 95 %: no interval claimed.
    small = stats.summary([3, 1, 2, 5, 4])
    assert small.median_ci is None and small.median_ci_coverage is None
    # n = 6: (x(1), x(6)) covers 1 − 2/64 = 96.9 %.
    assert stats.summary([6, 5, 4, 3, 2, 1]).median_ci == (1, 6)


def test_summary_drops_missing_and_handles_tiny_samples() -> None:
    result = stats.summary([1.0, None, float("nan"), 3.0])
    assert (result.n, result.dropped, result.mean) == (2, 2, 2.0)
    assert result.sd == pytest.approx(math.sqrt(2))
    one = stats.summary([4])
    assert (one.n, one.mean, one.mean_ci, one.sd) == (1, 4.0, None, None)
    none = stats.summary([])
    assert (none.n, none.mean, none.median) == (0, None, None)
    assert stats.change_from_baseline([(1, None), (None, 2), (1, 3)]).n == 1


# --------------------------------------------------------------------------- adjusted comparison: sleep


def test_adjusted_difference_without_covariates_matches_r_pooled_t_test_on_sleep() -> None:
    """R: t.test(x1, x2, paired = FALSE, var.equal = TRUE)$conf.int on sleep → −3.363874 0.203874
    (group 1 − group 2). OLS with a group indicator alone is that pooled-variance t interval."""
    rows = [{"extra": float(r["extra"]), "group": r["group"]} for r in _rows("sleep.csv")]
    result = stats.adjusted_difference(rows, "extra", "group", [], reference="2")
    assert result.term == "group=1 vs 2"
    assert result.estimate == pytest.approx(-1.58, abs=1e-9)
    assert result.ci == pytest.approx((-3.363874, 0.203874), abs=5e-7)
    assert result.n == 20
    assert "not randomised: unmeasured confounding remains" in result.method


def test_adjusted_difference_with_case_mix() -> None:
    # The outcome is 2·treated + 0.5·age + sex effect exactly, so OLS recovers the difference exactly.
    rows = []
    for i in range(20):
        treated = i % 2
        age = 30 + 3 * i
        sex = "F" if i % 3 else "M"
        rows.append(
            {
                "change": 2 * treated + 0.5 * age + (1 if sex == "M" else 0) + (0.01 * (i % 4)),
                "arm": "ab"[treated],
                "age": age,
                "sex": sex,
                "bmi": 22 + i % 5,
                "baseline": 50 + i % 7,
            }
        )
    rows.append({"change": None, "arm": "a", "age": 40, "sex": "F", "bmi": 25, "baseline": 60})
    result = stats.adjusted_difference(rows, "change", "arm", ["age", "sex", "bmi", "baseline"])
    assert result.term == "arm=b vs a"
    assert result.estimate == pytest.approx(2.0, abs=0.05)
    assert result.ci[0] < result.estimate < result.ci[1]
    assert (result.n, result.dropped) == (20, 1)
    assert "age, sex, bmi, baseline" in result.method
    with pytest.raises(Invalid):
        stats.adjusted_difference([*rows[:4], {**rows[0], "arm": "c"}], "change", "arm", [])


# --------------------------------------------------------------------------- proportions


def test_wilson_matches_r_prop_test_without_continuity_correction() -> None:
    """R: prop.test(6, 52, correct = FALSE) → 95 percent CI 0.05396969 0.22971664 (R bug report PR#2794
    thread, where Lumley explains prop.test inverts the score test: the Wilson interval)."""
    result = stats.wilson(6, 52)
    assert (result.k, result.n) == (6, 52)
    assert result.p == pytest.approx(0.1153846, abs=5e-8)
    assert (result.low, result.high) == pytest.approx((0.05396969, 0.22971664), abs=5e-9)
    assert "Wilson" in result.method


def test_wilson_at_99_percent_matches_r_prop_test() -> None:
    """R: prop.test(319, 1100, conf.level = 0.99, correct = FALSE) → 0.2561 0.3264 (Cross Validated
    question 183225, quoting R's output)."""
    result = stats.wilson(319, 1100, level=0.99)
    assert (result.low, result.high) == pytest.approx((0.2561, 0.3264), abs=5e-5)


def test_wilson_edges() -> None:
    assert stats.wilson(0, 0).p is None
    zero = stats.wilson(0, 20)
    assert zero.low == 0.0 and 0 < zero.high < 1
    full = stats.wilson(20, 20)
    assert full.high == 1.0 and 0 < full.low < 1
    with pytest.raises(Invalid):
        stats.wilson(3, 2)
    with pytest.raises(Invalid):
        stats.wilson(1, 2, level=1.5)


def test_responder_rate_gives_both_denominators() -> None:
    outcomes = [True] * 6 + [False] * 4 + [None] * 5
    result = stats.responder_rate(outcomes)
    assert (result.answered.k, result.answered.n) == (6, 10)
    assert (result.sensitivity.k, result.sensitivity.n) == (6, 15)
    assert (result.missing, result.total) == (5, 15)
    assert result.primary is result.answered
    assert stats.responder_rate(outcomes, missing_as_failure=True).primary.n == 15
    assert "non-responders" in result.method


# --------------------------------------------------------------------------- small cells


def test_suppress_withholds_small_groups() -> None:
    results = {
        "PRP": stats.summary(range(12)),
        "lysate": stats.summary([1, 2, 3]),
        "none": stats.summary([]),
    }
    cells = {c.label: c for c in stats.suppress(results, minimum=5)}
    assert not cells["PRP"].suppressed and cells["PRP"].n == 12 and cells["PRP"].value is results["PRP"]
    assert cells["lysate"].suppressed and cells["lysate"].n is None and cells["lysate"].value is None
    assert not cells["none"].suppressed and cells["none"].n == 0
    counted = stats.suppress({"a": stats.wilson(1, 3)}, n=lambda p: p.n)
    assert counted[0].suppressed
    with pytest.raises(Invalid):
        stats.suppress(results, minimum=0)


# --------------------------------------------------------------------------- properties

values = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=0, max_size=60)


@settings(max_examples=150, deadline=None)
@given(values)
def test_summary_intervals_contain_their_estimates(data) -> None:
    result = stats.summary(data)
    assert result.n == len(data)
    if result.mean_ci is not None:
        assert result.mean_ci[0] - 1e-6 <= result.mean <= result.mean_ci[1] + 1e-6
    if result.median_ci is not None:
        assert result.median_ci[0] <= result.median <= result.median_ci[1]
        assert result.median_ci_coverage >= 0.95


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_proportions_stay_in_unit_interval(kn, level) -> None:
    k, n = kn
    result = stats.wilson(k, n, level)
    if n:
        assert 0 <= result.low <= result.p <= result.high <= 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=60), st.booleans()), min_size=1, max_size=40),
    st.sampled_from(stats.CI_TRANSFORMS),
)
def test_kaplan_meier_is_non_increasing_and_within_its_band(data, ci) -> None:
    durations = [d for d, _ in data]
    events = [e for _, e in data]
    km = stats.kaplan_meier(durations, events, ci=ci)
    survival = [p.survival for p in km.points]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(survival))
    assert all(0 <= s <= 1 for s in survival)
    for point in km.points:
        if point.ci_low is not None:
            assert point.ci_low - 1e-9 <= point.survival <= point.ci_high + 1e-9
    assert sum(p.events for p in km.points) == km.events == sum(events)
    assert sum(p.censored for p in km.points) == len(data) - km.events
    if km.median is not None and km.median_ci[0] is not None:
        assert km.median_ci[0] <= km.median
