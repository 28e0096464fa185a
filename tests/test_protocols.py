"""Protocol templates, the plans they give, and the treatment ladders."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stride.core.errors import CatalogError, Invalid
from stride.core.protocols import (
    LADDERS_FILE,
    PROTOCOL_DIR,
    Offset,
    PlannedStep,
    Protocol,
    TriedItem,
    check_reschedule,
    ladder_status,
    ladders,
    load_protocol,
    load_protocols,
    parse_ladders,
    parse_protocol,
    plan_dates,
    protocols,
    today_in,
    validate_plan,
)

D = dt.date
SHIPPED = (
    "ankle-instability-regenerative",
    "hallux-rigidus-bmc",
    "morton-neuroma-conventional",
    "morton-neuroma-platelet-lysate",
)


def plan(code: str, anchor: dt.date, **kwargs) -> dict[str, PlannedStep]:
    return {step.code: step for step in plan_dates(protocols()[code], anchor, **kwargs)}


def span(step: PlannedStep) -> tuple[dt.date, dt.date, dt.date]:
    return step.window_start, step.planned_on, step.window_end


# --------------------------------------------------------------------------- the shipped protocols


def test_every_shipped_protocol_loads_and_is_named_after_its_file() -> None:
    shipped = protocols()
    assert tuple(sorted(shipped)) == SHIPPED
    for code, protocol in shipped.items():
        assert protocol.version >= 1
        assert protocol.source == f"{code}.toml"
        assert protocol.index_step.relative_to is None
        assert not protocol.index_step.optional
    assert load_protocols() == shipped


def test_the_ladders_file_is_not_read_as_a_protocol(tmp_path: Path) -> None:
    shutil.copy(PROTOCOL_DIR / "hallux-rigidus-bmc.toml", tmp_path)
    shutil.copy(LADDERS_FILE, tmp_path)
    assert list(load_protocols(tmp_path)) == ["hallux-rigidus-bmc"]


def test_ankle_instability_course_from_an_ordinary_anchor() -> None:
    steps = plan("ankle-instability-regenerative", D(2026, 3, 10))
    assert list(steps) == [
        "primer-3",
        "primer-1",
        "primer-2",
        "index",
        "orthotics",
        "review",
        "physical-therapy",
        "booster",
    ]
    assert span(steps["primer-3"]) == (D(2026, 1, 20), D(2026, 1, 27), D(2026, 2, 3))
    assert span(steps["primer-1"]) == (D(2026, 2, 3), D(2026, 2, 10), D(2026, 2, 17))
    assert span(steps["primer-2"]) == (D(2026, 2, 17), D(2026, 2, 24), D(2026, 3, 3))
    assert span(steps["index"]) == (D(2026, 3, 10),) * 3
    assert span(steps["orthotics"]) == (D(2026, 3, 17), D(2026, 3, 17), D(2026, 3, 24))
    assert span(steps["review"]) == (D(2026, 3, 21), D(2026, 3, 24), D(2026, 3, 27))
    assert span(steps["physical-therapy"]) == (D(2026, 3, 24), D(2026, 3, 24), D(2026, 3, 31))
    index = steps["index"]
    assert (index.procedure, index.site, index.guidance) == ("bmc-injection", "atfl-cfl", "ultrasound")
    assert [d.kind for d in index.injectates] == ["bmc", "prp"]
    assert steps["primer-1"].injectates[0].values == {"concentration_pct": 15}
    assert steps["orthotics"].treatment == "orthotics"


def test_the_booster_window_is_six_to_eight_weeks_after_the_index() -> None:
    anchor = D(2026, 3, 10)
    booster = plan("ankle-instability-regenerative", anchor)["booster"]
    assert booster.planned_on == anchor + dt.timedelta(weeks=6)
    assert booster.window_start == anchor + dt.timedelta(weeks=6)
    assert booster.window_end == anchor + dt.timedelta(weeks=8)
    assert check_reschedule(booster, anchor + dt.timedelta(weeks=8), anchor, D(1980, 1, 1)) is False
    assert check_reschedule(booster, anchor + dt.timedelta(weeks=8, days=1), anchor, D(1980, 1, 1)) is True
    assert check_reschedule(booster, anchor + dt.timedelta(weeks=6, days=-1), anchor, D(1980, 1, 1)) is True


def test_the_third_primer_is_optional_and_can_be_left_out() -> None:
    with_all = plan("ankle-instability-regenerative", D(2026, 3, 10))
    assert with_all["primer-3"].optional
    assert with_all["primer-3"].planned_on == D(2026, 3, 10) - dt.timedelta(weeks=6)
    without = plan("ankle-instability-regenerative", D(2026, 3, 10), include_optional=False)
    assert "primer-3" not in without
    assert [s.code for s in without.values()][:2] == ["primer-1", "primer-2"]
    assert not any(s.optional for s in without.values())


def test_ankle_instability_course_from_30_november_and_from_a_leap_day() -> None:
    steps = plan("ankle-instability-regenerative", D(2026, 11, 30))
    assert steps["primer-3"].planned_on == D(2026, 10, 19)
    assert steps["primer-1"].planned_on == D(2026, 11, 2)
    assert steps["primer-2"].planned_on == D(2026, 11, 16)
    assert span(steps["booster"]) == (D(2027, 1, 11), D(2027, 1, 11), D(2027, 1, 25))
    leap = plan("ankle-instability-regenerative", D(2028, 2, 29))
    assert leap["primer-3"].planned_on == D(2028, 1, 18)
    assert leap["primer-1"].planned_on == D(2028, 2, 1)
    assert span(leap["primer-2"]) == (D(2028, 2, 8), D(2028, 2, 15), D(2028, 2, 22))
    assert span(leap["booster"]) == (D(2028, 4, 11), D(2028, 4, 11), D(2028, 4, 25))


def test_morton_platelet_lysate_from_31_january_uses_calendar_months() -> None:
    steps = plan("morton-neuroma-platelet-lysate", D(2027, 1, 31))
    assert span(steps["baseline-ultrasound"]) == (D(2027, 1, 1), D(2027, 1, 31), D(2027, 1, 31))
    assert steps["injection"].session == steps["footwear-advice"].session == "injection-visit"
    assert steps["injection"].site is None  # the interspace is the patient's, set when the plan starts
    assert span(steps["repeat"]) == (D(2027, 2, 28), D(2027, 2, 28), D(2027, 3, 14))
    assert steps["repeat"].optional and "50 %" in steps["repeat"].note
    assert span(steps["ultrasound-6m"]) == (D(2027, 7, 1), D(2027, 7, 31), D(2027, 8, 30))
    assert span(steps["ultrasound-12m"]) == (D(2027, 12, 17), D(2028, 1, 31), D(2028, 3, 16))
    assert {s.kind for s in steps.values() if "ultrasound" in s.code} == {"imaging"}


def test_morton_platelet_lysate_from_a_leap_day_clamps_the_year_to_28_february() -> None:
    steps = plan("morton-neuroma-platelet-lysate", D(2028, 2, 29))
    assert steps["repeat"].planned_on == D(2028, 3, 28)
    assert steps["ultrasound-6m"].planned_on == D(2028, 8, 29)
    assert span(steps["ultrasound-12m"]) == (D(2029, 1, 14), D(2029, 2, 28), D(2029, 4, 14))


def test_morton_platelet_lysate_from_30_november() -> None:
    steps = plan("morton-neuroma-platelet-lysate", D(2026, 11, 30))
    assert span(steps["ultrasound-6m"]) == (D(2027, 4, 30), D(2027, 5, 30), D(2027, 6, 29))
    assert steps["ultrasound-12m"].planned_on == D(2027, 11, 30)


def test_hallux_bmc_and_prolotherapy_share_one_visit_and_the_x_ray_clamps_to_29_february() -> None:
    steps = plan("hallux-rigidus-bmc", D(2027, 8, 31))
    bmc, prolo = steps["bmc"], steps["prolotherapy"]
    assert bmc.planned_on == prolo.planned_on == steps["shoe-or-orthotic"].planned_on == D(2027, 8, 31)
    assert bmc.session == prolo.session == "injection-visit"
    assert (bmc.procedure, bmc.site) == ("bmc-injection", "mtp-1")
    assert (prolo.procedure, prolo.site) == ("prolotherapy", "mtp-1-collaterals")
    assert span(steps["baseline-x-ray"]) == (D(2027, 8, 1), D(2027, 8, 31), D(2027, 8, 31))
    assert span(steps["x-ray-6m"]) == (D(2028, 1, 30), D(2028, 2, 29), D(2028, 3, 30))
    assert plan("hallux-rigidus-bmc", D(2028, 2, 29))["x-ray-6m"].planned_on == D(2028, 8, 29)
    validate_plan(list(steps.values()), born=D(1970, 5, 1))


def test_the_conventional_ladder_chains_its_if_needed_steps() -> None:
    steps = plan("morton-neuroma-conventional", D(2026, 3, 10))
    anchor = D(2026, 3, 10)

    def weeks(code: str) -> float:
        return (steps[code].planned_on - anchor).days / 7

    assert {c for c, s in steps.items() if s.session == "first-visit"} == {
        "footwear",
        "metatarsal-pad",
        "activity-change",
        "nsaids",
    }
    six, eight = anchor + dt.timedelta(weeks=6), anchor + dt.timedelta(weeks=8)
    assert span(steps["review"]) == (six, six, eight)
    assert [weeks(f"steroid-{n}") for n in (1, 2, 3)] == [8, 14, 20]
    assert [weeks(f"alcohol-{n}") for n in (1, 2, 3, 4)] == [26, 27, 28, 29]
    alcohol_2 = steps["alcohol-2"]
    assert (alcohol_2.window_end - steps["alcohol-1"].planned_on).days == 14  # weekly to fortnightly
    assert alcohol_2.injectates[0].values == {"concentration_pct": 4, "series_number": 2}
    later = [c for c in steps if c.startswith(("steroid", "alcohol", "neurectomy"))]
    assert len(later) == 8
    assert all(steps[c].optional and "if needed" in steps[c].note.lower() for c in later)
    required = plan("morton-neuroma-conventional", anchor, include_optional=False)
    assert list(required) == ["footwear", "metatarsal-pad", "activity-change", "nsaids", "review"]


def test_the_neurectomy_three_months_after_the_series_clamps_at_the_month_end() -> None:
    # 29 weeks after 11 May 2026 the fourth alcohol session falls on 30 November 2026.
    steps = plan("morton-neuroma-conventional", D(2026, 5, 11))
    assert steps["alcohol-4"].planned_on == D(2026, 11, 30)
    assert span(steps["neurectomy"]) == (D(2027, 2, 28), D(2027, 2, 28), D(2027, 5, 28))


def test_a_moved_step_carries_the_steps_timed_from_it_and_keeps_its_own_window() -> None:
    anchor = D(2026, 3, 10)
    before = plan("morton-neuroma-conventional", anchor)
    moved_to = before["steroid-1"].planned_on + dt.timedelta(weeks=3)
    after = plan("morton-neuroma-conventional", anchor, moved={"steroid-1": moved_to})
    assert after["steroid-1"].planned_on == moved_to and after["steroid-1"].moved
    assert span(after["steroid-1"])[::2] == span(before["steroid-1"])[::2]
    assert not after["steroid-1"].in_window(moved_to)
    assert after["steroid-2"].planned_on == before["steroid-2"].planned_on + dt.timedelta(weeks=3)
    assert after["alcohol-4"].planned_on == before["alcohol-4"].planned_on + dt.timedelta(weeks=3)
    assert not after["steroid-2"].moved
    assert after["steroid-2"].in_window(after["steroid-2"].planned_on)
    # A later move is judged against the steps before it as they now stand.
    again = plan(
        "morton-neuroma-conventional",
        anchor,
        moved={"steroid-1": moved_to, "steroid-2": after["steroid-2"].planned_on + dt.timedelta(weeks=1)},
    )
    assert span(again["steroid-2"])[::2] == span(after["steroid-2"])[::2]
    assert again["steroid-2"].in_window(again["steroid-2"].planned_on)
    assert after["review"] == before["review"]
    with pytest.raises(Invalid) as excinfo:
        plan_dates(protocols()["morton-neuroma-conventional"], anchor, moved={"nowhere": anchor})
    assert excinfo.value.field == "step"


def test_moving_one_step_of_a_session_moves_the_whole_visit() -> None:
    steps = plan("hallux-rigidus-bmc", D(2026, 6, 1), moved={"prolotherapy": D(2026, 6, 8)})
    assert {steps[c].planned_on for c in ("bmc", "prolotherapy", "shoe-or-orthotic")} == {D(2026, 6, 8)}
    assert all(steps[c].moved for c in ("bmc", "prolotherapy", "shoe-or-orthotic"))
    validate_plan(list(steps.values()), born=D(1970, 1, 1))


# --------------------------------------------------------------------------- a plan against the patient


def test_a_step_before_birth_is_refused_naming_the_step_and_the_day() -> None:
    steps = plan_dates(protocols()["ankle-instability-regenerative"], D(2026, 3, 10))
    with pytest.raises(Invalid) as excinfo:
        validate_plan(steps, born=D(2026, 2, 1))
    assert excinfo.value.field == "anchor"
    assert "Prolotherapy primer (optional third) would fall on 27 Jan 2026" in excinfo.value.message
    assert "01 Feb 2026" in excinfo.value.message
    required = plan_dates(
        protocols()["ankle-instability-regenerative"], D(2026, 3, 10), include_optional=False
    )
    with pytest.raises(Invalid, match="Prolotherapy primer 1 would fall on 10 Feb 2026"):
        validate_plan(required, born=D(2026, 2, 11))
    validate_plan(required, born=D(2026, 2, 10))


def test_a_moved_step_before_birth_blames_the_moved_day() -> None:
    steps = plan_dates(
        protocols()["morton-neuroma-platelet-lysate"], D(2026, 3, 10), moved={"repeat": D(1999, 1, 1)}
    )
    with pytest.raises(Invalid) as excinfo:
        validate_plan(steps, born=D(2000, 1, 1))
    assert excinfo.value.field == "planned_on"


def test_two_procedures_at_one_site_on_one_day_in_separate_visits_are_an_impossible_overlap() -> None:
    protocol = protocols()["ankle-instability-regenerative"]
    steps = plan_dates(protocol, D(2026, 3, 10), moved={"primer-2": D(2026, 2, 10)})
    with pytest.raises(Invalid) as excinfo:
        validate_plan(steps, born=D(1980, 1, 1))
    assert excinfo.value.field == "planned_on"
    assert excinfo.value.message == (
        "Impossible overlap: Prolotherapy primer 1 and Prolotherapy primer 2 are both at atfl-cfl on "
        "10 Feb 2026, in separate visits."
    )


def test_procedures_without_a_site_are_at_the_plans_site() -> None:
    steps = plan_dates(
        protocols()["morton-neuroma-platelet-lysate"], D(2026, 3, 10), moved={"repeat": D(2026, 3, 10)}
    )
    with pytest.raises(Invalid, match="Impossible overlap: Perineural platelet lysate and Repeat"):
        validate_plan(steps, born=D(1980, 1, 1))


def test_a_session_split_over_two_days_is_refused() -> None:
    steps = plan_dates(
        protocols()["hallux-rigidus-bmc"],
        D(2026, 6, 1),
        moved={"bmc": D(2026, 6, 2), "prolotherapy": D(2026, 6, 3)},
    )
    with pytest.raises(Invalid, match="are one visit but would fall on 02 Jun 2026 and 03 Jun 2026"):
        validate_plan(steps, born=D(1980, 1, 1))


# --------------------------------------------------------------------------- time zones and rescheduling


AN_INSTANT = dt.datetime(2026, 3, 10, 20, 0, tzinfo=dt.UTC)


def test_the_clinics_time_zone_decides_what_today_is() -> None:
    assert today_in("Pacific/Auckland", AN_INSTANT) == D(2026, 3, 11)  # 09:00 the next morning
    assert today_in("America/Los_Angeles", AN_INSTANT) == D(2026, 3, 10)  # 13:00
    assert today_in("UTC", AN_INSTANT) == D(2026, 3, 10)
    with pytest.raises(ValueError, match="aware"):
        today_in("UTC", dt.datetime(2026, 3, 10, 20, 0))
    with pytest.raises(Invalid) as excinfo:
        today_in("Mars/Olympus_Mons", AN_INSTANT)
    assert excinfo.value.field == "time_zone"


def test_rescheduling_to_the_clinics_yesterday_is_refused_but_its_today_is_fine() -> None:
    review = plan("ankle-instability-regenerative", D(2026, 2, 24))["review"]
    assert span(review) == (D(2026, 3, 7), D(2026, 3, 10), D(2026, 3, 13))
    born = D(1980, 1, 1)
    assert (
        check_reschedule(review, D(2026, 3, 10), today_in("America/Los_Angeles", AN_INSTANT), born) is False
    )
    with pytest.raises(Invalid) as excinfo:
        check_reschedule(review, D(2026, 3, 10), today_in("Pacific/Auckland", AN_INSTANT), born)
    assert excinfo.value.field == "planned_on"
    assert excinfo.value.message == "Review visit cannot move to 10 Mar 2026: that day has passed."


def test_rescheduling_outside_the_window_is_a_deviation_not_an_error() -> None:
    review = plan("ankle-instability-regenerative", D(2026, 2, 24))["review"]
    today, born = D(2026, 3, 1), D(1980, 1, 1)
    assert check_reschedule(review, D(2026, 3, 7), today, born) is False
    assert check_reschedule(review, D(2026, 3, 13), today, born) is False
    assert check_reschedule(review, D(2026, 3, 6), today, born) is True
    assert check_reschedule(review, D(2026, 3, 14), today, born) is True


def test_rescheduling_before_birth_is_refused() -> None:
    step = PlannedStep("x", "Review", "review", D(2026, 3, 10), D(2026, 3, 1), D(2026, 3, 20))
    with pytest.raises(Invalid, match="before the patient's date of birth"):
        check_reschedule(step, D(2026, 3, 5), D(2026, 3, 1), D(2026, 3, 8))


# --------------------------------------------------------------------------- broken templates

BASE = """
protocol = "test-protocol"
version = 1
name = "Test protocol"
summary = "A small protocol for the tests."
conditions = ["morton-neuroma"]
anchor = "index"

