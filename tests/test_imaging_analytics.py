"""Image measurements analysed like scores: time points, what counts, the report, the form and the CLI.

A small registry of intrinsic foot-muscle wasting treated on 15 Jan 2025, followed with ultrasound
measurements of the interosseous muscle thickness. Every figure is worked out by hand here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from stride.analytics import reports
from stride.analytics.dataset import analysis_rows
from stride.analytics.forms import ReportForm, measures
from stride.core import cohorts
from stride.core.errors import Invalid
from stride.outcomes.models import Episode
from tests.conftest import make_condition, make_patient

INDEX = dt.date(2025, 1, 15)  # 6 months: 15 Jul 2025 (day 181), window 15 Jun – 14 Aug
TODAY = dt.date(2025, 12, 1)  # the 12-month window opened today; 1, 3 and 6 months have closed
THICKNESS = "img-interosseous-thickness"
WASTING = ("Wasting", cohorts.parse_spec({"conditions": ["foot-muscle-wasting"]}))
_files = itertools.count(1)


def _day(days: int) -> dt.date:
    return INDEX + dt.timedelta(days=days)


def _treat(condition, on: dt.date = INDEX) -> Episode:
    from stride.care.models import Injectate, Procedure, ProcedureType

    procedure = Procedure.objects.create(
        patient=condition.patient,
        condition=condition,
        performed_on=on,
        procedure_type=ProcedureType.objects.get(code="prp-injection"),
        laterality=condition.laterality,
        image_guidance="ultrasound",
        is_index=True,
    )
    Injectate.objects.create(procedure=procedure, kind="prp", volume_ml=Decimal("3"), leukocytes="poor")
    return Episode.objects.get(index_procedure=procedure)


def _image(condition, on: dt.date, *, side: str = "", calibrated: bool = True, site: str = "interossei-2"):
    """An ultrasound image row (the analysis never opens the file, so none is written)."""
    from stride.care.models import Site
    from stride.imaging.models import Image

    n = next(_files)
    spacing = 0.08 if calibrated else None
    return Image.objects.create(
        patient=condition.patient,
        condition=condition,
        original=f"originals/test/{n}.png",
        sha256=f"{n:064x}",
        size_bytes=1,
        format="png",
        modality="US",
        acquired_on=on,
        laterality=side or condition.laterality,
        site=Site.objects.get(code=site) if site else None,
        width=100,
        height=100,
        spacing_row_mm=spacing,
        spacing_col_mm=spacing,
        spacing_source="user" if calibrated else "",
    )


def _measure(image, *values: float, code: str = "interosseous-thickness", site: str = "") -> None:
    from stride.care.models import Site
    from stride.imaging.models import Measurement

    for value in values:
        Measurement.objects.create(
            image=image,
            type_code=code,
            tool="grade" if code == "coughlin-shurnas" else "line",
            points=[] if code == "coughlin-shurnas" else [[10, 10], [10, 60]],
            value=value,
            unit={"coughlin-shurnas": "grade"}.get(code, "mm" if image.calibrated else "px"),
            calibrated=image.calibrated or code == "coughlin-shurnas",
            site=Site.objects.get(code=site) if site else image.site,
        )


@pytest.fixture
def wasting(cast) -> dict[str, Episode]:
    """Three patients with intrinsic foot-muscle wasting at the 2nd interosseous space, treated on INDEX;
    one re-treated (four episodes)."""
    episodes = {}
    # W-1, left foot: baseline 4.2 mm (day −5, the mean of two lines), 6 months 5.0 mm (day 186).
    c1 = make_condition(make_patient(cast.clinic_a, "W-1"), "foot-muscle-wasting", "left", "interossei-2")
    episodes["left"] = _treat(c1)
    _measure(_image(c1, _day(-45)), 9.0)  # before the baseline window opens
    _measure(_image(c1, _day(-10)), 3.0)  # in the window, but farther from the index than day −5
    _measure(_image(c1, _day(-5)), 4.0, 4.4)
    _measure(_image(c1, _day(-4), side="right"), 9.9)  # the other foot, for comparison
    _measure(_image(c1, _day(-3)), 8.8, site="interossei-4")  # another interosseous space
    _measure(_image(c1, _day(-1), calibrated=False), 120.0)  # in pixels
    _measure(_image(c1, _day(3)), 7.7)  # after the index: not a baseline
    _measure(_image(c1, _day(156)), 6.6)  # 6-month window, 25 days from its target
    six = _image(c1, _day(186))
    _measure(six, 5.0)  # 5 days from the target: this one
    _measure(six, 2.2, code="neuroma-diameter")  # another type
    _measure(_image(c1, _day(258)), 8.0)  # between the 6- and 12-month windows
    # W-2, right foot: 3.0 → 3.9 mm.
    c2 = make_condition(make_patient(cast.clinic_a, "W-2"), "foot-muscle-wasting", "right", "interossei-2")
    episodes["right"] = _treat(c2)
    _measure(_image(c2, _day(-1)), 3.0)
    _measure(_image(c2, _day(181)), 3.9)
    # W-4, left: re-treated on day 106, which ends the first episode; no site recorded on the condition.
    c4 = make_condition(make_patient(cast.clinic_a, "W-4"), "foot-muscle-wasting", "left", "")
    episodes["retreated"] = _treat(c4)
    _measure(_image(c4, INDEX), 3.5)  # on the index day: still the baseline
    _measure(_image(c4, _day(33)), 3.6)  # 1 month
    episodes["second"] = _treat(c4, _day(106))
    _measure(_image(c4, _day(106)), 3.2)  # the second episode's baseline
    _measure(_image(c4, _day(181)), 4.4)  # after the first episode ended; in no window of the second
    return episodes


def _rows(**extra) -> dict[str, object]:
    from stride.analytics.dataset import _pseudonymiser

    key = _pseudonymiser()
    rows = analysis_rows(WASTING[1], None, THICKNESS, "value", today=TODAY, **extra)
    return {row.key: row for row in rows}, key


def _report(**extra) -> reports.CohortReport:
    options = {"clinic_ids": None, "instrument": THICKNESS, "scale": "value", "today": TODAY} | extra
    return reports.cohort_report([WASTING], **options)


# --------------------------------------------------------------------------- the rows


def test_measurements_fall_into_the_time_point_whose_window_holds_the_image(wasting) -> None:
    rows, key = _rows()
    left = rows[key(wasting["left"].pk)]
    assert left.scores["baseline"] == pytest.approx(4.2) and left.baseline == pytest.approx(4.2)
    assert left.answer_days["baseline"] == -5  # the nearest calibrated image of the left foot
    assert left.scores["6m"] == 5.0 and left.answer_days["6m"] == 186
    assert {point for point, value in left.scores.items() if value is not None} == {"baseline", "6m"}
    assert left.last_answer_days == 186 and left.censor_days == 186
    right = rows[key(wasting["right"].pk)]
    assert (right.scores["baseline"], right.scores["6m"]) == (3.0, 3.9)


def test_a_bilateral_condition_takes_either_side(cast) -> None:
    """Morton's neuroma in both 3rd interspaces: the two images of one day are averaged, each first
    the mean of its own measurements: (4.0 + (4.8 + 5.2) / 2) / 2."""
    condition = make_condition(
        make_patient(cast.clinic_a, "N-1"), "morton-neuroma", "bilateral", "im-space-3"
    )
    episode = _treat(condition)
    _measure(_image(condition, _day(-5), side="left", site="im-space-3"), 4.0, code="neuroma-diameter")
    _measure(_image(condition, _day(-5), side="right", site="im-space-3"), 4.8, 5.2, code="neuroma-diameter")
    _measure(_image(condition, _day(176), side="right", site="im-space-3"), 5.5, code="neuroma-diameter")
    [row] = [
        row
        for row in analysis_rows(cohorts.CohortSpec(), None, "img-neuroma-diameter", "value", today=TODAY)
        if row.laterality == "bilateral"
    ]
    assert row.scores["baseline"] == pytest.approx(4.5) and row.scores["6m"] == 5.5
    assert Episode.objects.filter(condition=condition).get() == episode


def test_imaging_states_read_measured_or_window_closed(wasting) -> None:
    rows, key = _rows()
    left = rows[key(wasting["left"].pk)]
    assert left.status == {
        "baseline": "completed",
        "1m": "missed",
        "3m": "missed",
        "6m": "completed",
        "12m": "pending",  # its window is open but nothing is measured yet: not yet due
        "24m": "pending",
        "36m": "pending",
    }
    first = rows[key(wasting["retreated"].pk)]
    assert first.ended_days == 106 and first.end_reason == "new-index" and first.retreated_days == 106
    assert (first.scores["baseline"], first.scores["1m"], first.scores["6m"]) == (3.5, 3.6, None)
    assert first.answer_days["baseline"] == 0
    assert [first.status[p] for p in ("baseline", "1m", "3m", "6m", "12m")] == [
        "completed",
        "completed",
        "missed",  # closed on day 104, before the episode ended
        "cancelled",  # the episode ended before its window
        "cancelled",
    ]
    second = rows[key(wasting["second"].pk)]
    assert second.scores["baseline"] == 3.2 and second.answer_days["baseline"] == 0
    assert all(value is None for point, value in second.scores.items() if point != "baseline")


def test_rows_read_as_of_another_day(wasting) -> None:
    later = dt.date(2026, 3, 2)  # the 12-month window closed yesterday
    rows, key = _rows()
    assert rows[key(wasting["left"].pk)].status["12m"] == "pending"
    rows = {r.key: r for r in analysis_rows(WASTING[1], None, THICKNESS, "value", today=later)}
    assert rows[key(wasting["left"].pk)].status["12m"] == "missed"


def test_the_flow_counts_measured_over_reached(wasting) -> None:
    result = _report().results[0]
    assert result.n == 4
    six = result.point("6m").flow
    # measured: left and right; the first W-4 episode ended before it; the second's window is open
    assert (six.due, six.answered, six.missed, six.open) == (2, 2, 0, 0)
    assert (six.retreated, six.not_yet_due) == (1, 1)
    three = result.point("3m").flow
    assert (three.due, three.answered, three.missed, three.not_yet_due) == (4, 0, 4, 0)
    baseline = result.point("baseline").flow
    assert (baseline.due, baseline.answered) == (4, 4)


def test_the_mean_change_equals_a_hand_computation(wasting) -> None:
    result = _report().results[0]
    six = result.point("6m")
    # ((5.0 − 4.2) + (3.9 − 3.0)) / 2 = (0.8 + 0.9) / 2
    assert six.change.n == 2 and six.change.mean == pytest.approx(0.85)
    assert six.score.n == 2 and six.score.mean == pytest.approx((5.0 + 3.9) / 2)
    assert result.point("baseline").score.mean == pytest.approx((4.2 + 3.0 + 3.5 + 3.2) / 4)
    assert result.point("1m").change.mean == pytest.approx(0.1)
    assert all(point.responders == () for point in result.points)
    assert result.instrument == THICKNESS and result.instrument_name == "Interosseous muscle thickness (mm)"


def test_durability_by_retreatment_but_not_loss_of_response(wasting) -> None:
    retreatment = _report().results[0].durability
    assert retreatment.km is not None and retreatment.km.events == 1 and retreatment.km.n == 4
    surgery = _report(event="surgery").results[0].durability
    assert surgery.km is not None and surgery.km.events == 0
    loss = _report(event="loss-of-response")
    assert loss.results[0].durability.km is None
    assert "no responder definition" in loss.results[0].durability.note
    assert not any(figure["name"] == "durability" for figure in reports.report_charts(loss))


def test_questionnaire_rows_of_the_same_cohort_are_untouched_by_images(wasting) -> None:
    rows = analysis_rows(WASTING[1], None, "nprs", "total", today=TODAY)
    assert len(rows) == 4 and all(value is None for row in rows for value in row.scores.values())


def test_imaging_rows_use_a_constant_number_of_queries(wasting, django_assert_max_num_queries) -> None:
    with django_assert_max_num_queries(7):
        rows = analysis_rows(WASTING[1], None, THICKNESS, "value", today=TODAY)
    assert sum(row.baseline is not None for row in rows) == 4


def test_free_and_unknown_measurement_types_are_refused(wasting) -> None:
    with pytest.raises(Invalid, match="free measurement"):
        analysis_rows(WASTING[1], None, "img-length", "value")
    with pytest.raises(Invalid, match="Unknown instrument 'img-nothing'"):
        reports.cohort_report([WASTING], clinic_ids=None, instrument="img-nothing", scale="value")
    with pytest.raises(Invalid, match="no scale"):
        reports.cohort_report([WASTING], clinic_ids=None, instrument=THICKNESS, scale="total")


# --------------------------------------------------------------------------- the report


def test_the_report_renders_in_mm_without_responder_rates(wasting) -> None:
    report = _report()
    assert report.measure == "Interosseous muscle thickness (mm)" and report.unit == "mm"
    assert report.title == "Interosseous muscle thickness (mm): Wasting"
    assert report.definitions == [] and "No responder rates" in report.notes[0]
    html = reports.render_html(report)
    assert "Interosseous muscle thickness (mm)" in html
    assert "no responder definition exists for image measurements" in html
    assert "Interosseous muscle thickness at baseline (mm)" in html
    assert "Responder rates" not in html
    figures = {figure["name"]: figure["svg"] for figure in reports.report_charts(report)}
    assert set(figures) == {"outcome-score", "outcome-change", "durability"}
    assert "thickness (mm)" in figures["outcome-score"] and "thickness (mm)" in figures["outcome-change"]
    methods = dict(reports.method_notes(report))
    assert "measured / reached the time point" in methods["Completeness"]
    assert "other foot" in methods["Measurements counted"] and "calibrated" in methods["Measurements counted"]
    assert "last counted measurement" in methods["Durability"]
    assert "10–18 %" in methods["Outcome"]  # the catalog's note on the measurement error


def test_the_csv_and_json_carry_the_unit(wasting) -> None:
    report = _report()
    rows = list(csv.DictReader(io.StringIO(reports.render_csv(report))))
    index = {
        (r["section"], r["cohort"], r["timepoint"], r["item"], r["level"], r["statistic"]): r["value"]
        for r in rows
    }
    assert float(index[("outcome", "Wasting", "6m", "change", "mm", "mean")]) == pytest.approx(0.85)
    assert not any(r["section"] == "responders" for r in rows)
    assert int(index[("flow", "Wasting", "6m", "due", "", "count")]) == 2
    data = json.loads(json.dumps(reports.report_json(report)))
    assert data["unit"] == "mm" and data["measure"] == "Interosseous muscle thickness (mm)"
    assert data["instrument"]["code"] == THICKNESS
    assert data["results"][0]["points"][3]["change"]["mean"] == pytest.approx(0.85)
    assert any("No responder rates" in note for note in data["notes"])


def test_two_cohorts_compare_and_small_groups_are_withheld(wasting) -> None:
    left = ("Left", cohorts.parse_spec({"conditions": ["foot-muscle-wasting"], "lateralities": ["left"]}))
    right = ("Right", cohorts.parse_spec({"conditions": ["foot-muscle-wasting"], "lateralities": ["right"]}))
    report = reports.cohort_report(
        [left, right], clinic_ids=None, instrument=THICKNESS, scale="value", today=TODAY
    )
    assert report.comparison is not None and report.comparison.reference == "Left"
    assert [r.n for r in report.results] == [3, 1]
    assert "Comparison" in reports.render_html(report)
    withheld = reports.cohort_report(
        [left, right], clinic_ids=None, instrument=THICKNESS, scale="value", today=TODAY, minimum=5
    )
    assert all(result.withheld for result in withheld.results) and withheld.comparison is None
    assert "withheld" in reports.render_csv(withheld)


def test_a_grade_is_reported_with_its_grades_and_called_descriptive(cast) -> None:
    condition = make_condition(make_patient(cast.clinic_a, "H-1"), "hallux-rigidus", "right", "")
    _treat(condition)
    _measure(_image(condition, _day(-2), site="mtp-1"), 3, code="coughlin-shurnas")
    _measure(_image(condition, _day(180), site="mtp-1"), 2, code="coughlin-shurnas")
    report = reports.cohort_report(
        [("Hallux", cohorts.parse_spec({"conditions": ["hallux-rigidus"]}))],
        clinic_ids=None,
        instrument="img-coughlin-shurnas",
        scale="value",
        today=TODAY,
    )
    assert report.measure == "Coughlin–Shurnas grade (grade 0–4)"
    assert report.results[0].point("6m").change.mean == -1
    assert (
        "means of grades (and of their changes) are descriptive"
        in dict(reports.method_notes(report))["Outcome"]
    )


# --------------------------------------------------------------------------- the form, the page and the CLI


def test_measures_offer_every_catalog_measurement_type() -> None:
    offered = dict(measures())
    assert offered["nprs:total"]  # the questionnaires are still there
    assert offered[f"{THICKNESS}:value"] == "Imaging — Interosseous muscle thickness (mm)"
    assert (
        offered["img-abductor-hallucis-csa:value"] == "Imaging — Abductor hallucis cross-sectional area (cm²)"
    )
    assert offered["img-hallux-dorsiflexion:value"] == "Imaging — Hallux dorsiflexion (°)"
    assert offered["img-latrobe-osteophyte:value"] == "Imaging — La Trobe osteophyte grade (grade 0–3)"
    for free in ("length", "area", "angle", "ratio"):
        assert f"img-{free}:value" not in offered


def test_the_report_form_takes_an_imaging_measure(cast) -> None:
    form = ReportForm(
        {"everyone": "on", "measure": f"{THICKNESS}:value", "event": "retreatment", "timepoint": "6m"},
        user=cast.alice,
    )
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["instrument"], form.cleaned_data["scale"]) == (THICKNESS, "value")


def test_the_report_page_and_its_downloads(client, cast, wasting) -> None:
    client.force_login(cast.alice)
    url = (
        reverse("analytics-report")
        + f"?everyone=on&measure={THICKNESS}:value&event=retreatment&timepoint=6m&show_small=on"
    )
    page = client.get(url)
    assert page.status_code == 200
    assert b"Interosseous muscle thickness (mm)" in page.content
    assert b"no responder definition exists for image measurements" in page.content
    assert b"<svg" in page.content
    download = client.get(url + "&format=csv")
    assert download.status_code == 200 and b",6m,change,mm,mean," in download.content
    data = json.loads(client.get(url + "&format=json").content)
    assert data["unit"] == "mm"


def test_the_cli_reports_an_imaging_measure(wasting, tmp_path) -> None:
    out = tmp_path / "thickness.json"
    call_command(
        "report",
        "cohort",
        "--spec",
        'Wasting={"conditions": ["foot-muscle-wasting"]}',
        "--measure",
        f"{THICKNESS}:value",
        "--format",
        "json",
        "--out",
        str(out),
        "--no-progress",
        "--show-small",
    )
    data = json.loads(out.read_text())
    assert data["unit"] == "mm" and data["labels"] == ["Wasting"]
    six = data["results"][0]["points"][3]
    assert six["timepoint"] == "6m" and six["change"]["mean"] == pytest.approx(0.85)
    html = tmp_path / "thickness.html"
    call_command(
        "report", "cohort", "--all", "--measure", f"{THICKNESS}:value", "--out", str(html), "--no-progress"
    )
    assert "Interosseous muscle thickness (mm)" in html.read_text()
    with pytest.raises(CommandError, match="free measurement"):
        call_command("report", "cohort", "--all", "--measure", "img-length:value", "--no-progress")
