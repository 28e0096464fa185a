"""Measurements on images: geometry in pixels and millimetres, and the measurement catalog.

Points are ``(x, y)`` in the stored pixels of the original image: ``x`` is the column and
``y`` the row. A :class:`Calibration` gives the size of one pixel in mm down the rows and
across the columns (the DICOM PixelSpacing order, row spacing first), from the file's header
or from a line of known length drawn by the clinician (:func:`calibrate`). :func:`measure`
converts the points to mm first, so non-square pixels are handled in one place; without a
calibration a length or an area stays in px / px² and is never converted (:func:`convert`
refuses).

The measurements Stride knows are one versioned data file,
``stride/imaging/catalog/measurements.toml``: each type has its unit, the tools it is drawn
with, the modalities and sites it is taken on, its qualifiers (with or without compression,
weight-bearing or not), its direction, its plausible range, its grades when it is graded,
and a note. :func:`load_types` reads such a file strictly and refuses it whole with
:class:`CatalogError` naming the file and the entry. :func:`value_for` turns a drawing into
the stored value of a type; :func:`as_instrument` presents a type as a one-scale instrument,
so analyses treat an image measurement like any score.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from stride.core.errors import CatalogError, Invalid
from stride.core.instruments import AnswerOption, Instrument, Item, Responder, Scale

MEASUREMENT_FILE = Path(__file__).resolve().parent.parent / "imaging" / "catalog" / "measurements.toml"

#: The drawing tools :func:`measure` knows.
TOOLS = ("line", "ratio", "angle", "ellipse", "polygon")
#: The catalog's "tool" for a value that is entered, not drawn.
GRADE_TOOL = "grade"
#: Points each drawing tool takes (a polygon takes 3 to :data:`MAX_POLYGON_POINTS`).
TOOL_POINTS: Mapping[str, int] = {"line": 2, "ratio": 4, "angle": 3, "ellipse": 3}
MAX_POLYGON_POINTS = 1000
#: The unit each tool gives: (with a calibration, without one).
TOOL_UNITS: Mapping[str, tuple[str, str]] = {
    "line": ("mm", "px"),
    "ratio": ("ratio", "ratio"),
    "angle": ("deg", "deg"),
    "ellipse": ("mm2", "px2"),
    "polygon": ("mm2", "px2"),
}
RESULT_UNITS = ("mm", "mm2", "deg", "ratio", "px", "px2")
#: The units a catalog type may store, and the tools that can give each.
UNIT_TOOLS: Mapping[str, tuple[str, ...]] = {
    "mm": ("line",),
    "mm2": ("ellipse", "polygon"),
    "cm2": ("ellipse", "polygon"),
    "deg": ("angle",),
    "ratio": ("ratio",),
    "grade": (GRADE_TOOL,),
}
TYPE_UNITS = tuple(UNIT_TOOLS)
DIRECTIONS = ("higher-better", "lower-better", "")
#: interior: the angle at the vertex; deviation: 180° minus it (how far the second arm turns away).
ANGLE_MODES = ("interior", "deviation")
#: The longest line a clinician may calibrate with, in mm.
MAX_KNOWN_MM = 1000.0
#: Instrument codes of measurement types: ``img-<type code>``.
INSTRUMENT_PREFIX = "img-"

UNIT_SYMBOLS: Mapping[str, str] = {
    "mm": "mm",
    "cm": "cm",
    "mm2": "mm²",
    "cm2": "cm²",
    "deg": "°",
    "ratio": "",
    "grade": "",
    "px": "px",
    "px2": "px²",
}
_DECIMALS: Mapping[str, int] = {"mm": 1, "cm": 2, "mm2": 1, "cm2": 2, "deg": 1, "ratio": 2}
_FACTORS: Mapping[tuple[str, str], float] = {
    ("mm", "cm"): 0.1,
    ("cm", "mm"): 10.0,
    ("mm2", "cm2"): 0.01,
    ("cm2", "mm2"): 100.0,
}

_CODE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_MODALITY = re.compile(r"^[A-Z]{2}$")
_SNOMED = re.compile(r"^[0-9]{6,18}$")
_LOINC = re.compile(r"^[0-9]{1,7}-[0-9]$")
_TOP_KEYS = {"catalog", "version", "type"}
_REQUIRED = ("code", "name", "unit", "tools", "direction", "range")
_TYPE_KEYS = {
    *_REQUIRED,
    *("modalities", "sites", "qualifiers", "grades", "note", "citation", "snomed", "loinc", "free", "angle"),
}

Point = tuple[float, float]


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Calibration:
    """The size of one pixel: ``row_mm`` down the rows (y), ``col_mm`` across the columns (x)."""

    row_mm: float
    col_mm: float
    source: str = "user"

    def __post_init__(self) -> None:
        for name, value in (("row", self.row_mm), ("column", self.col_mm)):
            if not _is_number(value) or value <= 0:
                raise Invalid(
                    f"The {name} pixel spacing must be a positive number of mm, not {value!r}.", "calibration"
                )

    @property
    def isotropic(self) -> bool:
        return math.isclose(self.row_mm, self.col_mm, rel_tol=1e-9)

    def to_mm(self, point: Point) -> Point:
        return (point[0] * self.col_mm, point[1] * self.row_mm)


@dataclass(frozen=True)
class Result:
    """A measured value in ``unit``; ``calibrated`` is False when it was measured without a calibration."""

    value: float
    unit: str
    calibrated: bool

    @property
    def text(self) -> str:
        """The value for a person: ``4.9 mm``, ``2.48 cm²``, ``132 px (not calibrated)``."""
        number = f"{self.value:.{_DECIMALS.get(self.unit, 0)}f}"
        symbol = UNIT_SYMBOLS.get(self.unit, self.unit)
        text = f"{number}{symbol}" if symbol == "°" else f"{number} {symbol}".rstrip()
        return text if self.calibrated or self.unit not in ("px", "px2") else f"{text} (not calibrated)"


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _points(points: Any, tool: str) -> list[Point]:
    """The points as floats, checked: finite (x, y) pairs, as many as ``tool`` takes."""
    if not isinstance(points, Sequence) or isinstance(points, str | bytes):
        raise Invalid("The points must be a list of [x, y] pairs.", "points")
    checked: list[Point] = []
    for point in points:
        if (
            not isinstance(point, Sequence)
            or isinstance(point, str | bytes)
            or len(point) != 2
            or not all(_is_number(c) for c in point)
        ):
            raise Invalid(f"Each point must be a pair of numbers [x, y], not {point!r}.", "points")
        checked.append((float(point[0]), float(point[1])))
    if tool == "polygon":
        if not 3 <= len(checked) <= MAX_POLYGON_POINTS:
            raise Invalid(f"An outline needs 3 to {MAX_POLYGON_POINTS} points, not {len(checked)}.", "points")
    elif len(checked) != TOOL_POINTS[tool]:
        raise Invalid(f"A {tool} needs {TOOL_POINTS[tool]} points, not {len(checked)}.", "points")
    return checked


def _distance(a: Point, b: Point) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def _cross(u: Point, v: Point) -> float:
    return u[0] * v[1] - u[1] * v[0]


def _minus(a: Point, b: Point) -> Point:
    return (a[0] - b[0], a[1] - b[1])


def _line(a: Point, b: Point, what: str = "The line") -> float:
    length = _distance(a, b)
    if length == 0:
        raise Invalid(f"{what} has no length: its two points are the same.", "points")
    return length


def _angle(first: Point, vertex: Point, second: Point) -> float:
    u, v = _minus(first, vertex), _minus(second, vertex)
    if math.hypot(*u) == 0 or math.hypot(*v) == 0:
        raise Invalid("An arm of the angle has no length: a point lies on the vertex.", "points")
    return math.degrees(math.atan2(abs(_cross(u, v)), u[0] * v[0] + u[1] * v[1]))


def _ellipse(centre: Point, end1: Point, end2: Point) -> float:
    """π·a·b, with b the distance of ``end2`` from the first axis (= π·|u × w|)."""
    u, w = _minus(end1, centre), _minus(end2, centre)
    if math.hypot(*u) == 0:
        raise Invalid("The first axis of the ellipse has no length: its end is on the centre.", "points")
    area = math.pi * abs(_cross(u, w))
    if area == 0:
        raise Invalid(
            "The second axis of the ellipse has no length: its end lies on the first axis.", "points"
        )
    return area


def _distinct(points: list[Point]) -> list[int]:
    """Indices of the outline's corners without repeats (nor a last point repeating the first)."""
    kept: list[int] = []
    for index, point in enumerate(points):
        if not kept or point != points[kept[-1]]:
            kept.append(index)
    while len(kept) > 1 and points[kept[-1]] == points[kept[0]]:
        kept.pop()
    return kept


