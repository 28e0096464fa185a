"""Reading, checking, rendering and de-identifying the image files a clinic uploads.

Stride takes three kinds of file: DICOM (ultrasound, X-ray and the rest, read
with pydicom), and PNG or JPEG photographs (read with Pillow). Every function
here takes the file's bytes and returns plain data, so the same checks run for
an upload, a command and a test:

- :func:`inspect` reads the header, decodes the pixel data once in full (a
  truncated or damaged file is refused there, not later in the viewer) and
  returns an :class:`ImageInfo`: modality, size, frames, the date of
  acquisition, the pixel spacing and where it came from, the stored window.
- :func:`frame_array` returns one frame as numbers (grey: float32 after the
  Modality LUT; colour: uint8 RGB) for measuring.
- :func:`render` makes an 8-bit PNG or JPEG of one frame: windowed, masked,
  fitted to a size. It decodes only the frame it shows.
- :func:`deidentify` writes a copy with the identifying data removed (the
  DICOM Basic Application Level Confidentiality Profile for DICOM; no metadata
  at all for PNG/JPEG) and the given rectangles of burned-in text blanked.
- :func:`identifiers` lists what identifying data a file still holds.

Coordinates are always those of the stored pixels: x is the column, y the row,
(0, 0) the top-left pixel, and EXIF orientation is never applied, so a
measurement made on a rendition means the same on the original.

A file that cannot be used is refused with :class:`Invalid` on the field
``"file"``, with one sentence saying why.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageFile
from PIL.JpegImagePlugin import get_sampling
from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, iter_pixels, pixel_array
from pydicom.pixels.utils import get_nr_frames
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from stride.core.errors import Invalid

#: The most frames Stride reads from one file (a 30 s cine loop at 60 frames a second is 1800).
MAX_FRAMES = 2000

#: The most bytes one file's pixel data may take once decoded (guards against decompression bombs).
MAX_DECODED_BYTES = 1 << 30

FORMATS = ("dicom", "png", "jpeg")

#: Output formats of :func:`render`.
RENDER_FORMATS = ("png", "jpeg")

#: Where a spacing can come from, in the order they are tried.
SPACING_SOURCES = ("PixelSpacing", "ImagerPixelSpacing", "SequenceOfUltrasoundRegions")

#: The modality given to photographs (DICOM's "External-camera Photography").
PHOTO_MODALITY = "XC"

#: The first value written to DeidentificationMethod (an LO: at most 64 characters a value).
METHOD = "Stride: PS3.15 Basic Application Level Confidentiality Profile"

Mask = tuple[int, int, int, int]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_DICOM_PREFIX = b"DICM"
_DAY_OFFSET_LIMIT = 36_500  # a hundred years either way

# --------------------------------------------------------------------------- the confidentiality profile

#: Attributes removed outright (PS3.15 Table E.1-1, action X, as far as they occur in images).
_REMOVE = frozenset(
    {
        # the patient
        "OtherPatientIDs",
        "OtherPatientIDsSequence",
        "OtherPatientNames",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientBirthTime",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "PatientTelecomInformation",
        "IssuerOfPatientID",
        "IssuerOfPatientIDQualifiersSequence",
        "MilitaryRank",
        "BranchOfService",
        "MedicalRecordLocator",
        "Occupation",
        "AdditionalPatientHistory",
        "PatientComments",
        "PatientReligiousPreference",
        "CountryOfResidence",
        "RegionOfResidence",
        "EthnicGroup",
        "ResponsiblePerson",
        "ResponsibleOrganization",
        "PatientInsurancePlanCodeSequence",
        "MedicalAlerts",
        "Allergies",
        "SpecialNeeds",
        "PatientState",
        "ReferencedPatientSequence",
        "ReferencedPatientAliasSequence",
        "CurrentPatientLocation",
        "PatientInstitutionResidence",
        # the visit and the request
        "AdmissionID",
        "IssuerOfAdmissionIDSequence",
        "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence",
        "VisitComments",
        "ServiceEpisodeID",
        "ServiceEpisodeDescription",
        "ReasonForStudy",
        "ReasonForTheRequestedProcedure",
        "RequestAttributesSequence",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "RequestingPhysician",
        "RequestingService",
        "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepID",
        "ScheduledPerformingPhysicianName",
        "ScheduledPerformingPhysicianIdentificationSequence",
        "PerformedProcedureStepID",
        "PerformedProcedureStepDescription",
        "PerformedLocation",
        "PerformedStationName",
        "PerformedStationAETitle",
        "ScheduledStationName",
        "ScheduledStationAETitle",
        "ScheduledProcedureStepLocation",
        "OrderEnteredBy",
        "OrderEntererLocation",
        "OrderCallbackPhoneNumber",
        "AcquisitionContextSequence",
        # the institution and its staff
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "InstitutionCodeSequence",
        "InstitutionalDepartmentTypeCodeSequence",
        "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers",
        "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianName",
        "ConsultingPhysicianIdentificationSequence",
        "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence",
        "PerformingPhysicianName",
        "PerformingPhysicianIdentificationSequence",
        "NameOfPhysiciansReadingStudy",
        "PhysiciansReadingStudyIdentificationSequence",
        "OperatorsName",
        "OperatorIdentificationSequence",
        "ContentCreatorName",
        "VerifyingObserverName",
        "PersonName",
        "PersonAddress",
        "PersonTelephoneNumbers",
        # free text
        "StudyDescription",
        "SeriesDescription",
        "ImageComments",
        "FrameComments",
        "AcquisitionComments",
        "DerivationDescription",
        "AcquisitionDeviceProcessingDescription",
        "ProtocolName",
        "TextString",
        "TextComments",
        # the device
        "StationName",
        "DeviceSerialNumber",
        "DeviceUID",
        "PlateID",
        "DetectorID",
        "CassetteID",
        "GantryID",
        # copies of other data that may hold any of the above
        "IconImageSequence",
        "OriginalAttributesSequence",
        "ModifiedAttributesSequence",
        "DigitalSignaturesSequence",
    }
)

#: Attributes kept with an empty value (action Z: the image modules require them to be present).
_EMPTY = frozenset({"PatientBirthDate", "AccessionNumber", "StudyID", "ReferringPhysicianName"})

#: UIDs that name a kind of thing, not an instance; kept as they are.
_CLASS_UIDS = frozenset(
    {
        "SOPClassUID",
        "ReferencedSOPClassUID",
        "MediaStorageSOPClassUID",
        "TransferSyntaxUID",
        "ImplementationClassUID",
        "CodingSchemeUID",
        "RelatedGeneralSOPClassUID",
        "OriginalSpecializedSOPClassUID",
        "ReferencedTransferSyntaxUIDInFile",
        "ReferencedSOPClassUIDInFile",
    }
)

_DCM_CODES = {
    "profile": ("113100", "Basic Application Confidentiality Profile"),
    "pixels": ("113101", "Clean Pixel Data Option"),
    "dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "characteristics": ("113108", "Retain Patient Characteristics Option"),
}


# --------------------------------------------------------------------------- what a file is


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect` learned about a file.

    ``spacing`` is (row spacing, column spacing) in millimetres — the distance
    between the centres of adjacent rows, then of adjacent columns — or None
    when the file does not say. ``window`` is (centre, width) as stored in the
    header. ``patient_name`` is the DICOM form (``Family^Given``).
    """

    format: str  # "dicom" | "png" | "jpeg"
    modality: str  # "US", "DX", "CR", "MR", …; "XC" for photographs
    width: int  # columns
    height: int  # rows
    frames: int  # ≥ 1
    samples: int  # 1 grey, 3 colour
    acquired_on: dt.date | None = None
    spacing: tuple[float, float] | None = None
    spacing_source: str = ""  # one of SPACING_SOURCES, or ""
    window: tuple[float, float] | None = None
    laterality: str = ""  # "left" | "right" | ""
    body_part: str = ""
    view: str = ""
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: dt.date | None = None
    transfer_syntax: str = ""  # the DICOM transfer syntax UID
    compressed: bool = False  # the pixel data is stored compressed (encapsulated DICOM, PNG, JPEG)
    burned_in_annotation: str = ""  # "YES" | "NO" | ""


