"""The follow-up schedule: windows from an index date, states, and the contact ladder."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from stride.core.errors import CatalogError
from stride.core.schedule import SCHEDULE_FILE, Window, add_months, load_schedule, schedule


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),  # leap year
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
        (dt.date(2026, 11, 30), 3, dt.date(2027, 2, 28)),
        (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
        (dt.date(2026, 5, 15), 36, dt.date(2029, 5, 15)),
        (dt.date(2026, 12, 10), 1, dt.date(2027, 1, 10)),
    ],
)
def test_months_are_calendar_months_clamped_to_the_month_end(day, months, expected) -> None:
    assert add_months(day, months) == expected


def test_the_schedule_of_domain_v1_from_an_index_date() -> None:
    windows = {w.timepoint: w for w in schedule().windows(dt.date(2026, 3, 10))}
    assert list(windows) == ["baseline", "1m", "3m", "6m", "12m", "24m", "36m"]
    baseline = windows["baseline"]
    assert (baseline.opens, baseline.due, baseline.closes) == (
        dt.date(2026, 2, 8),
        dt.date(2026, 3, 10),
        dt.date(2026, 3, 10),
    )
    assert baseline.accepts_until == dt.date(2026, 3, 31)  # 21 days' grace, flagged
    assert (windows["1m"].opens, windows["1m"].due, windows["1m"].closes) == (
        dt.date(2026, 4, 3),
        dt.date(2026, 4, 10),
        dt.date(2026, 4, 17),
    )
    assert (windows["3m"].opens, windows["3m"].closes) == (dt.date(2026, 5, 27), dt.date(2026, 6, 24))
    assert (windows["6m"].opens, windows["6m"].closes) == (dt.date(2026, 8, 11), dt.date(2026, 10, 10))
    assert (windows["12m"].opens, windows["12m"].closes) == (dt.date(2027, 1, 24), dt.date(2027, 4, 24))
    assert (windows["24m"].opens, windows["24m"].closes) == (dt.date(2028, 1, 10), dt.date(2028, 5, 9))
    assert windows["36m"].due == dt.date(2029, 3, 10)


def test_a_window_is_pending_then_due_then_missed_unless_completed() -> None:
    window = Window(
        "3m", dt.date(2026, 5, 1), dt.date(2026, 5, 15), dt.date(2026, 5, 29), dt.date(2026, 5, 29)
    )
    assert window.state(dt.date(2026, 4, 30), completed=False) == "pending"
    assert window.state(dt.date(2026, 5, 1), completed=False) == "due"
    assert window.state(dt.date(2026, 5, 29), completed=False) == "due"
    assert window.state(dt.date(2026, 5, 30), completed=False) == "missed"
    assert window.state(dt.date(2026, 5, 30), completed=True) == "completed"
    assert not window.overdue(dt.date(2026, 5, 15)) and window.overdue(dt.date(2026, 5, 16))


def test_answers_after_the_window_are_late_and_baseline_answers_after_the_index_are_flagged() -> None:
    baseline, one_month = schedule().windows(dt.date(2026, 3, 10))[:2]
    assert baseline.flags_for(dt.date(2026, 3, 10)) == ()
    assert baseline.flags_for(dt.date(2026, 3, 11)) == ("baseline-after-index",)
    assert baseline.flags_for(dt.date(2026, 4, 1)) == ("late",)
    assert one_month.flags_for(dt.date(2026, 4, 17)) == ()
    assert one_month.flags_for(dt.date(2026, 4, 18)) == ("late",)


def test_contacts_that_would_fall_after_the_window_closes_are_not_made() -> None:
    plan = schedule()
    one_month = plan.windows(dt.date(2026, 3, 10))[1]  # a 14-day window
    assert plan.contact_dates(one_month) == {
        "invitation": dt.date(2026, 4, 3),
        "reminder": dt.date(2026, 4, 7),
        "phone-call": dt.date(2026, 4, 11),
    }
    six_months = plan.windows(dt.date(2026, 3, 10))[3]
    assert set(plan.contact_dates(six_months)) == {"invitation", "reminder", "phone-call", "letter"}


def test_each_condition_has_its_instruments_and_percent_improvement_skips_the_baseline() -> None:
    plan = schedule()
    assert plan.instruments_for("ankle-instability", "3m") == (
        "nprs",
        "percent-improvement",
        "sane",
        "faam-adl",
        "faam-sports",
        "cait",
    )
    at_baseline = plan.instruments_for(
        "morton-neuroma", "baseline", lambda code: code != "percent-improvement"
    )
    assert "percent-improvement" not in at_baseline
    assert plan.instruments_for("unknown-condition", "1m") == plan.instruments["default"]


def test_every_scheduled_instrument_is_in_the_library() -> None:
    from stride.core.instruments import library

    codes = {code for codes in schedule().instruments.values() for code in codes}
    assert codes <= set(library())


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('code = "baseline"', 'code = "start"', "first time point must be the baseline"),
        ("days_before = 7", "days_before = -7", "negative offset"),
        ("months = 3", "months = 1", "increasing months"),
        ("letter = 15", "post = 15", r"\[contacts\]"),
        ("default = [", "others = [", "default list"),
    ],
)
def test_a_broken_schedule_file_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = SCHEDULE_FILE.read_text()
    assert old in text
    path = tmp_path / "schedule.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogError, match=message):
        load_schedule(path)