def _orient(ax: Any, ay: Any, bx: Any, by: Any, cx: Any, cy: Any) -> Any:
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def _within(ax: Any, ay: Any, bx: Any, by: Any, cx: Any, cy: Any) -> Any:
    """Whether c lies in the bounding box of a–b (for c collinear with a–b: on the segment)."""
    return (
        (np.minimum(ax, bx) <= cx)
        & (cx <= np.maximum(ax, bx))
        & (np.minimum(ay, by) <= cy)
        & (cy <= np.maximum(ay, by))
    )


def _crosses_itself(points: list[Point]) -> bool:
    """Whether any two edges of the closed outline meet, other than neighbours at their shared corner."""
    n = len(points)
    p = np.asarray(points, dtype=float)
    q = np.roll(p, -1, axis=0)  # edge i runs from p[i] to q[i]
    # Neighbouring edges meet only at their corner, unless the outline folds back on itself.
    before, after = p - np.roll(p, 1, axis=0), q - p
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    dot = before[:, 0] * after[:, 0] + before[:, 1] * after[:, 1]
    if np.any((cross == 0) & (dot < 0)):
        return True
    for i in range(n - 2):
        j = np.arange(i + 2, n if i > 0 else n - 1)
        if j.size == 0:
            continue
        (ax, ay), (bx, by) = p[i], q[i]
        cx, cy, dx, dy = p[j, 0], p[j, 1], q[j, 0], q[j, 1]
        o1, o2 = _orient(ax, ay, bx, by, cx, cy), _orient(ax, ay, bx, by, dx, dy)
        o3, o4 = _orient(cx, cy, dx, dy, ax, ay), _orient(cx, cy, dx, dy, bx, by)
        proper = (np.sign(o1) * np.sign(o2) < 0) & (np.sign(o3) * np.sign(o4) < 0)
        touching = (
            ((o1 == 0) & _within(ax, ay, bx, by, cx, cy))
            | ((o2 == 0) & _within(ax, ay, bx, by, dx, dy))
            | ((o3 == 0) & _within(cx, cy, dx, dy, ax, ay))
            | ((o4 == 0) & _within(cx, cy, dx, dy, bx, by))
        )
        if np.any(proper | touching):
            return True
    return False


