"""Protocols export as FHIR R4 PlanDefinition and plans as FHIR R4 CarePlan, valid both ways.

Each resource is checked with the fhir.resources models (R4B, which read R4
but do not check coded values) and with the official R4 JSON Schema from
``../shared/data`` (those checks are skipped where that folder is absent).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from stride.care import plans
from stride.care.models import CarePlan, PlanStep, Procedure, ProcedureType, ProtocolVersion, Site
from stride.core.catalog import catalog
from stride.core.protocols import parse_protocol, protocols
from stride.interop import fhir_plans
from tests.conftest import make_condition

SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "fhir"
    / "r4-json-schema"
    / "fhir.schema.json.gz"
)
BASE = "https://stride.test"
UCUM = "http://unitsofmeasure.org"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
WINDOW = f"{BASE}/fhir/StructureDefinition/step-window"
PLANNED_DAY = f"{BASE}/fhir/StructureDefinition/planned-day"


# --------------------------------------------------------------------------- helpers


@cache
def _schema_validator(resource_type: str) -> Any:
    import jsonschema

    root = json.loads(gzip.decompress(SCHEMA.read_bytes()))
    schema = {k: v for k, v in root.items() if k not in ("oneOf", "discriminator")}
    schema["$ref"] = f"#/definitions/{resource_type}"
    return jsonschema.Draft6Validator(schema)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """What the official R4 JSON Schema finds wrong with ``resource`` (skips when the schema is absent)."""
    if not SCHEMA.exists():
        pytest.skip(f"the R4 JSON Schema is not at {SCHEMA}")
    validator = _schema_validator(resource["resourceType"])
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(resource)]


def model_round_trip(resource: dict[str, Any]) -> dict[str, Any]:
    """Build the fhir.resources R4B model and read it back: nothing may be dropped or changed."""
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return json.loads(model.model_dump_json(exclude_none=True))


def leaves(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The step actions, with session groups opened."""
    result = []
    for action in actions:
        result.extend(leaves(action["action"]) if "action" in action else [action])
    return result


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def weeks(n: int) -> dict[str, Any]:
    return {"value": n, "unit": "week" if n == 1 else "weeks", "system": UCUM, "code": "wk"}


def days(n: int) -> dict[str, Any]:
    return {"value": n, "unit": "day" if n == 1 else "days", "system": UCUM, "code": "d"}


def months(n: int) -> dict[str, Any]:
    return {"value": n, "unit": "month" if n == 1 else "months", "system": UCUM, "code": "mo"}


def window(action: dict[str, Any]) -> dict[str, Any]:
    """The step-window extension's parts, by name."""
    (ext,) = [e for e in action.get("extension", []) if e["url"] == WINDOW] or [{"extension": []}]
    return {part["url"]: part.get("valueDuration", part.get("valueString")) for part in ext["extension"]}


def codings(concept: dict[str, Any]) -> dict[str, str]:
    return {c["system"]: c["code"] for c in concept["coding"]}


def definition(code: str) -> dict[str, Any]:
    protocol = protocols()[code]
    return fhir_plans.plan_definition(protocol, version_label=str(protocol.version), base_url=BASE)


# --------------------------------------------------------------------------- PlanDefinition


@pytest.mark.parametrize("code", sorted(protocols()))
def test_every_shipped_protocol_is_a_valid_plan_definition_with_one_action_per_step(code: str) -> None:
    protocol = protocols()[code]
    resource = definition(code)
    assert model_round_trip(resource) == resource
    assert schema_errors(resource) == []
    assert resource["resourceType"] == "PlanDefinition"
    assert resource["status"] == "active"
    assert resource["url"] == f"{BASE}/protocols/{code}/fhir/"
    assert resource["version"] == str(protocol.version)
    assert resource["identifier"] == [{"system": f"{BASE}/protocols", "value": code}]
    assert resource["title"] == protocol.name
    assert resource["description"] == protocol.summary
    assert resource["name"][0].isupper() and resource["name"].isalnum()
    steps = leaves(resource["action"])
    assert [a["id"] for a in steps] == [s.code for s in protocol.steps]
    actions = by_id(steps)
    for step in protocol.steps:
        action = actions[step.code]
        assert action["title"] == step.name
        assert action["requiredBehavior"] == ("could" if step.optional else "must")
        if step.code == protocol.anchor:
            assert "relatedAction" not in action  # day 0: the one step timed from no other
        else:
            (related,) = action["relatedAction"]
            assert related["actionId"] == step.relative_to
        if step.kind == "procedure":
            number = catalog().procedures[step.procedure].cpt
            assert codings(action["code"][0])[HCPCS if number[0].isalpha() else CPT] == number


