"""The synthetic ultrasound and X-ray phantoms: headers, geometry, and pictures that match their landmarks."""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pydicom
import pytest

from stride.core import imaging, phantoms
from stride.core.errors import Invalid

PATIENT = {
    "patient_name": "Marsh^Helen",
    "patient_id": "LFA-1001",
    "birth_date": dt.date(1967, 3, 9),
    "sex": "female",
    "study_date": dt.date(2025, 11, 3),
}


def _us(**kw: object) -> phantoms.Phantom:
    values = {**PATIENT, "laterality": "left", "seed": 7, "muscle_mm": 2.4, "neuroma_mm": 6.0} | kw
    return phantoms.ultrasound(**values)  # type: ignore[arg-type]


def _xray(**kw: object) -> phantoms.Phantom:
    values = {**PATIENT, "laterality": "right", "seed": 7, "medial_mm": 0.9, "lateral_mm": 1.8} | kw
    return phantoms.xray(**values)  # type: ignore[arg-type]


def _read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _length_px(points: tuple[tuple[float, float], ...]) -> float:
    (x1, y1), (x2, y2) = points
    return math.hypot(x2 - x1, y2 - y1)


# --------------------------------------------------------------------------- ultrasound


@pytest.mark.parametrize(("depth_mm", "height"), [(30.0, 480), (40.0, 600), (25.0, 400)])
def test_the_ultrasound_region_carries_the_pixel_spacing_asked_for(depth_mm: float, height: int) -> None:
    phantom = _us(depth_mm=depth_mm, height=height, width=height * 4 // 3)
    ds = _read(phantom.data)
    (region,) = ds.SequenceOfUltrasoundRegions
    assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)  # cm
    assert region.PhysicalDeltaX * 10 == pytest.approx(depth_mm / height, rel=1e-12)
    assert region.PhysicalDeltaY * 10 == pytest.approx(depth_mm / height, rel=1e-12)
    assert "PixelSpacing" not in ds
    info = imaging.inspect(phantom.data)
    assert info.spacing_source == "SequenceOfUltrasoundRegions"
    assert info.spacing == pytest.approx((depth_mm / height, depth_mm / height), rel=1e-9)
    assert phantom.spacing == pytest.approx(info.spacing, rel=1e-9)


def test_the_ultrasound_header_names_the_patient_and_the_picture() -> None:
    ds = _read(_us().data)
    assert ds.Modality == "US" and ds.SOPClassUID == phantoms.US_IMAGE_STORAGE
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == (
        "Marsh^Helen",
        "LFA-1001",
        "19670309",
        "F",
    )
    assert ds.ImageLaterality == "L" and ds.StudyDate == ds.AcquisitionDate == "20251103"
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.PhotometricInterpretation) == (
        480,
        640,
        8,
        "MONOCHROME2",
    )
    assert "NumberOfFrames" not in ds and ds.pixel_array.shape == (480, 640)
    assert ds.ImageComments == phantoms.PHANTOM_COMMENT and ds.BurnedInAnnotation == "NO"
    info = imaging.inspect(_us().data)
    assert (info.patient_name, info.patient_id, info.laterality) == ("Marsh^Helen", "LFA-1001", "left")
    assert info.acquired_on == dt.date(2025, 11, 3)


@pytest.mark.parametrize("muscle_mm", [1.2, 2.4, 4.0, 7.5])
def test_the_muscle_band_is_as_thick_as_asked_and_where_its_landmarks_say(muscle_mm: float) -> None:
    phantom = _us(muscle_mm=muscle_mm, neuroma_mm=None)
    row_mm = phantom.spacing[0]
    top, bottom = phantom.landmarks["interosseous-thickness"]
    assert top[0] == bottom[0]  # a vertical (dorsoplantar) line
    assert abs(phantom.length_mm("interosseous-thickness") - muscle_mm) <= row_mm
    assert phantom.sizes["interosseous-thickness"] == muscle_mm
    # In the picture: bright fascia above and below, a dark band between, its edges at the landmarks.
    pixels = _read(phantom.data).pixel_array.astype(float)
    x = round(top[0])
    profile = pixels[:, x - 20 : x + 21].mean(axis=1)
    steps = np.diff(profile)  # steps[i]: from row i to row i + 1
    window = slice(round(top[1]) - 4, round(top[1]) + 4)
    falls_after = window.start + int(np.argmin(steps[window]))
    assert abs((falls_after + 0.5) - top[1]) <= 1
    window = slice(round(bottom[1]) - 4, round(bottom[1]) + 4)
    rises_after = window.start + int(np.argmax(steps[window]))
    assert abs((rises_after + 0.5) - bottom[1]) <= 1
    band = profile[math.ceil(top[1]) + 1 : math.floor(bottom[1]) - 1].mean()
    fascia = profile[math.floor(top[1]) - 5 : math.floor(top[1])].mean()
    assert band < fascia - 60
    measured = (rises_after - falls_after) * row_mm
    assert abs(measured - muscle_mm) <= 1.5 * row_mm


