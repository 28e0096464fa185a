"""FHIR R4 import: Stride's own export round-trips byte for byte, Synthea's data goes in as far as it
maps, unknown codes are kept, every rejected resource is reported with its file, line and reason, and
importing the same files again changes nothing.

The Synthea files in ``tests/data/synthea`` are copied from ``../shared/data/fhir`` (licences beside
them): the bulk export of 10 patients (13 Patient resources) without its largest files of types Stride
skips, and two of the transaction Bundles.
"""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stride.audit.log import patient_and_clinic
from stride.audit.models import AuditEntry
from stride.care.models import Condition, Procedure
from stride.clinics.models import Clinic
from stride.interop import fhir_import, fhir_map
from stride.interop.fhir_export import write_bulk
from stride.interop.fhir_import import import_paths
from stride.interop.models import ExternalResource
from stride.outcomes.models import QuestionnaireResponse, Score
from stride.patients.models import Patient
from tests.test_fhir_plans import SCHEMA, schema_errors

SYNTHEA = Path(__file__).resolve().parent / "data" / "synthea"
BULK = SYNTHEA / "bulk-10-patients"
BUNDLES = SYNTHEA / "bundles"
BRETT = BUNDLES / "Brett_Gottlieb_0d2177ba-f67b-4f29-addb-91040de55388.json"


def _rows() -> dict[str, int]:
    """Rows per table of the apps that hold records (what an import could change)."""
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in {"clinics", "patients", "care", "outcomes", "imaging", "interop"}
    }


def _files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.glob("*.ndjson"))}


def _ndjson(path: Path, *resources: dict[str, Any] | str) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    path.write_text("\n".join(lines) + "\n")
    return path


def _wipe() -> None:
    """Every record and clinic gone: an empty registry (the catalog and the shipped protocols stay)."""
    from stride.imaging.models import Image

    ExternalResource.objects.all().delete()
    Image.objects.all().delete()
    Procedure.objects.all().delete()
    Patient.objects.all().delete()
    Clinic.objects.all().delete()
    assert Condition.objects.count() == 0 and QuestionnaireResponse.objects.count() == 0


def _patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "ehr-pat-1",
        "identifier": [{"system": "http://hospital.example/mrn", "value": "mrn 77/1"}],
        "name": [{"family": "Okafor", "given": ["Ada", "N."]}],
        "gender": "female",
        "birthDate": "1980-02-02",
        "address": [{"city": "Leeds"}],
        **extra,
    }


def _condition(code: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": extra.pop("id", "ehr-cond-1"),
        "code": {"coding": code},
        "subject": {"reference": "Patient/ehr-pat-1"},
        "onsetDateTime": "2024-05-01T10:00:00+01:00",
        **extra,
    }


def _side(code: str) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": fhir_map.LATERALITY_EXTENSION,
                "valueCodeableConcept": {"coding": [{"system": fhir_map.SNOMED, "code": code}]},
            }
        ]
    }


# --------------------------------------------------------------------------- round trip