def _polygon(pixels: list[Point], points: list[Point]) -> float:
    """The shoelace area of ``points``; ``pixels`` are the same corners in pixels, for the checks."""
    keep = _distinct(pixels)
    if len(keep) < 3:
        raise Invalid("An outline needs at least 3 different points.", "points")
    corners = [points[i] for i in keep]
    first = corners[0]
    far = max(corners, key=lambda c: _distance(first, c))
    reach = _minus(far, first)
    if all(abs(_cross(reach, _minus(c, first))) <= 1e-12 * _distance(first, far) ** 2 for c in corners):
        raise Invalid("The outline encloses no area: its points lie on one line.", "points")
    if _crosses_itself([pixels[i] for i in keep]):
        raise Invalid("The outline crosses itself; draw it without crossing.", "points")
    twice = sum(_cross(a, b) for a, b in zip(corners, corners[1:] + corners[:1], strict=True))
    return abs(twice) / 2


def calibrate(p1: Sequence[float], p2: Sequence[float], known_mm: float, source: str = "user") -> Calibration:
    """The calibration that makes the line p1–p2 ``known_mm`` long (the same in both directions)."""
    if not _is_number(known_mm) or known_mm <= 0:
        raise Invalid(f"The known length must be a positive number of mm, not {known_mm!r}.", "known_mm")
    if known_mm > MAX_KNOWN_MM:
        raise Invalid(
            f"A calibration line of {known_mm:g} mm is implausible; the most is {MAX_KNOWN_MM:g} mm.",
            "known_mm",
        )
    a, b = _points([p1, p2], "line")
    pixels = _line(a, b, "The calibration line")
    spacing = known_mm / pixels
    return Calibration(row_mm=spacing, col_mm=spacing, source=source)


