"""The API fuzzed from its own OpenAPI document (schemathesis), in process, with a real token.

Every operation gets generated requests, valid and invalid: no answer may be a
server error, and every answer must be one the document declares (status code,
content type, body schema). Path and body ids point at real records of the
cast most of the time, so the writes get past "not found" and reach the model
rules. Bounded and derandomised: a handful of examples per operation, the same
ones on every run.
"""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from stride.api.models import ApiToken
from stride.api.schemas import MAX_ID

EXAMPLES_PER_OPERATION = 6


class Records:
    """Real records of Alice's clinic, each made the first time an operation asks for its id."""

    def __init__(self, cast: object) -> None:
        self.cast = cast
        self.made: dict[str, int] = {}
        _token, secret = ApiToken.issue(cast.alice, "fuzzing")  # type: ignore[attr-defined]
        self.headers = {"Authorization": f"Bearer {secret}"}

    def id(self, name: str) -> int | None:
        if name not in self.made:
            maker = getattr(self, f"_{name}", None)
            if maker is None:
                return None
            self.made[name] = maker().pk
        return self.made[name]

    def _patient_id(self):
        return self.cast.pat

    def _consent_id(self):
        return self.cast.pat.consents.get()

    def _condition_id(self):
        return self.cast.pat_condition

    _condition = _condition_id

    def _procedure_id(self):
        return self.cast.pat_procedure

    def _history_id(self):
        from stride.care.models import TreatmentHistory, TreatmentKind

        return TreatmentHistory.objects.create(
            patient=self.cast.pat,
            treatment=TreatmentKind.objects.get(code="orthotics"),
            started_on=dt.date(2023, 1, 1),
        )

    def _plan_id(self):
        from tests.test_access import _plan

        return _plan(self.cast)

    def _image_id(self):
        from tests.test_access import _image

        return _image(self.cast)

    def _follow_up(self):
        from stride.outcomes.services import start_episode

        episode = start_episode(self.cast.pat_condition, self.cast.clinic_a.today() - dt.timedelta(days=3))
        return episode.follow_ups.get(timepoint="baseline")

    def _response_id(self):
        from stride.outcomes.models import FollowUp, QuestionnaireResponse
        from stride.outcomes.services import save_answers

        follow_up = FollowUp.objects.get(pk=self.id("follow_up"))
        return save_answers(
            patient=self.cast.pat,
            follow_up=follow_up,
            instrument="nprs",
            version="1",
            answers=[5],
            source=QuestionnaireResponse.Source.PAPER,
            submit=True,
        ).response


@pytest.fixture(autouse=True)
def _connection_stays_open() -> object:
    """The requests reach Django's WSGI handler directly. Like Django's own test client, keep the test's
    database connection open across them: closing it at the end of a request ends the test's
    transaction on PostgreSQL (SQLite's in-memory database ignores the close)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def records(cast) -> Records:
    return Records(cast)


CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            # The token is sent by the test itself; the ignored_auth check still tries requests without it.
            "with-security-parameters": False,
        },
        # Boundary values are tried on the invalid side only (the valid side is left to the fuzzing
        # phase): every operation then stays under a second.
        "phases": {"coverage": {"generation": {"mode": "negative"}}},
        # A request the document allows may still break a clinical rule (a date in the future, a
        # procedure on the other side): a 422 naming the rule is the right answer, not a failure.
        "checks": {"positive_data_acceptance": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", WSGIHandler(), config=CONFIG)


def _real(value: object, records: Records, name: str) -> object:
    """Most generated ids (four in five) become the id of a real record; the rest stay as generated."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID and value % 5:
        real = records.id(name)
        return value if real is None else real
    return value


@schema.parametrize()
# One cast per operation, shared by its examples on purpose: what one request writes, the next may read.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
def test_the_api_keeps_to_its_own_openapi_document(case, records) -> None:
    for name, value in (case.path_parameters or {}).items():
        case.path_parameters[name] = _real(value, records, name)
    if isinstance(case.body, dict):
        for name in ("condition", "follow_up"):
            if name in case.body:
                case.body[name] = _real(case.body[name], records, name)
    case.call_and_validate(headers=records.headers)