@pytest.mark.django_db
def test_export_import_into_an_empty_registry_and_export_again_gives_the_same_files(tmp_path: Path) -> None:
    from stride.demo.loader import load_demo
    from stride.demo.stories import DEMO_PASSWORD_DEFAULT

    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=12, synth_seed=5)
    first = write_bulk(tmp_path / "first", clinic_ids=None)
    assert first["CarePlan"] >= 1 and first["Observation"] > first["Patient"]
    if SCHEMA.exists():  # the demo's variety (plans, images, every instrument) against the R4 schema
        seen = set()
        for path in (tmp_path / "first").glob("*.ndjson"):
            for line in path.read_text().splitlines():
                resource = json.loads(line)
                codes = resource.get("code", {}).get("coding", [{}])
                kind = (
                    path.name,
                    resource.get("questionnaire"),
                    codes[-1].get("code"),
                    resource.get("status"),
                )
                if kind not in seen:  # one of each kind: the schema is slow to apply
                    seen.add(kind)
                    assert schema_errors(resource) == [], (path.name, resource["id"])
    _wipe()

    report = import_paths([tmp_path / "first"])
    assert report.rejected == [] and report.total("rejected") == 0
    assert report.counts["Patient"]["created"] == first["Patient"]
    assert report.counts["QuestionnaireResponse"]["created"] == first["QuestionnaireResponse"]
    # Scores are computed again from the answers and linked; measurements (their images are files, not
    # in FHIR) and care plans (started from protocols) are kept whole.
    assert (
        report.counts["Observation"]["linked"] + report.counts["Observation"]["kept"] == first["Observation"]
    )
    assert report.counts["CarePlan"]["kept"] == first["CarePlan"]

    second = write_bulk(tmp_path / "second", clinic_ids=None)
    assert second == first
    assert _files(tmp_path / "second") == _files(tmp_path / "first")

    # Read again into the registry it came from: nothing changes.
    before = _rows()
    again = import_paths([tmp_path / "second"])
    assert again.total("created") == again.total("updated") == again.total("rejected") == 0
    linked_scores = again.counts["Observation"]["linked"]  # found again from their ids, not remembered
    assert again.total("unchanged") + linked_scores == sum(first.values())
    assert _rows() == before

    # In three parts: the clinics and patients; the rest but the Observations; the Observations. Nothing
    # of an earlier part is at hand in the next: the patients and conditions the second part's
    # resources refer to are read run by run, as are the scores behind the Observations. The same
    # registry again.
    _wipe()
    parts = {"Organization.ndjson": "people", "Patient.ndjson": "people", "Observation.ndjson": "later"}
    for path in (tmp_path / "first").glob("*.ndjson"):
        (tmp_path / parts.get(path.name, "rest")).mkdir(exist_ok=True)
        (tmp_path / parts.get(path.name, "rest") / path.name).write_bytes(path.read_bytes())
    assert import_paths([tmp_path / "people"]).total("rejected") == 0
    patient_reads: list[str] = []

    def reads_patients(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if 'FROM "patients_patient"' in sql:
            patient_reads.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(reads_patients):
        rest = import_paths([tmp_path / "rest"])
    assert rest.total("rejected") == 0
    # One read of the patients per run of resources, not one per patient (nor per resource).
    runs = -(-sum(sum(outcomes.values()) for outcomes in rest.counts.values()) // fhir_import.PREFETCH)
    assert len(patient_reads) <= runs < Patient.objects.count(), (len(patient_reads), runs)
    with CaptureQueriesContext(connection) as queries:
        later = import_paths([tmp_path / "later"])
    assert later.counts["Observation"] == report.counts["Observation"]
    linked, kept = later.counts["Observation"]["linked"], later.counts["Observation"]["kept"]
    # A score linked costs a few queries per run of them, not any of its own (a kept one costs several).
    assert len(queries) < linked / 4 + 10 * kept
    write_bulk(tmp_path / "third", clinic_ids=None)
    assert _files(tmp_path / "third") == _files(tmp_path / "first")


@pytest.mark.django_db
def test_a_registrys_own_export_read_back_into_it_is_linked_not_doubled(cast: Any, tmp_path: Path) -> None:
    write_bulk(tmp_path, clinic_ids=None)
    before = _rows()
    report = import_paths([tmp_path])
    assert report.total("created") == report.total("rejected") == report.total("kept") == 0
    assert report.counts["Patient"]["linked"] == 2 and report.counts["Condition"]["linked"] == 2
    assert _rows()["patients.Patient"] == before["patients.Patient"]
    assert _rows()["care.Procedure"] == before["care.Procedure"]


@pytest.mark.django_db
def test_every_record_an_import_writes_is_audited_and_a_rejected_resource_leaves_no_entry(
    cast: Any, tmp_path: Path
) -> None:
    write_bulk(tmp_path, clinic_ids=None)
    first, second = (tmp_path / "Procedure.ndjson").read_text().splitlines()
    # The procedure is written first, then its injectate, which its model refuses: all of it goes.
    broken = first.replace('"unit":"mL","value":2.0}', '"unit":"mL","value":123456.0}')
    assert broken != first
    (tmp_path / "Procedure.ndjson").write_text(f"{broken}\n{second}\n")
    _wipe()
    AuditEntry.objects.all().delete()

    report = import_paths([tmp_path])
    (rejected,) = report.rejected
    assert rejected.resource_type == "Procedure" and "volume" in rejected.reason
    created = AuditEntry.objects.filter(action="create")
    assert Procedure.objects.count() == created.filter(model="care.Procedure").count() == 1
    assert created.filter(model="care.Injectate").count() == 1
    # One entry per record written, each naming a record that is there, with its patient.
    assert created.filter(model="patients.Patient").count() == Patient.objects.count() == 2
    assert created.filter(model="care.Condition").count() == Condition.objects.count() == 2
    for entry in created:
        model = apps.get_model(entry.model)
        record = model.objects.get(pk=entry.object_id)
        assert (entry.patient_id, entry.clinic_id) == patient_and_clinic(record)
    assert {e.patient_id for e in created} - {None} == set(Patient.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_responses_written_together_fall_back_one_by_one_when_one_is_refused(
    cast: Any, tmp_path: Path
) -> None:
    from stride.outcomes.services import save_answers, start_episode

    today = cast.clinic_a.today()
    follow_up = start_episode(cast.pat_condition, today - dt.timedelta(days=30)).follow_ups.get(
        timepoint="1m"
    )
    for instrument, answers in (("nprs", [3]), ("sane", [70]), ("percent-improvement", [40])):
        save_answers(
            patient=cast.pat,
            follow_up=follow_up,
            instrument=instrument,
            version="1",
            answers=answers,
            source="patient",
            submit=True,
            collected_on=today,
        )
    write_bulk(tmp_path, clinic_ids=None)
    lines = (tmp_path / "QuestionnaireResponse.ndjson").read_text().splitlines()
    assert ["/nprs" in lines[0], "/sane" in lines[1]] == [True, True]
    assert lines[1].count('"valueInteger":70') == 1
    lines[1] = lines[1].replace('"valueInteger":70', '"valueInteger":170')  # out of its range
    (tmp_path / "QuestionnaireResponse.ndjson").write_text("\n".join(lines) + "\n")
    _wipe()
    AuditEntry.objects.all().delete()

    # The first response starts the episode (on its own); the next two go together, and as one of
    # them is refused, each then goes on its own.
    report = import_paths([tmp_path])
    assert report.counts["QuestionnaireResponse"] == {"created": 2, "rejected": 1}
    (refused,) = [r for r in report.rejected if r.resource_type == "QuestionnaireResponse"]
    assert "170 is not one of its answers" in refused.reason and refused.where.endswith(":2")
    assert sorted(QuestionnaireResponse.objects.values_list("instrument", flat=True)) == [
        "nprs",
        "percent-improvement",
    ]
    assert Score.objects.count() == 2
    created = AuditEntry.objects.filter(action="create", model="outcomes.QuestionnaireResponse")
    assert sorted(int(pk) for pk in created.values_list("object_id", flat=True)) == sorted(
        QuestionnaireResponse.objects.values_list("pk", flat=True)
    )


# --------------------------------------------------------------------------- Synthea


@pytest.mark.django_db
def test_synthea_patients_go_in_foot_and_ankle_codes_are_recognised_and_unknown_codes_kept() -> None:
    report = import_paths([SYNTHEA])
    counts = report.counts
    # 13 patients of the bulk export and 2 of the Bundles, in the clinic for imported records.
    assert counts["Patient"] == {"created": 15}
    imported = Clinic.objects.get(slug="imported")
    assert Patient.objects.filter(clinic=imported).count() == 15
    sumiko = Patient.objects.get(record_number="129C6AC7-8D06-89DE-AD63-0204A93E76C3")
    assert (sumiko.given_name, sumiko.family_name, sumiko.sex) == (
        "Sumiko254 Larue605",
        "Medhurst46",
        "female",
    )
    kept_parts = ExternalResource.objects.get(resource_type="Patient", fhir_id=sumiko_id()).payload
    assert "deceasedDateTime" in kept_parts and "address" in kept_parts  # what Stride has no field for

    # 555 + 9 conditions: the 3 ankle sprains are recognised but have no side (Synthea gives none), so
    # they are kept whole with that reason, as are the 561 with codes outside the catalog.
    assert counts["Condition"] == {"kept": 564}
    assert report.kept[("Condition", "no side")] == 3
    assert report.kept[("Condition", "unknown code")] == 561
    assert (
        "Ankle sprain (SNOMED CT 44465007) without a side" in report.kept_examples[("Condition", "no side")]
    )
    sprains = ExternalResource.objects.filter(resource_type="Condition", reason__startswith="Ankle sprain")
    assert sprains.count() == 3 and all(er.patient_id for er in sprains)
    fracture = ExternalResource.objects.filter(resource_type="Condition", reason__contains="16114001")
    assert fracture.count() == 2 and fracture[0].payload["code"]["coding"][0]["code"] == "16114001"

    assert counts["Procedure"] == {"kept": 2061}  # SNOMED-coded procedures: no CPT, no Stride procedure
    assert counts["Organization"] == {"kept": 47}
    assert counts["CarePlan"] == {"kept": 3}
    # The Bundles' pain scores (LOINC 72514-3) are fractions, which a 0–10 rating cannot hold.
    assert counts["Observation"] == {"kept": 78, "rejected": 6}
    assert all("must be a whole number" in r.reason for r in report.rejected)
    assert all(r.where.startswith(("Brett_", "Antonio_")) and ":" in r.where for r in report.rejected)
    assert report.skipped["Encounter"] == 14 and report.skipped["AllergyIntolerance"] == 11
    assert any("log.ndjson" in name for name in report.skipped_files)
    # urn:uuid references of the transaction Bundles were resolved: kept resources name their patient.
    brett = ExternalResource.objects.filter(
        resource_type="CarePlan", payload__subject__reference__startswith="Patient/"
    )
    assert brett.count() == 3
    assert AuditEntry.objects.filter(action="bulk", model="interop.externalresource").count() == 1

    before = _rows()
    again = import_paths([SYNTHEA])
    assert again.total("created") == again.total("kept") == 0
    assert again.total("unchanged") == report.imported
    assert _rows() == before


def sumiko_id() -> str:
    return "129c6ac7-8d06-89de-ad63-0204a93e76c3"


@pytest.mark.django_db
def test_kept_resources_go_out_again_with_their_patient(tmp_path: Path) -> None:
    from stride.patients.models import Consent

    import_paths([BRETT])
    patient = Patient.objects.get()
    Consent.objects.create(patient=patient, version="1", consented_on=dt.date(2025, 1, 10))
    counts = write_bulk(tmp_path, clinic_ids=None)
    assert counts["Condition"] == 6 and counts["CarePlan"] == 2
    sprain = [
        json.loads(line)
        for line in (tmp_path / "Condition.ndjson").read_text().splitlines()
        if "44465007" in line
    ]
    assert len(sprain) == 1 and sprain[0]["subject"]["reference"] == f"Patient/{patient_fhir_id(patient)}"


def patient_fhir_id(patient: Patient) -> str:
    return ExternalResource.objects.get(resource_type="Patient", object_id=patient.pk).fhir_id


# --------------------------------------------------------------------------- what maps


@pytest.mark.django_db
def test_foreign_conditions_map_by_icd10_or_snomed_with_the_side_and_keep_what_does_not(
    tmp_path: Path,
) -> None:
    path = _ndjson(
        tmp_path / "ehr.ndjson",
        _patient(),
        # The side, the ligament and the episode from the ICD-10-CM code alone.
        _condition([{"system": fhir_map.ICD10CM, "code": "S93491A"}, {"system": "urn:ehr:dx", "code": "77"}]),
        # SNOMED CT and a laterality qualifier.
        _condition(
            [{"system": fhir_map.SNOMED, "code": "202882003"}], id="ehr-cond-2", bodySite=[_side("7771000")]
        ),
        # Osteoarthritis of ankle: three Stride conditions share the SNOMED CT id.
        _condition(
            [{"system": fhir_map.SNOMED, "code": "239874001"}], id="ehr-cond-3", bodySite=[_side("24028007")]
        ),
        # A right-sided code with a left laterality: contradictory.
        _condition(
            [{"system": fhir_map.ICD10CM, "code": "M20.21"}], id="ehr-cond-4", bodySite=[_side("7771000")]
        ),
    )
    report = import_paths([path], source="ehr")
    patient = Patient.objects.get()
    assert patient.record_number == "MRN-77/1" and patient.given_name == "Ada N."
    sprain, fasciitis = Condition.objects.order_by("pk")
    assert (sprain.condition_type.code, sprain.laterality, sprain.site.code, sprain.episode) == (
        "ankle-sprain",
        "right",
        "atfl",
        "A",
    )
    assert sprain.icd10_code == "S93.491A" and sprain.onset_date == dt.date(2024, 5, 1)
    assert (fasciitis.condition_type.code, fasciitis.laterality) == ("plantar-fasciitis", "left")
    kept = ExternalResource.objects.get(fhir_id="ehr-cond-1", source="ehr").payload
    assert kept["code"]["coding"] == [
        {"system": "urn:ehr:dx", "code": "77"}
    ]  # the code Stride has no use for
    assert report.kept[("Condition", "ambiguous code")] == 1
    (rejected,) = report.rejected
    assert rejected.where == "ehr.ndjson:5" and rejected.fhir_id == "ehr-cond-4"
    assert "right side but bodySite says left" in rejected.reason

    # Ids of a named source are unique only within it: they go out as UUIDs of source, type and id.
    from stride.patients.models import Consent

    Consent.objects.create(patient=patient, version="1", consented_on=dt.date(2025, 1, 10))
    write_bulk(tmp_path / "out", clinic_ids=None)
    (exported,) = [
        json.loads(line) for line in (tmp_path / "out" / "Patient.ndjson").read_text().splitlines()
    ]
    assert exported["id"] == fhir_map.export_id("ehr", "Patient", "ehr-pat-1") != "ehr-pat-1"
    conditions = [
        json.loads(line) for line in (tmp_path / "out" / "Condition.ndjson").read_text().splitlines()
    ]
    ambiguous = next(c for c in conditions if c["id"] == fhir_map.export_id("ehr", "Condition", "ehr-cond-3"))
    assert ambiguous["subject"] == {"reference": f"Patient/{exported['id']}"}


@pytest.mark.django_db
def test_a_bundle_with_urn_uuid_references_and_a_pain_score_becomes_a_scored_response(tmp_path: Path) -> None:
    patient = {k: v for k, v in _patient().items() if k != "id"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b1c2d3e-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": fhir_map.LOINC, "code": "72514-3"}]},
                    "subject": {"reference": "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001"},
                    "effectiveDateTime": "2025-03-04T09:00:00Z",
                    "valueQuantity": {"value": 7, "unit": "{score}"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001",
                "resource": {"resourceType": "Patient", **patient},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle, indent=2))
    report = import_paths([path])
    assert report.counts["Patient"] == {"created": 1} and report.counts["Observation"] == {"created": 1}
    (score,) = Score.objects.all()
    assert (score.instrument, score.scale, score.value) == ("nprs", "total", 7.0)
    assert score.response.collected_on == dt.date(2025, 3, 4) and score.response.flags == ["imported"]
    er = ExternalResource.objects.get(resource_type="Observation")
    assert er.fhir_id == "0b1c2d3e-0000-4000-8000-000000000002" and er.record == score


# --------------------------------------------------------------------------- what is refused


@pytest.mark.django_db
def test_a_broken_line_is_reported_with_its_line_and_the_rest_goes_in(tmp_path: Path) -> None:
    path = _ndjson(
        tmp_path / "Patient.ndjson",
        _patient(),
        '{"resourceType": "Patient", "id": "broken", "name": [',
        "",
        _patient(id="ehr-pat-2", identifier=[{"value": "B-2"}], birthDate="2999-01-01"),
        _patient(id="ehr-pat-3", identifier=[{"value": "B-3"}], name=[{"text": "No family"}]),
        _patient(id="ehr-pat-4", identifier=[{"value": "B-4"}], gender=12),
        _patient(
            id="ehr-pat-5", identifier=[{"value": "B-5"}], name=[{"family": "Bello", "given": ["Tunde"]}]
        ),
    )
    report = import_paths([path])
    assert report.counts["Patient"]["created"] == 2
    lines = {r.where: r.reason for r in report.rejected}
    assert set(lines) == {"Patient.ndjson:2", "Patient.ndjson:4", "Patient.ndjson:5", "Patient.ndjson:6"}
    assert lines["Patient.ndjson:2"].startswith("not JSON")
    assert "date_of_birth" in lines["Patient.ndjson:4"] and "future" in lines["Patient.ndjson:4"].lower()
    assert "family and a given name" in lines["Patient.ndjson:5"]
    assert lines["Patient.ndjson:6"].startswith("not a valid FHIR resource: gender")
    assert sorted(Patient.objects.values_list("family_name", flat=True)) == ["Bello", "Okafor"]


@pytest.mark.django_db
def test_a_resource_whose_patient_is_missing_is_rejected_and_a_changed_one_updates(tmp_path: Path) -> None:
    orphan = _condition(
        [{"system": fhir_map.ICD10CM, "code": "M20.21"}], subject={"reference": "Patient/nobody"}
    )
    first = import_paths([_ndjson(tmp_path / "a.ndjson", _patient(), orphan)])
    (rejected,) = first.rejected
    assert "Patient/nobody is not in Stride" in rejected.reason
    renamed = _patient(name=[{"family": "Okafor-Ade", "given": ["Ada"]}])
    second = import_paths([_ndjson(tmp_path / "b.ndjson", renamed)])
    assert second.counts["Patient"] == {"updated": 1}
    assert Patient.objects.get().family_name == "Okafor-Ade"


@pytest.mark.django_db
def test_a_resource_given_twice_in_one_file_is_created_then_updated_and_kept_track_of_once(
    tmp_path: Path,
) -> None:
    renamed = _patient(name=[{"family": "Okafor-Ade", "given": ["Ada"]}])
    orphan = _condition(
        [{"system": fhir_map.ICD10CM, "code": "M20.21"}], subject={"reference": "Patient/nobody"}
    )
    path = _ndjson(tmp_path / "twice.ndjson", _patient(), renamed, _patient(id="ehr-pat-2", identifier=[]))
    report = import_paths([path, _ndjson(tmp_path / "c.ndjson", orphan)])
    assert report.counts["Patient"] == {"created": 2, "updated": 1}
    assert report.counts["Condition"] == {"rejected": 1}
    assert Patient.objects.get(family_name__startswith="Okafor-").given_name == "Ada"
    rows = ExternalResource.objects.order_by("fhir_id")
    assert [(er.resource_type, er.fhir_id) for er in rows] == [
        ("Patient", "ehr-pat-1"),
        ("Patient", "ehr-pat-2"),
    ]
    again = import_paths([path])  # back and forth again: the same two records, tracked once each
    assert again.counts["Patient"] == {"updated": 2, "unchanged": 1}
    assert ExternalResource.objects.count() == Patient.objects.count() == 2


@pytest.mark.django_db
def test_gzipped_ndjson_is_read_as_it_is(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "Patient.000.ndjson.gz"
    packed.write_bytes(gzip.compress((BULK / "Patient.000.ndjson").read_bytes()))
    report = import_paths([tmp_path])
    assert report.counts["Patient"] == {"created": 13}


# --------------------------------------------------------------------------- the command


@pytest.mark.django_db
def test_the_command_prints_the_counts_and_rejections_and_fails_when_nothing_goes_in(tmp_path: Path) -> None:
    path = _ndjson(tmp_path / "Patient.ndjson", _patient(), "{not json")
    out = StringIO()
    call_command("import", "fhir", str(path), "--no-progress", stdout=out)
    text = out.getvalue()
    assert "Patient" in text and "Rejected 1:" in text and "Patient.ndjson:2: line: not JSON" in text
    with pytest.raises(CommandError, match="Nothing could be imported"):
        call_command("import", "fhir", str(BULK / "log.ndjson"), stdout=StringIO())
    with pytest.raises(CommandError, match="no such file or folder"):
        call_command("import", "fhir", str(tmp_path / "missing.ndjson"), stdout=StringIO())
    assert Procedure.objects.count() == 0


def test_both_commands_have_help_with_an_example(tmp_path: Path) -> None:
    from tests.test_cli import run

    for command in ("export", "import"):
        result = run(command, "--help", home=tmp_path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Example:" in result.stdout, command


@pytest.mark.django_db
def test_a_large_import_refreshes_the_planners_statistics_as_each_type_grows(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Without statistics the planner takes an empty registry for what it is, and keeps choosing the
    plans that suit one: refreshed at FIRST_ANALYZE resources of a type and at each doubling."""
    monkeypatch.setattr(fhir_import, "FIRST_ANALYZE", 3)
    monkeypatch.setattr(fhir_import, "PREFETCH", 2)
    refreshed_at: list[int] = []
    refresh = fhir_import.refresh_statistics

    def counted() -> None:
        refreshed_at.append(Patient.objects.count())
        refresh()

    monkeypatch.setattr(fhir_import, "refresh_statistics", counted)
    mrn = "http://hospital.example/mrn"
    lines = [
        json.dumps(_patient(id=f"p{n}", identifier=[{"system": mrn, "value": f"M{n}"}])) for n in range(20)
    ]
    (tmp_path / "Patient.ndjson").write_text("\n".join(lines) + "\n")
    report = import_paths([tmp_path / "Patient.ndjson"])
    assert report.counts["Patient"]["created"] == 20
    assert refreshed_at == [4, 6, 12]  # at the 3rd (its run of two written), the 6th and the 12th
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT tbl, stat FROM sqlite_stat1")
            stats = dict(cursor.fetchall())
        assert stats["interop_externalresource"].startswith("12 ")  # rows, as the last refresh saw them
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'interop_externalresource'")
            assert cursor.fetchone()[0] == 12
