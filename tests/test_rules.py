"""The pure clinical rules: dates, sides, steroid limits, body measures, injectate labels."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from stride.core import anthropometry, injectates, rules
from stride.core.errors import Invalid
from stride.core.privacy import suppress_small

TODAY = dt.date(2026, 11, 21)


def test_a_birth_date_today_is_allowed_and_tomorrow_is_not() -> None:
    rules.birth_date(TODAY, TODAY)
    with pytest.raises(Invalid, match="in the future"):
        rules.birth_date(TODAY + dt.timedelta(days=1), TODAY)


def test_an_event_before_birth_is_refused_with_the_birth_date() -> None:
    with pytest.raises(Invalid, match=r"before the patient's date of birth \(02 Feb 1980\)") as error:
        rules.event_date(
            dt.date(1979, 1, 1), "performed_on", "procedure date", born=dt.date(1980, 2, 2), today=TODAY
        )
    assert error.value.field == "performed_on"


@pytest.mark.parametrize(
    ("procedure", "condition", "ok"),
    [
        ("left", "left", True),
        ("right", "left", False),
        ("left", "bilateral", True),
        ("bilateral", "bilateral", True),
        ("bilateral", "right", False),
    ],
)
def test_a_procedure_is_on_the_side_of_its_condition(procedure, condition, ok) -> None:
    if ok:
        rules.procedure_side(procedure, condition)
    else:
        with pytest.raises(Invalid):
            rules.procedure_side(procedure, condition)


def test_the_fourth_steroid_injection_within_six_months_exceeds_the_limit() -> None:
    dates = [dt.date(2026, 1, 5), dt.date(2026, 2, 5), dt.date(2026, 3, 5)]
    assert not rules.steroid_limit_exceeded(dates, dt.date(2026, 3, 5))
    assert rules.steroid_limit_exceeded([*dates, dt.date(2026, 6, 1)], dt.date(2026, 6, 1))
    # Seven months after the first, only three remain in the window.
    assert not rules.steroid_limit_exceeded([*dates, dt.date(2026, 8, 10)], dt.date(2026, 8, 10))


def test_age_counts_whole_years_including_leap_day_birthdays() -> None:
    assert rules.age_on(dt.date(1968, 11, 22), TODAY) == 57
    assert rules.age_on(dt.date(1968, 11, 21), TODAY) == 58
    assert rules.age_on(dt.date(2000, 2, 29), dt.date(2025, 2, 28)) == 24
    assert rules.age_on(dt.date(2000, 2, 29), dt.date(2025, 3, 1)) == 25


def test_bmi_is_weight_over_height_squared() -> None:
    assert anthropometry.bmi(Decimal("165"), Decimal("63.5")) == 23.3
    assert anthropometry.bmi(None, 70) is None
    assert anthropometry.bmi_category(31.0) == "obese"


@pytest.mark.parametrize(
    ("count", "baseline", "leukocytes", "activation", "paw", "mishra"),
    [
        (1400, 240, "poor", "none", "P4B", "3A"),
        (1100, 230, "rich", "none", "P3A", "1B"),
        (900, None, "rich", "thrombin", "P3xA", "2"),
        (500, 250, "poor", "calcium-chloride", "P2xB", "4B"),
        (200, 250, "poor", "none", "P1B", "3B"),
        (500, None, "poor", "none", None, "3"),  # P1 or P2? Unknown without the blood count.
        (1400, 240, "", "none", None, None),
    ],
)
def test_prp_labels_are_computed_from_the_counts(
    count, baseline, leukocytes, activation, paw, mishra
) -> None:
    assert injectates.paw_label(count, baseline, leukocytes, activation) == paw
    assert injectates.mishra_label(count, baseline, leukocytes, activation) == mishra


def test_doses_are_concentration_times_volume() -> None:
    assert injectates.platelet_dose_billions(1200, 3) == 3.6
    assert injectates.total_nucleated_cells_millions(42, 2) == 84.0
    assert injectates.fold_increase(1200, 0) is None


@pytest.mark.parametrize(
    ("kind", "values", "field", "message"),
    [
        ("steroid", {"drug": "x"}, "dose_mg", "needs its dose"),
        (
            "prp",
            {"volume_ml": 3, "platelet_count": 900, "leukocytes": "pink", "activation": "none"},
            "leukocytes",
            "rich",
        ),
        ("bmc", {"volume_ml": 2, "aspirate_volume_ml": 500}, "aspirate_volume_ml", "between 1 and 240"),
        ("dextrose", {"concentration_pct": 15, "volume_ml": 0}, "volume_ml", "between"),
        ("alcohol", {"concentration_pct": 30, "volume_ml": 1, "dose_mg": 4}, "dose_mg", "does not apply"),
        ("honey", {}, "kind", "Unknown injectate kind"),
    ],
)
def test_injectate_values_are_checked_per_kind(kind, values, field, message) -> None:
    with pytest.raises(Invalid, match=message) as error:
        injectates.validate(kind, values)
    assert error.value.field == field


def test_a_drug_of_another_kind_is_refused() -> None:
    with pytest.raises(Invalid, match="not a corticosteroid"):
        injectates.validate("steroid", {"drug": "lidocaine", "dose_mg": 40}, drug_kind="local-anaesthetic")


def test_small_counts_are_suppressed_but_zero_is_not() -> None:
    rows = [("a", 12), ("e", 4), ("b", 3), ("c", 0), ("d", 5)]
    assert suppress_small(rows, 5) == [("a", 12), ("d", 5), ("c", 0), ("b", None), ("e", None)]
