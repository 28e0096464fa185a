"""Reading, checking, rendering and de-identifying image files (stride.core.imaging).

Plain functions over bytes built in memory by tests/dicoms.py: no database, no Django.
"""

from __future__ import annotations

import datetime as dt
import io
import time

import numpy as np
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundImageStorage,
)

from stride.core import imaging
from stride.core.errors import Invalid
from stride.core.imaging import deidentify, frame_array, identifiers, inspect, render, voi_linear
from tests import dicoms
from tests.dicoms import decode, read, ultrasound, xray

PSEUDONYM = "STRIDE-0001"


def _refused(data: bytes, match: str) -> Invalid:
    with pytest.raises(Invalid, match=match) as caught:
        inspect(data)
    assert caught.value.field == "file"
    return caught.value


# --------------------------------------------------------------------------- what inspect reads


def test_an_ultrasound_header_is_read() -> None:
    info = inspect(ultrasound(frames=3, colour=True))
    assert (info.format, info.modality, info.width, info.height) == ("dicom", "US", 64, 48)
    assert (info.frames, info.samples) == (3, 3)
    assert info.acquired_on == dt.date(2024, 3, 4)  # AcquisitionDate before StudyDate
    assert (info.laterality, info.body_part, info.view) == ("left", "FOOT", "")
    assert (info.patient_name, info.patient_id) == (dicoms.NAME, dicoms.PATIENT_ID)
    assert info.patient_birth_date == dt.date(1961, 2, 14)
    assert info.transfer_syntax == ExplicitVRLittleEndian
    assert info.compressed is False
    assert info.burned_in_annotation == "YES"
    assert info.window is None


def test_the_acquisition_date_falls_back_to_content_study_and_series_dates() -> None:
    data = xray(AcquisitionDate="", AcquisitionDateTime="", ContentDate="", StudyDate="20230101")
    assert inspect(data).acquired_on == dt.date(2023, 1, 1)
    data = xray(
        AcquisitionDate="", AcquisitionDateTime="", ContentDate="", StudyDate="", SeriesDate="20220202"
    )
    assert inspect(data).acquired_on == dt.date(2022, 2, 2)
    assert inspect(xray(identified=False)).acquired_on is None


def test_an_xray_header_is_read() -> None:
    info = inspect(xray(window=(["2000", "1500"], ["1001", "800"])))
    assert (info.modality, info.samples, info.frames) == ("DX", 1, 1)
    assert info.window == (2000.0, 1001.0)  # the first of several
    assert (info.laterality, info.view) == ("right", "AP")
    assert info.burned_in_annotation == "NO"


def test_a_photograph_is_read() -> None:
    for fmt in ("png", "jpeg"):
        info = inspect(dicoms.picture(fmt))
        assert (info.format, info.modality, info.width, info.height) == (fmt, "XC", 40, 30)
        assert (info.frames, info.samples, info.spacing, info.window) == (1, 3, None, None)
        assert info.acquired_on == dt.date(2024, 3, 4)  # EXIF DateTimeOriginal
    grey = dicoms.picture("png", pixels=dicoms.gradient(10, 12), metadata=False)
    assert inspect(grey).samples == 1
    assert inspect(grey).acquired_on is None


# --------------------------------------------------------------------------- spacing


def test_ultrasound_spacing_comes_from_the_first_region_calibrated_in_centimetres() -> None:
    doppler = dicoms.ultrasound_region(48, 64, delta_mm=(5, 5), units=(4, 7))  # seconds, cm/s
    b_mode = dicoms.ultrasound_region(48, 64, delta_mm=(0.08, 0.12))
    info = inspect(ultrasound(regions=[doppler, b_mode]))
    assert info.spacing == pytest.approx((0.08, 0.12))
    assert info.spacing_source == "SequenceOfUltrasoundRegions"


def test_ultrasound_without_a_centimetre_region_has_no_spacing() -> None:
    region = dicoms.ultrasound_region(48, 64, units=(0, 0))  # "none"
    info = inspect(ultrasound(regions=[region]))
    assert (info.spacing, info.spacing_source) == (None, "")


