"""Checking incoming resources against the FHIR models, here or in a worker process."""

from __future__ import annotations

from typing import Any

from stride.interop import fhir_checks

GOOD: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-02-02"}
BAD_DATE = {**GOOD, "birthDate": "02/02/1980"}
BAD_ELEMENT = {**GOOD, "gender": {"code": "female"}}
UNKNOWN_TYPE = {"resourceType": "Spaceship", "id": "x"}


def test_a_valid_resource_has_no_problem_and_an_invalid_one_names_the_element() -> None:
    assert fhir_checks.problem(GOOD) is None
    date = fhir_checks.problem(BAD_DATE)
    assert date is not None and date.startswith("not a valid FHIR resource: birthDate")
    element = fhir_checks.problem(BAD_ELEMENT)
    assert element is not None and "gender" in element
    assert fhir_checks.problem(UNKNOWN_TYPE) is not None
    assert fhir_checks.problems([GOOD, None, BAD_DATE]) == [None, None, date]


def test_the_worker_finds_what_the_caller_finds_and_a_small_import_starts_no_process() -> None:
    resources = [GOOD, BAD_DATE, None, BAD_ELEMENT, UNKNOWN_TYPE] * 20
    expected = fhir_checks.problems(resources)
    with fhir_checks.Checker(workers=1) as checker:
        first = checker.submit(resources)
        assert checker._pool is None  # the first run is checked here
        later = [checker.submit(resources) for _ in range(3)]
        assert checker._pool is not None
        assert first.result() == expected
        assert all(f.result() == expected for f in later)
    assert checker._pool is None
    with fhir_checks.Checker(workers=0) as inline:
        assert [inline.submit(resources).result() for _ in range(2)] == [expected, expected]
        assert inline._pool is None


def test_lines_are_checked_as_they_will_be_read_back_here_or_in_the_worker() -> None:
    import json

    lines = [json.dumps(r) for r in (GOOD, BAD_DATE, BAD_ELEMENT, UNKNOWN_TYPE)] * 5
    expected = fhir_checks.problems([json.loads(line) for line in lines])
    assert fhir_checks.line_problems(lines) == expected and expected[0] is None and all(expected[1:4])
    assert fhir_checks.checked_here(lines, fhir_checks.line_problems).result() == expected
    with fhir_checks.Checker(workers=1) as checker:
        futures = [checker.submit(lines, fhir_checks.line_problems) for _ in range(3)]
        assert checker._pool is not None
        assert [f.result() for f in futures] == [expected] * 3
