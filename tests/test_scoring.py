"""Questionnaire instruments: their files, exact scoring under each policy, responders and `stride score`.

The worked examples come from domain-reference §2.2; the other expected values are computed by
hand in the comment beside each case.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stride.core.errors import CatalogError, Invalid
from stride.core.instruments import (
    INSTRUMENT_DIR,
    NA,
    SCORING_RULES,
    instrument,
    library,
    load_instrument,
    load_library,
)
from stride.core.scoring import (
    RULES,
    ScaleScore,
    change,
    flagged,
    percent_change,
    responder,
    score,
    validate_answers,
)

STRIDE = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "stride")
if not Path(STRIDE).exists():  # an installed stride, outside this checkout's virtualenv
    STRIDE = shutil.which("stride") or STRIDE

SHIPPED = {
    "nprs",
    "percent-improvement",
    "sane",
    "lefs",
    "faam-adl",
    "faam-sports",
    "faos",
    "cait",
    "moxfq",
    "ffi",
}


def answers(code: str, default: Any = None, **by_scale: Any) -> list[Any]:
    """Answers in item order: each scale's items get a value (or a list of values), others ``default``."""
    inst = instrument(code)
    result: dict[str, Any] = {item.link_id: default for item in inst.items}
    for key, values in by_scale.items():
        link_ids = inst.scale(key.replace("_", "-")).items
        values = values if isinstance(values, list) else [values] * len(link_ids)
        assert len(values) == len(link_ids), key
        result.update(zip(link_ids, values, strict=True))
    return [result[item.link_id] for item in inst.items]


def scored(
    code: str, given_answers: Sequence[Any], policy: str | None = None, scale: str = "total"
) -> ScaleScore:
    return score(instrument(code), given_answers, policy).scales[scale]


def value(code: str, given_answers: Sequence[Any], policy: str | None = None, scale: str = "total"):
    return scored(code, given_answers, policy, scale).value


# --------------------------------------------------------------------------- the library


def test_the_library_ships_every_instrument_of_domain_v1_and_no_other() -> None:
    assert set(library()) == SHIPPED
    assert "eq5d5l" not in library() and "promis-pf" not in library()
    readme = (INSTRUMENT_DIR / "README.md").read_text(encoding="utf-8")
    assert "eq5d5l" in readme and "promis-pf" in readme