def test_pixel_spacing_comes_before_imager_pixel_spacing() -> None:
    both = inspect(xray(pixel_spacing=(0.1, 0.12), imager_spacing=(0.2, 0.2)))
    assert (both.spacing, both.spacing_source) == (pytest.approx((0.1, 0.12)), "PixelSpacing")
    imager = inspect(xray(pixel_spacing=None, imager_spacing=(0.143, 0.139)))
    assert (imager.spacing, imager.spacing_source) == (pytest.approx((0.143, 0.139)), "ImagerPixelSpacing")
    zero = inspect(xray(pixel_spacing=(0, 0), imager_spacing=(0.2, 0.2)))  # unusable, so the next source
    assert zero.spacing_source == "ImagerPixelSpacing"
    none = inspect(xray(pixel_spacing=None))
    assert (none.spacing, none.spacing_source) == (None, "")


def test_enhanced_images_keep_pixel_spacing_in_the_functional_groups() -> None:
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.6]
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    data = dicoms.dicom(dicoms.gradient(8, 8), modality="MR", SharedFunctionalGroupsSequence=[shared])
    info = inspect(data)
    assert (info.spacing, info.spacing_source) == (pytest.approx((0.5, 0.6)), "PixelSpacing")


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("syntax", "uid", "exact"),
    [
        ("explicit", ExplicitVRLittleEndian, True),
        ("implicit", "1.2.840.10008.1.2", True),
        ("no-preamble", ExplicitVRLittleEndian, True),
        ("no-meta", "1.2.840.10008.1.2", True),
        ("rle", RLELossless, True),
        ("jpeg", JPEGBaseline8Bit, False),
        ("j2k", JPEG2000Lossless, True),
    ],
)
def test_every_encoding_stride_reads_gives_the_same_pixels(syntax: str, uid: str, exact: bool) -> None:
    expected = dicoms.gradient(48, 64, frames=3)
    data = ultrasound(frames=3, syntax=syntax)
    info = inspect(data)
    assert (info.frames, info.transfer_syntax) == (3, uid)
    assert info.compressed is (syntax in ("rle", "jpeg", "j2k"))
    assert info.spacing == pytest.approx((0.1, 0.2))
    values = frame_array(data, 2)
    assert values.dtype == np.float32
    assert values.shape == (48, 64)
    tolerance = 0 if exact else 2
    assert np.abs(values - expected[2]).max() <= tolerance


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpeg"])
def test_colour_ultrasound_comes_out_as_rgb(syntax: str) -> None:
    expected = dicoms.gradient(48, 64, frames=2, colour=True)
    data = ultrasound(frames=2, colour=True, syntax=syntax)
    values = frame_array(data, 1)
    assert values.dtype == np.uint8
    assert values.shape == (48, 64, 3)
    tolerance = 0 if syntax != "jpeg" else 8  # JPEG's YBR 4:2:2 round trip
    assert np.abs(values.astype(int) - expected[1]).max() <= tolerance
    rendered = decode(render(data, frame=1))
    assert rendered.shape == (48, 64, 3)
    assert np.abs(rendered.astype(int) - expected[1]).max() <= tolerance


def test_grey_values_come_after_the_modality_lut() -> None:
    stored = np.array([[0, 100], [1000, 4095]], dtype=np.uint16)
    data = xray(pixels=stored, RescaleSlope=2, RescaleIntercept=-1000)
    assert frame_array(data).tolist() == [[-1000, -800], [1000, 7190]]


def test_photographs_come_out_as_rgb_or_grey() -> None:
    rgb = dicoms.gradient(30, 40, colour=True)
    assert np.array_equal(frame_array(dicoms.picture("png", pixels=rgb)), rgb)
    grey = dicoms.gradient(30, 40)
    values = frame_array(dicoms.picture("png", pixels=grey))
    assert values.dtype == np.float32
    assert np.array_equal(values, grey)
    rgba = np.dstack([rgb, np.zeros((30, 40), np.uint8)])  # fully transparent: flattened onto white
    assert (frame_array(dicoms.picture("png", pixels=rgba)) == 255).all()