def inspect(data: bytes) -> ImageInfo:
    """Read and check a DICOM, PNG or JPEG file, decoding all its pixel data once.

    Raises :class:`Invalid` (field ``"file"``) for an empty file, a file that is
    none of the three, a truncated or damaged file, a DICOM file without pixel
    data, a compression Stride cannot decode (the message names it), more than
    :data:`MAX_FRAMES` frames or more than :data:`MAX_DECODED_BYTES` of pixels.
    """
    kind = _sniff(data)
    if kind != "dicom":
        return _picture_info(_open_picture(data, kind), kind)
    ds = _read_dicom(data)
    frames = _check_pixels(ds)
    try:
        for _ in iter_pixels(ds):
            pass
    except Exception as exc:
        raise Invalid(f"The DICOM pixel data cannot be decoded ({_reason(exc)}).", "file") from None
    return _dicom_info(ds, frames)


def frame_array(data: bytes, index: int = 0) -> np.ndarray:
    """Frame ``index`` (from 0) of the file as numbers, decoding only that frame where possible.

    Grey images: float32, shape (rows, columns), after the Modality LUT
    (rescale slope and intercept), so CT numbers and the like come out in their
    units. Colour images: uint8 RGB, shape (rows, columns, 3) (YBR and palette
    colour converted; PNG/JPEG alpha flattened onto white).
    """
    return _frame(data, index).values