@pytest.mark.parametrize("path", sorted(INSTRUMENT_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_instrument_file_loads_on_its_own(path: Path) -> None:
    loaded = load_instrument(path)
    assert loaded.code == path.stem
    assert loaded.version == "1"
    assert loaded.policy in loaded.policies
    assert all(note.strip() for note in loaded.policy_notes.values())


@pytest.mark.parametrize(
    ("code", "items", "scales"),
    [
        ("nprs", 1, ["total"]),
        ("percent-improvement", 1, ["total"]),
        ("sane", 1, ["total"]),
        ("lefs", 20, ["total"]),
        ("faam-adl", 21, ["total"]),
        ("faam-sports", 8, ["total"]),
        ("faos", 42, ["symptoms", "pain", "adl", "sport", "qol"]),
        ("cait", 9, ["total"]),
        ("moxfq", 16, ["walking-standing", "pain", "social", "index"]),
        ("ffi", 23, ["pain", "disability", "activity", "total"]),
    ],
)
def test_each_instrument_has_its_items_and_the_scale_codes_the_cli_and_api_use(code, items, scales) -> None:
    inst = instrument(code)
    assert len(inst.items) == items
    assert list(inst.scales) == scales
    assert [item.number for item in inst.items] == list(range(1, items + 1))


def test_faos_items_are_in_form_order_symptoms_pain_adl_sport_qol() -> None:
    faos = instrument("faos")
    sizes = {code: len(scale.items) for code, scale in faos.scales.items()}
    assert sizes == {"symptoms": 7, "pain": 9, "adl": 17, "sport": 5, "qol": 4}
    in_order = [link_id for scale in faos.scales.values() for link_id in scale.items]
    assert in_order == [item.link_id for item in faos.items]


def test_cait_item_maxima_follow_the_30_point_form() -> None:
    cait = instrument("cait")
    assert [item.high for item in cait.items] == [5, 4, 3, 3, 2, 3, 4, 3, 3]
    assert cait.scale("total").range == (0, 30)
    assert "not checked against a primary source" in cait.note


def test_answers_are_coded_as_on_the_form() -> None:
    faam = instrument("faam-adl").items[0]
    assert [o.value for o in faam.options] == [4, 3, 2, 1, 0, NA]
    assert faam.options[0].label == "No difficulty"
    assert [o.value for o in instrument("lefs").items[0].options] == [4, 3, 2, 1, 0]
    faos = instrument("faos").items[0]
    assert (faos.options[0].value, faos.options[-1].value) == (0, 4)
    assert instrument("nprs").items[0].values == frozenset(range(11))
    assert instrument("sane").items[0].values == frozenset(range(101))
    assert instrument("percent-improvement").items[0].values == frozenset(range(-100, 101))
    assert instrument("ffi").items[0].allows_na and instrument("ffi").items[0].values == frozenset(range(11))
    assert not any(
        item.allows_na for code in ("lefs", "faos", "cait", "moxfq") for item in instrument(code).items
    )


def test_only_the_nprs_carries_a_loinc_code_with_verified_answer_codes() -> None:
    assert {code: inst.loinc for code, inst in library().items() if inst.loinc} == {"nprs": "72514-3"}
    nprs = instrument("nprs").items[0]
    assert nprs.options[0].code == "LA6111-4" and nprs.options[10].code == "LA13942-0"


def test_the_nprs_stores_its_pain_context() -> None:
    nprs = instrument("nprs")
    assert nprs.context == "Average pain over the last 7 days"
    assert nprs.context in nprs.contexts and len(nprs.contexts) == 3


def test_only_percent_improvement_has_no_baseline() -> None:
    assert [code for code, inst in library().items() if not inst.baseline] == ["percent-improvement"]


def test_licensed_instruments_ship_only_neutral_labels_and_say_the_clinic_loads_the_wording() -> None:
    neutral = re.compile(
        r"^(Walking/standing|Pain|Social interaction|Disability|Activity limitation) item \d$"
    )
    assert {code for code, inst in library().items() if inst.licensed} == {"moxfq", "ffi"}
    for code in ("moxfq", "ffi"):
        inst = instrument(code)
        assert all(neutral.match(item.label) for item in inst.items), code
        assert all(not item.text for item in inst.items)
        assert "loads the official wording" in inst.licence
    assert instrument("moxfq").item("moxfq-ws3").label == "Walking/standing item 3"


def test_published_instruments_carry_short_labels_never_question_text() -> None:
    for code in ("lefs", "faam-adl", "faam-sports", "faos", "cait"):
        for item in instrument(code).items:
            assert not item.text, item.link_id
            assert len(item.label) <= 50 and not item.label.endswith((".", "?")), item.link_id


@pytest.mark.parametrize(
    ("code", "mcids"),
    [
        ("nprs", {"total": 2}),
        ("lefs", {"total": 9}),
        ("faam-adl", {"total": 8}),
        ("faam-sports", {"total": 9}),
        ("faos", {"symptoms": 10, "pain": 10, "adl": 10, "sport": 10, "qol": 10}),
        ("moxfq", {"walking-standing": 16, "pain": 12, "social": 24, "index": None}),
    ],
)
def test_scales_carry_the_mcids_of_the_reference(code, mcids) -> None:
    assert {s.code: s.mcid for s in instrument(code).scales.values()} == mcids


def test_directions_follow_the_reference() -> None:
    worse = {
        code
        for code, inst in library().items()
        if inst.scale(next(iter(inst.scales))).direction == "higher-worse"
    }
    assert worse == {"nprs", "moxfq", "ffi"}


def test_every_scoring_rule_of_the_library_has_an_implementation() -> None:
    assert set(RULES) == set(SCORING_RULES)


def test_an_unknown_instrument_code_is_refused() -> None:
    with pytest.raises(Invalid, match=re.escape("Unknown instrument code 'eq5d5l'.")) as caught:
        instrument("eq5d5l")
    assert caught.value.field == "instrument"


# --------------------------------------------------------------------------- broken files


@pytest.fixture
def instrument_copy(tmp_path: Path) -> Path:
    for file in INSTRUMENT_DIR.glob("*.toml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("faam-adl", 'scoring = "faam"', 'scoring = "magic"', "unknown scoring rule 'magic'"),
        ("moxfq", 'items = ["moxfq-p1"', 'items = ["moxfq-p9"', "scale pain names unknown item 'moxfq-p9'"),
        ("lefs", 'link_id = "lefs-02"', 'link_id = "lefs-01"', "duplicate link id 'lefs-01'"),
        ("lefs", "range = [0, 80]", "range = [80, 80]", "range low 80 must be below high 80"),
        (
            "lefs",
            "range = [0, 80]",
            "range = [0, 100]",
            "range [0, 100] is not what the sum rule gives ([0, 80])",
        ),
        (
            "cait",
            "range = [0, 2]",
            "range = [0, 3]",
            "range [0, 30] is not what the sum rule gives ([0, 31])",
        ),
        ("lefs", 'policy = "complete"', 'policy = "prorate-3"', "policy 'prorate-3' is not in policies"),
        (
            "cait",
            'policies = ["complete"]',
            'policies = ["complete", "half-answered"]',
            "policy 'half-answered' is not one the sum rule knows",
        ),
        ("lefs", 'direction = "higher-better"', 'direction = "up"', "direction 'up' must be one of"),
        ("lefs", 'version = "1"', "version = 1", "version must be a string"),
        ("faam-adl", "min_answered = 19", "", "the faam rule needs min_answered"),
        (
            "faam-adl",
            "min_answered = 19",
            "min_answered = 22",
            "min_answered must be a whole number from 1 to 21",
        ),
        ("moxfq", "social = 24 }", "socials = 24 }", "names unknown scale 'socials'"),
        ("nprs", 'loinc = "72514-3"', 'loinc = "LOINC-1"', "'LOINC-1' is not a LOINC code"),
        ("nprs", 'context = "Average', 'context = "Typical', "is not one of its contexts"),
        (
            "ffi",
            'subscales = ["pain", "disability", "activity"]',
            'subscales = ["pain", "disability"]',
            "cover",
        ),
        ("lefs", 'link_id = "lefs-20"', 'link_id = "faos-20"', "link id 'faos-20' must start with 'lefs-'"),
    ],
)
def test_a_broken_instrument_file_is_refused_with_the_reason(
    instrument_copy, file, old, new, message
) -> None:
    path = instrument_copy / f"{file}.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(message)) as caught:
        load_instrument(path)
    assert str(caught.value).startswith(f"{file}.toml: ")
    with pytest.raises(CatalogError):
        load_library(instrument_copy)


def test_an_item_that_uses_an_unknown_option_set_is_refused(instrument_copy) -> None:
    path = instrument_copy / "lefs.toml"
    path.write_text(path.read_text().replace('options = "difficulty-4-0"', 'options = "difficulty"', 1))
    with pytest.raises(CatalogError, match="item lefs-01 names unknown option set 'difficulty'"):
        load_instrument(path)


def test_a_file_whose_name_is_not_its_code_or_that_is_not_toml_is_refused(instrument_copy) -> None:
    renamed = instrument_copy / "lefs-old.toml"
    shutil.copy(instrument_copy / "lefs.toml", renamed)
    with pytest.raises(
        CatalogError, match=r"lefs-old\.toml: instrument code 'lefs' does not match the file name"
    ):
        load_instrument(renamed)
    broken = instrument_copy / "sane.toml"
    broken.write_text("instrument = \n")
    with pytest.raises(CatalogError, match=r"^sane\.toml: "):
        load_instrument(broken)
    with pytest.raises(CatalogError, match="no instrument files"):
        load_library(instrument_copy / "empty")


def test_na_on_an_instrument_whose_rule_does_not_score_it_is_refused(instrument_copy) -> None:
    path = instrument_copy / "lefs.toml"
    last = '{ value = 0, label = "Extreme difficulty or unable" },'
    text = path.read_text().replace(last, last + '\n    { value = "NA", label = "Not applicable" },')
    path.write_text(text)
    with pytest.raises(CatalogError, match="allows NA, which the sum rule does not score"):
        load_instrument(path)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("code", "given_answers", "message"),
    [
        ("faam-adl", [4] * 20, "faam-adl expects 21 answers, got 20."),
        ("faos", [0] * 43, "faos expects 42 answers, got 43."),
        ("faam-adl", [4, 4, 7] + [4] * 18, "Item 3 (faam-adl-03): 7 is not one of its answers (0–4 or NA)."),
        ("faam-adl", [4, 2.5] + [4] * 19, "Item 2 (faam-adl-02): 2.5 is not a whole number (0–4 or NA)."),
        ("lefs", [NA] + [4] * 19, 'Item 1 (lefs-01): "NA" is not one of its answers (0–4).'),
        ("lefs", [4] * 19 + [-1], "Item 20 (lefs-20): -1 is not one of its answers (0–4)."),
        ("nprs", [True], "Item 1 (nprs-01): true is not one of its answers (0–10)."),
        ("nprs", ["3"], 'Item 1 (nprs-01): "3" is not one of its answers (0–10).'),
        ("nprs", [11], "Item 1 (nprs-01): 11 is not one of its answers (0–10)."),
        (
            "percent-improvement",
            [-101],
            "Item 1 (percent-improvement-01): -101 is not one of its answers (-100 to 100).",
        ),
        ("cait", [5, 4, 3, 3, 3, 3, 4, 3, 3], "Item 5 (cait-05): 3 is not one of its answers (0–2)."),
        (
            "faam-sports",
            [4] * 7 + ["na"],
            'Item 8 (faam-sports-08): "na" is not one of its answers (0–4 or NA).',
        ),
        ("ffi", [11] + [0] * 22, "Item 1 (ffi-pain-01): 11 is not one of its answers (0–10 or NA)."),
        ("moxfq", [0] * 15 + [NA], 'Item 16 (moxfq-si4): "NA" is not one of its answers (0–4).'),
        ("sane", "85", "Answers must be a list in item order."),
    ],
)
def test_bad_answers_are_refused_with_one_precise_line(code, given_answers, message) -> None:
    with pytest.raises(Invalid) as caught:
        validate_answers(instrument(code), given_answers)
    assert caught.value.message == message
    assert caught.value.field == "answers"
    assert "\n" not in message
    with pytest.raises(Invalid, match=re.escape(message)):
        score(instrument(code), given_answers)