[[step]]
code = "index"
name = "Index injection"
kind = "procedure"
procedure = "prp-injection"
site = "im-space-3"

[[step]]
code = "review"
name = "Review"
kind = "review"
offset = { weeks = 2 }
"""


def step(code: str, *lines: str, kind: str = "review") -> str:
    return "\n".join(
        ["", "[[step]]", f'code = "{code}"', f'name = "Step {code}"', f'kind = "{kind}"', *lines]
    )


def test_the_test_template_is_itself_valid() -> None:
    protocol = parse_protocol(BASE, "edited in the app")
    assert isinstance(protocol, Protocol)
    assert protocol.step("review").offset == Offset(weeks=2)
    assert protocol.index_step.guidance == "ultrasound"  # the procedure type's default


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            BASE
            + step("a", 'relative_to = "b"', "offset = { days = 1 }")
            + step("b", 'relative_to = "a"', "offset = { days = 1 }"),
            "go round in a cycle: a → b → a.",
        ),
        (
            BASE
            + step("c", 'relative_to = "a"', "offset = { days = 1 }")
            + step("a", 'relative_to = "b"', "offset = { days = 1 }")
            + step("b", 'relative_to = "c"', "offset = { days = 1 }"),
            "go round in a cycle: c → a → b → c.",
        ),
        (BASE + step("a", 'relative_to = "a"', "offset = { days = 1 }"), "cycle: a → a."),
        (BASE.replace('kind = "review"', 'kind = "surgery"'), "step 'review': unknown kind 'surgery'"),
        (
            BASE.replace('"prp-injection"', '"laser-therapy"'),
            "step 'index': unknown procedure 'laser-therapy'",
        ),
        (BASE.replace('"im-space-3"', '"im-space-9"'), "step 'index': unknown site 'im-space-9'"),
        (BASE.replace('["morton-neuroma"]', '["gout"]'), "unknown condition 'gout'"),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp", volume_ml = 500 }]'),
            "step 'index': default prp injectate: The injected volume must be between 0.05 and 60 mL.",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp", leukocytes = "some" }]'),
            "Leukocyte content must be 'rich' or 'poor'.",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp", dose_mg = 40 }]'),
            "The dose does not apply to a PRP injectate.",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp", volume_ml = "lots" }]'),
            "volume_ml = 'lots' must be a number.",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "steroid" }]'),
            "a prp-injection procedure does not take steroid "
            "(it takes: prp, platelet-lysate, local-anaesthetic).",
        ),
        (
            BASE.replace(
                'site = "im-space-3"', 'injectates = [{ kind = "local-anaesthetic", drug = "cocaine" }]'
            ),
            "unknown drug 'cocaine'",
        ),
        (
            BASE.replace(
                'site = "im-space-3"', 'injectates = [{ kind = "local-anaesthetic", drug = "dexamethasone" }]'
            ),
            "That drug is not a local anaesthetic.",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp", activation = "shaken" }]'),
            "unknown activation 'shaken'",
        ),
        (
            BASE.replace('site = "im-space-3"', 'injectates = [{ kind = "prp" }, { kind = "prp" }]'),
            "an injectate kind has two defaults",
        ),
        (
            BASE.replace('site = "im-space-3"', "injectates = [{ volume_ml = 2 }]"),
            "unknown injectate kind None",
        ),
        (
            BASE
            + step("a", "offset = { days = 0 }", 'session = "visit"')
            + step("b", "offset = { days = 1 }", 'session = "visit"'),
            "session 'visit': steps 'a' and 'b' would fall on different days (from an anchor on 2027-01-01: "
            "2027-01-01 and 2027-01-02)",
        ),
        (
            BASE
            + step("a", "offset = { months = 2 }", 'session = "visit"')
            + step("m", "offset = { months = 1 }")
            + step("b", 'relative_to = "m"', "offset = { months = 1 }", 'session = "visit"'),
            "session 'visit': steps 'a' and 'b' would fall on different days (from an anchor on 2027-01-29: "
            "2027-03-29 and 2027-03-28)",
        ),
        (BASE + step("a", 'relative_to = "nowhere"', "offset = { days = 1 }"), "unknown step 'nowhere'"),
        (BASE + step("review", "offset = { days = 1 }"), "step code 'review' appears twice."),
        (
            BASE.replace('anchor = "index"', 'anchor = "missing"'),
            "the anchor 'missing' is not one of the steps",
        ),
        (
            BASE.replace(
                "offset = { weeks = 2 }", "offset = { weeks = 2 }\nwindow = { before = { weeks = -1 } }"
            ),
            "step 'review': window before: weeks is negative (-1)",
        ),
        (
            BASE.replace(
                "offset = { weeks = 2 }", "offset = { weeks = 2 }\nwindow = { early = { weeks = 1 } }"
            ),
            "step 'review': window: unknown key(s) 'early'.",
        ),
        (
            BASE.replace('summary = "A small protocol for the tests."', ""),
            "lacks the required key(s) 'summary'.",
        ),
        (BASE.replace('name = "Review"', ""), "step 2 ('review') lacks the required key 'name'."),
        (
            BASE.replace("offset = { weeks = 2 }", "offest = { weeks = 2 }"),
            "step 'review': unknown key(s) 'offest'.",
        ),
        (BASE.replace("offset = { weeks = 2 }", ""), "step 'review': lacks the required key 'offset'"),
        (
            BASE.replace("offset = { weeks = 2 }", "offset = { weeks = 2 }\nrepeat = 3"),
            "step 'review': unknown key(s) 'repeat'.",
        ),
        (BASE + "\ncolour = 'blue'\n", "unknown key(s) 'colour'."),
        (
            BASE.replace("offset = { weeks = 2 }", "offset = { fortnights = 1 }"),
            "unknown unit(s) 'fortnights'",
        ),
        (BASE.replace("offset = { weeks = 2 }", "offset = { weeks = 1.5 }"), "weeks must be a whole number"),
        (BASE.replace("offset = { weeks = 2 }", "offset = {}"), "offset must be a table such as"),
        (BASE.replace('site = "im-space-3"', "offset = { days = 3 }"), "the anchor is day 0 of the plan"),
        (BASE.replace('site = "im-space-3"', "optional = true"), "it cannot be optional"),
        (BASE.replace('site = "im-space-3"', 'relative_to = "review"'), "it is timed from no other step"),
        (
            BASE.replace("offset = { weeks = 2 }", "offset = { weeks = 2 }\noptional = true")
            + step("later", 'relative_to = "review"', "offset = { weeks = 1 }"),
            "step 'later' is required but timed from optional step 'review'",
        ),
        (BASE.replace("version = 1", "version = 0"), "version must be a positive whole number."),
        (BASE.replace("version = 1", "version = true"), "version must be a positive whole number."),
        (BASE.replace('protocol = "test-protocol"', 'protocol = "Test Protocol"'), "must be lower-case"),
        (
            BASE.replace('kind = "review"', 'kind = "review"\nprocedure = "prp-injection"'),
            "only a procedure step",
        ),
        (
            BASE.replace('kind = "review"', 'kind = "review"\ntreatment = "orthotics"'),
            "a review step names no",
        ),
        (
            BASE + step("insoles", 'treatment = "insoles"', "offset = { days = 1 }", kind="orthotic"),
            "unknown treatment 'insoles'",
        ),
        (BASE.replace('procedure = "prp-injection"', ""), "a procedure step needs its procedure type"),
        (BASE.replace('site = "im-space-3"', 'guidance = "x-ray"'), "unknown guidance 'x-ray'"),
        (BASE.replace('site = "im-space-3"', 'site = ["im-space-3"]'), "unknown site ['im-space-3']"),
        (
            BASE.replace('conditions = ["morton-neuroma"]', "conditions = []"),
            "at least one catalog condition",
        ),
        (BASE.replace('name = "Test protocol"', 'name = "  "'), "name must be a non-empty text."),
        (BASE.split("[[step]]")[0] + "step = []", "at least one [[step]]"),
        (BASE.replace("offset = { weeks = 2 }", "offset = { weeks = 2 "), "not valid TOML"),
    ],
)
def test_a_broken_template_is_refused_with_its_source_and_the_reason(text: str, reason: str) -> None:
    with pytest.raises(CatalogError) as excinfo:
        parse_protocol(text, "edited in the app")
    message = str(excinfo.value)
    assert message.startswith("edited in the app: ")
    assert reason in message


def test_invalid_toml_names_the_line() -> None:
    with pytest.raises(CatalogError, match=r"not valid TOML: .*line 20"):
        parse_protocol(BASE.replace("offset = { weeks = 2 }", "offset = { weeks = 2 "), "x")


def test_session_steps_reached_by_different_offsets_on_the_same_day_are_accepted() -> None:
    text = (
        BASE
        + step("a", "offset = { days = 14 }", 'session = "visit"')
        + step("b", 'relative_to = "review"', "offset = { weeks = 0 }", 'session = "visit"')
        + step("c", 'relative_to = "a"', "offset = { months = 1 }", 'session = "later"')
        + step("d", 'relative_to = "review"', "offset = { months = 1 }", 'session = "later"')
    )
    protocol = parse_protocol(text, "x")
    steps = {s.code: s for s in plan_dates(protocol, D(2027, 1, 17))}
    assert steps["a"].planned_on == steps["b"].planned_on == D(2027, 1, 31)
    assert steps["c"].planned_on == steps["d"].planned_on == D(2027, 2, 28)


def test_a_protocol_file_must_carry_its_own_code(tmp_path: Path) -> None:
    path = tmp_path / "other-name.toml"
    path.write_text(BASE, encoding="utf-8")
    with pytest.raises(CatalogError, match=r"other-name\.toml: the protocol code 'test-protocol' must match"):
        load_protocol(path)
    with pytest.raises(CatalogError, match=r"missing\.toml"):
        load_protocol(tmp_path / "missing.toml")


def test_a_broken_shipped_file_is_refused_by_name(tmp_path: Path) -> None:
    text = (PROTOCOL_DIR / "hallux-rigidus-bmc.toml").read_text(encoding="utf-8")
    (tmp_path / "hallux-rigidus-bmc.toml").write_text(
        text.replace("concentration_pct = 15", "concentration_pct = 150"), encoding="utf-8"
    )
    with pytest.raises(CatalogError) as excinfo:
        load_protocols(tmp_path)
    assert str(excinfo.value) == (
        "hallux-rigidus-bmc.toml: step 'prolotherapy': default dextrose injectate: "
        "The concentration must be between 0.1 and 100 %."
    )


# --------------------------------------------------------------------------- property: any anchor


def _day_bounds(protocol: Protocol, code: str) -> tuple[int, int]:
    """The fewest and most days a step can fall from the anchor (a month is 28 to 31 days)."""
    low = high = 0
    current = protocol.step(code)
    while current.relative_to is not None:
        months = current.offset.months
        low += (28 * months if months >= 0 else 31 * months) + current.offset.total_days
        high += (31 * months if months >= 0 else 28 * months) + current.offset.total_days
        current = protocol.step(current.relative_to)
    return low, high


@settings(max_examples=200, deadline=None)
@given(anchor=st.dates(min_value=D(1990, 1, 1), max_value=D(2060, 12, 31)), code=st.sampled_from(SHIPPED))
def test_for_any_anchor_windows_hold_their_day_and_required_steps_keep_their_order(anchor, code) -> None:
    protocol = protocols()[code]
    steps = plan_dates(protocol, anchor)
    assert [s.planned_on for s in steps] == sorted(s.planned_on for s in steps)
    planned = {s.code: s for s in steps}
    assert planned[protocol.anchor].planned_on == anchor
    for s in steps:
        assert s.window_start <= s.planned_on <= s.window_end
        low, high = _day_bounds(protocol, s.code)
        assert low <= (s.planned_on - anchor).days <= high
    required = [s for s in protocol.steps if not s.optional]
    for a in required:
        for b in required:
            a_low, a_high = _day_bounds(protocol, a.code)
            b_low, b_high = _day_bounds(protocol, b.code)
            if a_high < b_low:
                assert planned[a.code].planned_on < planned[b.code].planned_on
            if (a_low, a_high) == (b_low, b_high) and a_low == a_high:
                assert planned[a.code].planned_on == planned[b.code].planned_on
    validate_plan(steps, born=anchor - dt.timedelta(days=365))


# --------------------------------------------------------------------------- ladders


def rungs(condition: str, *tried: TriedItem, **kwargs) -> dict[str, object]:
    return {rung.code: rung for rung in ladder_status(condition, list(tried), **kwargs)}


def test_the_ladders_cover_the_conditions_of_domain_v1() -> None:
    assert set(ladders()) == {
        "morton-neuroma",
        "hallux-rigidus",
        "ankle-oa-primary",
        "ankle-oa-post-traumatic",
        "ankle-oa-secondary",
        "ankle-instability",
        "ankle-instability-ligamentous",
        "plantar-fasciitis",
        "achilles-tendinopathy",
    }
    assert ladders()["ankle-oa-primary"] is ladders()["ankle-oa-secondary"]
    morton = ladders()["morton-neuroma"]
    assert [(r.code, r.level, r.alternative_to) for r in morton.rungs] == [
        ("conservative", 1, None),
        ("steroid-injection", 2, None),
        ("regenerative-injection", 2, "steroid-injection"),
        ("alcohol-sclerosing", 3, None),
        ("neurectomy", 4, None),
    ]
    assert [r.code for r in ladders()["ankle-oa-primary"].rungs] == [
        "conservative",
        "physical-therapy",
        "joint-injection",
        "orthobiologics",
        "debridement",
        "arthrodesis-or-replacement",
    ]


def test_nothing_tried_states_the_ladder_and_where_the_clinics_protocols_sit() -> None:
    status = ladder_status("morton-neuroma", [])
    assert [r.code for r in status] == [
        "conservative",
        "steroid-injection",
        "regenerative-injection",
        "alcohol-sclerosing",
        "neurectomy",
    ]
    assert all(r.tried == () and r.best_response is None and r.longest_relief_weeks is None for r in status)
    assert {r.code: r.protocols for r in status} == {
        "conservative": ("morton-neuroma-conventional",),
        "steroid-injection": (),
        "regenerative-injection": ("morton-neuroma-platelet-lysate",),
        "alcohol-sclerosing": (),
        "neurectomy": (),
    }
    assert all(r.protocols == () for r in ladder_status("morton-neuroma", [], offered={}))


def test_a_steroid_injection_with_partial_response_and_8_weeks_relief() -> None:
    tried = TriedItem("treatment", "steroid-injection", D(2025, 6, 1), "partial", 8)
    status = rungs("morton-neuroma", tried)
    steroid = status["steroid-injection"]
    assert steroid.tried == (tried,)
    assert (steroid.best_response, steroid.longest_relief_weeks) == ("partial", 8)
    assert all(status[c].tried == () for c in status if c != "steroid-injection")


def test_the_best_response_and_longest_relief_across_several_tries() -> None:
    first = TriedItem("procedure", "digital-nerve-steroid", D(2025, 1, 10), "none", 0, ("steroid",))
    second = TriedItem("procedure", "digital-nerve-steroid", D(2025, 4, 2), "partial", 6, ("steroid",))
    undated = TriedItem("treatment", "steroid-injection")
    steroid = rungs("morton-neuroma", undated, second, first)["steroid-injection"]
    assert steroid.tried == (first, second, undated)
    assert (steroid.best_response, steroid.longest_relief_weeks) == ("partial", 6)
    only_unknown = rungs("morton-neuroma", undated)["steroid-injection"]
    assert (only_unknown.best_response, only_unknown.longest_relief_weeks) == ("unknown", None)
    none_and_unknown = rungs("morton-neuroma", undated, first)["steroid-injection"]
    assert none_and_unknown.best_response == "none"


def test_surgery_tried_is_stated_on_the_last_rung() -> None:
    status = rungs(
        "morton-neuroma",
        TriedItem("procedure", "neurectomy", D(2024, 9, 1), "full"),
        TriedItem("treatment", "alcohol-injection", D(2024, 3, 1), "partial", 12),
    )
    assert status["neurectomy"].best_response == "full"
    assert status["alcohol-sclerosing"].longest_relief_weeks == 12
    assert status["conservative"].tried == ()


def test_a_history_entry_and_a_procedure_sharing_a_code_count_each_by_their_own_list() -> None:
    status = rungs(
        "morton-neuroma",
        TriedItem("treatment", "prolotherapy", response="partial"),
        TriedItem("procedure", "prolotherapy", response="full", injectates=("dextrose",)),
    )
    assert len(status["regenerative-injection"].tried) == 2
    assert status["regenerative-injection"].best_response == "full"


@pytest.mark.parametrize("condition", ["ankle-oa-primary", "ankle-oa-post-traumatic", "ankle-oa-secondary"])
def test_a_shared_joint_injection_counts_by_what_was_injected(condition: str) -> None:
    steroid = TriedItem("procedure", "ankle-joint-injection-us", response="partial", injectates=("steroid",))
    prp = TriedItem(
        "procedure", "ankle-joint-injection", response="full", injectates=("prp", "local-anaesthetic")
    )
    unrecorded = TriedItem("procedure", "ankle-joint-injection")
    status = rungs(condition, steroid, prp, unrecorded)
    assert status["joint-injection"].tried == (steroid,)
    assert status["orthobiologics"].tried == (prp,)
    assert all(unrecorded not in r.tried for r in status.values())
    assert status["debridement"].tried == ()


def test_surgery_on_other_ladders() -> None:
    hallux = rungs("hallux-rigidus", TriedItem("procedure", "cheilectomy", D(2023, 5, 1), "partial", 52))
    assert hallux["cheilectomy"].best_response == "partial"
    assert hallux["orthobiologics"].protocols == ("hallux-rigidus-bmc",)
    instability = rungs(
        "ankle-instability-ligamentous", TriedItem("treatment", "ligament-repair", response="none")
    )
    assert instability["ligament-repair"].best_response == "none"
    assert instability["ligament-injection"].protocols == ("ankle-instability-regenerative",)
    heel = rungs("plantar-fasciitis", TriedItem("treatment", "other-surgery", response="unknown"))
    assert heel["shock-wave-or-surgery"].best_response == "unknown"
    achilles = rungs("achilles-tendinopathy", TriedItem("procedure", "prp-injection", response="full"))
    assert achilles["injection"].best_response == "full"


def test_every_shipped_protocol_sits_on_a_rung_of_each_of_its_conditions() -> None:
    for protocol in protocols().values():
        for condition in protocol.conditions:
            placed = [r.code for r in ladder_status(condition, []) if protocol.code in r.protocols]
            assert len(placed) == 1, (protocol.code, condition)


def test_a_condition_without_a_ladder_has_no_rungs_and_an_unknown_one_is_refused() -> None:
    assert ladder_status("ankle-sprain", []) == []
    with pytest.raises(Invalid):
        ladder_status("gout", [])


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (TriedItem("treatment", "acupuncture"), "Unknown treatment code 'acupuncture'."),
        (TriedItem("procedure", "steroid-injection"), "Unknown procedure code 'steroid-injection'."),
        (TriedItem("hearsay", "nsaids"), "a treatment or a procedure"),
        (TriedItem("treatment", "nsaids", response="great"), "The response must be one of"),
        (TriedItem("treatment", "nsaids", relief_weeks=-2), "cannot be negative"),
        (TriedItem("procedure", "prp-injection", injectates=("honey",)), "Unknown injectate kind"),
    ],
)
def test_a_bad_tried_item_is_refused(item: TriedItem, reason: str) -> None:
    with pytest.raises(Invalid) as excinfo:
        ladder_status("morton-neuroma", [item])
    assert excinfo.value.field == "tried"
    assert reason in excinfo.value.message


LADDERS = """
catalog = "ladders"
version = 1

