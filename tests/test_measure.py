"""Measurements on images: geometry in pixels and mm, and the measurement catalog."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stride.core.errors import CatalogError, Invalid
from stride.core.instruments import Instrument
from stride.core.measure import (
    MEASUREMENT_FILE,
    Calibration,
    MeasurementType,
    Result,
    as_instrument,
    calibrate,
    catalog_version,
    check_grade,
    check_qualifiers,
    check_site,
    convert,
    instrument_for,
    load_types,
    measure,
    measurement_type,
    measurement_types,
    type_json,
    value_for,
)

BODY_SITES = (
    Path(__file__).resolve().parent.parent / "src" / "stride" / "care" / "catalog" / "body_sites.toml"
)
SHIPPED = (
    "neuroma-diameter",
    "neuroma-length",
    "interosseous-thickness",
    "abductor-hallucis-csa",
    "mtp1-jsw-medial",
    "mtp1-jsw-lateral",
    "latrobe-osteophyte",
    "latrobe-jsn",
    "coughlin-shurnas",
    "hallux-dorsiflexion",
    "atfl-thickness",
    "length",
    "area",
    "angle",
    "ratio",
)
HALF_MM = Calibration(row_mm=0.5, col_mm=0.5, source="PixelSpacing")


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-9, abs=1e-9)


# --------------------------------------------------------------------------- lengths


def test_a_line_is_a_3_4_5_triangle_in_pixels_without_calibration() -> None:
    assert measure("line", [(10, 20), (13, 24)], None) == Result(5.0, "px", calibrated=False)


def test_a_calibrated_line_is_in_mm() -> None:
    result = measure("line", [(0, 0), (30, 40)], HALF_MM)
    assert result.unit == "mm"
    assert result.calibrated
    assert result.value == approx(25.0)


def test_anisotropic_pixels_are_converted_to_mm_before_the_length_is_taken() -> None:
    # 3 columns of 2 mm and 2 rows of 4.5 mm: (6 mm, 9 mm) is not a 3-4-5 triangle in pixels.
    spacing = Calibration(row_mm=4.5, col_mm=2.0, source="PixelSpacing")
    assert not spacing.isotropic
    assert measure("line", [(0, 0), (3, 2)], spacing).value == approx(math.hypot(6, 9))
    # A horizontal line uses the column spacing, a vertical one the row spacing.
    assert measure("line", [(0, 0), (10, 0)], spacing).value == approx(20.0)
    assert measure("line", [(0, 0), (0, 10)], spacing).value == approx(45.0)


def test_points_may_come_as_json_lists() -> None:
    assert measure("line", [[0, 0], [3.0, 4.0]], None).value == approx(5.0)


# --------------------------------------------------------------------------- angles


@pytest.mark.parametrize(
    ("points", "degrees"),
    [
        ([(10, 0), (0, 0), (0, 10)], 90.0),
        ([(10, 0), (0, 0), (7, 7)], 45.0),
        ([(-5, 3), (0, 3), (9, 3)], 180.0),
        ([(10, 0), (0, 0), (20, 0)], 0.0),
        ([(0, 10), (0, 0), (10, 0)], 90.0),
    ],
)
def test_the_angle_is_taken_at_the_middle_point(points: list[tuple[float, float]], degrees: float) -> None:
    result = measure("angle", points, None)
    assert result.unit == "deg"
    assert result.value == approx(degrees)


def test_an_angle_is_taken_in_mm_when_the_pixels_are_not_square() -> None:
    # 45° in pixels becomes atan(2) once rows are twice as tall as columns are wide.
    spacing = Calibration(row_mm=0.2, col_mm=0.1)
    result = measure("angle", [(10, 0), (0, 0), (10, 10)], spacing)
    assert result.value == approx(math.degrees(math.atan(2)))
    assert result.calibrated


def test_hallux_dorsiflexion_is_how_far_the_phalanx_turns_from_the_metatarsal() -> None:
    dorsiflexion = measurement_type("hallux-dorsiflexion")
    straight = value_for(dorsiflexion, "angle", [(0, 50), (50, 50), (100, 50)], None)
    assert straight.value == approx(0.0)
    turned = value_for(dorsiflexion, "angle", [(0, 50), (50, 50), (100, 0)], None)
    assert turned.value == approx(45.0)
    assert turned.unit == "deg"
    assert not turned.calibrated  # a photo: the angle is taken on square pixels


# --------------------------------------------------------------------------- areas


def test_an_ellipse_is_pi_a_b() -> None:
    result = measure("ellipse", [(50, 50), (53, 50), (50, 48)], None)
    assert result == Result(pytest.approx(6 * math.pi), "px2", calibrated=False)
    assert measure("ellipse", [(50, 50), (53, 50), (50, 48)], HALF_MM).value == approx(6 * math.pi / 4)


def test_the_second_axis_of_an_ellipse_counts_only_its_perpendicular_distance() -> None:
    # Axis 1 along x, length 4; the second point is 3 off the axis, wherever along it.
    assert measure("ellipse", [(0, 0), (4, 0), (2.5, 3)], None).value == approx(12 * math.pi)
    # A tilted ellipse: axes along the diagonals.
    tilted = measure("ellipse", [(0, 0), (3, 3), (-2, 2)], None).value
    assert tilted == approx(math.pi * math.hypot(3, 3) * math.hypot(2, 2))


def test_a_polygon_is_its_shoelace_area() -> None:
    square = [(0, 0), (1, 0), (1, 1), (0, 1)]
    assert measure("polygon", square, None).value == approx(1.0)
    assert measure("polygon", list(reversed(square)), None).value == approx(1.0)


def test_a_concave_l_shape_has_the_area_of_its_two_rectangles() -> None:
    l_shape = [(0, 0), (4, 0), (4, 1), (1, 1), (1, 3), (0, 3)]
    assert measure("polygon", l_shape, None).value == approx(4 + 2)
    assert measure("polygon", l_shape, Calibration(row_mm=2, col_mm=3)).value == approx(6 * 6)


def test_a_repeated_point_and_a_closing_point_do_not_change_the_area() -> None:
    outline = [(0, 0), (2, 0), (2, 0), (2, 2), (0, 2), (0, 0)]
    assert measure("polygon", outline, None).value == approx(4.0)


# --------------------------------------------------------------------------- ratio


def test_a_ratio_is_the_first_line_over_the_second() -> None:
    result = measure("ratio", [(0, 0), (6, 8), (0, 0), (0, 5)], None)
    assert result == Result(pytest.approx(2.0), "ratio", calibrated=False)


def test_a_ratio_does_not_depend_on_an_isotropic_calibration_but_does_on_anisotropy() -> None:
    points = [(0, 0), (10, 0), (0, 0), (0, 10)]
    assert measure("ratio", points, None).value == approx(1.0)
    assert measure("ratio", points, HALF_MM).value == approx(1.0)
    assert measure("ratio", points, Calibration(row_mm=0.2, col_mm=0.1)).value == approx(0.5)


# --------------------------------------------------------------------------- calibration and conversion


def test_calibration_from_a_line_of_known_length() -> None:
    calibration = calibrate((10, 10), (40, 50), 10.0)
    assert calibration.row_mm == calibration.col_mm == approx(0.2)
    assert calibration.source == "user"
    assert measure("line", [(0, 0), (0, 100)], calibration).value == approx(20.0)


@pytest.mark.parametrize("known", [0, -3, float("nan"), float("inf"), 1000.5, "10", True])
def test_calibration_refuses_an_implausible_known_length(known: object) -> None:
    with pytest.raises(Invalid) as caught:
        calibrate((0, 0), (10, 0), known)  # type: ignore[arg-type]
    assert caught.value.field == "known_mm"


def test_calibration_refuses_a_line_without_length() -> None:
    with pytest.raises(Invalid, match="no length") as caught:
        calibrate((5, 5), (5, 5), 10.0)
    assert caught.value.field == "points"


@pytest.mark.parametrize(("row", "col"), [(0, 0.1), (0.1, -1), (float("nan"), 0.1), (0.1, float("inf"))])
def test_a_calibration_needs_positive_spacings(row: float, col: float) -> None:
    with pytest.raises(Invalid) as caught:
        Calibration(row_mm=row, col_mm=col)
    assert caught.value.field == "calibration"


def test_mm2_converts_to_cm2_and_back() -> None:
    area = Result(250.0, "mm2", calibrated=True)
    assert convert(area, "cm2") == Result(pytest.approx(2.5), "cm2", calibrated=True)
    assert convert(convert(area, "cm2"), "mm2").value == approx(250.0)
    assert convert(Result(12.0, "mm", True), "cm").value == approx(1.2)
    assert convert(area, "mm2") is area


@pytest.mark.parametrize(("unit", "to"), [("px", "mm"), ("px2", "mm2"), ("px2", "cm2")])
def test_a_value_in_pixels_is_never_converted_to_mm(unit: str, to: str) -> None:
    with pytest.raises(Invalid, match="no calibration") as caught:
        convert(Result(10.0, unit, calibrated=False), to)
    assert caught.value.field == "calibration"


def test_units_that_do_not_match_are_not_converted() -> None:
    with pytest.raises(Invalid, match="cannot be converted"):
        convert(Result(10.0, "mm", True), "cm2")


def test_result_text() -> None:
    assert Result(4.94, "mm", True).text == "4.9 mm"
    assert Result(2.478, "cm2", True).text == "2.48 cm²"
    assert Result(62.04, "deg", True).text == "62.0°"
    assert Result(131.6, "px", False).text == "132 px (not calibrated)"
    assert Result(1.234, "ratio", True).text == "1.23"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("tool", "points", "match"),
    [
        ("line", [(0, 0)], "needs 2 points"),
        ("line", [(0, 0), (1, 1), (2, 2)], "needs 2 points"),
        ("ratio", [(0, 0), (1, 1), (2, 2)], "needs 4 points"),
        ("angle", [(0, 0), (1, 1)], "needs 3 points"),
        ("ellipse", [(0, 0), (1, 1), (2, 2), (3, 3)], "needs 3 points"),
        ("polygon", [(0, 0), (1, 1)], "3 to 1000 points"),
        ("polygon", [(i, i % 2) for i in range(1001)], "3 to 1000 points"),
        ("line", [(0, 0), (0, 0)], "no length"),
        ("ratio", [(0, 0), (1, 1), (2, 2), (2, 2)], "second line has no length"),
        ("ratio", [(3, 3), (3, 3), (2, 2), (4, 4)], "first line has no length"),
        ("angle", [(0, 0), (0, 0), (1, 1)], "arm of the angle"),
        ("ellipse", [(5, 5), (5, 5), (6, 7)], "first axis"),
        ("ellipse", [(5, 5), (8, 5), (9, 5)], "second axis"),
        ("polygon", [(0, 0), (1, 1), (2, 2)], "no area"),
        ("polygon", [(0, 0), (0, 0), (1, 1), (0, 0)], "3 different points"),
        ("polygon", [(0, 0), (2, 2), (2, 0), (0, 2)], "crosses itself"),
        ("polygon", [(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], "crosses itself"),
        ("polygon", [(0, 0), (4, 0), (2, 0), (2, 3)], "crosses itself"),
        ("line", [(0, 0), (float("nan"), 1)], "pair of numbers"),
        ("line", [(0, 0), (1, 2, 3)], "pair of numbers"),
        ("line", [(0, 0), ("1", 2)], "pair of numbers"),
        ("line", "0,0,1,1", "list of"),
        ("circle", [(0, 0), (1, 1)], "Unknown measuring tool"),
    ],
)
def test_measure_refuses_a_drawing_it_cannot_measure(tool: str, points: object, match: str) -> None:
    with pytest.raises(Invalid, match=match) as caught:
        measure(tool, points, None)  # type: ignore[arg-type]
    assert caught.value.field == ("tool" if tool == "circle" else "points")


def test_a_long_outline_that_does_not_cross_itself_is_measured() -> None:
    corners = [
        (1000 + 500 * math.cos(2 * math.pi * k / 1000), 1000 + 500 * math.sin(2 * math.pi * k / 1000))
        for k in range(1000)
    ]
    assert measure("polygon", corners, None).value == pytest.approx(math.pi * 500**2, rel=1e-4)


# --------------------------------------------------------------------------- values of a catalog type


def test_an_uncalibrated_length_for_an_mm_type_stays_in_pixels_and_says_so() -> None:
    result = value_for(measurement_type("neuroma-diameter"), "line", [(0, 0), (30, 40)], None)
    assert result == Result(50.0, "px", calibrated=False)


def test_a_calibrated_length_is_in_the_types_unit() -> None:
    result = value_for(measurement_type("neuroma-diameter"), "line", [(0, 0), (6, 8)], HALF_MM)
    assert result == Result(pytest.approx(5.0), "mm", calibrated=True)


def test_abductor_hallucis_area_is_drawn_in_mm2_and_stored_in_cm2() -> None:
    csa = measurement_type("abductor-hallucis-csa")
    calibration = Calibration(row_mm=0.1, col_mm=0.1)
    ellipse = value_for(csa, "ellipse", [(100, 100), (200, 100), (100, 125)], calibration)
    assert ellipse.unit == "cm2"
    assert ellipse.value == approx(math.pi * 10 * 2.5 / 100)
    outline = value_for(csa, "polygon", [(0, 0), (150, 0), (150, 150), (0, 150)], calibration)
    assert outline == Result(pytest.approx(2.25), "cm2", calibrated=True)
    uncalibrated = value_for(csa, "polygon", [(0, 0), (150, 0), (150, 150), (0, 150)], None)
    assert uncalibrated == Result(22500.0, "px2", calibrated=False)


def test_a_tool_the_type_does_not_use_is_refused() -> None:
    with pytest.raises(Invalid, match="measured with the line tool") as caught:
        value_for(measurement_type("neuroma-diameter"), "polygon", [(0, 0), (1, 0), (1, 1)], HALF_MM)
    assert caught.value.field == "tool"


def test_a_grade_type_is_not_drawn() -> None:
    with pytest.raises(Invalid, match="is a grade") as caught:
        value_for(measurement_type("latrobe-jsn"), "line", [(0, 0), (1, 1)], HALF_MM)
    assert caught.value.field == "tool"


def test_a_calibrated_value_outside_the_plausible_range_is_refused() -> None:
    with pytest.raises(Invalid, match="outside the plausible range") as caught:
        value_for(measurement_type("neuroma-diameter"), "line", [(0, 0), (0, 100)], HALF_MM)
    assert caught.value.field == "points"


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(Invalid, match="Unknown measurement type") as caught:
        measurement_type("neuroma-volume")
    assert caught.value.field == "type"


@pytest.mark.parametrize(("given_value", "grade"), [(0, 0), (3, 3), ("2", 2), (1.0, 1)])
def test_a_grade_is_one_of_the_types_grades(given_value: object, grade: int) -> None:
    assert check_grade(measurement_type("latrobe-osteophyte"), given_value) == grade


@pytest.mark.parametrize("given_value", [4, -1, 1.5, "two", None, True])
def test_a_grade_out_of_range_is_refused(given_value: object) -> None:
    with pytest.raises(Invalid, match="choose one of 0, 1, 2, 3") as caught:
        check_grade(measurement_type("latrobe-osteophyte"), given_value)
    assert caught.value.field == "value"


def test_coughlin_shurnas_goes_to_4_and_measured_types_have_no_grade() -> None:
    assert check_grade(measurement_type("coughlin-shurnas"), 4) == 4
    with pytest.raises(Invalid, match="not graded"):
        check_grade(measurement_type("neuroma-length"), 2)


def test_sites_and_qualifiers_are_checked_against_the_type() -> None:
    neuroma = measurement_type("neuroma-diameter")
    assert check_site(neuroma, "im-space-3") == "im-space-3"
    assert check_site(neuroma, "") == ""
    assert check_site(measurement_type("length"), "plantar-fascia") == "plantar-fascia"
    with pytest.raises(Invalid, match="not measured at") as caught:
        check_site(neuroma, "atfl")
    assert caught.value.field == "site"
    assert check_qualifiers(neuroma, {"compression": "with"}) == {"compression": "with"}
    assert check_qualifiers(neuroma, {"compression": ""}) == {}
    with pytest.raises(Invalid, match="not one of"):
        check_qualifiers(neuroma, {"compression": "maybe"})
    with pytest.raises(Invalid, match="no qualifier"):
        check_qualifiers(neuroma, {"weight-bearing": "yes"})


# --------------------------------------------------------------------------- as an instrument


def test_a_measurement_type_is_a_one_scale_instrument() -> None:
    instrument = as_instrument(measurement_type("interosseous-thickness"))
    assert isinstance(instrument, Instrument)
    assert instrument.code == "img-interosseous-thickness"
    assert instrument.version == "1"
    assert instrument.baseline
    scale = instrument.scale("value")
    assert scale.name == "Interosseous muscle thickness"
    assert scale.range == (0.0, 40.0)
    assert scale.unit == "mm"
    assert scale.higher_is_better
    assert instrument.responder.default == ""
    assert not instrument.responder.definitions
    assert "No responder definition exists" in instrument.responder.note
    assert "10–18 %" in instrument.note


def test_a_lower_better_grade_becomes_higher_worse_with_its_grades_as_options() -> None:
    instrument = instrument_for("img-coughlin-shurnas")
    assert instrument.scale("value").direction == "higher-worse"
    assert [o.value for o in instrument.items[0].options] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("code", ["coughlin-shurnas", "img-unknown", "nprs"])
def test_instrument_for_needs_an_img_code_of_a_known_type(code: str) -> None:
    with pytest.raises(Invalid) as caught:
        instrument_for(code)
    assert caught.value.field == "instrument"


# --------------------------------------------------------------------------- properties

coordinate = st.floats(min_value=-2000, max_value=2000, allow_nan=False)
spacing = st.floats(min_value=0.01, max_value=2.0)


@settings(max_examples=200, deadline=None)
@given(
    x1=coordinate,
    y1=coordinate,
    x2=coordinate,
    y2=coordinate,
    dx=coordinate,
    dy=coordinate,
    turn=st.floats(min_value=0, max_value=2 * math.pi),
    mm=spacing,
)
def test_an_isotropic_length_does_not_change_when_the_line_moves_or_turns(
    x1: float, y1: float, x2: float, y2: float, dx: float, dy: float, turn: float, mm: float
) -> None:
    if math.hypot(x2 - x1, y2 - y1) < 1e-3:
        return
    calibration = Calibration(row_mm=mm, col_mm=mm)
    before = measure("line", [(x1, y1), (x2, y2)], calibration).value
    cos, sin = math.cos(turn), math.sin(turn)

    def moved(x: float, y: float) -> tuple[float, float]:
        return (cos * x - sin * y + dx, sin * x + cos * y + dy)

    after = measure("line", [moved(x1, y1), moved(x2, y2)], calibration).value
    assert after == pytest.approx(before, rel=1e-9)
    assert before == pytest.approx(mm * math.hypot(x2 - x1, y2 - y1), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    width=st.floats(min_value=1, max_value=500),
    height=st.floats(min_value=1, max_value=500),
    notch=st.floats(min_value=0.1, max_value=0.9),
    row_mm=spacing,
    col_mm=spacing,
)
def test_an_area_scales_with_the_pixel_area(
    width: float, height: float, notch: float, row_mm: float, col_mm: float
) -> None:
    outline = [
        (0, 0),
        (width, 0),
        (width, height * notch),
        (width * notch, height * notch),
        (width * notch, height),
        (0, height),
    ]
    in_pixels = measure("polygon", outline, None).value
    assert measure("polygon", outline, Calibration(row_mm, col_mm)).value == pytest.approx(
        in_pixels * row_mm * col_mm, rel=1e-9
    )
    assert measure("polygon", outline, Calibration(row_mm, row_mm)).value == pytest.approx(
        in_pixels * row_mm**2, rel=1e-9
    )
    ellipse = [(width, height), (2 * width, height), (width, height + height * notch)]
    assert measure("ellipse", ellipse, Calibration(col_mm, col_mm)).value == pytest.approx(
        measure("ellipse", ellipse, None).value * col_mm**2, rel=1e-9
    )


# --------------------------------------------------------------------------- the shipped catalog


def test_the_shipped_catalog_loads_with_every_type_of_domain_md() -> None:
    types = measurement_types()
    assert tuple(types) == SHIPPED
    assert MEASUREMENT_FILE.name == "measurements.toml"
    for code in SHIPPED:
        mtype = types[code]
        assert isinstance(mtype, MeasurementType)
        assert mtype.version == 1
        assert mtype.free == (code in ("length", "area", "angle", "ratio"))
        assert not mtype.snomed and not mtype.loinc  # none verified yet


def test_the_shipped_types_have_the_units_tools_and_grades_of_domain_md() -> None:
    types = measurement_types()
    expected = {
        "neuroma-diameter": ("mm", ("line",), ("US",)),
        "neuroma-length": ("mm", ("line",), ("US",)),
        "interosseous-thickness": ("mm", ("line",), ("US",)),
        "abductor-hallucis-csa": ("cm2", ("ellipse", "polygon"), ("US",)),
        "mtp1-jsw-medial": ("mm", ("line",), ("DX", "CR")),
        "mtp1-jsw-lateral": ("mm", ("line",), ("DX", "CR")),
        "latrobe-osteophyte": ("grade", ("grade",), ("DX", "CR")),
        "latrobe-jsn": ("grade", ("grade",), ("DX", "CR")),
        "coughlin-shurnas": ("grade", ("grade",), ("DX", "CR")),
        "hallux-dorsiflexion": ("deg", ("angle",), ("DX", "CR", "XC")),
        "atfl-thickness": ("mm", ("line",), ("US",)),
    }
    for code, (unit, tools, modalities) in expected.items():
        assert (types[code].unit, types[code].tools, types[code].modalities) == (unit, tools, modalities), (
            code
        )
    assert [g.value for g in types["latrobe-osteophyte"].grades] == [0, 1, 2, 3]
    assert [g.value for g in types["coughlin-shurnas"].grades] == [0, 1, 2, 3, 4]
    assert types["neuroma-diameter"].qualifiers[0].options == ("with", "without")
    assert types["interosseous-thickness"].qualifiers[0].options == ("yes", "no")
    assert "10–18 %" in types["interosseous-thickness"].note
    assert "no threshold" in types["mtp1-jsw-medial"].note
    assert "no threshold" in types["mtp1-jsw-lateral"].note


def test_a_type_as_json_data_for_the_viewer() -> None:
    assert catalog_version() == 1
    data = type_json(measurement_type("neuroma-diameter"))
    assert json.loads(json.dumps(data)) == data
    assert data["code"] == "neuroma-diameter"
    assert data["tools"] == ["line"]
    assert data["qualifiers"] == [
        {"code": "compression", "name": "Compression (sonographic Mulder)", "options": ["with", "without"]}
    ]
    assert data["range"] == [0.0, 30.0]
    assert not data["isGrade"] and not data["free"]
    grade = type_json(measurement_type("latrobe-osteophyte"))
    assert grade["isGrade"]
    assert [g["value"] for g in grade["grades"]] == [0, 1, 2, 3]
    assert type_json(measurement_type("abductor-hallucis-csa"))["unitSymbol"] == "cm²"


def test_every_site_of_the_catalog_is_a_care_site() -> None:
    body_sites = tomllib.loads(BODY_SITES.read_text(encoding="utf-8"))
    known = {site["code"] for site in body_sites["site"]}
    used = {site for mtype in measurement_types().values() for site in mtype.sites}
    assert used
    assert used <= known, sorted(used - known)


# --------------------------------------------------------------------------- strict reading

GOOD_TYPE = """
[[type]]
code = "neuroma-diameter"
name = "Neuroma transverse diameter"
unit = "mm"
tools = ["line"]
modalities = ["US"]
sites = ["im-space-3"]
qualifiers = [{ code = "compression", name = "Compression", options = ["with", "without"] }]
direction = ""
range = [0, 30]
"""
GOOD_GRADE = """
[[type]]
code = "latrobe-jsn"
name = "La Trobe JSN"
unit = "grade"
tools = ["grade"]
direction = "lower-better"
range = [0, 2]
grades = [{ value = 0, label = "None" }, { value = 1, label = "Definite" }, { value = 2, label = "Severe" }]
"""
HEAD = 'catalog = "measurements"\nversion = 2\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "measurements.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    types = load_types(write(tmp_path, HEAD + GOOD_TYPE + GOOD_GRADE))
    assert list(types) == ["neuroma-diameter", "latrobe-jsn"]
    assert types["latrobe-jsn"].version == 2
    assert types["latrobe-jsn"].grades[2].label == "Severe"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("version = 1\n" + GOOD_TYPE, "expected catalog = 'measurements'"),
        ('catalog = "measurements"\nversion = 0\n' + GOOD_TYPE, "version must be a positive"),
        ('catalog = "measurements"\nversion = "1"\n' + GOOD_TYPE, "version must be a positive"),
        (HEAD, r"no \[\[type\]\] entries"),
        (HEAD + "extra = 1\n" + GOOD_TYPE, "unknown key"),
        (HEAD + "[[type", "measurements.toml"),
        (HEAD + GOOD_TYPE + GOOD_TYPE, "type 'neuroma-diameter': appears twice"),
        (HEAD + GOOD_TYPE.replace('"neuroma-diameter"', '"Neuroma"'), "type #1: code 'Neuroma'"),
        (HEAD + GOOD_TYPE.replace('unit = "mm"\n', ""), "type 'neuroma-diameter': missing unit"),
        (HEAD + GOOD_TYPE.replace('unit = "mm"', 'unit = "inch"'), "unit 'inch'"),
        (HEAD + GOOD_TYPE.replace('["line"]', '["polygon"]'), "tool 'polygon' cannot give a value in mm"),
        (HEAD + GOOD_TYPE.replace('["line"]', "[]"), "at least one tool"),
        (HEAD + GOOD_TYPE.replace('["line"]', '["line", "line"]'), "twice"),
        (HEAD + GOOD_TYPE.replace('direction = ""', 'direction = "up"'), "direction 'up'"),
        (HEAD + GOOD_TYPE.replace("[0, 30]", "[30, 0]"), "range"),
        (HEAD + GOOD_TYPE.replace("[0, 30]", "[0]"), "range must be two numbers"),
        (HEAD + GOOD_TYPE.replace('["US"]', '["ultrasound"]'), "modalities: 'ultrasound'"),
        (HEAD + GOOD_TYPE.replace('["im-space-3"]', '["IM 3"]'), "sites: 'IM 3'"),
        (HEAD + GOOD_TYPE.replace('["with", "without"]', '["with"]'), "at least two options"),
        (HEAD + GOOD_TYPE.replace('name = "Compression", ', ""), "code, name and options"),
        (HEAD + GOOD_TYPE + 'colour = "red"\n', "unknown key"),
        (HEAD + GOOD_TYPE + 'snomed = "abc"\n', "not a SNOMED CT id"),
        (HEAD + GOOD_TYPE + 'loinc = "12345"\n', "not a LOINC code"),
        (HEAD + GOOD_TYPE + 'angle = "deviation"\n', "only for a type measured in deg"),
        (HEAD + GOOD_TYPE + "free = 1\n", "free must be true or false"),
        (HEAD + GOOD_TYPE + 'grades = [{ value = 0, label = "x" }]\n', "only a grade type"),
        (HEAD + GOOD_GRADE.replace("grades = ", "#"), "needs its grades"),
        (
            HEAD + GOOD_GRADE.replace('{ value = 2, label = "Severe" }', '{ value = 3, label = "Fused" }'),
            "grades must be",
        ),
        (HEAD + GOOD_GRADE.replace('label = "Definite"', 'label = ""'), "label must be a non-empty"),
        (HEAD + GOOD_GRADE.replace("[0, 2]", "[0, 2.5]"), "whole numbers"),
        (HEAD + GOOD_GRADE.replace('["grade"]', '["line"]'), "tool 'line' cannot give a value in grade"),
    ],
)
def test_a_bad_file_is_refused_whole_naming_the_file_and_entry(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(CatalogError, match=match) as caught:
        load_types(write(tmp_path, text))
    assert str(caught.value).startswith("measurements.toml: ")


def test_a_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"missing\.toml"):
        load_types(tmp_path / "missing.toml")