def measure(tool: str, points: Sequence[Sequence[float]], calibration: Calibration | None = None) -> Result:
    """Measure the drawing: a length, a ratio of two lengths, an angle or an area.

    With a calibration the points are converted to mm first (so lengths, angles and areas are
    right for non-square pixels); without one a length is in px, an area in px², and an angle
    is taken as drawn on the pixels.
    """
    if tool not in TOOLS:
        raise Invalid(f"Unknown measuring tool {tool!r}; choose one of {', '.join(TOOLS)}.", "tool")
    pixels = _points(points, tool)
    pts = [calibration.to_mm(p) for p in pixels] if calibration is not None else pixels
    unit = TOOL_UNITS[tool][0 if calibration is not None else 1]
    if tool == "line":
        value = _line(*pts)
    elif tool == "ratio":
        value = _line(pts[0], pts[1], "The first line") / _line(pts[2], pts[3], "The second line")
    elif tool == "angle":
        value = _angle(*pts)
    elif tool == "ellipse":
        value = _ellipse(*pts)
    else:
        value = _polygon(pixels, pts)
    return Result(value=value, unit=unit, calibrated=calibration is not None)


def convert(result: Result, unit: str) -> Result:
    """``result`` in ``unit`` (mm ↔ cm, mm² ↔ cm²); a value in pixels is never converted to mm."""
    if unit == result.unit:
        return result
    if result.unit in ("px", "px2"):
        raise Invalid(
            f"A value in {result.unit} cannot be given in {unit}: the image has no calibration. "
            "Calibrate the image first.",
            "calibration",
        )
    factor = _FACTORS.get((result.unit, unit))
    if factor is None:
        raise Invalid(f"A value in {result.unit} cannot be converted to {unit}.", "unit")
    return Result(value=result.value * factor, unit=unit, calibrated=result.calibrated)


# --------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class Qualifier:
    code: str
    name: str
    options: tuple[str, ...]


@dataclass(frozen=True)
class Grade:
    value: int
    label: str


@dataclass(frozen=True)
class MeasurementType:
    code: str
    name: str
    unit: str  # one of TYPE_UNITS
    tools: tuple[str, ...]
    range: tuple[float, float]  # the plausible values, in unit
    direction: str = ""  # higher-better | lower-better | "" (no better direction)
    modalities: tuple[str, ...] = ()  # DICOM modality codes; empty: any
    sites: tuple[str, ...] = ()  # care site codes; empty: any
    qualifiers: tuple[Qualifier, ...] = ()
    grades: tuple[Grade, ...] = ()  # grade types only
    note: str = ""
    citation: str = ""
    snomed: str = ""
    loinc: str = ""
    free: bool = False  # a free type, for measurements outside the catalog
    angle: str = "interior"  # deg types: interior | deviation
    version: int = 1  # the catalog version it was read from

    @property
    def is_grade(self) -> bool:
        return self.unit == "grade"

    @property
    def instrument_code(self) -> str:
        return f"{INSTRUMENT_PREFIX}{self.code}"

    def grade_label(self, value: int) -> str:
        for grade in self.grades:
            if grade.value == value:
                return grade.label
        raise Invalid(f"{value!r} is not a {self.name}.", "value")


def _fail(path: Path, where: str, reason: str) -> CatalogError:
    return CatalogError(f"{path.name}: {where}: {reason}")


def _strings(
    raw: Any, key: str, path: Path, where: str, pattern: re.Pattern[str] | None = None
) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise _fail(path, where, f"{key} must be a list of non-empty strings.")
    if len(set(raw)) != len(raw):
        raise _fail(path, where, f"{key} names a value twice.")
    if pattern is not None:
        for value in raw:
            if not pattern.match(value):
                raise _fail(path, where, f"{key}: {value!r} is not a valid code.")
    return tuple(raw)


def _text(raw: Mapping[str, Any], key: str, path: Path, where: str, *, required: bool = False) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise _fail(path, where, f"{key} must be a {'non-empty ' if required else ''}string.")
    return value


def _qualifiers(raw: Any, path: Path, where: str) -> tuple[Qualifier, ...]:
    if not isinstance(raw, list):
        raise _fail(path, where, "qualifiers must be a list of {code, name, options}.")
    qualifiers: list[Qualifier] = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"code", "name", "options"}:
            raise _fail(path, where, "each qualifier needs exactly code, name and options.")
        code = entry["code"]
        if not isinstance(code, str) or not _CODE.match(code):
            raise _fail(path, where, f"qualifier code {code!r} must be lower-case words joined by hyphens.")
        if any(q.code == code for q in qualifiers):
            raise _fail(path, where, f"qualifier {code!r} appears twice.")
        name = _text(entry, "name", path, f"{where}: qualifier {code!r}", required=True)
        options = _strings(entry["options"], "options", path, f"{where}: qualifier {code!r}")
        if len(options) < 2:
            raise _fail(path, where, f"qualifier {code!r} needs at least two options.")
        qualifiers.append(Qualifier(code=code, name=name, options=options))
    return tuple(qualifiers)