def test_blank_answers_are_valid_input() -> None:
    validate_answers(instrument("faos"), [None] * 42)
    validate_answers(instrument("faam-adl"), [None, NA] * 10 + [0])


def test_an_unknown_policy_is_refused_naming_the_choices() -> None:
    with pytest.raises(
        Invalid, match="lefs has no scoring policy 'half-answered'; choose one of complete, prorate-2"
    ) as caught:
        score(instrument("lefs"), [3] * 20, "half-answered")
    assert caught.value.field == "policy"


# --------------------------------------------------------------------------- worked examples (§2.2)


def test_lefs_20_items_all_3_scores_60() -> None:
    result = scored("lefs", [3] * 20)
    assert (result.value, result.valid, result.answered, result.na, result.missing) == (60.0, True, 20, 0, 0)


def test_faam_adl_19_answered_summing_57_with_2_na_scores_75() -> None:
    given_answers = [3] * 19 + [NA, NA]
    assert sum(a for a in given_answers if a != NA) == 57
    for policy in ("na-counts-as-completed", "na-counts-as-missing"):
        result = scored("faam-adl", given_answers, policy)
        assert (result.value, result.valid, result.answered, result.na, result.flags) == (
            75.0,
            True,
            19,
            2,
            (),
        )


def test_faam_sports_all_2_scores_50() -> None:
    assert value("faam-sports", [2] * 8) == 50.0