def test_the_ankle_protocols_timing_offsets_windows_and_codes() -> None:
    actions = by_id(leaves(definition("ankle-instability-regenerative")["action"]))
    booster = actions["booster"]
    assert booster["relatedAction"] == [
        {"actionId": "index", "relationship": "after-start", "offsetDuration": weeks(6)}
    ]
    assert window(booster) == {"after": weeks(2)}  # 6 to 8 weeks
    assert codings(booster["code"][0])[CPT] == "0232T"
    assert codings(booster["code"][0])[f"{BASE}/fhir/CodeSystem/procedure-type"] == "prp-injection"

    primer = actions["primer-1"]
    assert primer["relatedAction"] == [
        {"actionId": "index", "relationship": "before-start", "offsetDuration": weeks(4)}
    ]
    assert window(primer) == {"before": weeks(1), "after": weeks(1)}
    assert codings(primer["code"][0]) == {
        HCPCS: "M0076",
        f"{BASE}/fhir/CodeSystem/procedure-type": "prolotherapy",
    }
    assert actions["primer-3"]["requiredBehavior"] == "could"
    assert actions["primer-2"]["requiredBehavior"] == "must"

    index = actions["index"]
    assert "relatedAction" not in index and window(index) == {}
    assert codings(index["code"][0])[CPT] == "0232T"
    assert window(actions["review"]) == {"before": days(3), "after": days(3)}
    orthotics = actions["orthotics"]
    assert codings(orthotics["code"][0]) == {
        f"{BASE}/fhir/CodeSystem/plan-step-kind": "orthotic",
        f"{BASE}/fhir/CodeSystem/treatment": "orthotics",
    }


def test_chains_months_and_sessions() -> None:
    resource = definition("morton-neuroma-conventional")
    group = resource["action"][0]
    assert group["id"] == "session-first-visit"
    assert group["groupingBehavior"] == "logical-group"
    assert [a["id"] for a in group["action"]] == ["footwear", "metatarsal-pad", "activity-change", "nsaids"]
    assert "relatedAction" not in group["action"][0]  # the anchor
    for mate in group["action"][1:]:
        assert mate["relatedAction"] == [{"actionId": "footwear", "relationship": "concurrent-with-start"}]
    actions = by_id(leaves(resource["action"]))
    assert actions["steroid-2"]["relatedAction"] == [
        {"actionId": "steroid-1", "relationship": "after-start", "offsetDuration": weeks(6)}
    ]
    assert actions["neurectomy"]["relatedAction"] == [
        {"actionId": "alcohol-4", "relationship": "after-start", "offsetDuration": months(3)}
    ]
    assert window(actions["neurectomy"]) == {"after": months(3)}
    assert codings(actions["steroid-1"]["code"][0])[CPT] == "64455"
    assert codings(actions["alcohol-1"]["code"][0])[CPT] == "64632"
    assert codings(actions["neurectomy"]["code"][0])[CPT] == "28080"

    lysate = by_id(leaves(definition("morton-neuroma-platelet-lysate")["action"]))
    assert lysate["ultrasound-6m"]["relatedAction"] == [
        {"actionId": "injection", "relationship": "after-start", "offsetDuration": months(6)}
    ]
    assert window(lysate["ultrasound-6m"]) == {"before": days(30), "after": days(30)}
    assert lysate["baseline-ultrasound"]["relatedAction"] == [
        {"actionId": "injection", "relationship": "concurrent-with-start"}
    ]
    assert window(lysate["baseline-ultrasound"]) == {"before": days(30)}