# --------------------------------------------------------------------------- geometry survives rendering


def test_a_bar_of_known_length_survives_render_at_full_size() -> None:
    phantom = dicoms.bar(48, 64, row=20, col=7, length=40, value=250, background=10)
    data = ultrasound(pixels=phantom)
    image = decode(render(data))
    assert image.shape == (48, 64)
    bright = np.argwhere(image > 128)
    assert (bright[:, 0].min(), bright[:, 0].max()) == (20, 22)
    assert (bright[:, 1].min(), bright[:, 1].max()) == (7, 46)
    _, col_mm = inspect(data).spacing
    assert (bright[:, 1].max() - bright[:, 1].min() + 1) * col_mm == pytest.approx(8.0)


def test_a_scaled_rendition_keeps_the_aspect_and_the_proportions() -> None:
    phantom = dicoms.bar(100, 200, row=40, col=20, length=100, thickness=20, value=255)
    data = xray(pixels=phantom.astype(np.uint16), window=None, bits_stored=8)
    image = decode(render(data, size=100))
    assert image.shape == (50, 100)
    row = image[25]
    bright = np.flatnonzero(row > 128)
    assert bright.min() == pytest.approx(10, abs=1)
    assert bright.max() - bright.min() + 1 == pytest.approx(50, abs=1)
    assert decode(render(data, size=500)).shape == (100, 200)  # never scaled up


def test_render_writes_jpeg_when_asked() -> None:
    out = render(ultrasound(), fmt="jpeg")
    assert out[:3] == b"\xff\xd8\xff"
    assert decode(out).shape == (48, 64)


def test_render_refuses_bad_arguments() -> None:
    data = ultrasound()
    for kwargs, field in (
        ({"fmt": "gif"}, "fmt"),
        ({"size": 0}, "size"),
        ({"window": (100, 0)}, "window"),
        ({"window": ("a", 3)}, "window"),
        ({"frame": 1}, "frame"),
        ({"frame": -1}, "frame"),
    ):
        with pytest.raises(Invalid) as caught:
            render(data, **kwargs)
        assert caught.value.field == field


# --------------------------------------------------------------------------- frames


def _marked_frames(frames: int, rows: int = 40, cols: int = 80) -> np.ndarray:
    """Frame k has a bright 6 × 6 square at x = 10 k, y = 10 on a dark ramp."""
    arr = np.stack([dicoms.gradient(rows, cols, high=60)] * frames)
    for k in range(frames):
        arr[k, 10:16, 10 * k : 10 * k + 6] = 255
    return arr


@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpeg"])
def test_the_chosen_frame_is_the_one_rendered(syntax: str) -> None:
    data = ultrasound(pixels=_marked_frames(5), frames=5, syntax=syntax)
    for k in (0, 3, 4):
        image = decode(render(data, frame=k))
        bright = np.argwhere(image > 200)
        assert (bright[:, 1].min(), bright[:, 1].max()) == (10 * k, 10 * k + 5)
        assert frame_array(data, k)[12, 10 * k + 2] >= 250
    with pytest.raises(Invalid, match="Frame 5 does not exist: the image has frames 0–4") as caught:
        frame_array(data, 5)
    assert caught.value.field == "frame"


def test_one_frame_of_a_50_mb_multiframe_file_renders_quickly() -> None:
    frames = 57  # 57 × 640 × 480 × 3 bytes: 52.5 MB uncompressed
    arr = np.zeros((frames, 480, 640, 3), np.uint8)
    for k in range(frames):
        arr[k, 100:110, 10 * k : 10 * k + 8] = 255
    data = ultrasound(pixels=arr, frames=frames)
    assert len(data) > 50_000_000
    started = time.perf_counter()
    info = inspect(data)
    image = decode(render(data, frame=40, size=640))
    elapsed = time.perf_counter() - started
    assert info.frames == frames
    bright = np.argwhere(image[..., 0] > 200)
    assert (bright[:, 1].min(), bright[:, 1].max()) == (400, 407)
    assert elapsed < 2, f"inspect and render took {elapsed:.2f} s"


