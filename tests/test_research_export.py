"""The de-identified research export: nothing identifying leaves, whatever was typed where.

A patient is planted with identifiers everywhere Stride can hold one — name, record
number, email, phone, notes naming her, exact dates, a DICOM file carrying her name and
an operator's, an original file name with her name — and every exported file (CSV,
Parquet read back with pyarrow, the dictionary, the README) is searched for each of them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.urls import reverse

from stride.analytics import reports
from stride.analytics.models import CaseNarrative, SavedCohort
from stride.audit.models import AuditEntry
from stride.care.models import (
    AdverseEvent,
    AdverseEventKind,
    Condition,
    Injectate,
    Procedure,
    ProcedureType,
    TreatmentHistory,
    TreatmentKind,
)
from stride.core import cohorts, deid, instruments, scoring
from stride.core.errors import Invalid
from stride.imaging import services as imaging
from stride.interop import research
from stride.interop.research import write_research_export
from stride.interop.views import default_key
from stride.outcomes.models import Episode
from stride.outcomes.services import save_answers
from stride.patients.models import Consent
from tests import dicoms
from tests.conftest import make_condition, make_patient

KEY = "registry research key 2026"
OTHER_KEY = "a different research key"

GIVEN, FAMILY = "Zebedee", "Quixmarch"
RECORD = "ZQ-88231"
EMAIL = "zebedee.quixmarch@example.org"
PHONE = "+1 415 555 0199"
BORN = dt.date(1931, 7, 14)  # over 89 at every date below
INDEX = dt.date(2025, 2, 13)
FILE_NAME = "Zebedee_Quixmarch_left_foot.dcm"

WITHDRAWN_NAME, WITHDRAWN_RECORD = "Withersby", "WW-55120"


def _plant(cast) -> dict[str, object]:
    """A patient of clinic A with identifiers in every field that could hold one, followed and imaged."""
    zeb = make_patient(
        cast.clinic_a,
        RECORD,
        given_name=GIVEN,
        family_name=FAMILY,
        date_of_birth=BORN,
        email=EMAIL,
        phone=PHONE,
        notes=f"{GIVEN} {FAMILY} ({RECORD}) prefers calls on {PHONE}.",
        activity_level="recreational",
    )
    Consent.objects.filter(patient=zeb).update(consented_on=dt.date(2024, 11, 5), notes=f"Signed by {FAMILY}")
    condition = make_condition(zeb)
    Condition.objects.filter(pk=condition.pk).update(
        site_note=f"Where {GIVEN} points",
        severity_notes=f"{FAMILY} limps since 9 Jan 2024",
        onset_date=dt.date(2024, 1, 9),
    )
    TreatmentHistory.objects.create(
        patient=zeb,
        condition=condition,
        treatment=TreatmentKind.objects.get(code="orthotics"),
        started_on=dt.date(2024, 5, 9),
        provider="Dr Ottoline Farnsworth",
        notes=f"{GIVEN}'s insoles",
    )
    procedure = Procedure.objects.create(
        patient=zeb,
        condition=condition,
        performed_on=INDEX,
        clinician=cast.alice,
        procedure_type=ProcedureType.objects.get(code="perineural-platelet-lysate"),
        laterality="left",
        image_guidance="ultrasound",
        is_index=True,
        target_note=f"Near {FAMILY}'s scar",
        notes=f"{GIVEN} {FAMILY} tolerated it well.",
    )
    Injectate.objects.create(
        procedure=procedure, kind="platelet-lysate", volume_ml=Decimal("2.5"), notes=f"For {GIVEN}"
    )
    AdverseEvent.objects.create(
        procedure=procedure,
        kind=AdverseEventKind.objects.get(code="injection-flare"),
        description=f"{GIVEN} phoned {PHONE}",
        onset_date=dt.date(2025, 2, 14),
        severity="mild",
        relatedness="related",
    )
    episode = Episode.objects.get(index_procedure=procedure)
    answers = {"baseline": [8], "6m": [3]}
    for follow_up in episode.follow_ups.filter(timepoint__in=["baseline", "3m", "6m"]):
        late = follow_up.timepoint == "3m"
        save_answers(
            patient=zeb,
            follow_up=follow_up,
            instrument="nprs",
            version=instruments.instrument("nprs").version,
            answers=answers.get(follow_up.timepoint, [5]),
            source="paper",
            submit=True,
            user=cast.carol,
            collected_on=follow_up.closes_on + dt.timedelta(days=3) if late else follow_up.due_on,
        )
    data = dicoms.ultrasound(
        PatientName=f"{FAMILY}^{GIVEN}", PatientID=RECORD, PatientBirthDate=BORN.strftime("%Y%m%d")
    )
    image = imaging.store(
        zeb,
        data,
        FILE_NAME,
        imaging.Upload(condition=condition, note=f"{GIVEN} flinched"),
        user=cast.alice,
    )
    imaging.add_measurement(
        image,
        {
            "type": "neuroma-diameter",
            "tool": "line",
            "points": [[1, 1], [30, 1]],
            "site": "im-space-3",
            "note": f"{FAMILY} measured",
        },
        user=cast.alice,
    )
    CaseNarrative.objects.create(patient=zeb, text=f"{GIVEN} {FAMILY} improved.")

    withdrawn = make_patient(
        cast.clinic_a, WITHDRAWN_RECORD, given_name="Wilhelmina", family_name=WITHDRAWN_NAME
    )
    Consent.objects.create(
        patient=withdrawn, version="1", consented_on=dt.date(2025, 3, 1), withdrawn_on=dt.date(2025, 6, 1)
    )
    make_condition(withdrawn)
    return {
        "zeb": zeb,
        "condition": condition,
        "procedure": procedure,
        "image": image,
        "withdrawn": withdrawn,
    }


@pytest.fixture
def planted(cast) -> dict[str, object]:
    return _plant(cast)


def _all_dates(patient) -> set[dt.date]:
    """Every date in the patient's records (the ones an export must not give)."""
    days = {patient.date_of_birth}
    days |= set(patient.consents.values_list("consented_on", flat=True))
    days |= set(patient.conditions.values_list("onset_date", flat=True))
    days |= set(patient.history.values_list("started_on", flat=True))
    days |= set(patient.procedures.values_list("performed_on", flat=True))
    days |= set(AdverseEvent.objects.filter(procedure__patient=patient).values_list("onset_date", flat=True))
    days |= set(patient.responses.values_list("collected_on", flat=True))
    days |= set(patient.follow_ups.values_list("due_on", flat=True))
    days |= set(patient.images.values_list("acquired_on", flat=True))
    days |= set(Episode.objects.filter(condition__patient=patient).values_list("index_date", flat=True))
    return {d for d in days if d is not None}