def test_faam_adl_with_17_answered_is_invalid_under_the_strict_policy() -> None:
    given_answers = [4] * 17 + [NA] * 4
    strict = scored("faam-adl", given_answers, "na-counts-as-missing")
    assert (strict.value, strict.valid, strict.answered, strict.na) == (None, False, 17, 4)


def test_ffi_pain_8_applicable_summing_40_with_1_na_scores_50() -> None:
    assert value("ffi", answers("ffi", 0, pain=[5] * 8 + [NA]), scale="pain") == 50.0


def test_moxfq_domains_and_index_worked_example() -> None:
    result = score(instrument("moxfq"), answers("moxfq", walking_standing=2, pain=2, social=1))
    assert {code: s.value for code, s in result.scales.items()} == {
        "walking-standing": 50.0,  # 14 / 28
        "pain": 50.0,  # 10 / 20
        "social": 25.0,  # 4 / 16
        "index": 43.75,  # 28 / 64
    }


def test_faos_pain_all_1_scores_75() -> None:
    assert value("faos", answers("faos", pain=1), scale="pain") == 75.0


def test_nprs_6_to_3_is_minus_3_and_50_percent_and_a_responder_under_both_definitions() -> None:
    nprs = instrument("nprs")
    assert value("nprs", [6]) == 6.0 and value("nprs", [3]) == 3.0
    assert change(6, 3) == -3
    assert percent_change(6, 3) == 50.0
    assert responder(nprs, "total", 6, 3) is True
    assert responder(nprs, "total", 6, 3, definition="mcid") is True
    assert responder(nprs, "total", 6, 3, definition="substantial") is True


# --------------------------------------------------------------------------- every instrument and policy


@pytest.mark.parametrize("code", ["nprs", "sane", "percent-improvement"])
def test_single_value_instruments_score_the_answer_and_nothing_without_one(code) -> None:
    inst = instrument(code)
    top = inst.items[0].high
    assert value(code, [top]) == float(top)
    blank = scored(code, [None])
    assert (blank.value, blank.valid, blank.answered, blank.missing) == (None, False, 0, 1)
    assert score(inst, [top]).policy == "single-answer"


def test_percent_improvement_is_signed() -> None:
    assert value("percent-improvement", [-40]) == -40.0
    assert value("percent-improvement", [0]) == 0.0


@pytest.mark.parametrize(
    ("given_answers", "policy", "expected", "flags"),
    [
        ([4] * 19 + [None], "complete", None, ()),
        ([4] * 19 + [None], "prorate-2", 80.0, ("prorated",)),  # 76 / 19 × 20
        ([4] * 10 + [2] * 8 + [None, None], "prorate-2", 62.0, ("prorated",)),  # 56 / 18 × 20 = 62.2
        ([4] * 10 + [0] * 8 + [None, None], "prorate-2", 44.0, ("prorated",)),  # 40 / 18 × 20 = 44.4
        ([1] * 17 + [None] * 3, "prorate-2", None, ()),  # 3 blank: too many
        ([2] * 20, "prorate-2", 40.0, ()),  # complete: not prorated
        ([0] * 20, "complete", 0.0, ()),
        ([4] * 20, "complete", 80.0, ()),
    ],
)
def test_lefs_policies(given_answers, policy, expected, flags) -> None:
    result = scored("lefs", given_answers, policy)
    assert (result.value, result.valid, result.flags) == (expected, expected is not None, flags)
    assert result.missing == given_answers.count(None)