# --------------------------------------------------------------------------- windowing


def _row_values(values: list[int]) -> np.ndarray:
    return np.array([values] * 4, dtype=np.uint16)


def test_the_header_window_maps_grey_levels_by_the_dicom_linear_function() -> None:
    # centre 2000, width 1001: 0 at or below 1499.5, 255 above 2499.5, linear between
    data = xray(pixels=_row_values([1000, 1750, 2000, 2250, 3000]), window=(2000, 1001))
    assert decode(render(data))[0].tolist() == [0, 64, 128, 191, 255]


def test_a_given_window_overrides_the_header() -> None:
    data = xray(pixels=_row_values([0, 1000, 2000, 3000]), window=(2000, 1001))
    assert decode(render(data, window=(1000, 2001)))[0].tolist() == [0, 128, 255, 255]


def test_without_a_header_window_the_frame_spans_black_to_white() -> None:
    data = xray(pixels=_row_values([300, 400, 500, 700]), window=None)
    assert decode(render(data))[0].tolist() == [0, 64, 128, 255]


def test_monochrome1_is_inverted_after_windowing() -> None:
    data = xray(pixels=_row_values([1000, 1750, 2000, 2250, 3000]), photometric="MONOCHROME1")
    assert decode(render(data))[0].tolist() == [255, 191, 127, 64, 0]
    assert inspect(data).window == (2000.0, 1001.0)


def test_an_eight_bit_grey_photograph_is_shown_as_stored() -> None:
    grey = dicoms.gradient(10, 12, high=120)
    assert np.array_equal(decode(render(dicoms.picture("png", pixels=grey))), grey)


def test_a_window_of_width_one_is_a_threshold() -> None:
    assert voi_linear(np.array([9.0, 9.5, 10.0]), 10, 1).tolist() == [0, 0, 255]


# --------------------------------------------------------------------------- masks


def test_masks_are_painted_black_in_original_coordinates() -> None:
    data = ultrasound(pixels=np.full((48, 64), 200, np.uint8), WindowCenter=128, WindowWidth=256)
    image = decode(render(data, masks=[(5, 6, 10, 4), (60, 40, 20, 20)]))
    assert (image[6:10, 5:15] == 0).all()
    assert (image[40:48, 60:64] == 0).all()  # clipped at the edge
    untouched = np.ones_like(image, dtype=bool)
    untouched[6:10, 5:15] = untouched[40:48, 60:64] = False
    assert (image[untouched] == 200).all()


def test_masks_are_black_on_monochrome1_and_colour_images() -> None:
    mono1 = xray(pixels=_row_values([1000, 1000, 1000, 1000]), photometric="MONOCHROME1")
    assert decode(render(mono1, masks=[(0, 0, 2, 4)]))[0].tolist() == [0, 0, 255, 255]
    colour = ultrasound(colour=True)
    assert (decode(render(colour, masks=[(0, 0, 8, 8)]))[:8, :8] == 0).all()
    photo = dicoms.picture("jpeg")
    assert (decode(render(photo, masks=[(0, 0, 16, 16)]))[:12, :12] < 8).all()


def test_bad_masks_are_refused() -> None:
    data = ultrasound()
    for masks, match in (
        ([(0, 0, 0, 5)], "Mask 1 must have a width and height above 0"),
        ([(0, 0, 5, 5), (100, 100, 5, 5)], r"Mask 2 \(x 100, y 100, 5 × 5\) lies outside the 64 × 48 image"),
        ([(0, 0, 5)], "Mask 1 must be four whole numbers"),
        ([(0.5, 0, 5, 5)], "Mask 1 must be four whole numbers"),
    ):
        with pytest.raises(Invalid, match=match) as caught:
            render(data, masks=masks)
        assert caught.value.field == "masks"


# --------------------------------------------------------------------------- refusals


