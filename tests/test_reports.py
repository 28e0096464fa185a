"""Cohort and case reports: numbers checked independently, PDFs read back, pages and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from stride.analytics import reports
from stride.analytics.case_report import build_case_report, render_case_html, render_case_pdf
from stride.analytics.models import CaseNarrative, SavedCohort
from stride.audit.models import AuditEntry
from stride.clinics.models import User
from stride.core import cohorts, instruments, scoring
from stride.demo.loader import load_demo
from stride.demo.stories import DEMO_PASSWORD_DEFAULT
from stride.outcomes.models import Score
from stride.patients.models import Patient
from tests.libraries import require


@pytest.fixture
def registry(db: None) -> None:
    """The demo: three story patients and 300 synthetic ones, with follow-up and scores."""
    load_demo(DEMO_PASSWORD_DEFAULT, synth_patients=300, synth_seed=11)


def _login(client, username: str) -> None:
    client.force_login(User.objects.get(username=username))


PRP = ("PRP", cohorts.parse_spec({"injectate_kinds": ["prp"]}))
STEROID = ("Steroid", cohorts.parse_spec({"injectate_kinds": ["steroid"]}))


def _report(**extra) -> reports.CohortReport:
    options = {"clinic_ids": None, "instrument": "nprs", "scale": "total"} | extra
    return reports.cohort_report([PRP, STEROID], **options)


# --------------------------------------------------------------------------- the numbers


def _independent_6m_responders(kind: str) -> tuple[int, int]:
    """NPRS 'substantial' (≥ 50 % less pain) responders at 6 months among the answered, straight from
    the stored scores: a second computation that shares nothing with the analysis dataset."""
    nprs = instruments.instrument("nprs")
    values: dict[int, dict[str, float]] = defaultdict(dict)
    for episode, point, value, flags in (
        Score.objects.filter(
            instrument="nprs",
            scale="total",
            valid=True,
            response__status="completed",
            response__follow_up__timepoint__in=["baseline", "6m"],
            response__follow_up__episode__index_procedure__injectates__kind=kind,
            response__patient__in=Patient.objects.analysable(),
        )
        .values_list(
            "response__follow_up__episode_id", "response__follow_up__timepoint", "value", "response__flags"
        )
        .distinct()
    ):
        if "late" not in (flags or []):
            values[episode][point] = value
    answered = [v for v in values.values() if "6m" in v]
    outcomes = [
        scoring.responder(nprs, "total", v.get("baseline"), v["6m"], definition="substantial")
        for v in answered
    ]
    known = [o for o in outcomes if o is not None]
    return sum(known), len(known)


def test_the_reported_responder_rate_equals_an_independent_count(registry: None) -> None:
    report = _report()
    for (label, _), kind in ((PRP, "prp"), (STEROID, "steroid")):
        result = next(r for r in report.results if r.label == label)
        line = next(x for x in result.point("6m").responders if x.definition == "substantial")
        assert (line.rate.answered.k, line.rate.answered.n) == _independent_6m_responders(kind)
        assert line.version == "nprs v1"
        assert line.rate.answered.n > 10  # the demo gives a real denominator


def test_the_csv_carries_every_number_of_the_report(registry: None) -> None:
    report = _report()
    rows = list(csv.DictReader(io.StringIO(reports.render_csv(report))))
    assert set(rows[0]) == set(reports.CSV_COLUMNS)
    index = {
        (r["section"], r["cohort"], r["timepoint"], r["item"], r["level"], r["statistic"]): r["value"]
        for r in rows
    }
    prp = report.results[0]
    six = prp.point("6m")
    assert float(index[("outcome", "PRP", "6m", "score", "", "mean")]) == pytest.approx(
        six.score.mean, abs=1e-6
    )
    line = six.responders[0]
    key = ("responders", "PRP", "6m", "answered", f"{line.definition} ({line.version})", "k")
    assert int(index[key]) == line.rate.answered.k
    assert int(index[("flow", "PRP", "6m", "missed", "", "count")]) == six.flow.missed
    assert int(index[("table1", "Steroid", "", "Index treatments", "", "count")]) == report.results[1].n
    assert any(r["section"] == "km" for r in rows) and any(r["section"] == "comparison" for r in rows)
    # JSON carries the same figures
    data = json.loads(json.dumps(reports.report_json(report)))
    assert data["results"][0]["points"][3]["score"]["mean"] == pytest.approx(six.score.mean)
    assert data["specs"][0] == {"injectate_kinds": ["prp"]}


def test_small_groups_are_withheld_in_every_format(registry: None) -> None:
    tiny = ("Tiny", cohorts.parse_spec({"age": {"min": 18, "max": 18}, "injectate_kinds": ["prp"]}))
    report = reports.cohort_report([PRP, tiny], clinic_ids=None, instrument="nprs", scale="total", minimum=5)
    small = report.results[1]
    assert 0 <= small.n < 5 or small.withheld
    if small.withheld:
        assert small.points == () and "No comparison" in report.notes[0]
    rows = list(csv.DictReader(io.StringIO(reports.render_csv(report))))
    for r in rows:
        if (
            r["section"] in ("flow", "at-risk", "table1")
            and r["statistic"] == "count"
            and r["value"].isdigit()
        ):
            assert not 0 < int(r["value"]) < 5, r
        if r["section"] == "outcome" and r["statistic"] == "n" and r["value"].isdigit():
            assert not 0 < int(r["value"]) < 5, r
    assert any(r["value"] == "withheld" for r in rows)


def test_a_report_refuses_bad_requests_clearly(registry: None) -> None:
    with pytest.raises(cohorts.Invalid, match="same name"):
        reports.cohort_report([PRP, PRP], clinic_ids=None, instrument="nprs", scale="total")
    with pytest.raises(cohorts.Invalid, match="Unknown instrument"):
        reports.cohort_report([PRP], clinic_ids=None, instrument="vas", scale="total")
    with pytest.raises(cohorts.Invalid, match="no scale"):
        reports.cohort_report([PRP], clinic_ids=None, instrument="nprs", scale="pain")
    with pytest.raises(cohorts.Invalid, match="not a follow-up time point"):
        reports.cohort_report([PRP], clinic_ids=None, instrument="nprs", scale="total", timepoint="baseline")


# --------------------------------------------------------------------------- PDF


def test_the_cohort_report_pdf_has_its_pages_tables_and_figures(registry: None) -> None:
    require("weasyprint")
    from pypdf import PdfReader

    report = _report(minimum=5)
    pdf = reports.render_pdf(report)
    reader = PdfReader(io.BytesIO(pdf))
    assert 4 <= len(reader.pages) <= 20
    text = "\n".join(page.extract_text() for page in reader.pages)
    for needle in (
        "Baseline characteristics",
        "Outcome by time point",
        "Responder rates",
        "Number at risk",  # the Kaplan–Meier chart's at-risk table, drawn in the figure
        "Follow-up completeness",
        "Methods",
        "nprs v1",
        "page 1 of",
    ):
        assert needle in text, needle
    # every chart of the report is drawn into the PDF: its title text is there
    for figure in reports.report_charts(report):
        assert figure["svg"].startswith("<svg")
    assert text.count("Months after the index treatment") >= 2


def test_the_case_report_is_de_identified_unless_asked(registry: None) -> None:
    patient = Patient.objects.get(record_number="LFA-1001")
    CaseNarrative.objects.create(patient=patient, text="Pain settled after the second injection.")
    plain = render_case_html(build_case_report(patient))
    for secret in (
        patient.given_name,
        patient.family_name,
        patient.record_number,
        patient.date_of_birth.isoformat(),
    ):
        assert secret not in plain
    assert f"{patient.date_of_birth:%-d %b %Y}" not in plain
    assert "day 0" in plain and "Pain settled" in plain and "de-identified" in plain
    named = render_case_html(build_case_report(patient, identified=True))
    assert patient.record_number in named and patient.family_name in named
    require("weasyprint")
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(render_case_pdf(build_case_report(patient))))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Case report" in text and "Treatments" in text and patient.family_name not in text


# --------------------------------------------------------------------------- pages


def test_researchers_see_withheld_reports_whatever_they_ask(client, registry: None) -> None:
    _login(client, "researcher")
    assert client.get(reverse("analytics")).status_code == 200
    url = (
        reverse("analytics-report")
        + "?everyone=on&measure=nprs:total&event=retreatment&timepoint=6m&show_small=on"
    )
    response = client.get(url)
    assert response.status_code == 200
    assert b"Figures resting on fewer than 5 patients are withheld" in response.content
    assert b"<svg" in response.content
    patient = Patient.objects.get(record_number="LFA-1001")
    assert client.get(reverse("case-report", args=[patient.pk])).status_code == 404
    download = client.get(url + "&format=csv")
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert AuditEntry.objects.filter(action="export", user__username="researcher").exists()


def test_clinicians_may_show_small_groups_of_their_own_clinics(client, registry: None) -> None:
    _login(client, "clinician2")  # clinician at one clinic only
    url = reverse("analytics-report") + "?everyone=on&measure=nprs:total&event=retreatment&timepoint=6m"
    assert b"are withheld" in client.get(url).content
    assert b"are withheld" not in client.get(url + "&show_small=on").content


def test_a_chart_downloads_as_svg_and_png(client, registry: None) -> None:
    _login(client, "clinician")
    url = reverse("analytics-report") + "?everyone=on&measure=nprs:total&event=retreatment&timepoint=6m"
    svg = client.get(url + "&figure=durability")
    assert (
        svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and svg.content.startswith(b"<svg")
    )
    require("cairosvg")
    png = client.get(url + "&figure=outcome-score&format=png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get(url + "&figure=nonsense").status_code == 404


def test_the_report_form_refuses_an_empty_choice(client, registry: None) -> None:
    _login(client, "clinician")
    response = client.get(reverse("analytics-report") + "?measure=nprs:total&event=retreatment&timepoint=6m")
    assert response.status_code == 400 and b"Choose at least one cohort" in response.content


def test_a_cohort_is_built_saved_and_reported(client, registry: None) -> None:
    _login(client, "clinician")
    response = client.post(
        reverse("cohort-create"),
        {"name": "Leukocyte-poor PRP", "injectate_kinds": ["prp"], "leukocytes": ["poor"], "age_min": "18"},
    )
    assert response.status_code == 302
    saved = SavedCohort.objects.get(name="Leukocyte-poor PRP")
    assert saved.cohort.leukocytes == ("poor",) and saved.cohort.age.low == 18
    bad = client.post(reverse("cohort-create"), {"name": "X", "age_min": "60", "age_max": "40"})
    assert bad.status_code == 200 and b"inverted" in bad.content
    assert SavedCohort.objects.count() == 1
    report = client.get(
        reverse("analytics-report") + f"?cohort={saved.pk}&measure=nprs:total&event=surgery&timepoint=3m"
    )
    assert report.status_code == 200 and b"Leukocyte-poor PRP" in report.content


def test_only_clinicians_write_the_narrative(client, registry: None) -> None:
    patient = Patient.objects.get(record_number="LFA-1001")
    url = reverse("case-report", args=[patient.pk])
    _login(client, "coordinator")
    assert client.get(url).status_code == 200
    assert client.post(url, {"text": "x"}).status_code == 403
    _login(client, "clinician")
    assert client.post(url, {"text": "Settled by six months."}).status_code == 302
    assert CaseNarrative.objects.get(patient=patient).text == "Settled by six months."
    page = client.get(url + "?identified=1")
    assert patient.record_number.encode() in page.content
    assert AuditEntry.objects.filter(
        action="view", patient_id=patient.pk, user__username="clinician"
    ).exists()


# --------------------------------------------------------------------------- CLI


def test_the_cli_writes_cohort_and_case_reports(registry: None, tmp_path) -> None:
    out = tmp_path / "r.json"
    call_command("report", "cohort", "--all", "--format", "json", "--out", str(out), "--no-progress")
    data = json.loads(out.read_text())
    assert data["labels"] == ["All treated patients"] and data["minimum"] == 5
    csv_out = tmp_path / "r.csv"
    call_command(
        "report",
        "cohort",
        "--spec",
        'PRP={"injectate_kinds": ["prp"]}',
        "--spec",
        'S={"injectate_kinds": ["steroid"]}',
        "--format",
        "csv",
        "--out",
        str(csv_out),
        "--no-progress",
        "--show-small",
    )
    assert csv_out.read_text().startswith("section,cohort")
    case = tmp_path / "case.html"
    call_command("report", "case", "lfa-1001", "--format", "html", "--out", str(case), "--no-progress")
    assert "Case report" in case.read_text()
    for argv, message in (
        (["cohort", "--format", "csv"], "Name at least one cohort"),
        (["cohort", "--cohort", "nope"], "No saved cohort 'nope'"),
        (["cohort", "--spec", "X={bad"], "not JSON"),
        (["cohort", "--all", "--measure", "nprs"], "instrument:scale"),
        (["cohort", "--all", "--measure", "vas:total"], "Unknown instrument"),
        (["case", "NOPE-1"], "No patient"),
    ):
        with pytest.raises(CommandError, match=message):
            call_command("report", *argv, "--no-progress")