[[ladder]]
code = "heel"
name = "Heel"
conditions = ["plantar-fasciitis"]

[[ladder.rung]]
code = "first"
name = "First"
treatments = ["orthotics"]
procedure_injectates = { ligament-injection = ["steroid"] }

[[ladder.rung]]
code = "second"
name = "Second"
procedures = ["prp-injection"]
procedure_injectates = { ligament-injection = ["prp"] }
"""


def test_the_test_ladders_are_valid() -> None:
    heel = parse_ladders(LADDERS, "ladders.toml")["plantar-fasciitis"]
    assert [r.level for r in heel.rungs] == [1, 2]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (LADDERS.replace('["orthotics"]', '["insoles"]'), "rung 'first': unknown treatment 'insoles'"),
        (LADDERS.replace('["prp-injection"]', '["laser"]'), "rung 'second': unknown procedure 'laser'"),
        (LADDERS.replace('["plantar-fasciitis"]', '["gout"]'), "unknown condition 'gout'"),
        (
            LADDERS.replace('procedures = ["prp-injection"]', 'procedures = ["ligament-injection"]'),
            "procedure 'ligament-injection' already counts for rung 'first'",
        ),
        (
            LADDERS.replace('ligament-injection = ["prp"]', 'ligament-injection = ["prp", "steroid"]'),
            "procedure 'ligament-injection' with steroid already counts for rung 'first'",
        ),
        (
            LADDERS.replace('ligament-injection = ["prp"]', 'ligament-injection = ["bmc"]'),
            "a ligament-injection procedure does not take 'bmc'",
        ),
        (
            LADDERS.replace('procedures = ["prp-injection"]', 'treatments = ["orthotics"]'),
            "treatment 'orthotics' already counts for rung 'first'",
        ),
        (
            LADDERS.replace('name = "Second"', 'name = "Second"\nalternative_to = "third"'),
            "alternative_to must name an earlier rung, not 'third'",
        ),
        (
            LADDERS + '\n[[ladder]]\ncode = "again"\nname = "Again"\nconditions = ["plantar-fasciitis"]\n'
            '[[ladder.rung]]\ncode = "only"\nname = "Only"\n',
            "condition 'plantar-fasciitis' has two ladders (heel, again)",
        ),
        (LADDERS.replace('code = "second"', 'code = "first"'), "rung code 'first' appears twice"),
        (LADDERS.replace('catalog = "ladders"', 'catalog = "protocols"'), "expected catalog = 'ladders'"),
        (LADDERS.replace('name = "Heel"', 'name = "Heel"\nsteps = 3'), "unknown key(s) 'steps'"),
    ],
)
def test_broken_ladders_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(CatalogError) as excinfo:
        parse_ladders(text, "ladders.toml")
    assert str(excinfo.value).startswith("ladders.toml: ")
    assert reason in str(excinfo.value)


def test_an_alternative_shares_the_level_of_the_rung_it_replaces() -> None:
    text = LADDERS + '\n[[ladder.rung]]\ncode = "third"\nname = "Third"\nalternative_to = "second"\n'
    heel = parse_ladders(text, "ladders.toml")["plantar-fasciitis"]
    assert [(r.code, r.level) for r in heel.rungs] == [("first", 1), ("second", 2), ("third", 2)]
    text += '\n[[ladder.rung]]\ncode = "fourth"\nname = "Fourth"\nalternative_to = "third"\n'
    with pytest.raises(CatalogError, match="itself an alternative"):
        parse_ladders(text, "ladders.toml")