@pytest.mark.parametrize(
    ("code", "given_answers", "completed", "strict", "flags"),
    [
        # ADL: 19 answered (ten 4s, nine 1s = 49) + 2 blank → 49 / 76 on both policies
        ("faam-adl", [4] * 10 + [1] * 9 + [None] * 2, 64.4737, 64.4737, ()),
        # ADL: 18 answered + 3 blank → under the 90 % rule on both
        ("faam-adl", [4] * 18 + [None] * 3, None, None, ()),
        # ADL: 17 answered (all 2) + 4 NA → 34 / 68 when NA counts as completed, flagged
        ("faam-adl", [2] * 17 + [NA] * 4, 50.0, None, ("few-rated-items",)),
        # ADL: 18 answered + 2 NA + 1 blank → 20 completed: 54 / 72 flagged; strict: 18 < 19
        ("faam-adl", [3] * 18 + [NA, NA, None], 75.0, None, ("few-rated-items",)),
        # ADL: every item NA → nothing to score on either policy
        ("faam-adl", [NA] * 21, None, None, ()),
        # Sports: 7 answered (six 4s, one 3 = 27) + 1 NA → 27 / 28
        ("faam-sports", [4] * 6 + [3, NA], 96.4286, 96.4286, ()),
        # Sports: 6 answered + 2 NA → valid and flagged, strict invalid
        ("faam-sports", [4] * 6 + [NA, NA], 100.0, None, ("few-rated-items",)),
        # Sports: 6 answered + 1 NA + 1 blank → 7 completed
        ("faam-sports", [1] * 6 + [NA, None], 25.0, None, ("few-rated-items",)),
        # Sports: 6 answered + 2 blank → invalid on both
        ("faam-sports", [4] * 6 + [None, None], None, None, ()),
        # Sports: 8 answered, all 0
        ("faam-sports", [0] * 8, 0.0, 0.0, ()),
    ],
)
def test_faam_policies(code, given_answers, completed, strict, flags) -> None:
    default = scored(code, given_answers)
    assert score(instrument(code), given_answers).policy == "na-counts-as-completed"
    assert (default.value, default.valid, default.flags) == (completed, completed is not None, flags)
    assert (default.answered, default.na, default.missing) == (
        sum(isinstance(a, int) for a in given_answers),
        given_answers.count(NA),
        given_answers.count(None),
    )
    missing = scored(code, given_answers, "na-counts-as-missing")
    assert (missing.value, missing.valid, missing.flags) == (strict, strict is not None, ())


@pytest.mark.parametrize(
    ("scale", "values", "half", "two"),
    [
        ("pain", [0, 1, 2, 3, 4] + [None] * 4, 50.0, None),  # 5/9: mean 2; 4 blank > 2
        ("pain", [0, 1, 2, 3] + [None] * 5, None, None),  # 4/9 < half
        ("symptoms", [0, 0, 1, 1, 2, 2, 3], 67.8571, 67.8571),  # 100 − 9/7 × 25
        ("symptoms", [4, 4, 4, 4, 4, None, None], 0.0, 0.0),  # 5/7, 2 blank
        ("symptoms", [1, 1, 1, 1, None, None, None], 75.0, None),  # 4/7: half; 3 blank
        ("symptoms", [1, 1, 1, None, None, None, None], None, None),  # 3/7
        ("adl", [2] * 9 + [None] * 8, 50.0, None),  # 9/17
        ("adl", [0] * 8 + [None] * 9, None, None),  # 8/17
        ("adl", [3] * 15 + [None] * 2, 25.0, 25.0),  # 15/17
        ("sport", [1, 2, 3, None, None], 50.0, 50.0),  # 3/5, 2 blank
        ("sport", [1, 2, None, None, None], None, None),  # 2/5
        ("qol", [1, 2, None, None], 62.5, 62.5),  # 2/4: mean 1.5
        ("qol", [1, None, None, None], None, None),  # 1/4
        ("qol", [0, 0, 0, 1], 93.75, 93.75),  # 100 − 0.25 × 25
    ],
)
def test_faos_policies(scale, values, half, two) -> None:
    given_answers = answers("faos", **{scale: values})
    default = score(instrument("faos"), given_answers)
    assert default.policy == "half-answered"
    assert default.scales[scale].value == half
    assert default.scales[scale].missing == values.count(None)
    assert scored("faos", given_answers, "two-missing", scale).value == two
    others = [s for code, s in default.scales.items() if code != scale]
    assert all(not s.valid and s.value is None and s.answered == 0 for s in others)


def test_faos_subscales_are_scored_separately_on_a_full_form() -> None:
    result = score(instrument("faos"), answers("faos", symptoms=0, pain=1, adl=2, sport=3, qol=4))
    assert {c: s.value for c, s in result.scales.items()} == {
        "symptoms": 100.0,
        "pain": 75.0,
        "adl": 50.0,
        "sport": 25.0,
        "qol": 0.0,
    }