MIXED = """
protocol = "mixed-offsets"
version = 3
name = "Mixed offsets"
summary = "A test template."
conditions = ["hallux-rigidus"]
anchor = "start"

[[step]]
code = "start"
name = "Start"
kind = "review"

[[step]]
code = "check"
name = "Check"
kind = "review"
offset = { months = 1, days = 3 }
window = { before = { months = 1, days = 2 }, after = { weeks = 1, days = 1 } }

[[step]]
code = "earlier"
name = "Earlier"
kind = "imaging"
offset = { weeks = -1, days = -2 }
"""


def test_an_offset_no_single_duration_holds_keeps_its_exact_value_in_an_extension() -> None:
    protocol = parse_protocol(MIXED, "mixed")
    resource = fhir_plans.plan_definition(protocol, version_label="3", base_url=BASE + "/")
    assert model_round_trip(resource) == resource
    assert schema_errors(resource) == []
    actions = by_id(leaves(resource["action"]))
    (related,) = actions["check"]["relatedAction"]
    assert related["relationship"] == "after-start" and "offsetDuration" not in related
    assert related["extension"] == [
        {"url": f"{BASE}/fhir/StructureDefinition/step-offset", "valueString": "+1 month +3 days"}
    ]
    assert window(actions["check"]) == {"before": "1 month 2 days", "after": days(8)}
    assert actions["earlier"]["relatedAction"] == [
        {"actionId": "start", "relationship": "before-start", "offsetDuration": days(9)}
    ]
    assert resource["id"] == "mixed-offsets-v3" and resource["name"] == "MixedOffsets"


def test_the_models_alone_would_miss_a_bad_code_that_the_schema_catches() -> None:
    resource = definition("ankle-instability-regenerative")
    leaves(resource["action"])[0]["requiredBehavior"] = "perhaps"
    model_round_trip(resource)  # R4B models do not check coded values
    assert any("perhaps" in error for error in schema_errors(resource))


# --------------------------------------------------------------------------- CarePlan


def ankle_plan(cast: Any) -> tuple[CarePlan, dict[str, PlanStep]]:
    """An ankle plan a fortnight from day 0: primer 1 done, primer 2 skipped, the booster moved."""
    condition = make_condition(
        cast.pat, code="ankle-instability-ligamentous", laterality="left", site="atfl-cfl"
    )
    version = ProtocolVersion.objects.get(code="ankle-instability-regenerative", clinic=None)
    anchor = cast.clinic_a.today() + dt.timedelta(days=14)
    plan = plans.start_plan(condition, version, anchor, clinician=cast.alice)
    steps = {s.code: s for s in plan.steps.all()}
    primer = steps["primer-1"]
    procedure = Procedure.objects.create(
        patient=cast.pat,
        condition=condition,
        performed_on=primer.planned_on,
        clinician=cast.alice,
        procedure_type=ProcedureType.objects.get(code="prolotherapy"),
        site=Site.objects.get(code="atfl-cfl"),
        laterality="left",
        image_guidance="ultrasound",
    )
    plans.complete(primer, procedure, primer.planned_on, cast.alice)
    plans.skip(steps["primer-2"], "Ligaments settled after one primer", cast.alice)
    plans.reschedule(steps["booster"], anchor + dt.timedelta(weeks=7), "Patient travelling", cast.alice)
    return plan, {s.code: s for s in plan.steps.all()}