def _grades(raw: Any, bounds: tuple[float, float], path: Path, where: str) -> tuple[Grade, ...]:
    low, high = bounds
    if not low.is_integer() or not high.is_integer():
        raise _fail(path, where, "a grade range must be whole numbers.")
    if not isinstance(raw, list) or not raw:
        raise _fail(path, where, "a grade type needs its grades, each {value, label}.")
    grades: list[Grade] = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"value", "label"}:
            raise _fail(path, where, "each grade needs exactly value and label.")
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, where, f"grade value {value!r} must be a whole number.")
        grades.append(
            Grade(value=value, label=_text(entry, "label", path, f"{where}: grade {value}", required=True))
        )
    expected = list(range(int(low), int(high) + 1))
    if [g.value for g in grades] != expected:
        raise _fail(path, where, f"the grades must be {expected} in order, one each (its range).")
    return tuple(grades)


def _type(raw: Any, number: int, version: int, path: Path) -> MeasurementType:
    where = f"type #{number}"
    if not isinstance(raw, dict):
        raise _fail(path, where, "must be a table.")
    code = raw.get("code")
    if not isinstance(code, str) or not _CODE.match(code):
        raise _fail(path, where, f"code {code!r} must be lower-case words joined by hyphens.")
    where = f"type {code!r}"
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise _fail(path, where, f"missing {', '.join(missing)}.")
    unknown = sorted(set(raw) - _TYPE_KEYS)
    if unknown:
        raise _fail(path, where, f"unknown key(s) {', '.join(unknown)}.")
    name = _text(raw, "name", path, where, required=True)
    unit = raw["unit"]
    if unit not in UNIT_TOOLS:
        raise _fail(path, where, f"unit {unit!r} must be one of {', '.join(TYPE_UNITS)}.")
    tools = _strings(raw["tools"], "tools", path, where)
    if not tools:
        raise _fail(path, where, "tools must name at least one tool.")
    for tool in tools:
        if tool not in UNIT_TOOLS[unit]:
            raise _fail(
                path,
                where,
                f"tool {tool!r} cannot give a value in {unit} (use {', '.join(UNIT_TOOLS[unit])}).",
            )
    direction = raw["direction"]
    if direction not in DIRECTIONS:
        raise _fail(path, where, f'direction {direction!r} must be higher-better, lower-better or "".')
    bounds = raw["range"]
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(_is_number(b) for b in bounds):
        raise _fail(path, where, "range must be two numbers [low, high].")
    low, high = float(bounds[0]), float(bounds[1])
    if not 0 <= low < high:
        raise _fail(path, where, f"range [{low:g}, {high:g}] must start at 0 or above and rise.")
    if unit == "deg" and high > 180:
        raise _fail(path, where, f"an angle range cannot go beyond 180°, found {high:g}.")
    if unit == "grade":
        grades = _grades(raw.get("grades"), (low, high), path, where)
    elif "grades" in raw:
        raise _fail(path, where, "only a grade type has grades.")
    else:
        grades = ()
    angle = raw.get("angle", "interior")
    if "angle" in raw and unit != "deg":
        raise _fail(path, where, "angle is set only for a type measured in deg.")
    if angle not in ANGLE_MODES:
        raise _fail(path, where, f"angle {angle!r} must be one of {', '.join(ANGLE_MODES)}.")
    free = raw.get("free", False)
    if not isinstance(free, bool):
        raise _fail(path, where, "free must be true or false.")
    snomed, loinc = _text(raw, "snomed", path, where), _text(raw, "loinc", path, where)
    if snomed and not _SNOMED.match(snomed):
        raise _fail(path, where, f"{snomed!r} is not a SNOMED CT id.")
    if loinc and not _LOINC.match(loinc):
        raise _fail(path, where, f"{loinc!r} is not a LOINC code.")
    return MeasurementType(
        code=code,
        name=name,
        unit=unit,
        tools=tools,
        range=(low, high),
        direction=direction,
        modalities=_strings(raw.get("modalities", []), "modalities", path, where, _MODALITY),
        sites=_strings(raw.get("sites", []), "sites", path, where, _CODE),
        qualifiers=_qualifiers(raw.get("qualifiers", []), path, where),
        grades=grades,
        note=_text(raw, "note", path, where),
        citation=_text(raw, "citation", path, where),
        snomed=snomed,
        loinc=loinc,
        free=free,
        angle=angle,
        version=version,
    )