def test_cait_sums_points_and_needs_all_nine_items() -> None:
    assert value("cait", [5, 4, 3, 3, 2, 3, 4, 3, 3]) == 30.0
    assert value("cait", [0] * 9) == 0.0
    assert value("cait", [3, 2, 2, 1, 1, 2, 3, 2, 2]) == 18.0
    blank = scored("cait", [5, 4, 3, 3, 2, 3, 4, 3, None])
    assert (blank.value, blank.valid, blank.missing) == (None, False, 1)
    with pytest.raises(Invalid, match="cait has no scoring policy 'prorate-2'"):
        score(instrument("cait"), [0] * 9, "prorate-2")


def test_cait_flags_instability_at_or_below_a_configurable_cutoff() -> None:
    cait = instrument("cait")
    assert flagged(cait, "total", 27) is True
    assert flagged(cait, "total", 28) is False
    assert flagged(cait, "total", 25, cutoff=24) is False
    assert flagged(cait, "total", 24, cutoff=24) is True
    assert flagged(cait, "total", None) is None
    assert flagged(instrument("lefs"), "total", 10) is None


def test_moxfq_scores_a_domain_only_when_complete() -> None:
    given_answers = answers("moxfq", walking_standing=[4] * 7, pain=[1, 1, 1, 1, None], social=[0, 1, 2, 3])
    result = score(instrument("moxfq"), given_answers)
    assert result.policy == "complete"
    assert result.scales["walking-standing"].value == 100.0
    assert (result.scales["pain"].value, result.scales["pain"].missing) == (None, 1)
    assert result.scales["social"].value == 37.5  # 6 / 16
    assert (result.scales["index"].value, result.scales["index"].answered) == (None, 15)
    assert "missing-item rule was not seen" in instrument("moxfq").note


def test_ffi_subscales_and_both_total_methods() -> None:
    # pain 40/80, disability 18/90, activity 0/30 (2 NA)
    given_answers = answers("ffi", pain=[5] * 8 + [NA], disability=2, activity=[0, 0, 0, NA, NA])
    method_1 = score(instrument("ffi"), given_answers)
    assert method_1.policy == "total-over-all-items"
    assert {c: s.value for c, s in method_1.scales.items()} == {
        "pain": 50.0,
        "disability": 20.0,
        "activity": 0.0,
        "total": 29.0,  # 58 / 200
    }
    assert (method_1.scales["total"].answered, method_1.scales["total"].na) == (20, 3)
    method_2 = score(instrument("ffi"), given_answers, "mean-of-subscales")
    assert method_2.policy == "mean-of-subscales"
    assert method_2.scales["total"].value == 23.3333  # (50 + 20 + 0) / 3
    assert method_2.scales["pain"] == method_1.scales["pain"]


def test_ffi_all_items_applicable_total_is_over_230() -> None:
    assert value("ffi", [10] * 22 + [0]) == 95.6522  # 220 / 230


def test_ffi_a_blank_item_invalidates_its_subscale_and_the_total() -> None:
    given_answers = answers("ffi", pain=3, disability=[None] + [4] * 8, activity=5)
    for policy in ("total-over-all-items", "mean-of-subscales"):
        result = score(instrument("ffi"), given_answers, policy)
        assert result.scales["pain"].value == 30.0
        assert (result.scales["disability"].value, result.scales["disability"].missing) == (None, 1)
        assert result.scales["activity"].value == 50.0
        assert result.scales["total"].value is None


def test_ffi_a_subscale_with_every_item_na_has_no_score_and_only_method_1_gives_a_total() -> None:
    given_answers = answers("ffi", pain=[5] * 8 + [NA], disability=2, activity=NA)
    method_1 = score(instrument("ffi"), given_answers)
    assert (method_1.scales["activity"].value, method_1.scales["activity"].na) == (None, 5)
    assert method_1.scales["total"].value == 34.1176  # 58 / 170
    assert score(instrument("ffi"), given_answers, "mean-of-subscales").scales["total"].value is None


def test_scoring_never_mutates_its_input_and_takes_any_sequence() -> None:
    given_answers = [3] * 18 + [NA, None, 2]
    before = list(given_answers)
    first = score(instrument("faam-adl"), given_answers)
    assert given_answers == before
    assert score(instrument("faam-adl"), tuple(given_answers)) == first


def test_values_are_floats_rounded_to_4_decimals() -> None:
    result = scored("faam-adl", [4] * 20 + [3])  # 83 / 84
    assert result.value == 98.8095 and isinstance(result.value, float)
    assert isinstance(value("lefs", [3] * 20), float)


def test_the_result_gives_the_json_shape_of_the_cli_and_api() -> None:
    result = score(instrument("faam-sports"), [2] * 8)
    assert result.as_dict() == {
        "instrument": "faam-sports",
        "version": "1",
        "policy": "na-counts-as-completed",
        "scores": {
            "total": {"value": 50.0, "valid": True, "answered": 8, "na": 0, "missing": 0, "flags": []}
        },
    }


