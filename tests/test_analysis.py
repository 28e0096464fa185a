"""Cohort analysis over plain de-identified rows (stride.core.analysis).

Every cohort here is a handful of hand-made EpisodeRow records; the expected figures are worked out by
hand in the comments next to them. NPRS (pain 0–10, lower is better) responds by "mcid" (at least 2
points less, or at least 30 % less) and "substantial" (at least 50 % less); FAAM-ADL (0–100, higher is
better) by "mcid" (at least 8 points better); SANE has no responder definition.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.duration.hazard_regression import PHReg

from stride.core import analysis, instruments
from stride.core.analysis import EpisodeRow
from stride.core.errors import Invalid

NPRS = instruments.instrument("nprs")
FAAM_ADL = instruments.instrument("faam-adl")
SANE = instruments.instrument("sane")

POINTS = analysis.timepoints()
FOLLOW_UPS = POINTS[1:]

# The at-risk table's marks in days: round(months × 365.25 / 12).
M3, M6, M12, M24 = 91, 183, 365, 730


def episode(
    key: str,
    baseline: float | None = None,
    answers: Mapping[str, tuple[int, float | None]] | None = None,
    status: Mapping[str, str] | None = None,
    *,
    age: int = 50,
    sex: str = "female",
    bmi: float | None = 25.0,
    retreated: int | None = None,
    surgery: int | None = None,
    ended: int | None = None,
    end_reason: str = "",
    censor: int | None = None,
    **fields,
) -> EpisodeRow:
    """An index episode. ``answers`` maps a follow-up to (days from the index, score); answered time
    points are "completed" unless ``status`` says otherwise, others absent (read as pending). The
    censoring day defaults to the dataset's rule: the episode's end, else the last answered follow-up."""
    answers = dict(answers or {})
    states = dict(status or {})
    scores: dict[str, float | None] = dict.fromkeys(POINTS)
    days: dict[str, int | None] = dict.fromkeys(POINTS)
    if baseline is not None:
        scores["baseline"], days["baseline"] = baseline, -3
        states.setdefault("baseline", "completed")
    for point, (day, value) in answers.items():
        scores[point], days[point] = value, day
        states.setdefault(point, "completed")
    last = max((days[p] for p in FOLLOW_UPS if days[p] is not None), default=None)
    if censor is None:
        censor = ended if ended is not None else max(last or 0, 0)
    values = {
        "key": key,
        "age": age,
        "sex": sex,
        "bmi": bmi,
        "activity_level": "recreational",
        "clinic": "lakeside",
        "condition": "plantar-fasciitis",
        "laterality": "left",
        "procedure_type": "prp-injection",
        "procedure_category": "injection",
        "injectate_kinds": ("prp",),
        "injectates": (),
        "baseline": baseline,
        "scores": scores,
        "status": states,
        "answer_days": days,
        "retreated_days": retreated,
        "surgery_days": surgery,
        "ended_days": ended,
        "end_reason": end_reason,
        "last_answer_days": last,
        "censor_days": censor,
        **fields,
    }
    return EpisodeRow(**values)


def _flow(result: analysis.CohortResult, point: str) -> dict:
    flow = result.point(point).flow.as_dict()
    del flow["timepoint"]
    return flow


def _line(point: analysis.PointResult, definition: str) -> analysis.ResponderLine:
    (line,) = [line for line in point.responders if line.definition == definition]
    return line


# --------------------------------------------------------------------------- completeness


def test_completeness_counts_every_branch_of_the_flow() -> None:
    rows = [
        # answered: an answer day counts even when the stored state still says the window is open
        episode("answer-open", 6, {"1m": (30, 4)}, {"1m": "due"}),
        # answered: a completed follow-up without a score of this instrument (answered, not scored)
        episode("completed-no-score", 6, status={"1m": "completed"}),
        # answered with an unscoreable answer: answered, not scored
        episode("answer-unscored", 6, {"1m": (31, None)}),
        episode("missed", 6, status={"1m": "missed"}),
        episode("open", 6, status={"1m": "due"}),
        episode("pending", 6, status={"1m": "pending"}),
        episode("absent", 6),  # no state at all: read as pending
        episode("withdrawn", 6, status={"1m": "cancelled"}, ended=10, end_reason="withdrawn"),
        episode("new-index", 6, status={"1m": "cancelled"}, ended=12, end_reason="new-index"),
        episode("stopped", 6, status={"1m": "cancelled"}, ended=14, end_reason="stopped"),
        # cancelled with no recorded end reason: counted as stopped by the clinic
        episode("cancelled-no-reason", 6, status={"1m": "cancelled"}),
    ]
    flows = {flow.timepoint: flow for flow in analysis.completeness(rows)}
    assert tuple(flows) == POINTS
    one = flows["1m"]
    # due = answered 3 + missed 1 + open 1 = 5
    # treated 11 = due 5 + not yet due 2 + withdrawn 1 + retreated 1 + stopped 2
    assert one.as_dict() == {
        "timepoint": "1m",
        "treated": 11,
        "due": 5,
        "answered": 3,
        "scored": 1,
        "missed": 1,
        "open": 1,
        "not_yet_due": 2,
        "withdrawn": 1,
        "retreated": 1,
        "stopped": 2,
    }
    # At baseline all 11 answered and scored; at 3 months nothing has a state: all 11 not yet due.
    assert (flows["baseline"].due, flows["baseline"].answered, flows["baseline"].scored) == (11, 11, 11)
    assert (flows["3m"].treated, flows["3m"].due, flows["3m"].not_yet_due) == (11, 0, 11)


def test_completeness_of_no_rows_is_all_zeros() -> None:
    for flow in analysis.completeness([]):
        assert set(flow.as_dict().values()) - {flow.timepoint} == {0}


# --------------------------------------------------------------------------- analyse: NPRS

# NPRS cohort, baseline → 1 month. mcid: improvement ≥ 2 or ≥ 30 %; substantial: ≥ 50 %.
#   p1  8 → 4   Δ −4, 50 %     mcid yes   substantial yes
#   p2  6 → 5   Δ −1, 16.7 %   mcid no    substantial no
#   p3  3 → 2   Δ −1, 33.3 %   mcid yes (by the percentage)   substantial no
#   p4  5, 1 month missed
#   p5  7, 1 month window open (due)
#   p6  4, 1 month pending (not yet due)
#   p7  no baseline → 3        answered, but no change and no responder verdict
#   p8  0 → 0   Δ 0, % undefined: mcid no (change-or-percent says no), substantial cannot say
#   p9  6, withdrew before 1 month (cancelled)
# p1 also answered at 3 months (day 91, score 3); nobody else has a state after 1 month.


def _nprs_cohort() -> list[EpisodeRow]:
    return [
        episode("p1", 8, {"1m": (30, 4), "3m": (91, 3)}),
        episode("p2", 6, {"1m": (29, 5)}),
        episode("p3", 3, {"1m": (33, 2)}),
        episode("p4", 5, status={"1m": "missed"}),
        episode("p5", 7, status={"1m": "due"}),
        episode("p6", 4, status={"1m": "pending"}),
        episode("p7", None, {"1m": (30, 3)}),
        episode("p8", 0, {"1m": (30, 0)}),
        episode("p9", 6, status={"1m": "cancelled", "3m": "cancelled"}, ended=20, end_reason="withdrawn"),
    ]


def test_analyse_describes_the_cohort_and_every_time_point_in_order() -> None:
    result = analysis.analyse("PRP", _nprs_cohort(), NPRS, "total", patients=8)
    assert (result.label, result.n, result.patients, result.minimum, result.withheld) == (
        "PRP",
        9,
        8,
        None,
        False,
    )
    assert (result.instrument, result.instrument_version, result.scale, result.scale_name) == (
        "nprs",
        "1",
        "total",
        "Pain",
    )
    assert (result.higher_is_better, result.mcid) == (False, 2)
    assert tuple(p.timepoint for p in result.points) == POINTS
    assert [(p.name, p.months) for p in result.points[:3]] == [
        ("Baseline", 0),
        ("1 month", 1),
        ("3 months", 3),
    ]
    # Without a patients count, patients = episodes.
    assert analysis.analyse("PRP", _nprs_cohort(), NPRS, "total").patients == 9
    with pytest.raises(Invalid):
        result.point("2m")


def test_analyse_baseline_has_a_score_but_no_change_and_no_responders() -> None:
    baseline = analysis.analyse("PRP", _nprs_cohort(), NPRS, "total").point("baseline")
    # 8 + 6 + 3 + 5 + 7 + 4 + 0 + 6 = 39 over 8 (p7 has none): 4.875
    assert (baseline.score.n, baseline.score.dropped) == (8, 1)
    assert baseline.score.mean == pytest.approx(39 / 8)
    assert baseline.change is None
    assert baseline.responders == ()
    assert baseline.withheld == ()


def test_analyse_one_month_score_and_change() -> None:
    one = analysis.analyse("PRP", _nprs_cohort(), NPRS, "total").point("1m")
    # scores 4, 5, 2, 3, 0 → n 5, mean 14/5 = 2.8, dropped 9 − 5 = 4; median 3
    assert (one.score.n, one.score.dropped) == (5, 4)
    assert one.score.mean == pytest.approx(2.8)
    assert one.score.median == 3
    # changes (pairs with both values): −4, −1, −1, 0 → n 4, mean −1.5, dropped 5; median −1
    assert (one.change.n, one.change.dropped) == (4, 5)
    assert one.change.mean == pytest.approx(-1.5)
    assert one.change.median == -1
    # SD of −4, −1, −1, 0: deviations −2.5, 0.5, 0.5, 1.5 → squares 6.25 + 0.25 + 0.25 + 2.25 = 9, /3 = 3
    assert one.change.sd == pytest.approx(math.sqrt(3))


def test_analyse_responder_lines_for_every_nprs_definition_default_first() -> None:
    one = analysis.analyse("PRP", _nprs_cohort(), NPRS, "total").point("1m")
    assert [line.definition for line in one.responders] == ["mcid", "substantial"]
    assert {line.version for line in one.responders} == {"nprs v1"}
    assert one.responders[0].description == NPRS.responder.definitions["mcid"].description
    # Due at 1 month: p1 p2 p3 p8 (answered with a baseline), p7 (answered, no baseline), p4 (missed),
    # p5 (open) = 7. Not due: p6 (pending), p9 (cancelled).
    mcid = _line(one, "mcid").rate
    # mcid: p1 yes, p3 yes, p2 no, p8 no; p4 p5 p7 no verdict → 2 of 4 answered; 2 of 7 due
    assert (mcid.answered.k, mcid.answered.n, mcid.answered.p) == (2, 4, 0.5)
    assert (mcid.sensitivity.k, mcid.sensitivity.n) == (2, 7)
    assert mcid.sensitivity.p == pytest.approx(2 / 7)
    assert (mcid.missing, mcid.total) == (3, 7)
    assert mcid.answered.low < 0.5 < mcid.answered.high
    # substantial: p1 yes, p2 no, p3 no (33 % < 50 %); p8 cannot say (baseline 0), p4 p5 p7 none
    # → 1 of 3 with a verdict; 1 of 7 due, 4 without a verdict (p8 answered, yet counts among them)
    substantial = _line(one, "substantial").rate
    assert (substantial.answered.k, substantial.answered.n) == (1, 3)
    assert (substantial.sensitivity.k, substantial.sensitivity.n) == (1, 7)
    assert (substantial.missing, substantial.total) == (4, 7)
    # The report leads with the rate among those who answered; the missing ones are shown beside it.
    assert mcid.primary is mcid.answered


def test_analyse_only_due_rows_enter_the_responder_denominators() -> None:
    result = analysis.analyse("PRP", _nprs_cohort(), NPRS, "total")
    flow = result.point("1m").flow
    assert flow.due == _line(result.point("1m"), "mcid").rate.total == 7
    # 3 months: only p1 (day 91, 8 → 3: Δ −5, 62.5 %) is due; p9 is cancelled, the rest pending.
    three = result.point("3m")
    assert (three.score.n, three.score.mean, three.change.mean) == (1, 3.0, -5.0)
    for definition in ("mcid", "substantial"):
        rate = _line(three, definition).rate
        assert (rate.answered.k, rate.answered.n, rate.total, rate.missing) == (1, 1, 1, 0)
    # 6 months: nobody due; the rate has no denominator at all.
    six = result.point("6m")
    assert six.flow.due == 0 and six.score.n == 0 and six.change.n == 0
    rate = _line(six, "mcid").rate
    assert (rate.total, rate.answered.n, rate.answered.p, rate.sensitivity.p) == (0, 0, None, None)


def test_analyse_flow_identities_at_one_month() -> None:
    flow = _flow(analysis.analyse("PRP", _nprs_cohort(), NPRS, "total"), "1m")
    # answered p1 p2 p3 p7 p8 = 5 (all scored); missed p4; open p5; pending p6; withdrawn p9
    assert flow == {
        "treated": 9,
        "due": 7,
        "answered": 5,
        "scored": 5,
        "missed": 1,
        "open": 1,
        "not_yet_due": 1,
        "withdrawn": 1,
        "retreated": 0,
        "stopped": 0,
    }


# --------------------------------------------------------------------------- analyse: FAAM-ADL and SANE


def test_analyse_faam_adl_has_its_single_definition_higher_is_better() -> None:
    rows = [
        episode("f1", 50, {"1m": (30, 58)}),  # +8: exactly the MCID → responder
        episode("f2", 50, {"1m": (30, 57.5)}),  # +7.5: not
        episode("f3", 60, {"1m": (30, 50)}),  # −10: worse, not
        episode("f4", 40, {"1m": (30, 70)}),  # +30: responder
        episode("f5", 45, status={"1m": "missed"}),
    ]
    result = analysis.analyse("FAAM", rows, FAAM_ADL, "total")
    assert (result.higher_is_better, result.mcid, result.instrument) == (True, 8, "faam-adl")
    one = result.point("1m")
    # scores 58 + 57.5 + 50 + 70 = 235.5 / 4 = 58.875; changes 8 + 7.5 − 10 + 30 = 35.5 / 4 = 8.875
    assert one.score.mean == pytest.approx(58.875)
    assert one.change.mean == pytest.approx(8.875)
    (line,) = one.responders
    assert (line.definition, line.version) == ("mcid", "faam-adl v1")
    # 2 of 4 answered; 2 of 5 due (f5 missed counts as a non-responder in the sensitivity rate)
    assert (line.rate.answered.k, line.rate.answered.n) == (2, 4)
    assert (line.rate.sensitivity.k, line.rate.sensitivity.n) == (2, 5)


def test_analyse_sane_has_no_responder_lines_and_no_loss_of_response() -> None:
    rows = [episode(f"s{i}", 50, {"1m": (30, 60 + i), "3m": (91, 40)}) for i in range(6)]
    result = analysis.analyse("SANE", rows, SANE, "total", event="loss-of-response")
    for point in result.points:
        assert point.responders == ()
    # Scores are still summarised: 60..65 → mean 62.5; change +12.5.
    assert result.point("1m").score.mean == pytest.approx(62.5)
    assert result.point("1m").change.mean == pytest.approx(12.5)
    durability = result.durability
    assert durability.event == "loss-of-response"
    assert durability.km is None and durability.at_risk == ()
    assert "no responder definition" in durability.note and "SANE" in durability.note
    # The other events can still be studied for SANE.
    assert analysis.analyse("SANE", rows, SANE, "total").durability.km is not None


def test_loss_of_response_method_for_sane_does_not_claim_patients_never_responded() -> None:
    rows = [episode(f"s{i}", 50, {"1m": (30, 90)}) for i in range(6)]
    durability = analysis.analyse("SANE", rows, SANE, "total", event="loss-of-response").durability
    assert "never responded" not in durability.method
    assert "definition ''" not in durability.method


# --------------------------------------------------------------------------- durability: events


def _event_rows() -> list[EpisodeRow]:
    return [
        # re-treated (a new index) on day 120, which also ended the episode there
        episode("a", 6, {"1m": (30, 4)}, retreated=120, ended=120, end_reason="new-index"),
        # withdrew on day 90: censored at the end of the episode, not at the last answer (day 30)
        episode("b", 6, {"1m": (30, 4)}, ended=90, end_reason="withdrawn"),
        # still followed, last answer on day 182
        episode("c", 6, {"1m": (30, 4), "6m": (182, 3)}),
        # never answered, still followed: censored at day 0
        episode("d", 6),
        # operated on day 250, last heard of on day 400
        episode("e", 6, {"1m": (30, 4), "12m": (400, 3)}, surgery=250),
        # a negative censoring day (a baseline-only record) is read as 0
        episode("f", 6, censor=-5),
    ]


def test_durability_to_retreatment() -> None:
    durations, events, excluded, text = analysis.durability(_event_rows(), NPRS, "total", "retreatment")
    assert durations == [120.0, 90.0, 182.0, 0.0, 400.0, 0.0]
    assert events == [True, False, False, False, False, False]
    assert excluded == 0
    assert "re-treatment" in text and "censored" in text


def test_durability_to_surgery() -> None:
    durations, events, excluded, _ = analysis.durability(_event_rows(), NPRS, "total", "surgery")
    # a was re-treated, not operated on: censored where its episode ended (day 120)
    assert durations == [120.0, 90.0, 182.0, 0.0, 250.0, 0.0]
    assert events == [False, False, False, False, True, False]
    assert excluded == 0


def test_durability_refuses_an_unknown_event() -> None:
    with pytest.raises(Invalid) as caught:
        analysis.durability(_event_rows(), NPRS, "total", "death")
    assert caught.value.field == "event"
    with pytest.raises(Invalid):
        analysis.analyse("X", _event_rows(), NPRS, "total", event="death")


# NPRS from a baseline of 8: responder by mcid when the score is ≤ 6 (8 − 6 = 2 points).
LOSS_ROWS = [
    # responds at 30 and 91, stops at 182: loss on day 182
    episode("r1", 8, {"1m": (30, 4), "3m": (91, 5), "6m": (182, 8)}),
    # no response at 30 (not at risk yet), responds at 91 and 182, 12m unanswered: censored at 182
    episode("r2", 8, {"1m": (30, 7), "3m": (91, 3), "6m": (182, 3)}, status={"12m": "missed"}),
    # responds throughout, but re-treated on day 150 (after the first response): loss on day 150
    episode("r3", 8, {"1m": (30, 2), "3m": (91, 2), "6m": (182, 2)}, retreated=150),
    # responds at 30, non-responding answer at 91, re-treated on day 60: the earlier, 60, is the loss
    episode("r4", 8, {"1m": (30, 2), "3m": (91, 9)}, retreated=60),
    # responds at 30, non-responding answer at 91, re-treated later on day 100: loss on day 91
    episode("r5", 8, {"1m": (30, 2), "3m": (91, 9)}, retreated=100),
    # never responds: not at risk
    episode("r6", 8, {"1m": (30, 9), "3m": (91, 8)}),
    # never answers: not at risk
    episode("r7", 8),
    # responds at 30; an unscoreable answer at 91 says nothing; responds at 182: censored at 182
    episode("r8", 8, {"1m": (30, 4), "3m": (91, None), "6m": (182, 5)}),
    # re-treated on day 20, before the first response (day 30): not a loss; censored at 30
    episode("r9", 8, {"1m": (30, 2)}, retreated=20),
    # no baseline: no verdict at any answer, so never a responder
    episode("r10", None, {"1m": (30, 2)}),
    # responds at 30, the 3-month follow-up missed, then no longer at 182: loss on day 182
    episode("r11", 8, {"1m": (30, 4), "6m": (182, 7)}, status={"3m": "missed"}),
]


def test_durability_of_response() -> None:
    durations, events, excluded, text = analysis.durability(LOSS_ROWS, NPRS, "total", "loss-of-response")
    # Time counts from each patient's first responding answer.
    assert list(zip(durations, events, strict=True)) == [
        (152.0, True),  # r1: 182 − 30
        (91.0, False),  # r2: 182 − 91
        (120.0, True),  # r3: 150 − 30
        (30.0, True),  # r4: 60 − 30
        (61.0, True),  # r5: 91 − 30
        (152.0, False),  # r8: 182 − 30
        (0.0, False),  # r9: 30 − 30
        (152.0, True),  # r11: 182 − 30
    ]
    assert excluded == 3  # r6, r7, r10
    assert "'mcid' of nprs v1" in text
    assert "never responded are not at risk" in text


def test_analyse_loss_of_response_curve_and_excluded_count() -> None:
    result = analysis.analyse("PRP", LOSS_ROWS, NPRS, "total", event="loss-of-response")
    durability = result.durability
    assert durability.excluded == 3 and durability.note == ""
    km = durability.km
    # 8 at risk, days from the first response: 0+, 30, 61, 91+, 120, 152 ×2 events, 152+.
    # S(30) = 6/7 (7 at risk after the censoring at 0); S(61) = 6/7 · 5/6 = 5/7;
    # 91+ leaves 4 at risk: S(120) = 5/7 · 3/4 = 15/28; S(152) = 15/28 · (1 − 2/3) = 5/28.
    assert (km.n, km.events) == (8, 5)
    assert km.survival_at(30) == pytest.approx(6 / 7)
    assert km.survival_at(61) == pytest.approx(5 / 7)
    assert km.survival_at(120) == pytest.approx(15 / 28)
    assert km.survival_at(152) == pytest.approx(5 / 28)
    assert km.median == 152  # 15/28 > 0.5 ≥ 5/28
    assert durability.origin == "the first response"
    assert "Kaplan–Meier" in durability.method and "never responded" in durability.method


# --------------------------------------------------------------------------- durability: Kaplan–Meier


def test_analyse_kaplan_meier_median_and_at_risk_rows_by_hand() -> None:
    rows = [
        episode("a", 8, retreated=100),
        episode("b", 8, retreated=200),
        episode("c", 8, {"6m": (150, 3)}),  # event-free when last heard of on day 150
        episode("d", 8, retreated=300),
    ]
    durability = analysis.analyse("X", rows, NPRS, "total").durability
    km = durability.km
    # S(100) = 3/4; 150 censored; S(200) = 3/4 · 1/2 = 3/8 ≤ 0.5 → median 200; S(300) = 0
    assert [(p.time, p.at_risk, p.events, p.censored) for p in km.points] == [
        (0, 4, 0, 0),
        (100, 4, 1, 0),
        (150, 3, 0, 1),
        (200, 2, 1, 0),
        (300, 1, 1, 0),
    ]
    assert [p.survival for p in km.points] == pytest.approx([1, 0.75, 0.75, 0.375, 0])
    assert km.median == 200
    assert (km.n, km.events) == (4, 3)
    # The at-risk table: 0, 3 and 6 months (91 and 183 days) fit within the longest follow-up (300);
    # 12 months (365) does not.
    assert [(r.time, r.at_risk, r.events, r.censored) for r in durability.at_risk] == [
        (0, 4, 0, 0),
        (M3, 4, 0, 0),
        (M6, 2, 1, 1),
    ]
    assert durability.at_risk[2].survival == pytest.approx(0.75)
    assert durability.excluded == 0
    assert durability.method.endswith(km.method)


def test_kaplan_meier_median_when_the_curve_reaches_exactly_one_half() -> None:
    # Re-treated on days 30, 60, …, 180, nobody censored: S(90) = 3/6 = 0.5, the first time S ≤ 0.5.
    rows = [episode(f"r{i}", 8, retreated=30 * i) for i in range(1, 7)]
    km = analysis.analyse("X", rows, NPRS, "total").durability.km
    assert km.survival_at(90) == pytest.approx(0.5)
    # Flat at exactly one half from day 90 to the next event on day 120: R's survival package reports
    # the midpoint of that stretch, 105.
    assert km.median == 105


# --------------------------------------------------------------------------- small cells


# Eight patients, all baseline 8. 1 month: three answered (4, 4, 7), two missed, one open, two pending.
# 6 months: three missed, the rest pending. Nothing else has a state.
def _small_cohort() -> list[EpisodeRow]:
    rows = [
        episode("s0", 8, {"1m": (30, 4)}, {"6m": "missed"}),
        episode("s1", 8, {"1m": (30, 4)}, {"6m": "missed"}),
        episode("s2", 8, {"1m": (30, 7)}, {"6m": "missed"}),
        episode("s3", 8, status={"1m": "missed"}),
        episode("s4", 8, status={"1m": "missed"}),
        episode("s5", 8, status={"1m": "due"}),
        episode("s6", 8, status={"1m": "pending"}),
        episode("s7", 8, status={"1m": "pending"}),
    ]
    return rows


def test_hide_small_withholds_a_cohort_under_the_minimum_entirely() -> None:
    rows = _small_cohort()[:4]
    result = analysis.analyse("tiny", rows, NPRS, "total", minimum=5, patients=4)
    assert result.withheld is True
    assert (result.n, result.patients, result.points, result.minimum) == (0, 0, (), 5)
    assert (result.durability.km, result.durability.at_risk, result.durability.excluded) == (None, (), 0)
    assert result.durability.method == "" and result.durability.event == "retreatment"
    # The label and instrument still say what was asked.
    assert (result.label, result.instrument) == ("tiny", "nprs")


def test_hide_small_keeps_an_empty_cohort() -> None:
    result = analysis.analyse("none", [], NPRS, "total", minimum=5)
    assert result.withheld is False and result.n == 0
    assert all(p.withheld == () for p in result.points)
    assert result.point("1m").flow.treated == 0


def test_hide_small_withholds_small_summaries_rates_and_flow_counts() -> None:
    plain = analysis.analyse("PRP", _small_cohort(), NPRS, "total")
    hidden = analysis.analyse("PRP", _small_cohort(), NPRS, "total", minimum=5)
    assert hidden == analysis.hide_small(plain, 5)
    assert (hidden.n, hidden.minimum, hidden.withheld) == (8, 5, False)
    # Baseline rests on 8: shown as it was.
    assert hidden.point("baseline").score == plain.point("baseline").score
    assert hidden.point("baseline").withheld == ()
    # 1 month: score and change on 3, each rate on 3 answered (of 6 due): all withheld, and named.
    one = hidden.point("1m")
    assert (one.score, one.change) == (None, None)
    assert [line.rate for line in one.responders] == [None, None]
    assert [line.definition for line in one.responders] == ["mcid", "substantial"]
    assert one.withheld == ("score", "change", "responders:mcid", "responders:substantial")
    # Flow: treated 8 and due 6 are kept; 3 answered/scored, 2 missed, 1 open, 2 not yet due withheld;
    # zeros kept.
    assert _flow(hidden, "1m") == {
        "treated": 8,
        "due": 6,
        "answered": None,
        "scored": None,
        "missed": None,
        "open": None,
        "not_yet_due": None,
        "withdrawn": 0,
        "retreated": 0,
        "stopped": 0,
    }
    assert _flow(plain, "1m")["answered"] == 3
    # 6 months: nobody answered (0 is kept) but 3 were due: the rates rest on 3 and are withheld,
    # while the empty score and change summaries (n = 0) stay.
    six = hidden.point("6m")
    assert six.score.n == 0 and six.change.n == 0
    assert [line.rate for line in six.responders] == [None, None]
    assert six.withheld == ("responders:mcid", "responders:substantial")
    # 3 months: nothing due at all: every figure is a 0 and is kept.
    three = hidden.point("3m")
    assert three.withheld == ()
    assert [line.rate.total for line in three.responders] == [0, 0]


def test_hide_small_with_minimum_one_withholds_nothing() -> None:
    plain = analysis.analyse("PRP", _small_cohort(), NPRS, "total")
    shown = analysis.hide_small(plain, 1)
    assert shown.points == plain.points
    assert shown.durability.km == plain.durability.km
    assert shown.minimum == 1


def test_hide_small_refuses_a_minimum_under_one() -> None:
    plain = analysis.analyse("PRP", _small_cohort(), NPRS, "total")
    for minimum in (0, -3):
        with pytest.raises(Invalid) as caught:
            analysis.hide_small(plain, minimum)
        assert caught.value.field == "minimum"
    with pytest.raises(Invalid):
        analysis.analyse("PRP", _small_cohort(), NPRS, "total", minimum=0)


# Ten patients: four censored on day 50, re-treatments on days 100, 200, 300 and 300, two censored at 900.
# At risk just before: 50 → 10, 100 → 6, 200 → 5, 300 → 4, 900 → 2.
# S(100) = 5/6, S(200) = 5/6 · 4/5 = 2/3, S(300) = 2/3 · 2/4 = 1/3 → median 300.
def _tail_cohort() -> list[EpisodeRow]:
    return (
        [episode(f"c{i}", 8, censor=50) for i in range(4)]
        + [episode(f"e{i}", 8, retreated=day) for i, day in enumerate((100, 200, 300, 300))]
        + [episode(f"l{i}", 8, censor=900) for i in range(2)]
    )


def test_hide_small_stops_the_curve_where_few_remain_at_risk() -> None:
    plain = analysis.analyse("X", _tail_cohort(), NPRS, "total").durability
    assert [(p.time, p.at_risk) for p in plain.km.points] == [
        (0, 10),
        (50, 10),
        (100, 6),
        (200, 5),
        (300, 4),
        (900, 2),
    ]
    assert plain.km.median == 300
    # Longest follow-up 900 days: marks at 0, 3, 6, 12 and 24 months (730 ≤ 901; 36 months is 1096).
    # At risk: 10; first time ≥ 91 is 100 → 6; ≥ 183 is 200 → 5; ≥ 365 is 900 → 2; ≥ 730 → 2.
    assert [(r.time, r.at_risk) for r in plain.at_risk] == [(0, 10), (M3, 6), (M6, 5), (M12, 2), (M24, 2)]
    hidden = analysis.analyse("X", _tail_cohort(), NPRS, "total", minimum=5).durability
    assert [p.time for p in hidden.km.points] == [0, 50, 100, 200]
    assert [r.at_risk for r in hidden.at_risk] == [10, 6, 5, -1, -1]
    assert "at least 5 patients remain at risk" in hidden.note
    # A stricter minimum cuts sooner (6 at risk at 100 is still kept with 6, not with 7).
    stricter = analysis.analyse("X", _tail_cohort(), NPRS, "total", minimum=6).durability
    assert [p.time for p in stricter.km.points] == [0, 50, 100]
    assert [r.at_risk for r in stricter.at_risk] == [10, 6, -1, -1, -1]


def test_hide_small_time_zero_survives_even_when_everyone_is_censored_there() -> None:
    # Six patients never heard of again (censored at day 0) and nobody later: the curve keeps its start.
    rows = [episode(f"z{i}", 8) for i in range(6)]
    km = analysis.analyse("X", rows, NPRS, "total", minimum=5).durability.km
    assert [(p.time, p.survival) for p in km.points] == [(0, 1.0)]


def test_hide_small_drops_a_loss_of_response_curve_on_few_responders() -> None:
    # Six patients, two of them respond (and are the only ones at risk): no curve under a minimum of 5.
    rows = [episode(f"r{i}", 8, {"1m": (30, 2), "3m": (91, 9)}) for i in range(2)] + [
        episode(f"n{i}", 8, {"1m": (30, 9)}) for i in range(4)
    ]
    plain = analysis.analyse("X", rows, NPRS, "total", event="loss-of-response")
    assert plain.durability.km.n == 2
    hidden = analysis.hide_small(plain, 5).durability
    assert hidden.km is None and hidden.at_risk == ()


def test_hide_small_does_not_reveal_a_median_from_the_withheld_tail() -> None:
    km = analysis.analyse("X", _tail_cohort(), NPRS, "total", minimum=5).durability.km
    shown_until = km.points[-1].time  # 200: the last time with at least 5 at risk
    assert km.median is None or km.median <= shown_until


def test_hide_small_withholds_a_small_count_of_never_responders() -> None:
    rows = [episode(f"r{i}", 8, {"1m": (30, 2)}) for i in range(6)] + [
        episode(f"n{i}", 8, {"1m": (30, 8)}) for i in range(2)
    ]
    durability = analysis.analyse("X", rows, NPRS, "total", event="loss-of-response", minimum=5).durability
    assert durability.km is not None  # six responders at risk: the curve itself may be shown
    assert durability.excluded is None  # 2 never responded: withheld
    assert "2 patient(s)" not in durability.method


# --------------------------------------------------------------------------- Table 1


def _table_groups() -> dict[str, list[EpisodeRow]]:
    a = [
        episode("a1", 6, age=40, sex="female", bmi=20.0, injectate_kinds=("prp", "steroid")),
        episode("a2", 7, age=50, sex="female", bmi=30.0, activity_level=""),
        episode("a3", 8, age=60, sex="male", bmi=None, procedure_type=""),
        episode("a4", None, age=70, sex="female", bmi=25.0, injectate_kinds=()),
    ]
    b = [
        episode("b1", 5, age=30, sex="male", bmi=22.0),
        episode("b2", 9, age=34, sex="male", bmi=None),
    ]
    return {"A": a, "B": b}


def _table(rows: tuple[analysis.Table1Row, ...]) -> dict[tuple[str, str], analysis.Table1Row]:
    return {(row.characteristic, row.level): row for row in rows}


def test_table_one_counts_and_summaries() -> None:
    table = _table(analysis.table_one(_table_groups()))
    count = table["Index treatments", ""]
    assert count.kind == "count"
    assert [c.count for c in count.cells] == [4, 2]
    assert [c.text for c in count.cells] == ["4", "2"]
    age = table["Age at index (years)", ""]
    a, b = age.cells
    # A: 40 50 60 70 → mean 55, SD √((225 + 25 + 25 + 225)/3) = √(500/3) = 12.91;
    # quartiles (linear interpolation) 40 + 0.75·10 = 47.5 and 60 + 0.25·10 = 62.5
    assert (a.n, a.mean, a.median, a.q1, a.q3) == (4, 55.0, 55.0, 47.5, 62.5)
    assert a.sd == pytest.approx(math.sqrt(500 / 3))
    assert a.text == "55.0 (12.9); 55.0 [47.5–62.5]"
    # B: 30 34 → mean 32, SD √8 = 2.83, quartiles 31 and 33
    assert b.text == "32.0 (2.8); 32.0 [31.0–33.0]"
    bmi = table["BMI (kg/m²)", ""]
    # A: 20 30 25 (one missing) → mean 25, SD 5, quartiles 22.5 and 27.5; B: 22 (one missing), no SD
    assert [(c.n, c.missing) for c in bmi.cells] == [(3, 1), (1, 1)]
    assert bmi.cells[0].text == "25.0 (5.0); 25.0 [22.5–27.5]"
    assert bmi.cells[1].sd is None
    assert bmi.cells[1].text == "22.0; 22.0 [22.0–22.0]"
    baseline = table["Baseline score", ""]
    assert [(c.n, c.missing, c.mean) for c in baseline.cells] == [(3, 1, 7.0), (2, 0, 7.0)]


def test_table_one_categories_with_percent_of_the_cohort() -> None:
    table = _table(analysis.table_one(_table_groups()))
    # Sex: A 3 female of 4 (75 %), 1 male (25 %); B 0 female, 2 male (100 %).
    female, male = table["Sex", "female"], table["Sex", "male"]
    assert [(c.count, c.percent) for c in female.cells] == [(3, 75.0), (0, 0.0)]
    assert [c.text for c in female.cells] == ["3 (75 %)", "0 (0 %)"]
    assert [c.text for c in male.cells] == ["1 (25 %)", "2 (100 %)"]
    # Three of each over both cohorts: a tie, broken by name.
    sexes = [row.level for row in analysis.table_one(_table_groups()) if row.characteristic == "Sex"]
    assert sexes == ["female", "male"]
    # A patient may have several injectates (counted in each); none at all is a level of its own.
    assert [c.count for c in table["Injectate", "prp"].cells] == [3, 2]
    assert [c.count for c in table["Injectate", "steroid"].cells] == [1, 0]
    assert [c.count for c in table["Injectate", "none"].cells] == [1, 0]
    assert [c.count for c in table["Activity level", "not recorded"].cells] == [1, 0]
    assert [c.count for c in table["Index procedure", "follow-up started from a date"].cells] == [1, 0]
    assert {row.kind for row in table.values() if row.level} == {"category"}


def test_table_one_levels_go_by_total_count_before_name() -> None:
    # male: 2 + 1 = 3, female: 0 + 2 = 2, other: 1 + 1 = 2 → male, then female and other by name.
    groups = {
        "A": [episode("x1", 5, sex="male"), episode("x2", 5, sex="male"), episode("x3", 5, sex="other")],
        "B": [episode("y1", 5, sex="male"), episode("y2", 5, sex="female"), episode("y3", 5, sex="female")],
    }
    groups["B"].append(episode("y4", 5, sex="other"))
    levels = [row.level for row in analysis.table_one(groups) if row.characteristic == "Sex"]
    assert levels == ["male", "female", "other"]


def test_table_one_labels_name_the_codes() -> None:
    labels = {
        "sex": {"female": "Female", "male": "Male"},
        "condition": {"plantar-fasciitis": "Plantar fasciitis"},
    }
    table = _table(analysis.table_one(_table_groups(), labels=labels))
    assert ("Sex", "Female") in table and ("Sex", "female") not in table
    assert [c.count for c in table["Sex", "Male"].cells] == [1, 2]
    assert [c.count for c in table["Condition", "Plantar fasciitis"].cells] == [4, 2]
    # A code without a name keeps its code.
    assert ("Side", "left") in table


def test_table_one_withholds_small_cells_with_a_minimum() -> None:
    table = _table(analysis.table_one(_table_groups(), minimum=2))
    # Sex male in A is 1 patient: withheld; 3, 2 and 0 are shown.
    male_a, male_b = table["Sex", "male"].cells
    assert male_a.hidden and male_a.count is None and male_a.text == "withheld"
    assert male_a.n == 4
    assert male_b.text == "2 (100 %)"
    assert table["Sex", "female"].cells[1].text == "0 (0 %)"
    # BMI of B rests on one patient: withheld (its missing count stays); A's on 3: shown.
    bmi_a, bmi_b = table["BMI (kg/m²)", ""].cells
    assert bmi_b.hidden and bmi_b.n is None and bmi_b.mean is None and bmi_b.missing == 1
    assert not bmi_a.hidden and bmi_a.mean == 25.0
    # Without a minimum nothing is hidden.
    assert not any(c.hidden for row in analysis.table_one(_table_groups()) for c in row.cells)


def test_table_one_of_an_empty_cohort() -> None:
    table = _table(analysis.table_one({"A": _table_groups()["A"], "empty": []}))
    assert table["Index treatments", ""].cells[1].count == 0
    empty_age = table["Age at index (years)", ""].cells[1]
    assert (empty_age.n, empty_age.mean, empty_age.text) == (0, None, "–")
    female = table["Sex", "female"].cells[1]
    assert (female.count, female.percent, female.text) == (0, None, "0")


# --------------------------------------------------------------------------- compare


# Change from baseline at 6 months. A: 8 → 4 (−4), 6 → 5 (−1), 7 → unanswered; B: 8 → 2 (−6),
# 5 → 1 (−4), 9 → 3 (−6). "s" is in both cohorts (8 → 0, −8) and must be left out of both.
def _compare_groups() -> dict[str, list[EpisodeRow]]:
    shared = episode("s", 8, {"6m": (182, 0)})
    return {
        "A": [
            episode("a1", 8, {"6m": (182, 4)}),
            episode("a2", 6, {"6m": (180, 5)}),
            episode("a3", 7, status={"6m": "missed"}),
            shared,
        ],
        "B": [
            episode("b1", 8, {"6m": (182, 2)}, retreated=300),
            episode("b2", 5, {"6m": (182, 1)}),
            episode("b3", 9, {"6m": (190, 3)}),
            shared,
        ],
    }


def test_compare_unadjusted_difference_is_the_difference_of_mean_changes() -> None:
    result = analysis.compare(_compare_groups(), NPRS, "total", covariates=())
    assert (result.labels, result.reference, result.timepoint, result.event) == (
        ("A", "B"),
        "A",
        "6m",
        "retreatment",
    )
    (adjusted,) = result.adjusted
    # A: (−4 − 1)/2 = −2.5; B: (−6 − 4 − 6)/3 = −16/3; B − A = −16/3 + 5/2 = −17/6 = −2.8333
    assert adjusted.estimate == pytest.approx(-17 / 6, abs=1e-9)
    assert adjusted.term == "group=B vs A"
    assert (adjusted.n, adjusted.dropped) == (5, 1)  # a3 has no change; s is left out entirely
    assert adjusted.ci[0] < adjusted.estimate < adjusted.ci[1]
    assert result.shared == 1
    assert any("1 index treatment(s) belong to more than one cohort" in note for note in result.notes)


def test_compare_leaves_shared_episodes_out_of_every_test() -> None:
    groups = _compare_groups()
    # With s counted only in B it moves B's mean: (−6 − 4 − 6 − 8)/4 = −6 → B − A = −3.5.
    groups_once = {"A": groups["A"][:3], "B": groups["B"]}
    once = analysis.compare(groups_once, NPRS, "total", covariates=())
    assert once.shared == 0 and once.adjusted[0].estimate == pytest.approx(-3.5)
    assert not any("more than one cohort" in note for note in once.notes)
    # With s in both cohorts it is left out of both: A −2.5 and B −16/3 again. (Kept in both it would
    # give A (−4 − 1 − 8)/3 = −13/3 and B −6: −5/3.)
    twice = analysis.compare(groups, NPRS, "total", covariates=())
    assert twice.adjusted[0].estimate == pytest.approx(-17 / 6)


def test_compare_adjusts_for_baseline_exactly() -> None:
    # change = −0.5·baseline − 2·[B] exactly. A baselines 4 6 8 10 → changes −2 −3 −4 −5 (mean −3.5);
    # B baselines 6 8 10 → −5 −6 −7 (mean −6). Unadjusted B − A = −2.5; adjusted for baseline = −2.
    a = [episode(f"a{b}", b, {"6m": (182, b - (b / 2))}) for b in (4, 6, 8, 10)]
    b = [episode(f"b{b}", b, {"6m": (182, b - (b / 2 + 2))}) for b in (6, 8, 10)]
    plain = analysis.compare({"A": a, "B": b}, NPRS, "total", covariates=())
    adjusted = analysis.compare({"A": a, "B": b}, NPRS, "total", covariates=("baseline",))
    assert plain.adjusted[0].estimate == pytest.approx(-2.5, abs=1e-9)
    assert adjusted.adjusted[0].estimate == pytest.approx(-2.0, abs=1e-9)
    assert "baseline" in adjusted.adjusted[0].method


def test_compare_three_cohorts_each_against_the_first() -> None:
    groups = {
        "A": [episode("a1", 8, {"6m": (182, 6)}), episode("a2", 8, {"6m": (182, 4)})],  # −2, −4: −3
        "B": [episode("b1", 8, {"6m": (182, 2)}), episode("b2", 8, {"6m": (182, 4)})],  # −6, −4: −5
        "C": [episode("c1", 8, {"6m": (182, 8)}), episode("c2", 8, {"6m": (182, 7)})],  # 0, −1: −0.5
    }
    result = analysis.compare(groups, NPRS, "total", covariates=())
    assert result.reference == "A"
    assert [a.term for a in result.adjusted] == ["group=B vs A", "group=C vs A"]
    assert [a.estimate for a in result.adjusted] == pytest.approx([-2.0, 2.5])
    assert [a.n for a in result.adjusted] == [4, 4]


def test_compare_refuses_what_it_cannot_compare() -> None:
    groups = _compare_groups()
    with pytest.raises(Invalid) as caught:
        analysis.compare({"A": groups["A"]}, NPRS, "total")
    assert caught.value.field == "cohorts"
    for point in ("baseline", "5m", ""):
        with pytest.raises(Invalid) as caught:
            analysis.compare(groups, NPRS, "total", timepoint=point)
        assert caught.value.field == "timepoint"
    with pytest.raises(Invalid) as caught:
        analysis.compare(groups, NPRS, "total", covariates=("age", "weight"))
    assert caught.value.field == "covariates"
    with pytest.raises(Invalid):
        analysis.compare(groups, NPRS, "total", event="death")


def test_compare_refuses_a_cox_model_on_too_few_events() -> None:
    # 1 re-treatment (b1) among the 6 unshared rows; one cohort term + four case-mix terms = 5 terms.
    result = analysis.compare(_compare_groups(), NPRS, "total")
    assert result.cox is None
    assert any(note.startswith("No Cox model: 1 event(s) for 5 model terms") for note in result.notes)
    # The log-rank test needs only one event: 1 event among 6.
    assert (result.logrank.n, result.logrank.events, result.logrank.groups) == (6, 1, ("A", "B"))
    # Unadjusted: one term, still only 1 event (< 10).
    plain = analysis.compare(_compare_groups(), NPRS, "total", covariates=())
    assert any("1 event(s) for 1 model terms" in note for note in plain.notes)


def test_compare_without_any_event_has_no_log_rank() -> None:
    groups = {"A": _compare_groups()["A"][:3], "B": _compare_groups()["B"][1:3]}
    result = analysis.compare(groups, NPRS, "total", covariates=())
    assert result.logrank is None and result.cox is None
    assert any(note.startswith("No log-rank test") for note in result.notes)


def test_compare_has_no_cox_model_for_loss_of_response() -> None:
    result = analysis.compare(
        {"A": LOSS_ROWS[:6], "B": LOSS_ROWS[6:]}, NPRS, "total", event="loss-of-response"
    )
    assert result.cox is None
    assert any(note.startswith("No Cox model for loss of response") for note in result.notes)
    # Log-rank over the responders only: A r1 r2 r3 r4 r5 (r6 never responds); B r8 r9 r11.
    assert (result.logrank.n, result.logrank.events) == (8, 5)


def _survival_groups(seed: int, per_group: int, effect: float) -> dict[str, list[EpisodeRow]]:
    """Two cohorts with exponential times to re-treatment; B's hazard is exp(effect) times A's."""
    rng = random.Random(seed)
    groups: dict[str, list[EpisodeRow]] = {"A": [], "B": []}
    for label, log_hr in (("A", 0.0), ("B", effect)):
        for i in range(per_group):
            age = rng.randint(25, 80)
            sex = rng.choice(["female", "male"])
            bmi = round(rng.uniform(19, 35), 1)
            baseline = rng.randint(3, 10)
            if i % 25 == 0:
                bmi = None  # left out of the adjusted model
            if i % 40 == 1:
                sex = "unknown"  # neither female nor male: left out too
            rate = 0.002 * math.exp(log_hr + 0.01 * (age - 50) + 0.03 * (baseline - 6))
            time = max(1, round(rng.expovariate(rate)))
            followed = rng.randint(90, 900)
            retreated = time if time <= followed else None
            groups[label].append(
                episode(
                    f"{label}{i}",
                    baseline,
                    age=age,
                    sex=sex,
                    bmi=bmi,
                    retreated=retreated,
                    censor=time if retreated else followed,
                )
            )
    return groups


def test_compare_cox_matches_an_independent_efron_fit() -> None:
    groups = _survival_groups(seed=20240611, per_group=150, effect=0.8)
    result = analysis.compare(groups, NPRS, "total")
    cox = result.cox
    assert cox is not None, result.notes
    assert [t.name for t in cox.terms] == ["B vs A", "age", "female", "bmi", "baseline"]
    # The same model by statsmodels' PHReg (Efron ties) on the complete rows.
    design, times, events = [], [], []
    for label, rows in groups.items():
        for row in rows:
            if row.bmi is None or row.sex not in ("female", "male"):
                continue
            design.append([label == "B", row.age, row.sex == "female", row.bmi, row.baseline])
            event = row.retreated_days is not None
            times.append(row.retreated_days if event else row.censor_days)
            events.append(event)
    fit = PHReg(
        np.asarray(times, float), np.asarray(design, float), status=np.asarray(events, int), ties="efron"
    ).fit()
    assert (cox.n, cox.events, cox.dropped) == (len(times), sum(events), 300 - len(times))
    assert [t.coef for t in cox.terms] == pytest.approx(list(fit.params), abs=1e-4)
    assert [t.se for t in cox.terms] == pytest.approx(list(fit.bse), abs=1e-4)
    # B was simulated with a hazard e^0.8 ≈ 2.2 times A's: re-treated sooner.
    cohort = cox.term("B vs A")
    assert cohort.hr > 1 and cohort.ci_low > 1
    assert cohort.hr == pytest.approx(math.exp(cohort.coef))
    assert result.logrank.p < 0.001 and result.logrank.n == 300
    # The case-mix terms are reported under their own names (sex as "female").
    assert cox.term("age").hr == pytest.approx(math.exp(cox.term("age").coef))


def test_compare_cox_direction_follows_the_reference() -> None:
    groups = _survival_groups(seed=7, per_group=120, effect=-0.9)  # B re-treated later than A
    result = analysis.compare(groups, NPRS, "total", covariates=())
    assert [t.name for t in result.cox.terms] == ["B vs A"]
    assert result.cox.term("B vs A").hr < 1
    swapped = analysis.compare({"B": groups["B"], "A": groups["A"]}, NPRS, "total", covariates=())
    assert swapped.reference == "B"
    assert [t.name for t in swapped.cox.terms] == ["A vs B"]
    assert swapped.cox.term("A vs B").coef == pytest.approx(-result.cox.term("B vs A").coef, abs=1e-6)


def test_compare_rule_of_ten_counts_only_events_the_model_can_use() -> None:
    # A cohort term and BMI: 2 terms, so at least 20 events. 20 re-treatments, one of them with no BMI.
    rng = random.Random(3)
    groups: dict[str, list[EpisodeRow]] = {"A": [], "B": []}
    for label in groups:
        for i in range(15):
            retreated = rng.randint(30, 400) if i < 10 else None
            bmi = None if (label, i) == ("A", 0) else round(rng.uniform(19, 35), 1)
            groups[label].append(
                episode(f"{label}{i}", 8, bmi=bmi, retreated=retreated, censor=retreated or 500)
            )
    assert sum(row.retreated_days is not None for rows in groups.values() for row in rows) == 20
    result = analysis.compare(groups, NPRS, "total", covariates=("bmi",))
    # Either no model, or one that rests on at least 10 events per term (it is fitted on 19).
    assert result.cox is None or result.cox.events >= analysis.EVENTS_PER_TERM * 2
    assert any("19 event(s) for 2 model terms" in note for note in result.notes)


# --------------------------------------------------------------------------- properties


@st.composite
def _rows(draw) -> list[EpisodeRow]:
    rows = []
    for n in range(draw(st.integers(min_value=0, max_value=14))):
        baseline = draw(st.one_of(st.none(), st.integers(0, 10)))
        answers, status = {}, {}
        day = 0
        for point in FOLLOW_UPS:
            day += draw(st.integers(1, 200))
            kind = draw(st.sampled_from(["answer", "unscored", *analysis.STATUSES, "absent"]))
            if kind == "answer":
                answers[point] = (day, draw(st.integers(0, 10)))
            elif kind == "unscored":
                answers[point] = (day, None)
            elif kind != "absent":
                status[point] = kind
        end_reason = draw(st.sampled_from(["", "withdrawn", "new-index", "stopped"]))
        retreated = draw(st.one_of(st.none(), st.integers(1, 1200)))
        rows.append(
            episode(
                f"k{n}",
                baseline,
                answers,
                status,
                retreated=retreated,
                surgery=draw(st.one_of(st.none(), st.integers(1, 1200))),
                end_reason=end_reason,
                ended=draw(st.one_of(st.none(), st.integers(0, 1200))) if end_reason else None,
            )
        )
    return rows


@settings(max_examples=60, deadline=None)
@given(_rows(), st.sampled_from(["retreatment", "surgery", "loss-of-response"]))
def test_flow_identities_and_responder_bounds_hold_for_any_rows(rows, event) -> None:
    result = analysis.analyse("any", rows, NPRS, "total", event=event)
    for point in result.points:
        f = point.flow
        assert f.treated == len(rows) == f.due + f.not_yet_due + f.withdrawn + f.retreated + f.stopped
        assert f.due == f.answered + f.missed + f.open
        assert 0 <= f.scored <= f.answered
        assert point.score.n + point.score.dropped == len(rows)
        for line in point.responders:
            rate = line.rate
            assert 0 <= rate.answered.k <= rate.answered.n <= rate.total == f.due
            assert rate.sensitivity.k == rate.answered.k and rate.sensitivity.n == rate.total
            assert rate.missing == rate.total - rate.answered.n
    durations, events, excluded, _ = analysis.durability(rows, NPRS, "total", event)
    assert len(durations) == len(events) == len(rows) - excluded
    assert all(d >= 0 for d in durations)
    if event != "loss-of-response":
        assert excluded == 0


@settings(max_examples=60, deadline=None)
@given(_rows(), st.integers(min_value=1, max_value=6))
def test_no_count_between_one_and_the_minimum_is_ever_shown(rows, minimum) -> None:
    result = analysis.analyse("any", rows, NPRS, "total", minimum=minimum)

    def shown(count: int | None) -> bool:
        return count is None or count == 0 or count >= minimum

    if 0 < len(rows) < minimum:
        assert result.withheld and result.points == () and result.n == 0
        return
    for point in result.points:
        assert all(shown(v) for k, v in point.flow.as_dict().items() if k != "timepoint")
        for summary in (point.score, point.change):
            assert summary is None or shown(summary.n)
        for line in point.responders:
            assert line.rate is None or (shown(line.rate.answered.n) and shown(line.rate.total))
            assert (line.rate is None) == (f"responders:{line.definition}" in point.withheld)
    km = result.durability.km
    if km is not None:
        assert shown(km.n)
        assert all(p.at_risk >= minimum for p in km.points if p.time > 0)
        assert all(r.at_risk == -1 or shown(r.at_risk) for r in result.durability.at_risk)


def test_timepoints_follow_the_schedule() -> None:
    assert POINTS == ("baseline", "1m", "3m", "6m", "12m", "24m", "36m")
    assert all(a != b for a, b in itertools.pairwise(POINTS))