def test_the_neuroma_is_round_dark_and_as_wide_as_asked() -> None:
    phantom = _us(neuroma_mm=6.0)
    left, right = phantom.landmarks["neuroma-diameter"]
    assert left[1] == right[1]  # transverse
    assert abs(phantom.length_mm("neuroma-diameter") - 6.0) <= phantom.spacing[1]
    (centre,) = phantom.landmarks["neuroma-centre"]
    assert centre == pytest.approx(((left[0] + right[0]) / 2, left[1]))
    pixels = _read(phantom.data).pixel_array.astype(float)
    r = _length_px((left, right)) / 2
    cx, cy = round(centre[0]), round(centre[1])
    inside = pixels[cy - int(r / 2) : cy + int(r / 2), cx - int(r / 2) : cx + int(r / 2)].mean()
    gap = round(1.4 / phantom.spacing[1])  # between the neuroma and the metatarsal beside it
    beside = pixels[cy - int(r / 2) : cy + int(r / 2), cx + int(r) + 4 : cx + int(r) + gap].mean()
    assert inside < beside - 40  # hypoechoic
    without = _us(neuroma_mm=None)
    assert "neuroma-diameter" not in without.landmarks


def test_a_clip_has_its_frames_each_slightly_different_and_its_anatomy_tracked() -> None:
    phantom = _us(frames=12, width=320, height=240, depth_mm=15.0, muscle_depth_mm=4.0, neuroma_mm=4.0)
    ds = _read(phantom.data)
    assert ds.SOPClassUID == phantoms.US_MULTIFRAME_IMAGE_STORAGE
    assert int(ds.NumberOfFrames) == 12 == phantom.frames == len(phantom.shifts)
    assert ds.FrameIncrementPointer == 0x00181063 and float(ds.FrameTime) == 40.0
    pixels = ds.pixel_array
    assert pixels.shape == (12, 240, 320)
    assert phantom.shifts[0] == (0, 0)
    assert imaging.inspect(phantom.data).frames == 12
    # Frames differ (speckle, probe motion) but only slightly: most of the picture stays alike.
    for k in range(1, 12):
        assert not np.array_equal(pixels[k], pixels[0])
        correlation = np.corrcoef(pixels[k].ravel().astype(float), pixels[0].ravel().astype(float))[0, 1]
        assert correlation > 0.5
    assert len(set(phantom.shifts)) > 1 and all(abs(dx) <= 4 and abs(dy) <= 4 for dx, dy in phantom.shifts)
    # The landmarks follow the anatomy: the band's upper edge moves with the frame's shift.
    for k in (0, 5, 9):
        top, _ = phantom.landmarks_at(k)["interosseous-thickness"]
        profile = pixels[k].astype(float)[:, round(top[0]) - 15 : round(top[0]) + 16].mean(axis=1)
        window = slice(round(top[1]) - 4, round(top[1]) + 4)
        falls_after = window.start + int(np.argmin(np.diff(profile)[window]))
        assert abs(falls_after + 0.5 - top[1]) <= 1, k
        assert phantom.length_mm("interosseous-thickness", k) == pytest.approx(2.4)
    with pytest.raises(Invalid):
        phantom.landmarks_at(12)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_another_picture() -> None:
    assert _us().data == _us().data
    assert _xray().data == _xray().data
    small = {
        "frames": 3,
        "width": 160,
        "height": 120,
        "depth_mm": 12.0,
        "muscle_depth_mm": 3.0,
        "neuroma_mm": None,
    }
    assert _us(**small).data == _us(**small).data
    other = _us(seed=8)
    assert other.data != _us().data
    assert other.landmarks == _us().landmarks  # the geometry does not depend on the seed
    assert _read(other.data).SOPInstanceUID != _read(_us().data).SOPInstanceUID
    assert _read(_xray(seed=8).data).SOPInstanceUID != _read(_xray().data).SOPInstanceUID


# --------------------------------------------------------------------------- X-ray