# --------------------------------------------------------------------------- change and responders


def test_change_and_percent_change() -> None:
    assert change(40, 49) == 9
    assert change(None, 3) is None and change(3, None) is None
    assert percent_change(6, 3) == 50.0
    assert percent_change(3, 4) == -33.3333  # worse
    assert percent_change(0, 3) is None  # undefined at baseline 0
    assert percent_change(None, 3) is None


@pytest.mark.parametrize(
    ("baseline", "followup", "mcid", "substantial"),
    [
        (6, 5, False, False),  # −1, 16.7 %
        (3, 1, True, True),  # −2 points, 66.7 %
        (5, 4, False, False),  # −1, 20 %
        (10, 7, True, False),  # −3 (and 30 %), not 50 %
        (2, 1, True, True),  # −1 but 50 %
        (7, 5, True, False),  # −2 points, 28.6 %
        (4, 6, False, False),  # worse
        (0, 0, False, None),  # no room to improve; percentage undefined
        (6, None, None, None),  # no follow-up
        (None, 3, None, None),  # no baseline
    ],
)
def test_nprs_responder_definitions(baseline, followup, mcid, substantial) -> None:
    nprs = instrument("nprs")
    assert responder(nprs, "total", baseline, followup) is mcid
    assert responder(nprs, "total", baseline, followup, definition="substantial") is substantial


@pytest.mark.parametrize(
    ("code", "scale", "baseline", "followup", "expected"),
    [
        ("lefs", "total", 40, 49, True),  # +9
        ("lefs", "total", 40, 48, False),
        ("faam-adl", "total", 60.0, 68.0, True),  # +8
        ("faam-adl", "total", 60.0, 67.9, False),
        ("faam-sports", "total", 50.0, 58.0, False),  # +8 < 9
        ("faam-sports", "total", 50.0, 59.375, True),
        ("faos", "pain", 66.6667, 76.6667, True),  # +10, after rounding
        ("faos", "qol", 50.0, 59.0, False),
        ("faos", "adl", 90.0, 80.0, False),  # worse
        ("moxfq", "walking-standing", 60.0, 44.0, True),  # −16
        ("moxfq", "walking-standing", 60.0, 45.0, False),
        ("moxfq", "pain", 50.0, 38.0, True),  # −12
        ("moxfq", "social", 50.0, 26.0, True),  # −24
        ("moxfq", "social", 25.0, 50.0, False),  # worse
        ("moxfq", "index", 60.0, 10.0, None),  # no MCID for the index
        ("percent-improvement", "total", None, 50, True),  # the follow-up alone
        ("percent-improvement", "total", None, 49, False),
        ("percent-improvement", "total", None, -20, False),
        ("percent-improvement", "total", None, None, None),
        ("cait", "total", 20, 28, True),  # no longer ≤ 27
        ("cait", "total", 20, 27, False),
        ("cait", "total", None, 30, True),
        ("sane", "total", 40, 90, None),  # DOMAIN v1 fixes no SANE responder
        ("ffi", "total", 60.0, 10.0, None),  # nor an FFI one
    ],
)
def test_responder_definitions_of_domain_v1(code, scale, baseline, followup, expected) -> None:
    assert responder(instrument(code), scale, baseline, followup) is expected


def test_the_cait_cutoff_is_configurable() -> None:
    cait = instrument("cait")
    assert responder(cait, "total", 20, 26) is False
    assert responder(cait, "total", 20, 26, cutoff=25) is True


def test_responder_refuses_an_unknown_scale_definition_or_a_cutoff_it_has_not_got() -> None:
    with pytest.raises(
        Invalid, match=r"faos has no scale 'total' \(its scales: symptoms, pain, adl, sport, qol\)"
    ):
        responder(instrument("faos"), "total", 50, 70)
    with pytest.raises(Invalid, match="lefs has no responder definition 'substantial'"):
        responder(instrument("lefs"), "total", 50, 70, definition="substantial")
    with pytest.raises(Invalid, match="has no cut-off"):
        responder(instrument("lefs"), "total", 50, 70, cutoff=27)


# --------------------------------------------------------------------------- properties


@st.composite
def answer_lists(draw: st.DrawFn, code: str) -> list[Any]:
    """Any valid answers: a numeric answer per item, then a few blanks and (where allowed) a few NA."""
    items = instrument(code).items
    given_answers: list[Any] = [draw(st.sampled_from(sorted(item.values))) for item in items]
    for index in draw(st.sets(st.integers(0, len(items) - 1), max_size=len(items))):
        given_answers[index] = None
    can_be_na = [index for index, item in enumerate(items) if item.allows_na]
    if can_be_na:
        for index in draw(st.sets(st.sampled_from(can_be_na), max_size=len(can_be_na))):
            given_answers[index] = NA
    return given_answers


