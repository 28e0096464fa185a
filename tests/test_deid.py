"""The Safe Harbor rules of the research export, as pure functions: no database."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from stride.core import deid
from stride.core.errors import Invalid

KEY = "a long enough export key"
OTHER_KEY = "another long export key"


def test_every_safe_harbor_category_is_listed_once_with_what_stride_does() -> None:
    codes = [item.code for item in deid.SAFE_HARBOR]
    assert codes == [chr(c) for c in range(ord("A"), ord("R") + 1)]  # the 18 of 164.514(b)(2)(i)
    for item in deid.SAFE_HARBOR:
        assert item.name and item.stride.endswith(".") and len(item.stride.split()) >= 5, item.code
    by_code = {item.code: item for item in deid.SAFE_HARBOR}
    assert "90+" in by_code["C"].stride and "record number" in by_code["H"].stride
    assert "Free text" in by_code["R"].stride


def test_a_pseudonym_is_stable_under_one_key_and_different_under_another() -> None:
    first = deid.pseudonym(KEY, "patient", 42)
    assert first == deid.pseudonym(KEY, "patient", 42)
    assert re.fullmatch(r"P[0-9a-f]{16}", first)
    assert first != deid.pseudonym(OTHER_KEY, "patient", 42)
    assert first != deid.pseudonym(KEY, "patient", 43)
    # the kind is part of it: condition 42 is not patient 42
    assert deid.pseudonym(KEY, "condition", 42)[1:] != first[1:]
    assert "42" not in first[1:3]


def test_pseudonyms_do_not_collide_over_many_ids() -> None:
    pseudonyms = deid.Pseudonymiser(KEY)
    made = {pseudonyms("patient", i) for i in range(20_000)}
    assert len(made) == 20_000


def test_an_unknown_kind_or_a_short_key_is_refused() -> None:
    with pytest.raises(Invalid, match="Unknown kind"):
        deid.pseudonym(KEY, "person", 1)
    with pytest.raises(Invalid, match="at least 12"):
        deid.pseudonym("short", "patient", 1)
    with pytest.raises(Invalid, match="Give an export key"):
        deid.check_key("   ")


def test_the_fingerprint_names_a_key_without_revealing_it() -> None:
    print_ = deid.fingerprint(KEY)
    assert re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", print_)
    assert print_ == deid.fingerprint(KEY) != deid.fingerprint(OTHER_KEY)
    assert KEY not in print_


def test_offsets_are_deterministic_never_zero_and_within_half_a_year() -> None:
    offsets = [deid.offset_for(KEY, patient) for patient in range(1, 5001)]
    assert offsets == [deid.offset_for(KEY, patient) for patient in range(1, 5001)]
    assert 0 not in offsets
    assert min(offsets) >= -deid.MAX_SHIFT_DAYS and max(offsets) <= deid.MAX_SHIFT_DAYS
    # both directions and the whole range are used
    assert min(offsets) == -182 and max(offsets) == 182
    assert sum(o < 0 for o in offsets) > 2000 and sum(o > 0 for o in offsets) > 2000
    others = [deid.offset_for(OTHER_KEY, patient) for patient in range(1, 5001)]
    assert sum(a != b for a, b in zip(offsets, others, strict=True)) > 4900


def test_dates_by_mode() -> None:
    day0 = dt.date(2025, 2, 1)
    assert deid.days_from(day0, dt.date(2025, 8, 1)) == 181
    assert deid.days_from(day0, dt.date(2025, 1, 31)) == -1
    assert deid.days_from(day0, None) is None
    assert deid.shifted(dt.date(2025, 2, 1), -3) == dt.date(2025, 1, 29)
    assert deid.shifted(None, 5) is None
    assert deid.export_day("index", dt.date(2025, 2, 11), day0=day0, offset=17) == 10
    assert deid.export_day("shift", dt.date(2025, 2, 11), day0=day0, offset=17) == dt.date(2025, 2, 28)
    with pytest.raises(Invalid, match="true date"):
        deid.export_day("shift", day0, day0=day0, offset=0)
    with pytest.raises(Invalid, match="Unknown date mode"):
        deid.export_day("calendar", day0, day0=day0, offset=3)
    assert deid.check_mode("index") == "index"


def test_ages_over_89_are_grouped() -> None:
    assert deid.age_group(0) == "0"
    assert deid.age_group(47) == "47"
    assert deid.age_group(89) == "89"
    assert deid.age_group(90) == "90+"
    assert deid.age_group(104) == "90+"
    assert deid.age_group(None) == ""
    with pytest.raises(Invalid, match="negative"):
        deid.age_group(-1)


def test_bmi_is_rounded_to_whole_units() -> None:
    assert deid.bmi_value(24.6) == 25 and deid.bmi_value(None) is None


def test_rare_values_are_those_fewer_than_the_minimum_share() -> None:
    counts = {"morton-neuroma": 40, "plantar-fasciitis": 5, "tarsal-coalition": 2, "": 1}
    assert deid.rare_values(counts, 5) == {"tarsal-coalition"}
    assert deid.rare_values(counts, 1) == frozenset()
    assert deid.collapse("tarsal-coalition", frozenset({"tarsal-coalition"})) == "other"
    assert deid.collapse("morton-neuroma", frozenset({"tarsal-coalition"})) == "morton-neuroma"


def test_small_counts_are_withheld_in_their_order_and_zero_is_kept() -> None:
    rows = [("b", 12), ("a", 3), ("c", 0), ("d", 4), ("e", 5)]
    assert deid.suppress_counts(rows, 5) == [("b", 12), ("a", None), ("c", 0), ("d", None), ("e", 5)]
    assert deid.count_text(None, 5) == "<5" and deid.count_text(7, 5) == "7"
    with pytest.raises(Invalid, match="at least 1"):
        deid.suppress_counts(rows, 0)
