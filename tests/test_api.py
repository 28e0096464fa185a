"""The JSON API: tokens, every resource as a clinician, the role and clinic rules, errors, audit, pages.

The cast is the shared one (tests/conftest.py): Alice (clinician), Carol
(coordinator), Rita (researcher) and Adam (admin) in Lakeside with Pat; Olga
(clinician) in Harbour with Quinn.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from stride.api.models import ApiToken
from stride.audit.models import AuditEntry


class Api:
    """A client that speaks JSON to /api/ with one user's token."""

    def __init__(self, client: Client, secret: str | None) -> None:
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api{path}", params, **self.headers)

    def post(self, path: str, body: Any = None, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body)
        return self.client.post(f"/api{path}", data, content_type="application/json", **self.headers)

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(
            f"/api{path}", json.dumps(body), content_type="application/json", **self.headers
        )

    def delete(self, path: str) -> Any:
        return self.client.delete(f"/api{path}", **self.headers)


def _page(name: str, **kwargs: Any) -> str:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        pytest.fail(
            'the token pages need path("account/", include("stride.api.account_urls")) in stride/urls.py'
        )


def api_for(user: Any) -> Api:
    _token, secret = ApiToken.issue(user, "tests")
    return Api(Client(), secret)


@pytest.fixture
def alice(cast) -> Api:
    return api_for(cast.alice)