def render(
    data: bytes,
    *,
    frame: int = 0,
    window: tuple[float, float] | None = None,
    size: int | None = None,
    masks: Sequence[Mask] = (),
    fmt: str = "png",
) -> bytes:
    """An 8-bit PNG or JPEG of one frame.

    Grey images are mapped to 0–255 by the DICOM linear VOI function with
    ``window`` = (centre, width): the one given, else the header's, else the
    frame's minimum to maximum (8-bit grey photographs: shown as stored).
    MONOCHROME1 images are inverted after windowing, so bone is white. Each mask
    (x, y, width, height, in stored pixels) is painted black before the image is
    scaled down to fit within ``size`` × ``size`` (never up), keeping its aspect.
    Colour images ignore ``window``.
    """
    if fmt not in RENDER_FORMATS:
        raise Invalid(f"Images are rendered as {' or '.join(RENDER_FORMATS)}, not {fmt!r}.", "fmt")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise Invalid(f"The size must be a whole number of pixels above 0, not {size!r}.", "size")
    if window is not None:
        window = _check_window(window)
    picture = _frame(data, frame)
    values = picture.values
    rows, cols = values.shape[:2]
    rects = _check_masks(masks, cols, rows)
    if picture.grey:
        centre, width = window or picture.window or _min_max_window(values)
        pixels = voi_linear(values, centre, width)
        if picture.invert:
            np.subtract(255, pixels, out=pixels)
    else:
        pixels = np.array(values, dtype=np.uint8, copy=True)
    for x0, y0, x1, y1 in rects:
        pixels[y0:y1, x0:x1] = 0
    image = Image.fromarray(pixels)  # uint8: "L" for grey, "RGB" for colour
    if size is not None and max(rows, cols) > size:
        scale = size / max(rows, cols)
        image = image.resize(
            (max(1, round(cols * scale)), max(1, round(rows * scale))), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=3)
    else:
        image.save(out, "JPEG", quality=90)
    return out.getvalue()


def voi_linear(values: np.ndarray, centre: float, width: float) -> np.ndarray:
    """DICOM's linear VOI function (PS3.3 C.11.2.1.2.1) from ``values`` to uint8 0–255.

    Values at or below ``centre - 0.5 - (width - 1) / 2`` give 0, values above
    ``centre - 0.5 + (width - 1) / 2`` give 255, and the values between are
    mapped linearly and rounded. A width of 1 is a threshold at ``centre - 0.5``.
    """
    x = np.asarray(values, dtype=np.float32)
    if width <= 1:
        return np.where(x > centre - 0.5, 255, 0).astype(np.uint8)
    y = (x - np.float32(centre - 0.5)) * np.float32(255 / (width - 1)) + np.float32(127.5)
    np.clip(y, 0, 255, out=y)
    return np.rint(y).astype(np.uint8)


def deidentify(
    data: bytes, *, masks: Sequence[Mask] = (), pseudonym: str = "", day_offset: int | None = None
) -> bytes:
    """A copy of the file without the data that identifies the patient, the clinic or its staff.

    DICOM: the Basic Application Level Confidentiality Profile with the Retain
    Patient Characteristics Option (sex, age, size and weight stay). Patient
    name and ID become ``pseudonym`` (empty when none); birth date, other IDs,
    addresses, telephone numbers, institution, every person's name,
    accession number, descriptions and comments, device identity, private
    elements, overlays and curves go. Every other date is removed, or moved by
    ``day_offset`` days when given (times then stay). Instance UIDs are replaced
    by UIDs derived from ``pseudonym`` and the old UID, so the same input gives
    the same output and images of one study stay one study. Pixel spacing and
    the ultrasound regions stay. Masks (x, y, width, height) are blanked in
    every frame; the pixel data is then written uncompressed (Explicit VR Little
    Endian) and BurnedInAnnotation becomes "NO". Compressed pixel data without
    masks is copied as it is.

    PNG/JPEG: the pixels only, re-encoded in the same format without any
    metadata (EXIF, text chunks, comments, colour profile), masks blanked.
    EXIF orientation is not applied, as everywhere in Stride.
    """
    if not isinstance(pseudonym, str) or len(pseudonym) > 64 or any(c in pseudonym for c in "\\\r\n\t\x00"):
        raise Invalid(
            "The pseudonym must be at most 64 characters, without backslashes or line breaks.", "pseudonym"
        )
    if day_offset is not None and (
        isinstance(day_offset, bool) or not isinstance(day_offset, int) or abs(day_offset) > _DAY_OFFSET_LIMIT
    ):
        raise Invalid(
            f"The day offset must be a whole number of days within ±{_DAY_OFFSET_LIMIT}.", "day_offset"
        )
    kind = _sniff(data)
    if kind != "dicom":
        return _deidentify_picture(_open_picture(data, kind), kind, masks)
    return _deidentify_dicom(_read_dicom(data), masks, pseudonym, day_offset)