def _date_texts(day: dt.date) -> set[str]:
    return {
        day.isoformat(),
        day.strftime("%Y%m%d"),
        day.strftime("%Y/%m/%d"),
        day.strftime("%m/%d/%Y"),
        day.strftime("%d/%m/%Y"),
        day.strftime("%d.%m.%Y"),
        f"{day.day} {day:%b %Y}",
        f"{day:%d %b %Y}",
        f"{day:%B} {day.day}, {day.year}",
        f"{day.day} {day:%B %Y}",
    }


def _secrets(planted) -> set[str]:
    zeb = planted["zeb"]
    return {
        GIVEN,
        FAMILY,
        RECORD,
        EMAIL,
        "example.org",
        PHONE,
        "4155550199",
        "555 0199",
        "Ottoline",
        "Farnsworth",
        FILE_NAME,
        "Zebedee_Quixmarch",
        "Wilhelmina",
        WITHDRAWN_NAME,
        WITHDRAWN_RECORD,
        "A-001",  # Pat's record number
        "B-001",
        "Quinn",  # clinic B's patient
        # the DICOM file's other people, places and device
        dicoms.OPERATOR,
        "Reyes",
        "Okafor",
        dicoms.INSTITUTION,
        dicoms.SERIAL,
        dicoms.STATION,
        dicoms.ACCESSION,
        dicoms.STUDY_ID,
        dicoms.PRIVATE_TEXT,
        dicoms.STUDY_UID,
        "Quay Street",
        # clinics by name or slug, users
        "Lakeside",
        "lakeside",
        "harbour",
        "alice",
        "carol",
        # the key itself
        KEY,
        # dates of every kind, in every usual format
        *(text for day in _all_dates(zeb) for text in _date_texts(day)),
    }


