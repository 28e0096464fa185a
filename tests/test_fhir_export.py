"""FHIR R4 export: one patient's Bundle and the bulk NDJSON files, every resource valid both ways.

Each resource is checked with the fhir.resources models (R4B, which read R4 but do not check coded
values) and with the official R4 JSON Schema from ``../shared/data`` (skipped where that folder is
absent), as in ``test_fhir_plans.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from stride.audit.models import AuditEntry
from stride.imaging import services as imaging
from stride.interop import fhir_checks, fhir_export, fhir_map
from stride.interop.fhir_export import patient_bundle, write_bulk
from stride.outcomes.services import save_answers, start_episode
from stride.patients.models import Consent
from tests import dicoms
from tests.test_fhir_plans import SCHEMA, schema_errors

PAT = {"PatientName": "Lee^Pat", "PatientID": "A-001", "PatientBirthDate": "19700517"}
MCODE_LATERALITY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier"


# --------------------------------------------------------------------------- a small registry


def _faos_answers() -> list[int]:
    from stride.core.instruments import instrument

    return [1] * len(instrument("faos").items)


@pytest.fixture
def registry(cast: Any) -> Any:
    """The cast, with follow-up and scores for Pat, an ultrasound measured in mm and a photo in pixels."""
    episode = start_episode(cast.pat_condition, dt.date(2025, 2, 1), procedure=cast.pat_procedure)
    baseline = episode.follow_ups.get(timepoint="baseline")
    for code, answers in (("nprs", [6]), ("faos", _faos_answers())):
        if code in baseline.instruments:
            save_answers(
                patient=cast.pat,
                follow_up=baseline,
                instrument=code,
                version="1",
                answers=answers,
                source="patient",
                submit=True,
                collected_on=dt.date(2025, 1, 25),
            )
    save_answers(
        patient=cast.pat,
        follow_up=None,
        instrument="faos",
        version="1",
        answers=_faos_answers(),
        source="paper",
        submit=True,
        collected_on=dt.date(2025, 3, 1),
        user=cast.alice,
    )
    ultrasound = imaging.store(
        cast.pat,
        dicoms.ultrasound(**PAT),
        "scan.dcm",
        imaging.Upload(condition=cast.pat_condition),
        user=cast.alice,
    )
    imaging.add_measurement(
        ultrasound,
        {
            "type": "neuroma-diameter",
            "tool": "line",
            "points": [[1, 1], [9, 9]],
            "site": "im-space-3",
            "qualifiers": {"compression": "without"},
        },
        user=cast.alice,
    )
    photo = imaging.store(
        cast.pat,
        dicoms.picture(metadata=False),
        "foot.png",
        imaging.Upload(
            condition=cast.pat_condition, acquired_on=dt.date(2025, 1, 20), laterality="left", modality="XC"
        ),
        user=cast.alice,
    )
    imaging.add_measurement(
        photo,
        {
            "type": "neuroma-diameter",
            "tool": "line",
            "points": [[0, 0], [3, 4]],
            "site": "im-space-3",
            "note": "Measured on a clinical photo.",
        },
        user=cast.alice,
    )
    return cast


def _read(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        path.stem: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(out.glob("*.ndjson"))
    }


def _codings(concept: dict[str, Any]) -> dict[str, str]:
    return {c["system"]: c["code"] for c in concept.get("coding", [])}


def _all_codings(value: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(value, dict):
        if "system" in value and "code" in value:
            found.append(value)
        for item in value.values():
            found.extend(_all_codings(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_all_codings(item))
    return found


# --------------------------------------------------------------------------- validity


def test_every_exported_resource_is_valid_for_the_models_and_the_r4_schema(
    registry: Any, tmp_path: Path
) -> None:
    counts = write_bulk(tmp_path, clinic_ids=None)
    files = _read(tmp_path)
    assert counts == {kind: len(lines) for kind, lines in files.items()}
    assert set(counts) >= {"Organization", "Patient", "Consent", "Condition", "Procedure"}
    assert counts["Observation"] >= 4 and counts["QuestionnaireResponse"] >= 2
    for kind, resources in files.items():
        for resource in resources:
            assert resource["resourceType"] == kind
            fhir_map.validate(resource)
            if SCHEMA.exists():
                assert schema_errors(resource) == [], (kind, resource["id"])
            # Code numbers and ids only: no CPT or SNOMED CT descriptor text is shipped.
            for coding in _all_codings(resource):
                if coding["system"] in (fhir_map.SNOMED, fhir_map.CPT, fhir_map.HCPCS):
                    assert "display" not in coding, coding
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [(o["type"], o["count"]) for o in manifest["output"]] == list(counts.items())
    assert {o["url"] for o in manifest["output"]} == {f"{kind}.ndjson" for kind in counts}
    assert not list(tmp_path.glob("*.part"))


def test_one_patient_as_a_valid_bundle_whose_references_resolve_in_it(registry: Any) -> None:
    bundle = patient_bundle(registry.pat)
    assert bundle["type"] == "collection"
    fhir_map.validate(bundle)
    if SCHEMA.exists():
        assert schema_errors(bundle) == []
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert all(
        e["fullUrl"].endswith("/fhir/" + f"{e['resource']['resourceType']}/{e['resource']['id']}")
        for e in bundle["entry"]
    )
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Patient") == 1 and kinds.count("Organization") == 1
    assert "Quinn" not in json.dumps(bundle)  # nothing of another patient

    def references(value: Any) -> list[str]:
        if isinstance(value, dict):
            own = [value["reference"]] if isinstance(value.get("reference"), str) else []
            return own + [r for item in value.values() for r in references(item)]
        if isinstance(value, list):
            return [r for item in value for r in references(item)]
        return []

    for entry in bundle["entry"]:
        for ref in references(entry["resource"]):
            if ref.startswith(
                ("Patient/", "Condition/", "Procedure/", "QuestionnaireResponse/", "Organization/")
            ):
                assert ref in ids, ref
    assert AuditEntry.objects.filter(
        action="export", patient_id=registry.pat.pk, detail__format="fhir-bundle"
    ).exists()


# --------------------------------------------------------------------------- the mapping


def test_patient_condition_and_procedure_carry_identifiers_codes_sides_and_injectates(
    registry: Any, tmp_path: Path
) -> None:
    write_bulk(tmp_path, clinic_ids={registry.clinic_a.pk})
    files = _read(tmp_path)
    (patient,) = files["Patient"]
    assert patient["identifier"] == [{"system": "urn:stride:record-number:lakeside", "value": "A-001"}]
    assert patient["name"] == [{"use": "official", "family": "Lee", "given": ["Pat"]}]
    assert patient["gender"] == "female" and patient["birthDate"] == "1970-05-17"
    (clinic,) = files["Organization"]
    assert clinic["identifier"] == [{"system": "urn:stride:clinic", "value": "lakeside"}]
    assert patient["managingOrganization"]["reference"] == f"Organization/{clinic['id']}"

    (condition,) = files["Condition"]
    codes = _codings(condition["code"])
    assert codes[fhir_map.ICD10CM] == "G57.62" and codes[fhir_map.SNOMED] == "30085007"
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    assert condition["onsetDateTime"] == "2024-03-01"
    (site,) = condition["bodySite"]
    (laterality,) = [e for e in site["extension"] if e["url"] == MCODE_LATERALITY]
    assert _codings(laterality["valueCodeableConcept"]) == {fhir_map.SNOMED: "7771000"}  # left
    assert fhir_map.SNOMED in _codings(site) and _codings(site)[fhir_map.system("body-site")] == "im-space-3"

    (procedure,) = files["Procedure"]
    assert procedure["code"]["coding"][0] == {"system": "http://www.ama-assn.org/go/cpt", "code": "0232T"}
    assert procedure["performedDateTime"] == "2025-02-01"
    assert procedure["reasonReference"] == [{"reference": f"Condition/{condition['id']}"}]
    assert procedure["subject"] == {"reference": f"Patient/{patient['id']}"}
    (injectate,) = [e for e in procedure["extension"] if e["url"].endswith("/injectate")]
    parts = {p["url"]: p for p in injectate["extension"]}
    assert parts["kind"]["valueCode"] == "platelet-lysate"
    assert parts["volume-ml"]["valueQuantity"] == {
        "value": 2.0,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert procedure["usedCode"][0]["coding"][0]["code"] == "platelet-lysate"

    (consent,) = files["Consent"]
    assert consent["status"] == "active" and consent["dateTime"] == "2025-01-10"
    assert consent["patient"] == {"reference": f"Patient/{patient['id']}"}
    assert consent["policy"][0]["uri"].endswith("/fhir/consent-form/1")


def test_scores_and_measurements_are_observations_with_their_codes_units_and_sources(
    registry: Any, tmp_path: Path
) -> None:
    write_bulk(tmp_path, clinic_ids={registry.clinic_a.pk})
    files = _read(tmp_path)
    responses = {r["id"]: r for r in files["QuestionnaireResponse"]}
    observations = files["Observation"]
    pain = [o for o in observations if fhir_map.LOINC in _codings(o["code"])]
    if pain:  # the NRS is due at baseline for a neuroma
        (nrs,) = pain
        assert _codings(nrs["code"])[fhir_map.LOINC] == "72514-3"
        assert nrs["valueQuantity"]["value"] == 6
        (derived,) = nrs["derivedFrom"]
        response = responses[derived["reference"].split("/")[1]]
        assert response["questionnaire"].endswith("/fhir/Questionnaire/nprs|1")
        assert response["item"][0]["answer"] == [{"valueInteger": 6}]
        assert response["source"] == response["subject"]  # answered by the patient
    faos = [
        o for o in observations if _codings(o["code"]).get(fhir_map.system("score"), "").startswith("faos:")
    ]
    assert {_codings(o["code"])[fhir_map.system("score")] for o in faos} == {
        "faos:symptoms",
        "faos:pain",
        "faos:adl",
        "faos:sport",
        "faos:qol",
    }
    assert all(o["valueQuantity"]["code"] == "{score}" and o["effectiveDateTime"] for o in faos)
    paper = [r for r in responses.values() if r["authored"] == "2025-03-01"]
    assert len(paper) == 1 and "source" not in paper[0]

    measurements = [o for o in observations if fhir_map.system("measurement") in _codings(o["code"])]
    assert len(measurements) == 2
    calibrated = next(o for o in measurements if o["valueQuantity"].get("system"))
    assert calibrated["valueQuantity"]["code"] == "mm" and "note" not in calibrated
    assert calibrated["derivedFrom"][0]["type"] == "ImagingStudy"
    assert calibrated["derivedFrom"][0]["identifier"]["system"] == fhir_map.IMAGE_SYSTEM
    (site,) = calibrated["bodySite"] if isinstance(calibrated["bodySite"], list) else [calibrated["bodySite"]]
    assert any(e["url"] == MCODE_LATERALITY for e in site["extension"])
    pixels = next(o for o in measurements if not o["valueQuantity"].get("system"))
    assert pixels["valueQuantity"] == {"value": 5.0, "unit": "px"}
    assert [n["text"] for n in pixels["note"]] == [
        fhir_map.UNCALIBRATED_NOTE,
        "Measured on a clinical photo.",
    ]
    assert pixels["derivedFrom"][0]["type"] == "Media"


def test_ids_are_stable_between_exports_and_differ_between_installations(
    registry: Any, tmp_path: Path, settings: Any
) -> None:
    write_bulk(tmp_path / "one", clinic_ids=None)
    write_bulk(tmp_path / "two", clinic_ids=None)
    for path in (tmp_path / "one").glob("*.ndjson"):
        assert path.read_bytes() == (tmp_path / "two" / path.name).read_bytes()
    first = fhir_map.resource_id("patients.Patient", registry.pat.pk)
    assert first == fhir_map.resource_id("patients.Patient", registry.pat.pk)
    settings.SECRET_KEY = "another installation's key, long enough to be a key"
    assert fhir_map.resource_id("patients.Patient", registry.pat.pk) != first


def test_bulk_exports_only_patients_whose_consent_stands(registry: Any, tmp_path: Path) -> None:
    Consent.objects.filter(patient=registry.quinn).update(withdrawn_on=dt.date(2025, 6, 1))
    counts = write_bulk(tmp_path, clinic_ids=None)
    names = [p["name"][0]["family"] for p in _read(tmp_path)["Patient"]]
    assert names == ["Lee"] and counts["Organization"] == 2
    assert AuditEntry.objects.filter(action="export", model="interop.fhir-bulk").count() == 1


def test_checking_in_a_worker_process_writes_the_same_files_as_checking_here(
    registry: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Runs of two lines: every type but the smallest fills runs, checked by the worker after the first."""
    monkeypatch.setattr(fhir_export, "CHECK_RUN", 2)
    started: list[int] = []
    real = fhir_checks.Checker.submit

    def submit(checker: fhir_checks.Checker, *args: Any, **kwargs: Any) -> Any:
        future = real(checker, *args, **kwargs)
        started.append(checker._pool is not None)
        return future

    monkeypatch.setattr(fhir_checks.Checker, "submit", submit)
    here = write_bulk(tmp_path / "here", clinic_ids=None, workers=0)
    assert not any(started)
    there = write_bulk(tmp_path / "there", clinic_ids=None, workers=1)
    assert any(started)
    assert here == there
    for name in [f"{kind}.ndjson" for kind in here]:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_record_that_makes_no_valid_fhir_stops_the_export_and_leaves_no_files(
    registry: Any, tmp_path: Path, monkeypatch: Any, workers: int
) -> None:
    """The mapping's own bugs are named precisely, whether the line was checked here or by the worker
    (runs of one line, so the broken condition is checked runs after the first)."""
    monkeypatch.setattr(fhir_export, "CHECK_RUN", 1)
    build = fhir_export._Builder.condition
    broken = registry.pat_condition.pk

    def condition(builder: Any, row: Any) -> dict[str, Any]:
        resource = build(builder, row)
        return {**resource, "onsetDateTime": "last spring"} if row.pk == broken else resource

    monkeypatch.setattr(fhir_export._Builder, "condition", condition)
    (tmp_path / "Condition.ndjson").write_text("an earlier export's file\n")
    with pytest.raises(
        fhir_export.ExportError, match=f"^Condition {broken} is not a valid FHIR resource: onset"
    ):
        write_bulk(tmp_path, clinic_ids=None, workers=workers)
    assert not list(tmp_path.glob("*.part"))
    assert not (tmp_path / "manifest.json").exists()
    assert (tmp_path / "Condition.ndjson").read_text() == "an earlier export's file\n"
    assert not AuditEntry.objects.filter(action="export", model="interop.fhir-bulk").exists()
    with pytest.raises(fhir_export.ExportError, match=f"^Condition {broken} is not a valid FHIR"):
        patient_bundle(registry.pat)