def test_the_xray_header_is_a_12_bit_dp_foot_with_its_spacing_and_window() -> None:
    phantom = _xray(spacing_mm=0.12, width=800, height=700)
    ds = _read(phantom.data)
    assert ds.Modality == "DX" and ds.SOPClassUID == phantoms.DX_IMAGE_STORAGE_FOR_PRESENTATION
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert [float(v) for v in ds.PixelSpacing] == [0.12, 0.12]
    assert float(ds.WindowWidth) > 0
    assert ds.ImageLaterality == "R" and ds.BodyPartExamined == "FOOT"
    assert "weight-bearing" in ds.SeriesDescription
    pixels = ds.pixel_array
    assert pixels.shape == (700, 800) and pixels.dtype == np.uint16 and int(pixels.max()) <= 4095
    info = imaging.inspect(phantom.data)
    assert info.spacing == (0.12, 0.12) and info.spacing_source == "PixelSpacing"
    assert info.window == (float(ds.WindowCenter), float(ds.WindowWidth))
    assert (info.patient_id, info.patient_birth_date) == ("LFA-1001", dt.date(1967, 3, 9))


def _profile_gap_px(pixels: np.ndarray, points: tuple[tuple[float, float], ...]) -> float:
    """The width, in pixels, of the dark gap crossed by the line through ``points`` (extended 1.5× beyond)."""
    (x1, y1), (x2, y2) = points
    length = math.hypot(x2 - x1, y2 - y1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    t = np.arange(-length * 1.5, length * 2.5, 0.05)
    xs, ys = x1 + t * ux, y1 + t * uy
    # Bilinear sampling along the line.
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    p = pixels.astype(float)
    values = (
        p[y0, x0] * (1 - fx) * (1 - fy)
        + p[y0, x0 + 1] * fx * (1 - fy)
        + p[y0 + 1, x0] * (1 - fx) * fy
        + p[y0 + 1, x0 + 1] * fx * fy
    )
    middle = (t >= 0) & (t <= length)
    low = values[middle].min()
    high = min(values[t < 0].max(), values[t > length].max())
    dark = np.flatnonzero(values < (low + high) / 2)
    start = dark[np.argmin(np.abs(t[dark] - length / 2))]  # the dark run around the middle
    run = [start]
    while run[-1] + 1 < len(values) and values[run[-1] + 1] < (low + high) / 2:
        run.append(run[-1] + 1)
    while run[0] > 0 and values[run[0] - 1] < (low + high) / 2:
        run.insert(0, run[0] - 1)
    return (t[run[-1]] - t[run[0]]) * 1.0


@pytest.mark.parametrize(("laterality", "medial_mm", "lateral_mm"), [("right", 0.9, 1.8), ("left", 1.6, 2.1)])
def test_the_joint_space_is_as_wide_as_asked_medially_and_laterally(
    laterality: str, medial_mm: float, lateral_mm: float
) -> None:
    phantom = _xray(laterality=laterality, medial_mm=medial_mm, lateral_mm=lateral_mm)
    mm = phantom.spacing[0]
    assert abs(phantom.length_mm("mtp1-jsw-medial") - medial_mm) <= mm
    assert abs(phantom.length_mm("mtp1-jsw-lateral") - lateral_mm) <= mm
    (centre,) = phantom.landmarks["joint-centre"]
    medial_x = phantom.landmarks["mtp1-jsw-medial"][0][0]
    # Seen from above with the toes up, the big toe's medial side is right on a right foot.
    assert (medial_x > centre[0]) == (laterality == "right")
    pixels = _read(phantom.data).pixel_array
    for name, wide in (("mtp1-jsw-medial", medial_mm), ("mtp1-jsw-lateral", lateral_mm)):
        gap_px = _profile_gap_px(pixels, phantom.landmarks[name])
        assert abs(gap_px * mm - wide) <= mm, (name, gap_px * mm)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("build", "kw", "field"),
    [
        (_us, {"laterality": "both"}, "laterality"),
        (_us, {"sex": "x"}, "sex"),
        (_us, {"muscle_mm": 0.0}, "muscle_mm"),
        (_us, {"neuroma_mm": 40.0}, "neuroma_mm"),
        (_us, {"depth_mm": 8.0}, "depth_mm"),
        (_us, {"frames": 0}, "frames"),
        (_xray, {"medial_mm": 0.0}, "medial_mm"),
        (_xray, {"spacing_mm": 0.01}, "spacing_mm"),
        (_xray, {"width": 100, "height": 100, "spacing_mm": 0.1}, "size"),
    ],
)
def test_impossible_phantoms_are_refused(build, kw: dict, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        build(**kw)
    assert caught.value.field == field