def _texts(folder: Path) -> dict[str, str]:
    """Every exported file as text; Parquet tables read back with pyarrow, values and schema."""
    texts = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            parts = [str(table.schema), str(table.schema.metadata or "")]
            parts += [str(value) for column in table.columns for value in column.to_pylist()]
            texts[path.name] = "\n".join(parts)
        else:
            texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def _rows(folder: Path, table: str) -> list[dict[str, object]]:
    csv_path, parquet_path = folder / f"{table}.csv", folder / f"{table}.parquet"
    if parquet_path.exists():
        return pq.read_table(parquet_path).to_pylist()
    with csv_path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def _export(folder: Path, **options) -> research.ResearchSummary:
    values = {"clinic_ids": None, "key": KEY} | options
    return write_research_export(folder, **values)


# --------------------------------------------------------------------------- nothing identifying


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_no_identifier_appears_anywhere_in_the_export(planted, tmp_path, fmt) -> None:
    summary = _export(tmp_path, fmt=fmt, clinic_ids={planted["zeb"].clinic_id})
    texts = _texts(tmp_path)
    assert {
        f"patients.{fmt}",
        f"scores.{fmt}",
        "README.txt",
        "data_dictionary.json",
        "categories.csv",
    } <= set(texts)
    assert summary.tables["scores"] >= 3 and summary.tables["measurements"] == 1
    found = [
        (secret, name)
        for name, text in texts.items()
        for secret in _secrets(planted)
        if secret.lower() in text.lower()
    ]
    assert found == []


def test_shifted_dates_move_every_date_of_a_patient_by_one_secret_offset(planted, tmp_path) -> None:
    zeb = planted["zeb"]
    _export(tmp_path, fmt="parquet", dates="shift", minimum=1)
    offset = deid.offset_for(KEY, zeb.pk)
    assert offset != 0
    me = deid.pseudonym(KEY, "patient", zeb.pk)
    procedures = [r for r in _rows(tmp_path, "procedures") if r["patient_id"] == me]
    assert [r["performed_date"] for r in procedures] == [INDEX + dt.timedelta(days=offset)]
    (patient,) = [r for r in _rows(tmp_path, "patients") if r["patient_id"] == me]
    assert (
        patient["day0_date"] == INDEX + dt.timedelta(days=offset) and patient["day0_basis"] == "first-index"
    )
    measurement = _rows(tmp_path, "measurements")[0]
    assert measurement["taken_date"] == planted["image"].acquired_on + dt.timedelta(days=offset)
    # intervals within the patient are exact; days from index survive too
    scores = [r for r in _rows(tmp_path, "scores") if r["patient_id"] == me]
    for row in scores:
        assert (row["answered_date"] - patient["day0_date"]).days == row["days_from_index"]
    # the Parquet columns are real dates, and no true date of hers is among them
    schema = pq.read_schema(tmp_path / "procedures.parquet")
    assert str(schema.field("performed_date").type) == "date32[day]"
    true_dates = _all_dates(zeb)
    for table in ("procedures", "conditions", "scores", "measurements", "episodes", "adverse_events"):
        for row in _rows(tmp_path, table):
            if row.get("patient_id") == me:
                shifted = {v for k, v in row.items() if k.endswith("_date") and v is not None}
                assert not shifted & true_dates, (table, row)
    text = "\n".join(_texts(tmp_path).values())
    assert BORN.isoformat() not in text and "1931" not in text
    assert "Mode 'shift'" in (tmp_path / "README.txt").read_text()


