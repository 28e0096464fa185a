"""The clinical catalog files: valid, cross-checked, and the codes derived from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stride.core.catalog import CATALOG_DIR, catalog, icd10_index, load_catalog, resolve_condition_codes
from stride.core.errors import CatalogError, Invalid


def codes(condition: str, side: str, site: str = "", episode: str = "", qualifiers: tuple[str, ...] = ()):
    return resolve_condition_codes(catalog().condition(condition), side, site, episode, qualifiers)


def test_the_shipped_catalog_loads_with_every_condition_of_domain_v1() -> None:
    cat = catalog()
    assert set(cat.conditions) >= {
        "morton-neuroma",
        "foot-muscle-wasting",
        "hallux-rigidus",
        "ankle-oa-primary",
        "ankle-oa-post-traumatic",
        "ankle-oa-secondary",
        "ankle-instability",
        "ankle-instability-ligamentous",
        "ankle-sprain",
        "plantar-fasciitis",
        "achilles-tendinopathy",
    }
    assert all(v >= 1 for v in cat.versions.values())


@pytest.mark.parametrize(
    ("condition", "side", "site", "episode", "expected"),
    [
        ("morton-neuroma", "right", "im-space-3", "", "G57.61"),
        ("morton-neuroma", "left", "im-space-2", "", "G57.62"),
        ("morton-neuroma", "bilateral", "im-space-3", "", "G57.63"),
        ("hallux-rigidus", "left", "mtp-1", "", "M20.22"),
        ("ankle-oa-post-traumatic", "right", "tibiotalar", "", "M19.171"),
        ("ankle-instability", "left", "atfl", "", "M25.372"),
        ("ankle-instability-ligamentous", "right", "atfl-cfl", "", "M24.271"),
        ("ankle-sprain", "right", "atfl", "A", "S93.491A"),
        ("ankle-sprain", "left", "cfl", "S", "S93.412S"),
        ("ankle-sprain", "left", "", "D", "S93.402D"),
        ("plantar-fasciitis", "left", "plantar-fascia", "", "M72.2"),
        ("achilles-tendinopathy", "right", "achilles-insertion", "", "M76.61"),
    ],
)
def test_each_condition_side_and_site_has_its_icd10_code(condition, side, site, episode, expected) -> None:
    assert codes(condition, side, site, episode).icd10 == expected


def test_steroid_induced_wasting_adds_the_adverse_effect_code_with_its_episode() -> None:
    coding = codes("foot-muscle-wasting", "left", "interossei-3", "S", ("steroid-induced",))
    assert coding.icd10 == "M62.572"
    assert coding.additional_icd10 == ("T38.0X5S",)
    assert coding.snomed == "88092000"


@pytest.mark.parametrize(
    ("condition", "side", "site", "episode", "field", "message"),
    [
        ("hallux-rigidus", "bilateral", "mtp-1", "", "laterality", "no bilateral code"),
        ("morton-neuroma", "up", "", "", "laterality", "Laterality must be"),
        ("morton-neuroma", "left", "atfl", "", "site", "not recorded at this site"),
        ("ankle-sprain", "left", "atfl", "", "episode", "needs the episode"),
        ("ankle-sprain", "left", "atfl", "Z", "episode", "needs the episode"),
        ("morton-neuroma", "left", "", "A", "episode", "takes no episode"),
    ],
)
def test_a_combination_without_a_code_is_refused(condition, side, site, episode, field, message) -> None:
    with pytest.raises(Invalid) as error:
        codes(condition, side, site, episode)
    assert error.value.field == field
    assert message in error.value.message


def test_an_unknown_condition_code_is_refused() -> None:
    with pytest.raises(Invalid, match="Unknown condition code 'gout'"):
        catalog().condition("gout")


def test_snomed_ids_are_given_only_where_the_reference_verified_them() -> None:
    cat = catalog()
    assert cat.conditions["morton-neuroma"].snomed == "30085007"
    assert cat.conditions["hallux-rigidus"].snomed == ""  # sources conflict: left empty, not guessed
    assert cat.conditions["ankle-instability"].snomed == ""


def test_procedure_types_carry_code_numbers_and_no_descriptor_text() -> None:
    cat = catalog()
    assert cat.procedures["digital-nerve-steroid"].cpt == "64455"
    assert cat.procedures["prolotherapy"].cpt == "M0076"
    assert cat.procedures["bmc-injection"].cpt == "0232T"
    assert not cat.procedures["cheilectomy"].code_verified


def test_every_icd10_code_maps_back_to_one_condition() -> None:
    index = icd10_index(catalog())
    assert index["G57.63"] == ("morton-neuroma", "bilateral")
    assert index["S93.491"] == ("ankle-sprain", "right")


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    for file in CATALOG_DIR.glob("*.toml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("conditions.toml", 'code = "hallux-rigidus"', 'code = "morton-neuroma"', "appears twice"),
        ("conditions.toml", '"M20.21"', '"M20.2X1X1"', "is not an ICD-10-CM code"),
        ("conditions.toml", 'sites = ["mtp-1"]', 'sites = ["big-toe"]', "unknown site 'big-toe'"),
        (
            "conditions.toml",
            'excludes = ["ankle-instability"]',
            'excludes = ["nothing"]',
            "excludes unknown condition",
        ),
        ("procedures.toml", 'cpt = "64455"', 'cpt = "6445"', "not a CPT or HCPCS code"),
        (
            "procedures.toml",
            'injectates = ["dextrose", "local-anaesthetic"]',
            'injectates = ["honey"]',
            "unknown injectate kind",
        ),
        ("body_sites.toml", 'body_site = "foot"', 'body_site = "hand"', "unknown body site 'hand'"),
        ("treatments.toml", 'category = "surgery"', 'category = "magic"', "unknown category"),
        ("conditions.toml", "version = 1", "version = 0", "version must be a positive whole number"),
        ("conditions.toml", 'catalog = "conditions"', 'catalog = "procedures"', "expected catalog"),
    ],
)
def test_a_broken_catalog_file_is_refused_with_the_reason(catalog_copy, file, old, new, message) -> None:
    path = catalog_copy / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogError, match=message):
        load_catalog(catalog_copy)


def test_a_file_that_is_not_toml_is_refused(catalog_copy) -> None:
    (catalog_copy / "procedures.toml").write_text("[[procedure]\ncode=")
    with pytest.raises(CatalogError, match=r"procedures\.toml"):
        load_catalog(catalog_copy)


@pytest.mark.django_db
def test_the_catalog_tables_match_the_files_and_sync_is_idempotent() -> None:
    from stride.care.catalog_sync import sync_catalog
    from stride.care.models import ConditionType, ProcedureType

    assert ConditionType.objects.count() == len(catalog().conditions)
    assert ProcedureType.objects.filter(retired=False).count() == len(catalog().procedures)
    counts = sync_catalog()
    assert (counts["added"], counts["updated"], counts["retired"]) == (0, 0, 0)
    neuroma = ConditionType.objects.get(code="morton-neuroma")
    assert sorted(neuroma.sites.values_list("code", flat=True)) == ["im-space-2", "im-space-3", "im-space-4"]