def test_the_bulk_export_streams_in_flat_memory(db: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """Four times the patients, about the same peak: the files are written a line at a time from
    chunks of rows, checked a run of lines at a time (both made small here, so that both exports
    read and check many of them)."""
    from stride.demo.synth_writer import write_synthetic
    from stride.patients.models import Patient

    monkeypatch.setattr(fhir_export, "CHUNK", 20)
    monkeypatch.setattr(fhir_export, "CHECK_RUN", 20)
    write_synthetic(patients=32, seed=11)
    keys = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
    write_bulk(tmp_path / "warm", clinic_ids=None, patient_ids=keys[:3])  # imports and caches, unmeasured

    def peak(patients: int) -> tuple[int, int]:
        tracemalloc.start()
        try:
            counts = write_bulk(tmp_path / f"out-{patients}", clinic_ids=None, patient_ids=keys[:patients])
            return tracemalloc.get_traced_memory()[1], sum(counts.values())
        finally:
            tracemalloc.stop()

    small, small_lines = peak(8)
    large, large_lines = peak(32)
    assert large_lines > 3 * small_lines
    assert large < small * 1.3 + 256 * 1024, (small, large)


# --------------------------------------------------------------------------- the command


def test_the_command_writes_the_files_or_one_bundle_and_fails_when_there_is_nothing(
    registry: Any, tmp_path: Path
) -> None:
    out = StringIO()
    call_command(
        "export",
        "fhir",
        "--out",
        str(tmp_path / "bulk"),
        "--clinic",
        "harbour",
        "--no-progress",
        stdout=out,
        stderr=StringIO(),
    )
    assert "Patient.ndjson" in out.getvalue() and (tmp_path / "bulk" / "Patient.ndjson").exists()
    call_command(
        "export",
        "fhir",
        "--patient",
        "a-001",
        "--out",
        str(tmp_path / "pat.json"),
        stdout=out,
        stderr=StringIO(),
    )
    bundle = json.loads((tmp_path / "pat.json").read_text())
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) > 5
    from stride.analytics.models import SavedCohort
    from stride.core.cohorts import CohortSpec

    SavedCohort.save_for(registry.adam, "Lakeside neuromas", CohortSpec(conditions=("morton-neuroma",)))
    call_command(
        "export", "fhir", "--out", str(tmp_path / "cohort"), "--cohort", "Lakeside neuromas", stdout=out
    )
    cohort = _read(tmp_path / "cohort")
    assert [p["identifier"][0]["value"] for p in cohort["Patient"]] == ["A-001"]

    research = StringIO()
    call_command(
        "export",
        "research",
        "--out",
        str(tmp_path / "research"),
        "--key",
        "k" * 32,
        "--minimum",
        "1",
        stdout=research,
        stderr=StringIO(),
    )
    assert "Research export" in research.getvalue() and any((tmp_path / "research").iterdir())
    from stride.audit.models import AuditEntry

    audited = AuditEntry.objects.get(action="export", model="interop.researchexport", channel="cli")
    assert audited.detail["export"] == "research" and "k" * 32 not in str(audited.detail)

    Consent.objects.update(withdrawn_on=dt.date(2025, 6, 1))
    with pytest.raises(CommandError, match="No patients to export"):
        call_command("export", "fhir", "--out", str(tmp_path / "none"), stdout=out, stderr=StringIO())
    with pytest.raises(CommandError, match="No clinic 'nowhere'"):
        call_command("export", "fhir", "--out", str(tmp_path / "x"), "--clinic", "nowhere", stdout=out)


@pytest.mark.django_db(transaction=True)
def test_a_bulk_export_reads_one_snapshot_through_streaming_cursors_on_postgresql(
    cast: Any, tmp_path: Path
) -> None:
    from django.db import connection

    from stride.interop.fhir_export import read_snapshot

    with read_snapshot():
        if connection.vendor == "postgresql":
            assert connection.in_atomic_block  # cursors without hold: they stream
            with connection.cursor() as cursor:
                cursor.execute("SHOW transaction_isolation")
                assert cursor.fetchone()[0] == "repeatable read"
        else:
            assert not connection.in_atomic_block  # SQLite: nothing changes
    assert not connection.in_atomic_block
    counts = write_bulk(tmp_path, clinic_ids=None)
    assert counts["Patient"] == 2 and (tmp_path / "Patient.ndjson").read_text().count("\n") == 2