def test_index_dates_count_days_from_the_first_index_treatment(planted, tmp_path) -> None:
    zeb = planted["zeb"]
    _export(tmp_path, minimum=1)
    me = deid.pseudonym(KEY, "patient", zeb.pk)
    (procedure,) = [r for r in _rows(tmp_path, "procedures") if r["patient_id"] == me]
    assert procedure["performed_day"] == "0" and procedure["is_index"] == "true"
    (condition,) = [r for r in _rows(tmp_path, "conditions") if r["patient_id"] == me]
    assert int(condition["onset_day"]) == (dt.date(2024, 1, 9) - INDEX).days
    (history,) = [r for r in _rows(tmp_path, "history") if r["patient_id"] == me]
    assert int(history["started_day"]) == (dt.date(2024, 5, 9) - INDEX).days
    (event,) = [r for r in _rows(tmp_path, "adverse_events") if r["patient_id"] == me]
    assert event["onset_day"] == "1" and event["event"] == "injection-flare"
    scores = {r["timepoint"]: r for r in _rows(tmp_path, "scores") if r["patient_id"] == me}
    assert scores["baseline"]["value"] == "8.0" and scores["6m"]["value"] == "3.0"
    assert scores["3m"]["late"] == "true" and scores["6m"]["late"] == "false"
    assert int(scores["6m"]["days_from_index"]) == int(scores["6m"]["answered_day"])
    follow_up = [r for r in _rows(tmp_path, "follow_up") if r["patient_id"] == me]
    assert {r["timepoint"] for r in follow_up} == {"baseline", "1m", "3m", "6m", "12m", "24m", "36m"}
    (measurement,) = _rows(tmp_path, "measurements")
    assert measurement["measurement"] == "neuroma-diameter" and measurement["unit"] == "mm"
    assert measurement["calibrated"] == "true" and float(measurement["value"]) > 0
    assert measurement["image_id"] == deid.pseudonym(KEY, "image", planted["image"].pk)
    assert measurement["condition_id"] == deid.pseudonym(KEY, "condition", planted["condition"].pk)
    assert "Mode 'index'" in (tmp_path / "README.txt").read_text()


def test_ages_over_89_are_grouped_and_no_birth_year_is_exported(planted, tmp_path) -> None:
    zeb = planted["zeb"]
    _export(tmp_path, minimum=1)
    me = deid.pseudonym(KEY, "patient", zeb.pk)
    rows = {r["patient_id"]: r for r in _rows(tmp_path, "patients")}
    assert rows[me]["age_group"] == "90+"
    others = [r["age_group"] for key, r in rows.items() if key != me]
    assert others and all(age.isdigit() and int(age) <= 89 for age in others)
    assert {r["age_group"] for r in _rows(tmp_path, "episodes") if r["patient_id"] == me} == {"90+"}
    columns = {entry["column"] for entry in research.dictionary("index")}
    assert not {c for c in columns if "birth" in c or c in ("age", "year_of_birth")}


def test_withdrawn_patients_and_other_clinics_are_never_included(planted, tmp_path, cast) -> None:
    summary = _export(tmp_path, clinic_ids={cast.clinic_a.pk}, minimum=1)
    patients = {r["patient_id"] for r in _rows(tmp_path, "patients")}
    expected = {deid.pseudonym(KEY, "patient", p.pk) for p in (planted["zeb"], cast.pat)}
    assert patients == expected and summary.patients == 2
    for table in research.TABLE_NAMES:
        assert {r["patient_id"] for r in _rows(tmp_path, table)} <= expected, table
    # everything of every clinic: Quinn of clinic B joins, the withdrawn patient still does not
    _export(tmp_path / "all", minimum=1)
    everyone = {r["patient_id"] for r in _rows(tmp_path / "all", "patients")}
    assert everyone == expected | {deid.pseudonym(KEY, "patient", cast.quinn.pk)}
    assert deid.pseudonym(KEY, "patient", planted["withdrawn"].pk) not in everyone