def load_types(path: Path) -> dict[str, MeasurementType]:
    """Read and check a measurement catalog file; the types by code, in file order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path.name}: {exc}") from None
    if data.get("catalog") != "measurements":
        raise CatalogError(f"{path.name}: expected catalog = 'measurements', found {data.get('catalog')!r}.")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CatalogError(f"{path.name}: version must be a positive whole number.")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogError(f"{path.name}: unknown key(s) {', '.join(unknown)}.")
    entries = data.get("type")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(f"{path.name}: no [[type]] entries.")
    types: dict[str, MeasurementType] = {}
    for number, raw in enumerate(entries, start=1):
        mtype = _type(raw, number, version, path)
        if mtype.code in types:
            raise _fail(path, f"type {mtype.code!r}", "appears twice.")
        types[mtype.code] = mtype
    return types


@cache
def measurement_types() -> dict[str, MeasurementType]:
    """The measurement types shipped with this version of Stride (read once per process)."""
    return load_types(MEASUREMENT_FILE)


def measurement_type(code: str) -> MeasurementType:
    """The shipped measurement type ``code``; :class:`Invalid` when there is none."""
    try:
        return measurement_types()[code]
    except (KeyError, TypeError):
        raise Invalid(f"Unknown measurement type {code!r}.", "type") from None


def catalog_version() -> int:
    """The version of the shipped measurement catalog (stored with every measurement)."""
    return next(iter(measurement_types().values())).version


def type_json(mtype: MeasurementType) -> dict[str, Any]:
    """``mtype`` as plain JSON data, for the image viewer."""
    return {
        "code": mtype.code,
        "name": mtype.name,
        "unit": mtype.unit,
        "unitSymbol": UNIT_SYMBOLS.get(mtype.unit, mtype.unit),
        "tools": list(mtype.tools),
        "isGrade": mtype.is_grade,
        "modalities": list(mtype.modalities),
        "sites": list(mtype.sites),
        "qualifiers": [
            {"code": q.code, "name": q.name, "options": list(q.options)} for q in mtype.qualifiers
        ],
        "direction": mtype.direction,
        "range": list(mtype.range),
        "grades": [{"value": g.value, "label": g.label} for g in mtype.grades],
        "angle": mtype.angle,
        "note": mtype.note,
        "citation": mtype.citation,
        "free": mtype.free,
        "version": mtype.version,
    }


# --------------------------------------------------------------------------- values of a type


def value_for(
    mtype: MeasurementType,
    tool: str,
    points: Sequence[Sequence[float]],
    calibration: Calibration | None,
) -> Result:
    """The value of ``mtype`` drawn with ``tool``, in the type's unit.

    Without a calibration a length stays in px and an area in px² (``calibrated`` False): it is
    stored as measured and never passed off as mm. A calibrated value outside the type's
    plausible range is refused (usually a wrong calibration or a misplaced point).
    """
    if mtype.is_grade:
        raise Invalid(f"{mtype.name} is a grade: enter it, it is not drawn.", "tool")
    if tool not in mtype.tools:
        allowed = " or ".join(mtype.tools)
        raise Invalid(f"{mtype.name} is measured with the {allowed} tool, not {tool!r}.", "tool")
    result = measure(tool, points, calibration)
    if tool == "angle" and mtype.angle == "deviation":
        result = Result(value=180.0 - result.value, unit=result.unit, calibrated=result.calibrated)
    if result.unit in ("px", "px2"):
        return result
    result = convert(result, mtype.unit)
    low, high = mtype.range
    if not low <= result.value <= high:
        symbol = UNIT_SYMBOLS.get(mtype.unit, mtype.unit)
        raise Invalid(
            f"{result.text} is outside the plausible range of {mtype.name} ({low:g}–{high:g} {symbol}); "
            "check the calibration and the points.",
            "points",
        )
    return result


def check_grade(mtype: MeasurementType, value: Any) -> int:
    """``value`` as a grade of ``mtype``; :class:`Invalid` unless it is one of its grades."""
    if not mtype.is_grade:
        raise Invalid(f"{mtype.name} is measured on the image, not graded.", "value")
    whole_text = isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value)
    if whole_text or (isinstance(value, float) and value.is_integer()):
        value = int(value)
    allowed = ", ".join(str(g.value) for g in mtype.grades)
    if isinstance(value, bool) or not isinstance(value, int) or value not in {g.value for g in mtype.grades}:
        raise Invalid(f"{value!r} is not a {mtype.name}; choose one of {allowed}.", "value")
    return value


def check_site(mtype: MeasurementType, site: str) -> str:
    """``site`` when ``mtype`` is taken there (or no site was given); :class:`Invalid` otherwise."""
    if site and mtype.sites and site not in mtype.sites:
        raise Invalid(
            f"{mtype.name} is not measured at {site!r}; its sites are {', '.join(mtype.sites)}.", "site"
        )
    return site


def check_qualifiers(mtype: MeasurementType, values: Mapping[str, Any] | None) -> dict[str, str]:
    """The qualifiers given, checked against the type's options (unanswered ones left out)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise Invalid("The qualifiers must be a mapping of qualifier code to option.", "qualifiers")
    known = {q.code: q for q in mtype.qualifiers}
    for code in values:
        if code not in known:
            raise Invalid(f"{mtype.name} has no qualifier {code!r}.", "qualifiers")
    checked: dict[str, str] = {}
    for code, qualifier in known.items():
        value = values.get(code)
        if value is None or value == "":
            continue
        if value not in qualifier.options:
            raise Invalid(
                f"{qualifier.name}: {value!r} is not one of {', '.join(qualifier.options)}.", "qualifiers"
            )
        checked[code] = value
    return checked