def test_a_started_plan_is_a_valid_care_plan_with_each_steps_status(cast) -> None:
    plan, steps = ankle_plan(cast)
    resource = fhir_plans.care_plan(plan, base_url=BASE)
    assert model_round_trip(resource) == resource
    assert schema_errors(resource) == []

    version = plan.protocol
    assert resource["status"] == "active"
    assert resource["intent"] == "plan"
    assert resource["instantiatesCanonical"] == [
        f"{BASE}/protocols/ankle-instability-regenerative/fhir/|{version.version}"
    ]
    pd = definition("ankle-instability-regenerative")
    assert resource["instantiatesCanonical"] == [f"{pd['url']}|{pd['version']}"]
    assert resource["subject"] == {"reference": f"Patient/{cast.pat.pk}"}
    assert resource["addresses"] == [{"reference": f"Condition/{plan.condition_id}"}]
    assert resource["period"] == {
        "start": steps["primer-1"].planned_on.isoformat(),
        "end": steps["booster"].planned_on.isoformat(),
    }
    assert resource["created"].startswith(plan.created_at.date().isoformat())

    activities = by_id(resource["activity"])
    assert list(activities) == [s.code for s in plan.steps.all()]  # primer 3 is optional: not started

    done = activities["primer-1"]
    assert done["detail"]["status"] == "completed"
    assert done["outcomeReference"] == [{"reference": f"Procedure/{steps['primer-1'].procedure_id}"}]
    assert done["progress"][0]["time"] == steps["primer-1"].planned_on.isoformat()
    assert codings(done["detail"]["code"])[HCPCS] == "M0076"

    skipped = activities["primer-2"]["detail"]
    assert skipped["status"] == "cancelled"
    assert skipped["statusReason"] == {"text": "Ligaments settled after one primer"}

    anchor = plan.anchor_date
    booster = activities["booster"]["detail"]
    assert booster["status"] == "not-started"
    assert booster["statusReason"] == {"text": "Patient travelling"}
    assert booster["extension"] == [
        {"url": PLANNED_DAY, "valueDate": (anchor + dt.timedelta(weeks=7)).isoformat()}
    ]
    assert booster["scheduledPeriod"] == {
        "start": (anchor + dt.timedelta(weeks=6)).isoformat(),
        "end": (anchor + dt.timedelta(weeks=8)).isoformat(),
    }
    assert f"Moved from {(anchor + dt.timedelta(weeks=6)).isoformat()}" in booster["description"]
    assert codings(booster["code"])[CPT] == "0232T"

    index = activities["index"]["detail"]
    assert index["status"] == "not-started" and "statusReason" not in index
    assert codings(index["code"])[CPT] == "0232T"
    assert "outcomeReference" not in activities["index"]
    physio = activities["physical-therapy"]["detail"]
    assert codings(physio["code"])[f"{BASE}/fhir/CodeSystem/treatment"] == "physical-therapy"


def test_a_stopped_plan_is_revoked_and_its_open_steps_cancelled(cast) -> None:
    plan, steps = ankle_plan(cast)
    added = plans.add_step(
        plan, "Extra review", "review", cast.clinic_a.today() + dt.timedelta(days=3), "Swelling", cast.alice
    )
    plans.stop(plan, "Patient chose surgery")
    plan.refresh_from_db()
    resource = fhir_plans.care_plan(plan, base_url=BASE)
    assert model_round_trip(resource) == resource
    assert schema_errors(resource) == []
    assert resource["status"] == "revoked"
    assert resource["note"] == [{"text": "Stopped: Patient chose surgery"}]
    assert resource["period"]["end"] == steps["primer-1"].done_on.isoformat()
    activities = by_id(resource["activity"])
    assert activities["index"]["detail"]["status"] == "cancelled"
    assert activities["index"]["detail"]["statusReason"] == {
        "text": "The plan was stopped: Patient chose surgery"
    }
    assert activities["primer-1"]["detail"]["status"] == "completed"
    extra = activities[added.code]["detail"]
    assert "instantiatesCanonical" not in extra
    assert "Added to the plan: Swelling." in extra["description"]
    assert "instantiatesCanonical" in activities["index"]["detail"]


# --------------------------------------------------------------------------- views