def test_a_text_file_is_refused() -> None:
    _refused(
        b"Patient: Jane Doe\nNothing to see here.\n" * 10, r"^The file is not a DICOM, PNG or JPEG image\.$"
    )


def test_an_empty_file_is_refused() -> None:
    _refused(b"", r"^The file is empty\.$")


def test_a_truncated_uncompressed_dicom_is_refused() -> None:
    data = ultrasound(frames=3)
    _refused(data[:-1000], r"^The DICOM file is truncated: its pixel data ends after 8,216 of 9,216 bytes\.$")


@pytest.mark.filterwarnings("ignore:End of file reached before delimiter")
@pytest.mark.parametrize("syntax", ["rle", "jpeg"])
def test_a_truncated_compressed_dicom_is_refused(syntax: str) -> None:
    data = ultrasound(frames=3, syntax=syntax)
    _refused(data[:-100], "truncated or damaged: it describes a 64 × 48 image but its pixel data is missing")


def test_a_dicom_cut_inside_its_header_is_refused() -> None:
    _refused(ultrasound()[:400], "The DICOM file is truncated or damaged")


def test_damaged_jpeg_data_inside_a_dicom_is_refused() -> None:
    ds = read(ultrasound(syntax="jpeg"))
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + bytes(range(256)) * 4])
    _refused(dicoms.write(ds), r"^The DICOM pixel data cannot be decoded \(")