CASES = [(code, policy) for code in sorted(SHIPPED) for policy in instrument(code).policies]
PROPERTY = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize(("code", "policy"), CASES)
@PROPERTY
@given(data=st.data())
def test_every_scale_stays_in_its_range_and_has_no_value_iff_invalid(code, policy, data) -> None:
    inst = instrument(code)
    given_answers = data.draw(answer_lists(code))
    result = score(inst, given_answers, policy)
    assert result.policy == policy and result.instrument == code and result.version == inst.version
    assert list(result.scales) == list(inst.scales)
    for scale_code, s in result.scales.items():
        scale = inst.scale(scale_code)
        assert (s.value is None) == (not s.valid)
        assert s.answered + s.na + s.missing == len(scale.items)
        if s.valid:
            assert isinstance(s.value, float)
            assert scale.range[0] <= s.value <= scale.range[1]
            assert s.value == round(s.value, 4)
        else:
            assert s.flags == ()


@pytest.mark.parametrize(("code", "policy"), CASES)
@PROPERTY
@given(data=st.data())
def test_a_complete_form_always_scores_every_scale(code, policy, data) -> None:
    inst = instrument(code)
    given_answers = [data.draw(st.sampled_from(sorted(item.values))) for item in inst.items]
    result = score(inst, given_answers, policy)
    assert all(s.valid and s.flags == () and s.missing == 0 for s in result.scales.values())


@PROPERTY
@given(
    baseline=st.floats(min_value=0, max_value=100, allow_nan=False),
    followup=st.floats(min_value=0, max_value=100, allow_nan=False),
)
def test_responders_improve_in_the_scale_direction(baseline, followup) -> None:
    lefs, moxfq = instrument("lefs"), instrument("moxfq")
    if followup <= baseline:
        assert responder(lefs, "total", baseline, followup) is False
    if followup >= baseline:
        assert responder(moxfq, "pain", baseline, followup) is False


# --------------------------------------------------------------------------- the command


def run_score(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env["STRIDE_HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [STRIDE, "score", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_answers(tmp_path: Path, data: Any, name: str = "answers.json") -> str:
    (tmp_path / name).write_text(json.dumps(data), encoding="utf-8")
    return name


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_stride_score_prints_the_scores_as_one_json_object(tmp_path: Path) -> None:
    result = run_score(tmp_path, "faam-adl", write_answers(tmp_path, [3] * 19 + [NA, None]))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout) == {
        "instrument": "faam-adl",
        "version": "1",
        "policy": "na-counts-as-completed",
        "scores": {
            "total": {"value": 75.0, "valid": True, "answered": 19, "na": 1, "missing": 1, "flags": []},
        },
    }


def test_stride_score_takes_a_policy_and_reads_stdin(tmp_path: Path) -> None:
    result = run_score(
        tmp_path, "faam-adl", "-", "--policy", "na-counts-as-missing", stdin=json.dumps([2] * 17 + [NA] * 4)
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["policy"] == "na-counts-as-missing"
    assert scores["scores"]["total"] == {
        "value": None,
        "valid": False,
        "answered": 17,
        "na": 4,
        "missing": 0,
        "flags": [],
    }


def test_stride_score_refuses_the_wrong_number_of_answers(tmp_path: Path) -> None:
    result = run_score(tmp_path, "faam-adl", write_answers(tmp_path, [4] * 20))
    assert_one_line_error(result, "faam-adl expects 21 answers, got 20.")


def test_stride_score_refuses_an_answer_out_of_range(tmp_path: Path) -> None:
    result = run_score(tmp_path, "faam-adl", write_answers(tmp_path, [4, 4, 7] + [4] * 18))
    assert_one_line_error(result, "Item 3 (faam-adl-03): 7 is not one of its answers (0–4 or NA).")


def test_stride_score_refuses_an_unknown_code(tmp_path: Path) -> None:
    result = run_score(tmp_path, "eq5d5l", write_answers(tmp_path, [1, 1, 1, 1, 1]))
    assert_one_line_error(result, "Unknown instrument code 'eq5d5l'.")


def test_stride_score_refuses_an_unknown_policy_bad_json_and_a_missing_file(tmp_path: Path) -> None:
    name = write_answers(tmp_path, [3] * 20)
    assert_one_line_error(
        run_score(tmp_path, "lefs", name, "--policy", "lenient"), "lefs has no scoring policy 'lenient'"
    )
    (tmp_path / "bad.json").write_text("[1, 2", encoding="utf-8")
    assert_one_line_error(run_score(tmp_path, "lefs", "bad.json"), "bad.json is not valid JSON")
    assert_one_line_error(run_score(tmp_path, "lefs", "nowhere.json"), "Cannot read nowhere.json")
    assert_one_line_error(run_score(tmp_path, "nprs", "-", stdin='{"a": 1}'), "stdin must hold a JSON list")


def test_stride_score_help_has_an_example(tmp_path: Path) -> None:
    result = run_score(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example:" in result.stdout and "faam-adl" in result.stdout