def test_the_protocol_view_serves_the_plan_definition_to_staff(client, cast) -> None:
    url = "/protocols/ankle-instability-regenerative/fhir/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(cast.carol)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    resource = response.json()
    assert resource["resourceType"] == "PlanDefinition" and resource["version"] == "1"
    assert resource["url"].endswith(url)
    assert client.get(url, {"version": "1"}).json()["version"] == "1"
    assert client.get(url, {"version": "99"}).status_code == 404
    assert client.get(url, {"version": "one"}).status_code == 404
    assert client.get("/protocols/no-such-protocol/fhir/").status_code == 404
    client.force_login(cast.rita)  # a researcher: no identifiable records, no staff pages
    assert client.get(url).status_code == 403


def test_a_clinics_own_version_is_served_to_that_clinic_only(client, cast) -> None:
    shipped = ProtocolVersion.objects.get(code="hallux-rigidus-bmc", clinic=None)
    edited = plans.save_clinic_version(cast.clinic_b, shipped.code, shipped.text, cast.olga)
    url = "/protocols/hallux-rigidus-bmc/fhir/"
    client.force_login(cast.olga)
    assert client.get(url).json()["version"] == str(edited.version)
    client.force_login(cast.alice)
    assert client.get(url).json()["version"] == str(shipped.version)
    assert client.get(url, {"version": edited.version}).status_code == 404


def test_the_plan_view_serves_the_care_plan_in_the_clinic_only_and_audits_it(client, cast) -> None:
    from stride.audit.models import AuditEntry

    plan, _ = ankle_plan(cast)
    url = f"/plans/{plan.pk}/fhir/"
    client.force_login(cast.alice)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response.json() == fhir_plans.care_plan(plan, base_url=settings.STRIDE_BASE_URL)
    entry = AuditEntry.objects.filter(action="view", patient_id=cast.pat.pk).latest("pk")
    assert entry.detail == {"fhir": "CarePlan", "plan": plan.pk}
    assert entry.username == "alice"
    assert client.post(url).status_code == 405
    for outsider in (cast.olga, cast.rita):
        client.force_login(outsider)
        assert client.get(url).status_code == 404
        assert client.post(url).status_code == 404


# --------------------------------------------------------------------------- the command


def test_the_command_prints_a_plan_definition(db, capsys) -> None:
    call_command("plan_fhir", "protocol", "morton-neuroma-platelet-lysate", "--version", "1")
    resource = json.loads(capsys.readouterr().out)
    assert resource["resourceType"] == "PlanDefinition"
    assert len(leaves(resource["action"])) == len(protocols()["morton-neuroma-platelet-lysate"].steps)


def test_the_command_prints_a_care_plan_and_audits_the_read(cast, capsys) -> None:
    from stride.audit.models import AuditEntry

    plan, _ = ankle_plan(cast)
    capsys.readouterr()
    call_command("plan_fhir", "plan", str(plan.pk))
    resource = json.loads(capsys.readouterr().out)
    assert resource["resourceType"] == "CarePlan" and resource["id"] == str(plan.pk)
    entry = AuditEntry.objects.filter(action="view", patient_id=cast.pat.pk).latest("pk")
    assert entry.channel == "cli" and entry.username.startswith("cli:")
    assert entry.detail == {"fhir": "CarePlan", "plan": plan.pk}


@pytest.mark.parametrize(
    "argv",
    [
        ["protocol", "no-such-protocol"],
        ["protocol", "hallux-rigidus-bmc", "--version", "99"],
        ["plan", "999999"],
        ["plan", "not-a-number"],
    ],
)
def test_an_unknown_protocol_or_plan_is_one_line_and_exit_status_2(db, capsys, argv: list[str]) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("plan_fhir", *argv)
    assert caught.value.returncode == 2
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["stride", "plan_fhir", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "No " in err


def test_the_command_help_has_an_example(capsys) -> None:
    with pytest.raises(SystemExit):
        execute_from_command_line(["stride", "plan_fhir", "--help"])
    assert "Example: stride plan_fhir protocol" in capsys.readouterr().out