def test_pseudonyms_are_stable_for_a_key_and_unrelated_under_another(planted, tmp_path) -> None:
    _export(tmp_path / "one", minimum=1)
    _export(tmp_path / "two", minimum=1, fmt="parquet")
    _export(tmp_path / "three", minimum=1, key=OTHER_KEY)
    for table, column in (
        ("patients", "patient_id"),
        ("conditions", "condition_id"),
        ("episodes", "episode_id"),
    ):
        one = sorted(r[column] for r in _rows(tmp_path / "one", table))
        two = sorted(r[column] for r in _rows(tmp_path / "two", table))
        three = sorted(r[column] for r in _rows(tmp_path / "three", table))
        assert one == two and one
        assert not set(one) & set(three)
    readme = (tmp_path / "one" / "README.txt").read_text()
    assert deid.fingerprint(KEY) in readme and deid.fingerprint(OTHER_KEY) not in readme


def test_rare_categories_become_other_and_small_counts_are_withheld(planted, tmp_path, cast) -> None:
    # Pat alone has a hallux rigidus: with a minimum of 2 it is pooled, the shared neuroma is not.
    make_condition(cast.pat, code="hallux-rigidus", laterality="right", site="")
    summary = _export(tmp_path, clinic_ids={cast.clinic_a.pk}, minimum=2)
    conditions = _rows(tmp_path, "conditions")
    codes = sorted(r["condition"] for r in conditions)
    assert codes == ["morton-neuroma", "morton-neuroma", "other"]
    pooled = next(r for r in conditions if r["condition"] == "other")
    assert pooled["icd10"] == "other" and pooled["snomed"] == "other"
    assert summary.collapsed["conditions.condition"] == 1
    categories = list(csv.DictReader((tmp_path / "categories.csv").open(encoding="utf-8")))
    by_value = {(r["table"], r["column"], r["value"]): r["patients"] for r in categories}
    assert by_value["conditions", "condition", "morton-neuroma"] == "2"
    assert by_value["conditions", "condition", "other"] == "<2"
    assert ("conditions", "condition", "hallux-rigidus") not in by_value
    # Zeb is the only recreational patient: her activity level is pooled too
    assert sorted(r["activity_level"] for r in _rows(tmp_path, "patients")) == ["", "other"]
    readme = (tmp_path / "README.txt").read_text()
    assert "Minimum: 2 patients" in readme and "conditions.condition (1)" in readme


def test_the_dictionary_describes_every_column_of_every_table(planted, tmp_path) -> None:
    for dates in ("index", "shift"):
        folder = tmp_path / dates
        _export(folder, dates=dates, fmt="parquet")
        entries = list(csv.DictReader((folder / "data_dictionary.csv").open(encoding="utf-8")))
        assert entries == research.dictionary(dates)
        as_json = json.loads((folder / "data_dictionary.json").read_text())
        assert as_json["date_mode"] == dates
        for table in research.TABLE_NAMES:
            described = [e["column"] for e in entries if e["table"] == table]
            assert pq.read_schema(folder / f"{table}.parquet").names == described, table
            listed = next(t for t in as_json["tables"] if t["name"] == table)
            assert [c["column"] for c in listed["columns"]] == described
        assert all(e["description"].endswith(".") for e in entries)
    day_columns = {e["column"] for e in research.dictionary("index") if e["unit"] == "days"}
    assert {"performed_day", "onset_day", "answered_day", "days_from_index"} <= day_columns


def test_the_documented_tables_are_the_dictionarys() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "research-export.md").read_text(encoding="utf-8")
    start, end = "<!-- tables: generated by dictionary_markdown() -->", "<!-- end of the generated tables -->"
    generated = doc.split(start, 1)[1].split(end, 1)[0]
    assert generated.strip() == research.dictionary_markdown().strip(), "regenerate the tables of the doc"
    for table in research.TABLE_NAMES:
        assert f"### `{table}`" in generated