def identifiers(data: bytes, *, pseudonym: str = "") -> list[str]:
    """The identifying data a file still holds, one ``"Name: value"`` string each (empty when clean).

    DICOM: every attribute :func:`deidentify` removes or empties that still
    holds a value, every person's name, private elements, overlays and curves,
    and dates unless the file says they were shifted
    (LongitudinalTemporalInformationModified = MODIFIED). PatientName and
    PatientID equal to ``pseudonym`` are not counted. PNG/JPEG: every EXIF tag,
    text chunk, comment, XMP packet and Photoshop (IPTC) segment.
    """
    kind = _sniff(data)
    if kind != "dicom":
        return _picture_identifiers(_open_picture(data, kind))
    ds = _read_dicom(data, pixels=False)
    found: list[str] = []
    dates_shifted = str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
    _walk_identifiers(ds, "", found, pseudonym, dates_shifted)
    return found


# --------------------------------------------------------------------------- sniffing and reading


def _sniff(data: bytes) -> str:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise Invalid("The file must be given as bytes.", "file")
    if len(data) == 0:
        raise Invalid("The file is empty.", "file")
    head = bytes(data[:132])
    if head[128:132] == _DICOM_PREFIX:
        return "dicom"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    # A DICOM data set written without the 128-byte preamble starts with the file meta group (0002)
    # or, with no file meta at all, with an identifying group (0008); pydicom decides the rest.
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        return "dicom"
    raise Invalid("The file is not a DICOM, PNG or JPEG image.", "file")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "…"


def _read_dicom(data: bytes, *, pixels: bool = True) -> Dataset:
    """The data set (pixel data included unless ``pixels`` is False), a transfer syntax in its file meta."""
    preamble = bytes(data[128:132]) == _DICOM_PREFIX
    try:
        ds = dcmread(io.BytesIO(data), force=not preamble, stop_before_pixels=not pixels)
        if pixels and len(ds) == 0:
            # pydicom drops the whole data set when encapsulated pixel data runs into the end of the
            # file; the header alone still says what the image should have been.
            ds = dcmread(io.BytesIO(data), force=not preamble, stop_before_pixels=True)
        file_meta = getattr(ds, "file_meta", None)
        if file_meta is None:
            ds.file_meta = file_meta = FileMetaDataset()
        if not file_meta.get("TransferSyntaxUID"):
            implicit, little = ds.original_encoding
            if implicit is None:
                raise ValueError("its encoding cannot be determined")
            file_meta.TransferSyntaxUID = (
                ImplicitVRLittleEndian
                if implicit
                else ExplicitVRLittleEndian
                if little
                else ExplicitVRBigEndian
            )
        if len(ds) == 0:
            raise ValueError("it holds no data elements")
    except Invalid:
        raise
    except Exception as exc:
        if not preamble:
            raise Invalid("The file is not a DICOM, PNG or JPEG image.", "file") from None
        raise Invalid(f"The DICOM file is damaged and cannot be read ({_reason(exc)}).", "file") from None
    return ds


def _syntax(ds: Dataset) -> UID:
    return UID(str(ds.file_meta.TransferSyntaxUID))


def _check_decodable(ds: Dataset) -> None:
    syntax = _syntax(ds)
    try:
        available = get_decoder(syntax).is_available
    except NotImplementedError:
        available = False
    if not available:
        name = syntax.name if syntax.name != str(syntax) else "an unknown transfer syntax"
        raise Invalid(
            f"Stride cannot decode DICOM pixel data stored as {name} ({syntax}); "
            "export the image uncompressed instead.",
            "file",
        )