def _error(response: Any, status: int, field: str | None = "…") -> dict[str, Any]:
    """The structured error, checked: status, JSON, one sentence, the field (when given)."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "field", "errors"}
    assert body["error"].endswith(".") and "\n" not in body["error"]
    assert body["errors"] and body["errors"][0] == {"field": body["field"], "message": body["error"]}
    if field != "…":
        assert body["field"] == field, body
    return body


def _api_entries(**filters: Any) -> Any:
    return AuditEntry.objects.filter(channel="api", **filters)


# --------------------------------------------------------------------------- tokens


def test_a_token_is_stored_only_as_the_sha256_of_its_secret(cast) -> None:
    token, secret = ApiToken.issue(cast.alice, "EHR interface")
    token.refresh_from_db()
    assert secret.startswith("stride_") and len(secret) > 40
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.prefix == secret[:12]
    stored = " ".join(str(v) for v in ApiToken.objects.values().get(pk=token.pk).values())
    assert secret not in stored


def test_the_token_page_makes_a_token_shows_it_once_and_audits_it(client, cast) -> None:
    client.force_login(cast.rita)  # any role may have tokens
    url = _page("api-tokens")
    assert url == "/account/tokens/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "R scripts"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(r'value="(stride_[^"]+)"', response.content.decode()).group(1)
    token = ApiToken.objects.get(user=cast.rita)
    assert token.name == "R scripts" and token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    page = client.get(url).content.decode()
    assert secret not in page and token.prefix in page
    entry = AuditEntry.objects.get(model="api.ApiToken", action="create")
    assert entry.username == "rita" and entry.object_id == str(token.pk)
    assert secret not in json.dumps(entry.detail)
    assert Api(Client(), secret).get("/me").json()["username"] == "rita"


def test_revoking_on_the_page_turns_the_token_off_and_is_audited(client, cast) -> None:
    token, secret = ApiToken.issue(cast.alice, "old")
    assert Api(Client(), secret).get("/me").status_code == 200
    client.force_login(cast.alice)
    response = client.post(_page("api-token-revoke", pk=token.pk))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEntry.objects.filter(model="api.ApiToken", action="update", username="alice").exists()
    body = _error(Api(Client(), secret).get("/me"), 401, None)
    assert "not valid" in body["error"]


def test_nobody_revokes_another_users_token_and_the_page_needs_a_login(client, cast) -> None:
    token, _secret = ApiToken.issue(cast.alice, "mine")
    client.force_login(cast.olga)
    assert client.post(_page("api-token-revoke", pk=token.pk)).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert Client().get(_page("api-tokens"))["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWxpY2U6eA==",
        "Bearer stride_not-a-token",
        "Token abc",
        "Bearer " + "x" * 5000,
    ],
)
def test_a_request_without_a_valid_token_is_401_in_json(cast, header) -> None:
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = Client().get("/api/patients", **headers)
    body = _error(response, 401, None)
    assert "Authorization" in body["error"] or "not valid" in body["error"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_every_refused_token_is_audited_as_a_failed_login_without_its_secret(cast) -> None:
    token, secret = ApiToken.issue(cast.alice, "laptop")
    Client().get("/api/patients", HTTP_AUTHORIZATION="Bearer stride_guess", REMOTE_ADDR="10.9.8.7")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    Client().get("/api/patients", HTTP_AUTHORIZATION=f"Bearer {secret}")
    Client().get("/api/patients")  # no token at all: nothing to audit
    entries = list(_api_entries(action="login-failed").order_by("pk"))
    assert [e.detail["reason"] for e in entries] == ["unknown", "revoked"]
    assert (entries[0].user, entries[0].ip_address, entries[0].detail["token"]) == (None, "10.9.8.7", "")
    assert (entries[1].user, entries[1].object_id) == (cast.alice, str(token.pk))
    assert entries[1].detail["token"] == f"{token.prefix}…"
    assert not any(secret in json.dumps(e.detail) or "stride_guess" in json.dumps(e.detail) for e in entries)


def test_head_answers_as_get_without_the_body_and_is_audited_alike(alice, cast) -> None:
    url = f"/api/patients/{cast.pat.pk}"
    get = alice.client.get(url, **alice.headers)
    head = alice.client.head(url, **alice.headers)
    assert (head.status_code, head.content) == (200, b"")
    assert head["Content-Length"] == str(len(get.content)) and head["Content-Type"] == get["Content-Type"]
    assert _api_entries(action="view", object_id=str(cast.pat.pk)).count() == 2
    assert alice.client.head("/api/patients/999999", **alice.headers).status_code == 404
    refused = alice.client.delete("/api/patients", **alice.headers)
    assert (refused.status_code, refused["Allow"]) == (405, "GET, HEAD, POST")


def test_a_deactivated_users_token_is_refused(cast) -> None:
    api = api_for(cast.alice)
    cast.alice.is_active = False
    cast.alice.save()
    _error(api.get("/patients"), 401, None)


def test_a_session_login_does_not_open_the_api(client, cast) -> None:
    client.force_login(cast.alice)
    _error(client.get("/api/patients"), 401, None)


def test_using_a_token_stamps_when_it_was_last_used(cast) -> None:
    token, secret = ApiToken.issue(cast.alice, "t")
    assert token.last_used_at is None
    Api(Client(), secret).get("/me")
    token.refresh_from_db()
    assert token.last_used_at is not None


# --------------------------------------------------------------------------- the documents


def test_the_openapi_document_names_the_api_and_its_bearer_tokens(client, db) -> None:
    schema = client.get("/api/openapi.json").json()
    assert schema["info"]["title"] == "Stride API" and schema["info"]["version"] == "1"
    assert {"type": "http", "scheme": "bearer"}.items() <= next(
        iter(schema["components"]["securitySchemes"].values())
    ).items()
    assert "/api/patients/{patient_id}/procedures" in schema["paths"]


def test_the_docs_page_uses_only_the_bundled_static_files(client, db) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.content.decode()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references and all(ref.startswith("/static/ninja/") for ref in references), references
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert (
        json.loads(re.search(r'id="swagger-settings">(.*?)</script>', html, re.S).group(1))["validatorUrl"]
        is None
    )
    for ref in references:
        served = client.get(ref)
        assert served.status_code == 200, f"{ref} is not served: add 'ninja' to INSTALLED_APPS"
        b"".join(served.streaming_content) if served.streaming else served.content


def test_the_api_root_says_where_the_documents_are(client, db) -> None:
    assert client.get("/api/").json()["docs"] == "/api/docs"


# --------------------------------------------------------------------------- errors


def test_an_unknown_address_or_method_answers_json(alice, cast) -> None:
    body = _error(alice.get("/nothing/here"), 404, None)
    assert "/api/nothing/here" in body["error"]
    assert "without a slash: /api/patients." in _error(alice.get("/patients/"), 404, None)["error"]
    response = alice.delete(f"/patients/{cast.pat.pk}")
    body = _error(response, 405, None)
    assert response["Allow"] == "GET, HEAD, PATCH" and "DELETE" in body["error"]
    _error(alice.post("/openapi.json", {}), 405, None)
    _error(Client().post("/api/unknown", "{}", content_type="application/json"), 404, None)


def test_bad_json_is_a_400_naming_the_body(alice) -> None:
    body = _error(alice.post("/patients", raw="{not json"), 400, "body")
    assert body["error"] == "The request body is not valid JSON."
    _error(alice.post("/patients", raw='{"height_cm": NaN}'), 400, "body")
    _error(alice.post("/patients", raw='{"height_cm": 1e999}'), 400, "body")


LEFT_OUT = object()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (None, "body", "JSON object"),
        ([1, 2], "body", "JSON object"),
        ({"record_number": LEFT_OUT}, "record_number", "record_number is required."),
        ({"colour": "blue"}, "colour", "colour is not a field this request takes"),
        ({"sex": "f"}, "sex", "sex must be one of female, male, other or unknown."),
        ({"date_of_birth": "17/05/1970"}, "date_of_birth", "YYYY-MM-DD"),
        ({"date_of_birth": "1970-02-30"}, "date_of_birth", "YYYY-MM-DD"),
        ({"height_cm": "170"}, "height_cm", "height_cm must be a number."),
        ({"height_cm": True}, "height_cm", "height_cm must be a number."),
        ({"given_name": 5}, "given_name", "given_name must be text"),
        ({"given_name": None}, "given_name", "given_name cannot be null."),
        ({"given_name": "A\x00n"}, "given_name", "NUL"),
        ({"record_number": "A" * 41}, "record_number", "at most 40 characters"),
        ({"record_number": "A 1"}, "record_number", "may only hold letters, digits"),
        ({"clinic": "Lakeside!"}, "clinic", "lower-case letters, digits and hyphens"),
    ],
)
def test_a_body_that_breaks_the_schema_is_a_422_with_a_plain_sentence(alice, change, field, words) -> None:
    body: Any = change
    if isinstance(change, dict):
        valid = {
            "record_number": "A-9",
            "given_name": "Ann",
            "family_name": "Orr",
            "date_of_birth": "1980-01-01",
            "sex": "female",
        }
        body = {k: v for k, v in {**valid, **change}.items() if v is not LEFT_OUT}
    response = alice.post("/patients", raw="" if body is None else json.dumps(body))
    result = _error(response, 422, field)
    assert words in result["error"], result


def test_every_problem_is_listed_and_the_first_is_the_sentence(alice) -> None:
    body = _error(alice.post("/patients", {"sex": "x", "colour": 1}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"record_number", "given_name", "family_name", "date_of_birth", "sex", "colour"} <= fields


def test_a_query_parameter_out_of_range_names_the_parameter(alice) -> None:
    assert "at most 200" in _error(alice.get("/patients", limit=1000), 422, "limit")["error"]
    assert "whole number" in _error(alice.get("/patients", offset="x"), 422, "offset")["error"]


# --------------------------------------------------------------------------- patients


def _new_patient(**extra: Any) -> dict[str, Any]:
    return {
        "record_number": "a-100",
        "given_name": "Ann",
        "family_name": "Orr",
        "date_of_birth": "1980-04-02",
        "sex": "female",
        "height_cm": 165.5,
        "weight_kg": 61,
        **extra,
    }


def test_a_clinician_registers_reads_and_changes_a_patient(alice, cast) -> None:
    created = alice.post("/patients", _new_patient())
    assert created.status_code == 201, created.content
    patient = created.json()
    assert patient["clinic"] == "lakeside" and patient["record_number"] == "A-100"
    assert patient["height_cm"] == 165.5 and patient["consent_status"] == "none"
    entry = _api_entries(action="create", model="patients.Patient").get()
    assert entry.username == "alice" and entry.patient_id == patient["id"]

    read = alice.get(f"/patients/{patient['id']}")
    assert read.status_code == 200 and read.json()["given_name"] == "Ann"
    assert _api_entries(action="view", patient_id=patient["id"], username="alice").count() == 1

    changed = alice.patch(f"/patients/{patient['id']}", {"phone": "+1 555 0100", "weight_kg": None})
    assert changed.status_code == 200, changed.content
    assert changed.json()["phone"] == "+1 555 0100" and changed.json()["weight_kg"] is None
    assert changed.json()["given_name"] == "Ann"
    update = _api_entries(action="update", model="patients.Patient").get()
    assert set(update.detail["fields"]) == {"phone", "weight_kg"}


def test_a_patient_breaking_a_model_rule_is_refused_with_the_rules_sentence(alice, cast) -> None:
    future = str(cast.clinic_a.today() + dt.timedelta(days=3))
    body = _error(alice.post("/patients", _new_patient(date_of_birth=future)), 422, "date_of_birth")
    assert body["error"] == "The date of birth is in the future."
    body = _error(alice.post("/patients", _new_patient(record_number="a-001")), 422, "record_number")
    assert "record number" in body["error"]
    body = _error(alice.post("/patients", _new_patient(height_cm=500)), 422, "height_cm")
    assert "between 50 and 250 cm" in body["error"]
    _error(alice.post("/patients", _new_patient(clinic="harbour")), 422, "clinic")
    _error(alice.patch(f"/patients/{cast.pat.pk}", {"given_name": None}), 422, "given_name")
    _error(alice.patch(f"/patients/{cast.pat.pk}", {"clinic": "harbour"}), 422, "clinic")
    assert not _api_entries(action__in=["create", "update"]).exists()


def test_the_patient_list_pages_filters_and_audits_one_search(alice, cast) -> None:
    from tests.conftest import make_patient

    for n in range(4):
        make_patient(cast.clinic_a, f"A-2{n}", family_name=f"Zed{n}")
    first = alice.get("/patients", limit=2).json()
    assert first["count"] == 5 and first["limit"] == 2 and first["offset"] == 0
    assert [p["record_number"] for p in first["items"]] == ["A-001", "A-20"]
    rest = alice.get("/patients", limit=2, offset=4).json()
    assert [p["record_number"] for p in rest["items"]] == ["A-23"]
    assert alice.get("/patients", q="zed2").json()["count"] == 1
    assert alice.get("/patients", q="Morton").json()["count"] == 1  # Pat's condition
    assert alice.get("/patients", record_number="a-21").json()["items"][0]["family_name"] == "Zed1"
    assert alice.get("/patients", clinic="harbour").json()["count"] == 0
    searches = _api_entries(action="search").order_by("pk")
    assert searches.count() == 6
    assert searches.first().detail == {"api": "patients", "results": 5}
    assert all("zed" not in json.dumps(e.detail).lower() for e in searches)


def test_no_clinician_sees_or_changes_another_clinics_patient(cast) -> None:
    olga = api_for(cast.olga)
    listed = olga.get("/patients").json()
    assert [p["record_number"] for p in listed["items"]] == ["B-001"]
    assert olga.get("/patients", q="Lee").json()["count"] == 0
    _error(olga.get(f"/patients/{cast.pat.pk}"), 404, None)
    _error(olga.patch(f"/patients/{cast.pat.pk}", {"given_name": "Hijacked"}), 404, None)
    for path in (
        "consents",
        "conditions",
        "history",
        "procedures",
        "plans",
        "follow-ups",
        "responses",
        "images",
    ):
        _error(olga.get(f"/patients/{cast.pat.pk}/{path}"), 404, None)
    _error(olga.get(f"/conditions/{cast.pat_condition.pk}"), 404, None)
    _error(olga.get(f"/procedures/{cast.pat_procedure.pk}"), 404, None)
    _error(
        olga.post(f"/patients/{cast.pat.pk}/consents", {"version": "2", "consented_on": "2025-02-01"}), 404
    )
    cast.pat.refresh_from_db()
    assert cast.pat.given_name == "Pat"
    assert not AuditEntry.objects.filter(patient_id=cast.pat.pk, username="olga").exists()


def test_a_researcher_gets_nothing_identifiable(cast) -> None:
    rita = api_for(cast.rita)
    body = _error(rita.get("/patients"), 403, None)
    assert "does not allow you to view patient records" in body["error"]
    _error(rita.get(f"/patients/{cast.pat.pk}"), 404, None)
    _error(rita.get(f"/patients/{cast.pat.pk}/conditions"), 404, None)
    _error(rita.post("/patients", _new_patient()), 403, None)
    assert rita.get("/catalog").status_code == 200
    assert rita.get("/me").json()["memberships"] == [
        {"clinic": "lakeside", "clinic_name": "Lakeside", "role": "researcher"}
    ]


def test_a_coordinator_registers_and_records_consent_but_not_clinical_records(cast) -> None:
    carol = api_for(cast.carol)
    assert carol.post("/patients", _new_patient()).status_code == 201
    pat = cast.pat.pk
    assert (
        carol.post(f"/patients/{pat}/consents", {"version": "2", "consented_on": "2025-03-01"}).status_code
        == 201
    )
    assert (
        carol.post(
            f"/patients/{pat}/history", {"treatment": "orthotics", "started_on": "2024-06-01"}
        ).status_code
        == 201
    )
    body = _error(
        carol.post(
            f"/patients/{pat}/conditions", {"condition_type": "morton-neuroma", "laterality": "right"}
        ),
        403,
        None,
    )
    assert "record conditions" in body["error"]
    _error(carol.patch(f"/conditions/{cast.pat_condition.pk}", {"status": "resolved"}), 403)
    _error(carol.post(f"/patients/{pat}/procedures", {}), 422)  # the schema is checked first
    _error(carol.post(f"/patients/{pat}/procedures", _procedure(cast)), 403)
    _error(carol.patch(f"/procedures/{cast.pat_procedure.pk}", {"notes": "x"}), 403)
    assert carol.get(f"/procedures/{cast.pat_procedure.pk}").status_code == 200


# --------------------------------------------------------------------------- consent


def test_consent_is_listed_recorded_and_withdrawn(alice, cast) -> None:
    pat = cast.pat.pk
    listed = alice.get(f"/patients/{pat}/consents").json()
    assert listed["count"] == 1 and listed["items"][0]["version"] == "1"
    created = alice.post(f"/patients/{pat}/consents", {"version": "2026-1", "consented_on": "2025-06-01"})
    assert created.status_code == 201 and created.json()["recorded_by"] == "alice"
    consent = created.json()["id"]
    body = _error(alice.patch(f"/consents/{consent}", {"withdrawn_on": "2025-05-01"}), 422, "withdrawn_on")
    assert body["error"] == "Consent cannot be withdrawn before it was given."
    withdrawn = alice.patch(f"/consents/{consent}", {"withdrawn_on": "2025-07-01"})
    assert withdrawn.status_code == 200 and withdrawn.json()["withdrawn_on"] == "2025-07-01"
    assert alice.get(f"/patients/{pat}").json()["consent_status"] == "withdrawn"
    assert alice.get(f"/consents/{consent}").json()["version"] == "2026-1"
    assert _api_entries(model="patients.Consent", action="update").get().detail == {
        "fields": ["withdrawn_on"]
    }


# --------------------------------------------------------------------------- conditions and history


def test_conditions_are_coded_from_the_catalog_and_checked_by_the_model(alice, cast) -> None:
    pat = cast.pat.pk
    created = alice.post(
        f"/patients/{pat}/conditions",
        {
            "condition_type": "morton-neuroma",
            "laterality": "right",
            "site": "im-space-2",
            "onset_date": "2024-10-01",
        },
    )
    assert created.status_code == 201, created.content
    condition = created.json()
    assert condition["icd10_code"].startswith("G57.6") and condition["site"] == "im-space-2"
    _error(
        alice.post(f"/patients/{pat}/conditions", {"condition_type": "gout", "laterality": "left"}),
        422,
        "condition_type",
    )
    body = _error(alice.patch(f"/conditions/{condition['id']}", {"resolved_on": "2025-01-01"}), 422, "status")
    assert "resolved" in body["error"]
    resolved = alice.patch(
        f"/conditions/{condition['id']}", {"resolved_on": "2025-01-01", "status": "resolved"}
    )
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    listed = alice.get(f"/patients/{pat}/conditions").json()
    assert listed["count"] == 2
    assert alice.get(f"/conditions/{condition['id']}").json()["condition_name"]
    view = _api_entries(action="view", detail__api="conditions").get()
    assert view.patient_id == pat and view.detail["results"] == 2


def test_history_links_only_the_patients_own_condition(alice, cast) -> None:
    pat = cast.pat.pk
    entry = {"treatment": "orthotics", "started_on": "2024-05-01", "condition": cast.pat_condition.pk}
    created = alice.post(f"/patients/{pat}/history", {**entry, "response": "partial", "relief_weeks": 6})
    assert created.status_code == 201, created.content
    assert created.json()["condition_id"] == cast.pat_condition.pk
    body = _error(
        alice.post(f"/patients/{pat}/history", {**entry, "condition": cast.quinn_condition.pk}),
        422,
        "condition",
    )
    assert "no condition" in body["error"]
    body = _error(alice.patch(f"/history/{created.json()['id']}", {"response": "none"}), 422, "relief_weeks")
    assert "no response" in body["error"]
    assert alice.get(f"/history/{created.json()['id']}").json()["relief_weeks"] == 6
    assert alice.get(f"/patients/{pat}/history").json()["count"] == 1


# --------------------------------------------------------------------------- procedures


def _procedure(cast: Any, **extra: Any) -> dict[str, Any]:
    return {
        "condition": cast.pat_condition.pk,
        "performed_on": "2025-03-01",
        "procedure_type": "perineural-platelet-lysate",
        "laterality": "left",
        "image_guidance": "ultrasound",
        "injectates": [{"kind": "platelet-lysate", "volume_ml": 2.5}],
        **extra,
    }


def test_a_procedure_is_recorded_with_its_injectates_and_starts_follow_up(alice, cast) -> None:
    from stride.outcomes.models import Episode

    response = alice.post(
        f"/patients/{cast.pat.pk}/procedures",
        _procedure(
            cast,
            is_index=True,
            adverse_events=[
                {
                    "kind": "injection-flare",
                    "onset_date": "2025-03-02",
                    "severity": "mild",
                    "relatedness": "related",
                }
            ],
        ),
    )
    assert response.status_code == 201, response.content
    procedure = response.json()
    assert procedure["clinician"] == "alice" and procedure["cpt"]
    assert procedure["injectates"][0]["volume_ml"] == 2.5 and procedure["injectates"][0]["summary"]
    assert procedure["adverse_events"][0]["adjudicated_by"] == "alice"
    assert Episode.objects.filter(index_procedure_id=procedure["id"]).exists()
    assert _api_entries(action="create", model="care.Injectate").count() == 1
    read = alice.get(f"/procedures/{procedure['id']}").json()
    assert read == {**procedure, "updated_at": read["updated_at"]}
    assert alice.get(f"/patients/{cast.pat.pk}/procedures").json()["count"] == 2


def test_a_procedure_with_one_bad_injectate_saves_nothing(alice, cast) -> None:
    from stride.care.models import Injectate, Procedure

    before = (Procedure.objects.count(), Injectate.objects.count(), AuditEntry.objects.count())
    body = _error(
        alice.post(
            f"/patients/{cast.pat.pk}/procedures",
            _procedure(cast, injectates=[{"kind": "platelet-lysate", "volume_ml": 2}, {"kind": "steroid"}]),
        ),
        422,
        "injectates[1].drug",
    )
    assert body["error"] == "A corticosteroid injectate needs its drug."
    assert "does not record" in {e["field"]: e["message"] for e in body["errors"]}["injectates[1].kind"]
    body = _error(
        alice.post(f"/patients/{cast.pat.pk}/procedures", _procedure(cast, performed_on="2024-01-01")),
        422,
        "performed_on",
    )
    assert "before the onset" in body["error"]
    _error(alice.post(f"/patients/{cast.pat.pk}/procedures", _procedure(cast, laterality="right")), 422)
    _error(
        alice.post(
            f"/patients/{cast.pat.pk}/procedures",
            _procedure(cast, injectates=[{"kind": "prp", "drug": "nope"}]),
        ),
        422,
        "injectates[0].drug",
    )
    _error(
        alice.post(f"/patients/{cast.pat.pk}/procedures", _procedure(cast, clinician="carol")),
        422,
        "clinician",
    )
    assert (Procedure.objects.count(), Injectate.objects.count(), AuditEntry.objects.count()) == before


def test_a_procedure_change_is_checked_against_its_injectates(alice, cast) -> None:
    pk = cast.pat_procedure.pk
    changed = alice.patch(f"/procedures/{pk}", {"notes": "Well tolerated.", "candidacy": "good"})
    assert changed.status_code == 200 and changed.json()["candidacy"] == "good"
    _error(
        alice.patch(f"/procedures/{pk}", {"procedure_type": "digital-nerve-steroid"}),
        422,
        "injectates[0].kind",
    )


# --------------------------------------------------------------------------- plans, follow-up, responses


def test_care_plans_are_read_with_their_steps(alice, cast) -> None:
    from tests.test_access import _plan

    plan = _plan(cast)
    listed = alice.get(f"/patients/{cast.pat.pk}/plans").json()
    assert listed["count"] == 1 and listed["items"][0]["protocol"] == plan.protocol.code
    read = alice.get(f"/plans/{plan.pk}").json()
    assert len(read["steps"]) == plan.steps.count() and read["steps"][0]["window_start"]
    assert _api_entries(action="view", model="care.CarePlan").get().patient_id == cast.pat.pk
    _error(api_for(cast.olga).get(f"/plans/{plan.pk}"), 404)


def test_answers_are_validated_scored_and_complete_their_follow_up(alice, cast) -> None:
    from stride.outcomes.services import start_episode

    episode = start_episode(cast.pat_condition, cast.clinic_a.today() - dt.timedelta(days=3))
    baseline = episode.follow_ups.get(timepoint="baseline")
    follow_ups = alice.get(f"/patients/{cast.pat.pk}/follow-ups").json()
    assert follow_ups["items"][0]["id"] == baseline.pk and "nprs" in follow_ups["items"][0]["instruments"]
    path = f"/patients/{cast.pat.pk}/responses"
    body = _error(alice.post(path, {"instrument": "nprs", "follow_up": baseline.pk, "answers": [11]}), 422)
    assert body["field"] and "11" in body["error"]
    _error(alice.post(path, {"instrument": "nprs", "answers": [True]}), 422, "answers[0]")
    _error(alice.post(path, {"instrument": "nprs", "version": "0", "answers": [3]}), 422, "version")
    _error(alice.post(path, {"instrument": "nprs", "follow_up": 10**9, "answers": [3]}), 422, "follow_up")
    _error(alice.post(path, {"instrument": "no-such", "answers": [3]}), 422, "instrument")
    created = alice.post(path, {"instrument": "nprs", "follow_up": baseline.pk, "answers": [6]})
    assert created.status_code == 201, created.content
    response = created.json()
    assert (
        response["status"] == "completed"
        and response["source"] == "paper"
        and response["entered_by"] == "alice"
    )
    assert response["scores"][0]["value"] == 6
    again = alice.post(path, {"instrument": "nprs", "follow_up": baseline.pk, "answers": [2]})
    assert again.status_code == 200 and again.json()["answers"] == [6]
    assert alice.get(path, instrument="nprs").json()["count"] == 1
    assert alice.get(path, instrument="faos").json()["count"] == 0
    assert alice.get(f"/responses/{response['id']}").json()["scores"] == response["scores"]
    assert _api_entries(action="create", model="outcomes.QuestionnaireResponse").get().username == "alice"


# --------------------------------------------------------------------------- images and measurements


def test_images_metadata_and_measurements(alice, cast) -> None:
    from tests.test_access import _image

    image = _image(cast)
    listed = alice.get(f"/patients/{cast.pat.pk}/images").json()
    assert listed["count"] == 1 and listed["items"][0]["modality"] == "US"
    read = alice.get(f"/images/{image.pk}").json()
    assert read["calibrated"] and read["measurement_count"] == 1 and "original" not in read
    path = f"/images/{image.pk}/measurements"
    created = alice.post(path, {"type": "length", "tool": "line", "points": [[10, 5], [40, 5]]})
    assert created.status_code == 201, created.content
    assert created.json()["unit"] == "mm" and created.json()["measured_by"] == "alice"
    body = _error(
        alice.post(path, {"type": "length", "tool": "line", "points": [[0, 0], [5000, 5]]}), 422, "points"
    )
    assert "outside the image" in body["error"]
    _error(alice.post(path, {"type": "nonsense", "tool": "line", "points": [[0, 0], [1, 1]]}), 422, "type")
    _error(
        alice.post(path, {"type": "length", "tool": "line", "points": [[0, 0, 0], [1, 1]]}), 422, "points[0]"
    )
    assert alice.get(path).json()["count"] == 2
    _error(
        api_for(cast.carol).post(path, {"type": "length", "tool": "line", "points": [[1, 1], [9, 9]]}), 403
    )
    assert _api_entries(action="create", model="imaging.Measurement").count() == 1
    assert (
        _api_entries(action="view", model="imaging.Image").count() == 2
    )  # the read and the list of measurements


def test_the_catalog_lists_the_codes_the_api_takes(alice) -> None:
    catalog = alice.get("/catalog").json()
    assert "morton-neuroma" in {c["code"] for c in catalog["condition_types"]}
    assert "nprs" in {i["code"] for i in catalog["instruments"]}
    assert "length" in {t["code"] for t in catalog["measurement_types"]}


def test_a_patient_is_read_as_a_fhir_bundle_and_audited_as_an_export(alice, cast) -> None:
    bundle = alice.get(f"/patients/{cast.pat.pk}/fhir").json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    types = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
    assert {"Patient", "Condition", "Procedure"} <= types
    assert _api_entries(action="export", patient_id=cast.pat.pk, username="alice").count() == 1
    _error(api_for(cast.olga).get(f"/patients/{cast.pat.pk}/fhir"), 404)


@pytest.mark.browser
def test_the_interactive_docs_render_in_a_browser_from_this_server_alone(live_server, page) -> None:
    asked: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/api/docs")
    page.get_by_text("/api/patients/{patient_id}/procedures").first.wait_for()
    assert page.title() == "Stride API · Stride"
    assert asked and all(url.startswith(live_server.url) for url in asked), asked
    assert not problems, problems