def test_bad_options_are_refused_before_anything_is_written(db, tmp_path) -> None:
    for options, message in (
        ({"fmt": "xlsx"}, "Unknown format"),
        ({"dates": "calendar"}, "Unknown date mode"),
        ({"key": "short"}, "at least 12"),
        ({"minimum": 0}, "at least 1"),
    ):
        with pytest.raises(Invalid, match=message):
            _export(tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(Invalid, match="is a file"):
        _export(tmp_path / "file")


def test_progress_is_reported_per_table(planted, tmp_path) -> None:
    seen: dict[str, int] = {}
    summary = _export(tmp_path, progress=lambda table, rows: seen.__setitem__(table, rows))
    assert seen == summary.tables
    lines = summary.lines()
    assert "Research export (csv, dates: index)" in lines[0] and deid.fingerprint(KEY) in lines[1]
    assert any(line.strip().startswith("scores") for line in lines)


# --------------------------------------------------------------------------- the page


def _post(client, cast, **extra):
    data = {"clinics": [cast.clinic_a.pk], "format": "csv", "dates": "index", "key": ""} | extra
    return client.post(reverse("research-export"), data)


def _zip_rows(response, table: str) -> list[dict[str, str]]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    (name,) = [n for n in archive.namelist() if n.endswith(f"/{table}.csv")]
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_a_researcher_downloads_the_zip_of_their_clinics_and_it_is_audited(client, cast, planted) -> None:
    client.force_login(cast.rita)
    page = client.get(reverse("research-export"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "Lakeside" in content and "Harbour" not in content  # only her clinics to choose from
    assert "Safe Harbor" in content and "90+" in content
    response = _post(client, cast)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="stride-research-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = {name.split("/", 1)[1] for name in archive.namelist()}
    assert {"patients.csv", "scores.csv", "README.txt", "data_dictionary.csv", "categories.csv"} <= names
    text = "\n".join(archive.read(n).decode() for n in archive.namelist())
    assert not [s for s in _secrets(planted) - {KEY} if s.lower() in text.lower()]
    assert default_key(cast.rita) not in text and deid.fingerprint(default_key(cast.rita)) in text
    entry = AuditEntry.objects.get(action="export", model="interop.researchexport")
    assert entry.user == cast.rita and entry.detail["counts"]["patients"] == 2
    assert entry.detail["clinics"] == [cast.clinic_a.pk] and entry.detail["own key"] is True
    assert entry.detail["key"] == deid.fingerprint(default_key(cast.rita))


def test_a_users_own_key_gives_the_same_pseudonyms_and_a_typed_key_others(client, cast, planted) -> None:
    client.force_login(cast.rita)
    first = {r["patient_id"] for r in _zip_rows(_post(client, cast), "patients")}
    again = {r["patient_id"] for r in _zip_rows(_post(client, cast), "patients")}
    typed = {r["patient_id"] for r in _zip_rows(_post(client, cast, key=KEY), "patients")}
    assert first == again and not first & typed
    assert typed == {deid.pseudonym(KEY, "patient", p.pk) for p in (planted["zeb"], cast.pat)}
    client.force_login(cast.alice)
    assert not first & {r["patient_id"] for r in _zip_rows(_post(client, cast), "patients")}


def test_another_clinics_data_is_out_of_reach_whatever_is_posted(client, cast, planted) -> None:
    client.force_login(cast.olga)  # clinic B only
    response = _post(client, cast)  # asks for clinic A
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    assert not AuditEntry.objects.filter(action="export").exists()
    rows = _zip_rows(_post(client, cast, clinics=[cast.clinic_b.pk]), "patients")
    assert [r["patient_id"] for r in rows] == [
        deid.pseudonym(default_key(cast.olga), "patient", cast.quinn.pk)
    ]
    client.force_login(cast.rita)
    saved = SavedCohort.save_for(
        cast.alice, "Neuroma", cohorts.parse_spec({"conditions": ["morton-neuroma"]})
    )
    foreign = SavedCohort.save_for(cast.olga, "B's", cohorts.CohortSpec())
    assert _post(client, cast, cohort=foreign.pk).status_code == 400
    rows = _zip_rows(_post(client, cast, cohort=saved.pk), "episodes")
    assert rows and {r["in_cohort"] for r in rows} == {"true"}


def test_the_page_needs_a_login_and_refuses_a_short_key(client, cast) -> None:
    response = client.get(reverse("research-export"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(reverse("research-export"), {}).status_code == 302
    client.force_login(cast.carol)
    response = _post(client, cast, key="too short")
    assert response.status_code == 400 and b"at least 12" in response.content


# --------------------------------------------------------------------------- memory


def _peak(folder: Path, fmt: str, clinic_ids: set[int] | None) -> int:
    """The most Python memory an export held at once.

    No garbage collection first: a full collection empties CPython's free lists, which then
    refill during the next run and would count as that run's memory (they are bounded, not the
    export's)."""
    tracemalloc.start()
    try:
        _export(folder, fmt=fmt, minimum=1, clinic_ids=clinic_ids)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_memory_stays_flat_however_many_patients(cast, tmp_path, monkeypatch, fmt) -> None:
    from stride.demo.synth_writer import write_synthetic

    # Small chunks, so both sizes span many of them: what is held is bounded by the chunk, not by N.
    monkeypatch.setattr(research, "CHUNK_PATIENTS", 20)
    monkeypatch.setattr(research, "FETCH", 50)
    monkeypatch.setattr(research, "ROW_GROUP", 10)
    if connection.vendor == "postgresql":
        # psycopg caches the parsing of queries of up to 50 parameters (128 of them, and each
        # server-side cursor's query is new): a chunk's 2,000 ids never fit, these chunks' 20 would.
        monkeypatch.setattr("psycopg._queries.MAX_CACHED_STATEMENT_PARAMS", 10)
    write_synthetic(patients=60, seed=1, clinic_slugs=["lakeside"])  # N in clinic A
    write_synthetic(patients=180, seed=2, clinic_slugs=["harbour"])  # 3N more in clinic B
    small_clinic, everyone = {cast.clinic_a.pk}, {cast.clinic_a.pk, cast.clinic_b.pk}
    # Imports, caches, compiled queries and free lists settle on the larger export before measuring.
    for warm in range(2):
        _peak(tmp_path / f"warm{warm}", fmt, everyone)
    small = _peak(tmp_path / "small", fmt, small_clinic)
    large = _peak(tmp_path / "large", fmt, everyone)
    patients = [len(_rows(tmp_path / size, "patients")) for size in ("small", "large")]
    scores = [len(_rows(tmp_path / size, "scores")) for size in ("small", "large")]
    assert patients[1] > 3.5 * patients[0] and scores[1] > 3 * scores[0] > 0
    assert large < small * 1.3, (small, large)


# --------------------------------------------------------------------------- end to end


def test_the_reported_responder_rate_is_recomputed_from_the_exported_scores(db, tmp_path) -> None:
    """The cohort report's 6-month NPRS 'substantial' responders equal the count a researcher makes
    from the exported tables alone: same episodes, same scores, same exclusions."""
    from stride.demo.loader import load_demo
    from stride.demo.stories import DEMO_PASSWORD_DEFAULT

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=300, synth_seed=11)
    spec = cohorts.parse_spec({"injectate_kinds": ["prp"]})
    report = reports.cohort_report([("PRP", spec)], clinic_ids=None, instrument="nprs", scale="total")
    line = next(x for x in report.results[0].point("6m").responders if x.definition == "substantial")

    _export(tmp_path, spec=spec, fmt="parquet")
    cohort = {r["episode_id"] for r in _rows(tmp_path, "episodes") if r["in_cohort"]}
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for r in _rows(tmp_path, "scores"):
        if (
            r["episode_id"] in cohort
            and (r["instrument"], r["scale"]) == ("nprs", "total")
            and r["valid"]
            and not r["late"]
        ):
            values[r["episode_id"]][r["timepoint"]] = r["value"]
    nprs = instruments.instrument("nprs")
    verdicts = [
        scoring.responder(nprs, "total", v.get("baseline"), v["6m"], definition="substantial")
        for v in values.values()
        if "6m" in v
    ]
    known = [v for v in verdicts if v is not None]
    assert (line.rate.answered.k, line.rate.answered.n) == (sum(known), len(known))
    assert len(known) > 10
    assert len(cohort) == report.results[0].n