def _sop_class(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID")
    return UID(str(uid)).name if uid else ""


def _check_pixels(ds: Dataset) -> int:
    """The number of frames, after every check that needs no decoding (header read with pixel data)."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if "PixelData" not in ds:
        sop_class = _sop_class(ds)
        if (rows and cols) or sop_class.endswith("Image Storage"):
            raise Invalid(
                f"The DICOM file is truncated or damaged: it describes a {cols or '?'} × {rows or '?'} image "
                "but its pixel data is missing or cut short.",
                "file",
            )
        what = f"a {sop_class}" if sop_class else "a DICOM object"
        raise Invalid(f"The DICOM file holds no image: it is {what} without pixel data.", "file")
    frames = _check_header(ds)
    if not _syntax(ds).is_encapsulated:
        expected = _native_length(ds, frames)
        stored = len(ds.PixelData)
        if stored < expected:
            raise Invalid(
                f"The DICOM file is truncated: its pixel data ends after {stored:,} of {expected:,} bytes.",
                "file",
            )
    return frames


def _check_header(ds: Dataset) -> int:
    """Checks on the image's geometry and encoding that need no pixel data; the number of frames."""
    _check_decodable(ds)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if not rows or not cols:
        raise Invalid("The DICOM file is damaged: it gives no image size (Rows and Columns).", "file")
    try:
        frames = int(get_nr_frames(ds, warn=False))
    except Exception:
        frames = 0
    if frames < 1:
        raise Invalid(
            "The DICOM file is damaged: its number of frames is not a whole number above 0.", "file"
        )
    if frames > MAX_FRAMES:
        raise Invalid(f"The DICOM file has {frames:,} frames; Stride reads at most {MAX_FRAMES:,}.", "file")
    samples = _int(ds, "SamplesPerPixel") or 1
    bits = _int(ds, "BitsAllocated") or 8
    decoded = rows * cols * samples * frames * max(1, math.ceil(bits / 8))
    if decoded > MAX_DECODED_BYTES:
        raise Invalid(
            f"The image would take {decoded / 2**20:,.0f} MB once decoded; "
            f"Stride reads at most {MAX_DECODED_BYTES // 2**20:,} MB.",
            "file",
        )
    return frames


def _native_length(ds: Dataset, frames: int) -> int:
    """Bytes of uncompressed pixel data the header promises (without the padding byte)."""
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    samples = _int(ds, "SamplesPerPixel") or 1
    bits = _int(ds, "BitsAllocated") or 8
    pixels = rows * cols * frames
    if bits == 1:
        return math.ceil(pixels * samples / 8)
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        return pixels * 2 * (bits // 8)
    return pixels * samples * (bits // 8)


def _int(ds: Dataset, keyword: str) -> int:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else ""
    return str(value).strip()


def _first_float(value: Any) -> float | None:
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _date(value: Any) -> dt.date | None:
    text = str(value or "").strip()[:8]
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date() if len(text) == 8 else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- what a DICOM header says


def _dicom_info(ds: Dataset, frames: int) -> ImageInfo:
    spacing, source = _spacing(ds)
    laterality = _text(ds, "ImageLaterality") or _text(ds, "Laterality")
    photometric = _text(ds, "PhotometricInterpretation")
    samples = 3 if photometric == "PALETTE COLOR" else (_int(ds, "SamplesPerPixel") or 1)
    acquired = None
    for keyword in ("AcquisitionDate", "AcquisitionDateTime", "ContentDate", "StudyDate", "SeriesDate"):
        acquired = _date(_text(ds, keyword))
        if acquired:
            break
    syntax = _syntax(ds)
    return ImageInfo(
        format="dicom",
        modality=_text(ds, "Modality").upper(),
        width=_int(ds, "Columns"),
        height=_int(ds, "Rows"),
        frames=frames,
        samples=samples,
        acquired_on=acquired,
        spacing=spacing,
        spacing_source=source,
        window=_header_window(ds) if samples == 1 else None,
        laterality={"L": "left", "R": "right"}.get(laterality.upper(), ""),
        body_part=_text(ds, "BodyPartExamined"),
        view=_text(ds, "ViewPosition"),
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        patient_birth_date=_date(_text(ds, "PatientBirthDate")),
        transfer_syntax=str(syntax),
        compressed=syntax.is_encapsulated,
        burned_in_annotation=_text(ds, "BurnedInAnnotation").upper(),
    )


def _pair(value: Any) -> tuple[float, float] | None:
    """A (row, column) spacing from a two-valued DS, or None when it is not two positive numbers."""
    try:
        row, col = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if all(math.isfinite(v) and v > 0 for v in (row, col)):
        return row, col
    return None


def _spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str]:
    """PixelSpacing, else ImagerPixelSpacing, else the first ultrasound region calibrated in centimetres."""
    candidates = [("PixelSpacing", ds.get("PixelSpacing"))]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:  # enhanced multi-frame images keep it in the functional groups
        measures = shared[0].get("PixelMeasuresSequence")
        if measures:
            candidates.append(("PixelSpacing", measures[0].get("PixelSpacing")))
    candidates.append(("ImagerPixelSpacing", ds.get("ImagerPixelSpacing")))
    for source, value in candidates:
        spacing = _pair(value) if value is not None else None
        if spacing:
            return spacing, source
    for region in ds.get("SequenceOfUltrasoundRegions") or ():
        if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
            dx, dy = _first_float(region.get("PhysicalDeltaX")), _first_float(region.get("PhysicalDeltaY"))
            if dx and dy:
                return (abs(dy) * 10, abs(dx) * 10), "SequenceOfUltrasoundRegions"
    return None, ""


def _header_window(ds: Dataset) -> tuple[float, float] | None:
    centre, width = _first_float(ds.get("WindowCenter")), _first_float(ds.get("WindowWidth"))
    if centre is None or width is None or width < 1:
        return None
    return centre, width


def _check_window(window: Any) -> tuple[float, float]:
    try:
        centre, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise Invalid("The window must be two numbers: centre and width.", "window") from None
    if not (math.isfinite(centre) and math.isfinite(width)) or width < 1:
        raise Invalid(f"The window width must be at least 1, not {width:g}.", "window")
    return centre, width


def _min_max_window(values: np.ndarray) -> tuple[float, float]:
    """The window mapping the frame's smallest value to 0 and its largest to 255."""
    low, high = float(values.min()), float(values.max())
    return (low + high + 1) / 2, high - low + 1


# --------------------------------------------------------------------------- one frame


@dataclass(frozen=True)
class _Frame:
    values: np.ndarray
    grey: bool
    invert: bool = False
    window: tuple[float, float] | None = None


def _check_index(index: Any, frames: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < frames:
        last = "frame 0" if frames == 1 else f"frames 0–{frames - 1}"
        raise Invalid(f"Frame {index!r} does not exist: the image has {last}.", "frame")
    return int(index)


def _frame(data: bytes, index: int) -> _Frame:
    kind = _sniff(data)
    if kind != "dicom":
        _check_index(index, 1)
        image = _open_picture(data, kind)
        values, grey = _picture_values(image)
        window = (128.0, 256.0) if grey and image.mode in ("L", "LA", "1", "P", "PA") else None
        return _Frame(values, grey, window=window)
    header = _read_dicom(data, pixels=False)
    frames = _check_header(header)
    index = _check_index(index, frames)
    try:
        if _syntax(header).is_deflated:  # the whole data set has to be inflated first
            arr = pixel_array(_read_dicom(data), index=index)
        else:  # a file-like source lets pydicom read only this frame's bytes, or its fragments
            arr = pixel_array(io.BytesIO(data), index=index, transfer_syntax_uid=_syntax(header))
    except Exception as exc:
        raise Invalid(f"The DICOM pixel data cannot be decoded ({_reason(exc)}).", "file") from None
    photometric = _text(header, "PhotometricInterpretation")
    if photometric == "PALETTE COLOR":
        return _Frame(_to_uint8(apply_color_lut(arr, header)), grey=False)
    if arr.ndim == 3:
        return _Frame(_to_uint8(arr, _int(header, "BitsStored") or 8), grey=False)
    values = np.asarray(apply_modality_lut(arr, header), dtype=np.float32)
    return _Frame(values, grey=True, invert=photometric == "MONOCHROME1", window=_header_window(header))


def _to_uint8(arr: np.ndarray, bits: int | None = None) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if bits is None:
        bits = 16 if arr.dtype.itemsize >= 2 else 8
    shift = max(0, bits - 8)
    return np.clip(arr.astype(np.int64) >> shift, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- PNG and JPEG


def _open_picture(data: bytes, kind: str) -> Image.Image:
    name = kind.upper()
    # Pillow's switch is process-wide and WeasyPrint turns it on when imported (for its own
    # images); a truncated photo must still be refused here, so it is set for this read.
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image = Image.open(io.BytesIO(data), formats=[name])
        image.load()
    except Image.DecompressionBombError:
        raise Invalid(f"The {name} image has too many pixels for Stride to read.", "file") from None
    except Exception:
        raise Invalid(f"The {name} file is damaged or truncated and cannot be decoded.", "file") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    return image


def _picture_values(image: Image.Image) -> tuple[np.ndarray, bool]:
    """Grey: float32 (rows, columns); colour: uint8 RGB. Alpha is flattened onto white."""
    mode = image.mode
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = image.mode
        if _is_grey_rgb(image):
            image = image.convert("LA")
            mode = "LA"
    if mode == "1":
        return np.asarray(image.convert("L"), dtype=np.float32), True
    if mode in ("L", "I", "F") or mode.startswith("I;"):
        return np.asarray(image, dtype=np.float32), True
    if mode == "LA":
        arr = np.asarray(image, dtype=np.float32)
        alpha = arr[..., 1] / 255
        return (arr[..., 0] * alpha + 255 * (1 - alpha)).astype(np.float32), True
    if mode in ("RGBA", "RGBa"):
        arr = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = arr[..., 3:] / 255
        return np.rint(arr[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8), False
    return np.asarray(image.convert("RGB"), dtype=np.uint8), False


def _is_grey_rgb(image: Image.Image) -> bool:
    arr = np.asarray(image)
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))


def _picture_info(image: Image.Image, kind: str) -> ImageInfo:
    grey = _picture_values(image)[1]
    exif = image.getexif()
    taken = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, else DateTime
    acquired = None
    if isinstance(taken, str):
        try:
            acquired = dt.datetime.strptime(taken.strip()[:10], "%Y:%m:%d").date()
        except ValueError:
            acquired = None
    return ImageInfo(
        format=kind,
        modality=PHOTO_MODALITY,
        width=image.width,
        height=image.height,
        frames=1,
        samples=1 if grey else 3,
        acquired_on=acquired,
        compressed=True,
    )


def _deidentify_picture(image: Image.Image, kind: str, masks: Sequence[Mask]) -> bytes:
    rects = _check_masks(masks, image.width, image.height)
    mode = image.mode
    if mode in ("P", "PA"):
        image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
    elif kind == "jpeg" and mode not in ("L", "RGB"):
        image = image.convert("RGB")
    elif kind == "png" and mode not in ("1", "L", "LA", "I;16", "I", "RGB", "RGBA"):
        image = image.convert("RGBA")
    # A new image from the pixels alone carries none of the original's metadata.
    clean = Image.fromarray(np.array(image))
    if clean.mode != image.mode:
        clean = clean.convert(image.mode)
    black = {"1": 0, "L": 0, "I": 0, "I;16": 0, "LA": (0, 255), "RGB": (0, 0, 0), "RGBA": (0, 0, 0, 255)}
    for x0, y0, x1, y1 in rects:
        clean.paste(black[clean.mode], (x0, y0, x1, y1))
    out = io.BytesIO()
    if kind == "png":
        clean.save(out, "PNG")
    else:
        options: dict[str, Any] = {"quality": 95}
        if getattr(image, "quantization", None) and image.mode == clean.mode:
            options = {"qtables": image.quantization}
            sampling = get_sampling(image)
            if sampling != -1:
                options["subsampling"] = sampling
        clean.save(out, "JPEG", **options)
    return out.getvalue()


_EXIF_IFDS = {0x8769: "Exif", 0x8825: "GPS", 0xA005: "Interop"}


def _picture_identifiers(image: Image.Image) -> list[str]:
    found: list[str] = []
    exif = image.getexif()
    for tag, value in exif.items():
        if tag not in _EXIF_IFDS:
            found.append(f"EXIF {ExifTags.TAGS.get(tag, hex(tag))}: {_short(value)}")
    for ifd_tag, ifd_name in _EXIF_IFDS.items():
        names = ExifTags.GPSTAGS if ifd_tag == 0x8825 else ExifTags.TAGS
        for tag, value in exif.get_ifd(ifd_tag).items():
            found.append(f"EXIF {ifd_name} {names.get(tag, hex(tag))}: {_short(value)}")
    if "exif" in image.info and not found:
        found.append("EXIF: present")
    for key, value in (getattr(image, "text", None) or {}).items():
        found.append(f"text {key}: {_short(value)}")
    if image.info.get("comment"):
        found.append(f"comment: {_short(image.info['comment'])}")
    for key in ("xmp", "XML:com.adobe.xmp"):
        if image.info.get(key) and not any(f.startswith(f"text {key}") for f in found):
            found.append("XMP: present")
    if image.info.get("photoshop"):
        found.append("Photoshop (IPTC): present")
    return found


def _short(value: Any) -> str:
    text = value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)
    return text if len(text) <= 80 else text[:77] + "…"


# --------------------------------------------------------------------------- masks


def _check_masks(masks: Iterable[Any], cols: int, rows: int) -> list[tuple[int, int, int, int]]:
    """Each mask (x, y, width, height) as clipped corners (x0, y0, x1, y1); Invalid when one is wrong."""
    rects = []
    for number, mask in enumerate(masks, start=1):
        try:
            x, y, w, h = (int(v) for v in mask)
            if any(float(v) != int(float(v)) for v in mask):
                raise ValueError
        except (TypeError, ValueError):
            raise Invalid(
                f"Mask {number} must be four whole numbers: x, y, width, height; got {mask!r}.", "masks"
            ) from None
        if w <= 0 or h <= 0:
            raise Invalid(f"Mask {number} must have a width and height above 0.", "masks")
        x0, y0, x1, y1 = max(0, x), max(0, y), min(cols, x + w), min(rows, y + h)
        if x0 >= x1 or y0 >= y1:
            raise Invalid(
                f"Mask {number} (x {x}, y {y}, {w} × {h}) lies outside the {cols} × {rows} image.", "masks"
            )
        rects.append((x0, y0, x1, y1))
    return rects


# --------------------------------------------------------------------------- DICOM de-identification


def _deidentify_dicom(ds: Dataset, masks: Sequence[Mask], pseudonym: str, day_offset: int | None) -> bytes:
    frames = _check_pixels(ds)
    rects = _check_masks(masks, _int(ds, "Columns"), _int(ds, "Rows"))
    syntax = _syntax(ds)
    if rects or not syntax.is_encapsulated:
        _rewrite_pixels(ds, rects, frames)
        syntax = ExplicitVRLittleEndian
    else:
        try:
            for _ in iter_pixels(ds):
                pass
        except Exception as exc:
            raise Invalid(f"The DICOM pixel data cannot be decoded ({_reason(exc)}).", "file") from None

    def new_uid(old: str) -> str:
        return str(generate_uid(entropy_srcs=[pseudonym, old]))

    _clean(ds, new_uid, day_offset)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    ds.PatientBirthDate = ""
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "REMOVED" if day_offset is None else "MODIFIED"
    steps = ["Retain Patient Characteristics Option"]
    steps.append("Dates removed" if day_offset is None else "Dates shifted")
    if rects:
        steps.append(f"Burned-in text masked ({len(rects)} area{'s' if len(rects) != 1 else ''})")
        ds.BurnedInAnnotation = "NO"
    ds.DeidentificationMethod = [METHOD, *steps]
    codes = ["profile", "characteristics"]
    if day_offset is not None:
        codes.append("dates")
    if rects:
        codes.append("pixels")
    ds.DeidentificationMethodCodeSequence = DicomSequence([_code(*_DCM_CODES[name]) for name in codes])

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\x00" * 128
    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True)
    except Exception as exc:
        raise Invalid(f"The de-identified DICOM file cannot be written ({_reason(exc)}).", "file") from None
    return out.getvalue()


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def _rewrite_pixels(ds: Dataset, rects: list[tuple[int, int, int, int]], frames: int) -> None:
    """Decode every frame, blank the masks, and store the pixels uncompressed (Explicit VR Little Endian)."""
    try:
        arr = np.array(pixel_array(ds), copy=True)
    except Exception as exc:
        raise Invalid(f"The DICOM pixel data cannot be decoded ({_reason(exc)}).", "file") from None
    photometric = _text(ds, "PhotometricInterpretation")
    bits_stored = _int(ds, "BitsStored") or arr.dtype.itemsize * 8
    if photometric == "PALETTE COLOR" and rects:
        arr = _to_uint8(apply_color_lut(arr, ds))
        photometric, bits_stored = "RGB", 8
    elif photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom converts YBR to RGB when decoding
    colour = arr.ndim == (4 if frames > 1 else 3)
    if colour:
        black: Any = 0
    elif rects:
        black = arr.max() if photometric == "MONOCHROME1" else arr.min()
    for x0, y0, x1, y1 in rects:
        if colour:
            arr[..., y0:y1, x0:x1, :] = black
        else:
            arr[..., y0:y1, x0:x1] = black
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    try:
        ds.set_pixel_data(arr, photometric, bits_stored, generate_instance_uid=False)
    except Exception as exc:
        raise Invalid(f"The DICOM pixel data cannot be rewritten ({_reason(exc)}).", "file") from None


def _is_overlay_or_curve(group: int) -> bool:
    return group % 2 == 0 and (0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF)


def _clean(ds: Dataset, new_uid: Callable[[str], str], day_offset: int | None) -> None:
    """Apply the profile to ``ds`` and every data set nested in it, in place."""
    for tag in list(ds.keys()):
        if tag.is_private or _is_overlay_or_curve(tag.group):
            del ds[tag]
            continue
        try:
            elem = ds[tag]
        except Exception:
            del ds[tag]  # an element pydicom cannot even parse is not worth keeping
            continue
        keyword = elem.keyword
        if keyword in _REMOVE:
            del ds[tag]
        elif keyword in _EMPTY:
            elem.value = ""
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, new_uid, day_offset)
        elif elem.VR == "PN":
            elem.value = ""
        elif elem.VR in ("DA", "DT"):
            elem.value = _shift_values(elem, day_offset)
        elif elem.VR == "TM" and day_offset is None:
            elem.value = ""
        elif elem.VR == "UI" and keyword not in _CLASS_UIDS and elem.value:
            elem.value = _map_values(
                elem.value, lambda uid: uid if uid.startswith("1.2.840.10008.") else new_uid(uid)
            )