def test_a_corrupt_jpeg_photograph_is_refused() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = dicoms.picture("jpeg", pixels=noise, metadata=False)
    _refused(data[: len(data) * 2 // 3], r"^The JPEG file is damaged or truncated and cannot be decoded\.$")
    _refused(data[:4] + b"\x00" * 200, r"^The JPEG file is damaged or truncated")


def test_a_corrupt_png_is_refused() -> None:
    data = bytearray(dicoms.picture("png", pixels=dicoms.gradient(50, 60, colour=True), metadata=False))
    middle = len(data) // 2
    data[middle : middle + 40] = b"\x00" * 40
    _refused(bytes(data), r"^The PNG file is damaged or truncated and cannot be decoded\.$")


def test_a_dicom_without_pixel_data_is_refused() -> None:
    _refused(
        dicoms.structured_report(),
        r"^The DICOM file holds no image: it is a Basic Text SR Storage without pixel data\.$",
    )


def test_jpeg_lossless_x_rays_decode_to_the_exact_pixels() -> None:
    # Process 14 (SV1) is what many CR/DX units export; GDCM decodes it for pydicom.
    plain = xray(rows=40, cols=32)
    data = xray(rows=40, cols=32, syntax="jpeg-lossless")
    assert read(data).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    info = inspect(data)
    assert info.compressed and (info.width, info.height) == (32, 40)
    assert np.array_equal(frame_array(data, 0), frame_array(plain, 0))


def test_a_compression_stride_cannot_decode_is_refused_by_name() -> None:
    ds = read(ultrasound(syntax="j2k"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # High-Throughput JPEG 2000
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    error = _refused(buffer.getvalue(), "Stride cannot decode DICOM pixel data stored as High-Throughput")
    assert "(1.2.840.10008.1.2.4.201)" in error.message
    with pytest.raises(Invalid, match="Stride cannot decode"):
        render(buffer.getvalue())


def test_an_unknown_transfer_syntax_is_refused() -> None:
    ds = read(ultrasound())
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.8.498.999"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)
    error = _refused(buffer.getvalue(), "an unknown transfer syntax")
    assert "1.2.826.0.1.3680043.8.498.999" in error.message


def test_too_many_frames_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "MAX_FRAMES", 3)
    _refused(ultrasound(frames=4), r"^The DICOM file has 4 frames; Stride reads at most 3\.$")


# --------------------------------------------------------------------------- de-identification


def _tags(ds: Dataset) -> list[object]:
    found: list[object] = []
    ds.walk(lambda _, elem: found.append(elem.tag))
    return found


def test_the_profile_names_only_attributes_dicom_defines() -> None:
    for keyword in imaging._REMOVE | imaging._EMPTY | imaging._CLASS_UIDS:
        assert tag_for_keyword(keyword) is not None, keyword


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "no-meta", "rle", "jpeg"])
def test_deidentify_removes_every_identifier(syntax: str) -> None:
    data = ultrasound(frames=2, syntax=syntax, pixels=np.zeros((2, 48, 64), np.uint8))
    before = identifiers(data)
    assert any(dicoms.NAME in found for found in before)
    assert any("(private)" in found for found in before)
    out = deidentify(data, pseudonym=PSEUDONYM)
    assert identifiers(out, pseudonym=PSEUDONYM) == []
    for secret in dicoms.SECRETS:
        assert secret.encode() not in out, secret
    ds = read(out)
    assert not any(tag.is_private for tag in _tags(ds))
    assert not any(0x6000 <= tag.group <= 0x60FF for tag in _tags(ds))
    assert (ds.PatientName, ds.PatientID, ds.PatientBirthDate) == (PSEUDONYM, PSEUDONYM, "")
    assert (ds.PatientSex, ds.PatientAge) == ("F", "063Y")  # patient characteristics are kept
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod[0] == imaging.METHOD
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100", "113108"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.StudyDate == ds.AcquisitionDate == ds.StudyTime == ""
    assert ds.Manufacturer == "Acme Medical"
    assert ds.BurnedInAnnotation == "YES"  # nothing was masked
    info = inspect(out)
    assert (info.spacing, info.spacing_source) == (inspect(data).spacing, "SequenceOfUltrasoundRegions")
    assert (info.patient_name, info.acquired_on, info.patient_birth_date) == (PSEUDONYM, None, None)
    assert np.array_equal(frame_array(out, 1), frame_array(data, 1))


def test_deidentify_without_a_pseudonym_leaves_the_patient_anonymous() -> None:
    out = deidentify(xray())
    assert identifiers(out) == []
    ds = read(out)
    assert (str(ds.PatientName), ds.PatientID) == ("", "")
    assert inspect(out).spacing == pytest.approx((0.15, 0.15))


def test_compressed_pixel_data_is_copied_when_nothing_is_masked() -> None:
    data = ultrasound(syntax="rle")
    out = deidentify(data, pseudonym=PSEUDONYM)
    assert read(out).file_meta.TransferSyntaxUID == RLELossless
    assert read(out).PixelData == read(data).PixelData


def test_uids_are_replaced_deterministically() -> None:
    first = ultrasound(SOPInstanceUID="1.2.826.0.1.3680043.8.498.20001")
    second = ultrasound(SOPInstanceUID="1.2.826.0.1.3680043.8.498.20002")
    out = deidentify(first, pseudonym=PSEUDONYM)
    assert deidentify(first, pseudonym=PSEUDONYM) == out  # the same file, byte for byte
    ds, other = read(out), read(deidentify(second, pseudonym=PSEUDONYM))
    old = read(first)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        assert ds[keyword].value != old[keyword].value, keyword
    assert ds.StudyInstanceUID == other.StudyInstanceUID  # one study stays one study
    assert ds.SeriesInstanceUID == other.SeriesInstanceUID
    assert ds.SOPInstanceUID != other.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == UltrasoundImageStorage
    reference = ds.ReferencedImageSequence[0]
    assert reference.ReferencedSOPClassUID == UltrasoundImageStorage
    assert reference.ReferencedSOPInstanceUID not in (dicoms.REFERENCED_UID, "")
    elsewhere = read(deidentify(first, pseudonym="STRIDE-0002"))
    assert elsewhere.StudyInstanceUID != ds.StudyInstanceUID


def test_dates_are_shifted_when_an_offset_is_given() -> None:
    data = ultrasound()
    out = deidentify(data, pseudonym=PSEUDONYM, day_offset=-30)
    ds = read(out)
    assert ds.StudyDate == "20240204"
    assert ds.AcquisitionDate == "20240203"
    assert ds.AcquisitionDateTime == "20240203101530.250000"  # the time of day stays
    assert ds.StudyTime == dicoms.STUDY_TIME
    assert ds.PatientBirthDate == ""
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert inspect(out).acquired_on == inspect(data).acquired_on - dt.timedelta(days=30)
    assert identifiers(out, pseudonym=PSEUDONYM) == []
    assert dicoms.STUDY_DATE.encode() not in out


@pytest.mark.parametrize(
    ("syntax", "colour"), [("explicit", False), ("explicit", True), ("rle", True), ("jpeg", False)]
)
def test_masks_blank_burned_in_text_in_every_frame(syntax: str, colour: bool) -> None:
    plain = dicoms.gradient(48, 64, frames=3, colour=colour, high=100)
    data = ultrasound(pixels=dicoms.burn_text(plain), frames=3, colour=colour, syntax=syntax)
    x, y, w, h = dicoms.TEXT_BOX
    assert frame_array(data, 2)[y : y + h, x : x + w].max() > 200  # the text is there
    out = deidentify(data, pseudonym=PSEUDONYM, masks=[dicoms.TEXT_BOX])
    ds = read(out)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    tolerance = 0 if syntax != "jpeg" else 3
    for k in range(3):
        after, before = frame_array(out, k), frame_array(data, k)
        assert after[y : y + h, x : x + w].max() == 0
        outside = np.ones(after.shape[:2], dtype=bool)
        outside[y : y + h, x : x + w] = False
        assert np.abs(after[outside].astype(float) - before[outside]).max() <= tolerance
    assert inspect(out).spacing == pytest.approx((0.1, 0.2))


def test_masks_on_monochrome1_use_its_black() -> None:
    data = xray(pixels=_row_values([100, 200, 300, 400]), photometric="MONOCHROME1", window=None)
    ds = read(deidentify(data, masks=[(0, 0, 1, 4)]))
    assert ds.pixel_array[:, 0].tolist() == [400] * 4  # the highest value is black in MONOCHROME1
    assert decode(render(dicoms.write(ds)))[:, 0].tolist() == [0] * 4


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_photographs_are_reencoded_without_metadata(fmt: str) -> None:
    data = dicoms.picture(fmt, rows=40, cols=60)
    assert len(identifiers(data)) >= 7
    out = deidentify(data, masks=[(0, 0, 16, 16)])
    assert out[:4] == data[:4]  # the same format
    assert identifiers(out) == []
    for secret in (b"Doe", b"Jane", b"Hart", b"Exif", b"2024:03", b"Lakeside", b"tEXt", b"zTXt", b"iTXt"):
        assert secret not in out, secret
    after, before = decode(out), decode(data)
    assert after.shape == before.shape  # EXIF orientation is not applied
    assert (after[:12, :12] <= (0 if fmt == "png" else 12)).all()  # JPEG blurs the mask's edge
    tolerance = 0 if fmt == "png" else 6
    assert np.abs(after[20:, 20:].astype(int) - before[20:, 20:]).max() <= tolerance


def test_deidentify_refuses_bad_arguments_and_bad_files() -> None:
    with pytest.raises(Invalid) as caught:
        deidentify(ultrasound(), pseudonym="A\\B")
    assert caught.value.field == "pseudonym"
    with pytest.raises(Invalid) as caught:
        deidentify(ultrasound(), day_offset=10**6)
    assert caught.value.field == "day_offset"
    with pytest.raises(Invalid) as caught:
        deidentify(ultrasound(frames=2)[:-500])
    assert caught.value.field == "file"
    with pytest.raises(Invalid) as caught:
        deidentify(ultrasound(), masks=[(500, 500, 5, 5)])
    assert caught.value.field == "masks"


def test_a_truncated_photo_is_refused_even_after_weasyprint_made_pillow_lenient() -> None:
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what importing WeasyPrint does, process-wide
    try:
        _refused(dicoms.picture("jpeg", rows=64, cols=64)[:-300], "damaged or truncated")
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # left as it was found
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