# --------------------------------------------------------------------------- as an instrument

_INSTRUMENT_DIRECTIONS: Mapping[str, str] = {
    "higher-better": "higher-better",
    "lower-better": "higher-worse",
    "": "",
}
_NO_RESPONDER = (
    "No responder definition exists for image measurements: a change is reported as measured, "
    "to be judged against the measurement error given in the type's note."
)


def as_instrument(mtype: MeasurementType) -> Instrument:
    """``mtype`` as a one-scale instrument (code ``img-<code>``, scale ``value``), for analyses.

    The scale's direction is the instrument library's (``higher-worse`` for a lower-better type);
    a type with no better direction keeps an empty direction, which callers must not read as
    "lower is better".
    """
    code = mtype.instrument_code
    link_id = f"{code}-01"
    options = tuple(AnswerOption(value=g.value, label=g.label) for g in mtype.grades)
    item = Item(
        link_id=link_id,
        number=1,
        label=mtype.name,
        option_set="grades" if options else "measured",
        options=options,
    )
    scale = Scale(
        code="value",
        name=mtype.name,
        items=(link_id,),
        range=mtype.range,
        direction=_INSTRUMENT_DIRECTIONS[mtype.direction],
        unit=mtype.unit,
    )
    how = "graded on the image" if mtype.is_grade else f"measured on the image in {mtype.unit}"
    return Instrument(
        code=code,
        version=str(mtype.version),
        name=mtype.name,
        short_name=mtype.name,
        licence="A measurement defined in Stride's imaging catalog; free to use.",
        citation=mtype.citation,
        licensed=False,
        loinc=mtype.loinc,
        scoring="single-value",
        policy="single-answer",
        policies=("single-answer",),
        policy_notes={"single-answer": f"The value is the {mtype.name.lower()} itself, {how}."},
        baseline=True,
        items=(item,),
        scales={"value": scale},
        responder=Responder(default="", definitions={}, note=_NO_RESPONDER),
        note=mtype.note,
    )


@cache
def _instrument(code: str) -> Instrument:
    return as_instrument(measurement_type(code))


def instrument_for(code: str) -> Instrument:
    """The instrument of the shipped measurement type named by ``img-<type code>``."""
    if not isinstance(code, str) or not code.startswith(INSTRUMENT_PREFIX):
        raise Invalid(
            f"{code!r} is not an image measurement (its code starts with {INSTRUMENT_PREFIX!r}).",
            "instrument",
        )
    try:
        return _instrument(code.removeprefix(INSTRUMENT_PREFIX))
    except Invalid:
        raise Invalid(f"Unknown image measurement instrument {code!r}.", "instrument") from None