def _map_values(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, MultiValue | list):
        return [change(str(v)) for v in value]
    return change(str(value))


def _shift_values(elem: DataElement, day_offset: int | None) -> Any:
    if day_offset is None or elem.value in (None, ""):
        return ""

    def shift(text: str) -> str:
        day = _date(text)
        if day is None:
            return ""
        return (day + dt.timedelta(days=day_offset)).strftime("%Y%m%d") + text.strip()[8:]

    return _map_values(elem.value, shift)


def _walk_identifiers(
    ds: Dataset, prefix: str, found: list[str], pseudonym: str, dates_shifted: bool
) -> None:
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
        except Exception:
            found.append(f"{prefix}{tag}: unreadable")
            continue
        name = prefix + (elem.keyword or str(tag))
        if tag.is_private:
            found.append(f"{name} (private): {_short(elem.repval)}")
            continue
        if _is_overlay_or_curve(tag.group):
            found.append(f"{name} (overlay or curve)")
            continue
        if elem.VR == "SQ":
            if elem.keyword in _REMOVE and len(elem.value):
                found.append(f"{name}: {len(elem.value)} item(s)")
            for number, item in enumerate(elem.value):
                _walk_identifiers(item, f"{name}[{number}].", found, pseudonym, dates_shifted)
            continue
        value = elem.value
        if value in (None, "", b"") or (isinstance(value, MultiValue | list) and not len(value)):
            continue
        text = _short(value)
        if elem.keyword in ("PatientName", "PatientID") and pseudonym and text == pseudonym:
            continue
        if elem.keyword in ("PatientName", "PatientID") and not text.strip():
            continue
        if (
            elem.keyword in _REMOVE
            or elem.keyword in _EMPTY
            or elem.keyword in ("PatientName", "PatientID")
            or elem.VR == "PN"
            or (elem.VR in ("DA", "DT") and not dates_shifted)
        ):
            found.append(f"{name}: {text}")
