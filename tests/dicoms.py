"""Image files for the imaging tests, built in memory: DICOM with pydicom and numpy, PNG and JPEG with Pillow.

Every DICOM file can carry the full set of identifying data a clinic's scanner
writes (patient, institution, staff, dates, device, private elements, an
overlay) so de-identification can be checked against the constants below, and
can be stored uncompressed (explicit or implicit VR, with or without preamble
and file meta), RLE Lossless (pydicom encodes it), JPEG baseline or JPEG 2000
(frames encoded with Pillow and encapsulated with pydicom).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    BasicTextSRStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    MRImageStorage,
    RLELossless,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

NAME = "Doe^Jane"
PATIENT_ID = "MRN-0042317"
OTHER_ID = "NHS-4857773456"
BIRTH_DATE = "19610214"
ADDRESS = "12 Quay Street^Lakeside"
PHONE = "+44 20 7946 0018"
INSTITUTION = "Lakeside Foot Clinic"
INSTITUTION_ADDRESS = "1 Harbour Road, Lakeside"
DEPARTMENT = "Podiatric Surgery"
REFERRER = "Hart^Oliver"
PERFORMER = "Okafor^Ngozi"
OPERATOR = "Reyes^Marta"
ACCESSION = "ACC-99812"
STUDY_ID = "ST-7731"
STATION = "USROOM3"
SERIAL = "SN-5531-X"
DESCRIPTION = "Left forefoot for Jane Doe"
COMMENT = "Patient Jane Doe prefers mornings"
PRIVATE_TEXT = "Lakeside vendor note"
STUDY_DATE = "20240305"
ACQUISITION_DATE = "20240304"
ACQUISITION_DATETIME = "20240304101530.250000"
STUDY_TIME = "101500"

#: Strings that must not survive de-identification anywhere in the file's bytes.
SECRETS = (
    "Doe",
    "Jane",
    PATIENT_ID,
    OTHER_ID,
    BIRTH_DATE,
    "Quay Street",
    PHONE,
    INSTITUTION,
    "Harbour Road",
    DEPARTMENT,
    "Hart",
    "Okafor",
    "Reyes",
    ACCESSION,
    STUDY_ID,
    STATION,
    SERIAL,
    PRIVATE_TEXT,
    STUDY_DATE,
    ACQUISITION_DATE,
)

STUDY_UID = "1.2.826.0.1.3680043.8.498.10001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.10002"
FRAME_OF_REFERENCE_UID = "1.2.826.0.1.3680043.8.498.10003"
REFERENCED_UID = "1.2.826.0.1.3680043.8.498.10004"
INSTANCE_UID = "1.2.826.0.1.3680043.8.498.20001"

#: Burned-in text: where :func:`burn_text` writes it and the rectangle (x, y, width, height) covering it.
TEXT_AT = (2, 2)
TEXT_BOX = (0, 0, 60, 14)

SYNTAXES = ("explicit", "implicit", "no-preamble", "no-meta", "rle", "jpeg", "j2k", "jpeg-lossless")


# --------------------------------------------------------------------------- pixels


def gradient(rows: int, cols: int, *, frames: int = 1, colour: bool = False, high: int = 200) -> np.ndarray:
    """A smooth uint8 ramp (so JPEG keeps it well), one frame or ``frames`` frames, grey or RGB."""
    ramp = (np.add.outer(np.arange(rows), np.arange(cols)) * high // max(1, rows + cols - 2)).astype(np.uint8)
    arr = np.stack([ramp] * frames) if frames > 1 else ramp
    if colour:
        arr = np.stack([arr, arr // 2, 255 - arr], axis=-1).astype(np.uint8)
    return arr


def bar(
    rows: int,
    cols: int,
    *,
    row: int,
    col: int,
    length: int,
    thickness: int = 3,
    value: int = 255,
    background: int = 0,
    dtype: Any = np.uint8,
) -> np.ndarray:
    """A phantom: a horizontal bar ``length`` pixels long from (``col``, ``row``) on a flat background."""
    arr = np.full((rows, cols), background, dtype=dtype)
    arr[row : row + thickness, col : col + length] = value
    return arr


def burn_text(arr: np.ndarray, text: str = "DOE JANE", *, at: tuple[int, int] = TEXT_AT) -> np.ndarray:
    """``arr`` (one frame or several, grey or RGB, uint8) with ``text`` drawn in white into every frame."""
    out = np.array(arr, copy=True)
    single = out.ndim == 2 or (out.ndim == 3 and out.shape[-1] == 3)
    frames = out[np.newaxis] if single else out  # a view: drawing on it draws on ``out``
    for index in range(frames.shape[0]):
        image = Image.fromarray(frames[index])
        ImageDraw.Draw(image).text(at, text, fill=(255, 255, 255) if image.mode == "RGB" else 255)
        frames[index] = np.asarray(image)
    return out


# --------------------------------------------------------------------------- DICOM


def _identify(ds: Dataset) -> None:
    """The identifying attributes a clinic's scanner writes, in the header and nested in sequences."""
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.PatientAge = "063Y"
    ds.PatientWeight = "71"
    ds.OtherPatientIDs = OTHER_ID
    ds.PatientAddress = ADDRESS
    ds.PatientTelephoneNumbers = PHONE
    ds.InstitutionName = INSTITUTION
    ds.InstitutionAddress = INSTITUTION_ADDRESS
    ds.InstitutionalDepartmentName = DEPARTMENT
    ds.ReferringPhysicianName = REFERRER
    ds.PerformingPhysicianName = PERFORMER
    ds.OperatorsName = OPERATOR
    ds.AccessionNumber = ACCESSION
    ds.StudyID = STUDY_ID
    ds.StudyDescription = DESCRIPTION
    ds.SeriesDescription = DESCRIPTION
    ds.ImageComments = COMMENT
    ds.StationName = STATION
    ds.DeviceSerialNumber = SERIAL
    ds.Manufacturer = "Acme Medical"
    ds.StudyDate = STUDY_DATE
    ds.SeriesDate = STUDY_DATE
    ds.AcquisitionDate = ACQUISITION_DATE
    ds.ContentDate = STUDY_DATE
    ds.AcquisitionDateTime = ACQUISITION_DATETIME
    ds.StudyTime = STUDY_TIME
    ds.ContentTime = STUDY_TIME
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    request = Dataset()
    request.RequestedProcedureID = "RP-" + PATIENT_ID
    request.ScheduledProcedureStepID = "SPS-1"
    ds.RequestAttributesSequence = DicomSequence([request])
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = UltrasoundImageStorage
    referenced.ReferencedSOPInstanceUID = REFERENCED_UID
    ds.ReferencedImageSequence = DicomSequence([referenced])
    block = ds.private_block(0x0009, "LAKESIDE VENDOR", create=True)
    block.add_new(0x01, "LO", PRIVATE_TEXT)
    block.add_new(0x02, "LO", NAME)
    # an overlay plane, which may carry burned-in graphics of its own
    ds.add_new(0x60000010, "US", 8)  # OverlayRows
    ds.add_new(0x60000011, "US", 8)  # OverlayColumns
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000050, "SS", [1, 1])  # OverlayOrigin
    ds.add_new(0x60000100, "US", 1)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 0)  # OverlayBitPosition
    ds.add_new(0x60003000, "OW", b"\xff" * 8)  # OverlayData


def _encode_frames(arr: np.ndarray, frames: int, fmt: str) -> list[bytes]:
    stack = arr if frames > 1 else arr[np.newaxis]
    out = []
    for frame in stack:
        buffer = io.BytesIO()
        if fmt == "JPEG":
            Image.fromarray(frame).save(buffer, "JPEG", quality=95)
        else:
            Image.fromarray(frame).save(buffer, "JPEG2000", no_jp2=True, irreversible=False)
        out.append(buffer.getvalue())
    return out


def dicom(
    pixels: np.ndarray,
    *,
    modality: str = "US",
    sop_class: str | None = None,
    photometric: str | None = None,
    bits_stored: int | None = None,
    syntax: str = "explicit",
    identified: bool = True,
    **attributes: Any,
) -> bytes:
    """A DICOM file of ``pixels``: (rows, cols) or (frames, rows, cols), with a last axis of 3 for RGB.

    ``syntax`` is one of :data:`SYNTAXES` ("jpeg-lossless" is a genuine JPEG Lossless SV1 file,
    transcoded by GDCM as an X-ray unit would write it). ``attributes`` are set
    by keyword after everything else, so a test can add or override any element.
    """
    arr = np.asarray(pixels)
    colour = photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") or (
        photometric is None and arr.ndim >= 3 and arr.shape[-1] == 3
    )
    frames = arr.shape[0] if arr.ndim == (4 if colour else 3) else 1
    if sop_class is None:
        sop_class = {
            "US": UltrasoundMultiFrameImageStorage if frames > 1 else UltrasoundImageStorage,
            "DX": DigitalXRayImageStorageForPresentation,
            "MR": MRImageStorage,
        }.get(modality, UltrasoundImageStorage)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.set_pixel_data(
        arr,
        photometric or ("RGB" if colour else "MONOCHROME2"),
        bits_stored or arr.dtype.itemsize * 8,
        generate_instance_uid=False,
    )
    if syntax == "rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    elif syntax in ("jpeg", "j2k"):
        if arr.dtype != np.uint8:
            raise ValueError("JPEG frames are built from 8-bit pixels only")
        encoded = _encode_frames(arr, frames, "JPEG2000" if syntax == "j2k" else "JPEG")
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = {
            "jpeg": JPEGBaseline8Bit,
            "j2k": JPEG2000Lossless,
        }[syntax]
        if syntax != "j2k" and colour:
            ds.PhotometricInterpretation = "YBR_FULL_422"
        if syntax != "j2k":
            ds.LossyImageCompression = "01"
    if identified:
        _identify(ds)
    ds.SOPInstanceUID = INSTANCE_UID
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if syntax == "jpeg-lossless":
        return jpeg_lossless(write(ds))
    return write(ds, syntax)


def jpeg_lossless(data: bytes) -> bytes:
    """``data`` transcoded to JPEG Lossless, Process 14, Selection Value 1 by GDCM."""
    import tempfile
    from pathlib import Path

    import gdcm

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "in.dcm"), Path(folder, "out.dcm")
        source.write_bytes(data)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(source))
        if not reader.Read():
            raise ValueError("GDCM could not read the file to transcode")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGLosslessProcess14_1))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise ValueError("GDCM could not transcode to JPEG Lossless")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(target))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise ValueError("GDCM could not write the transcoded file")
        return target.read_bytes()


def write(ds: Dataset, syntax: str = "explicit") -> bytes:
    """``ds`` as bytes: the DICOM file format, or without preamble ("no-preamble") or meta ("no-meta")."""
    buffer = io.BytesIO()
    if syntax == "implicit":
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    if syntax == "no-preamble":
        ds.preamble = None
        ds.save_as(buffer, enforce_file_format=False, implicit_vr=False, little_endian=True)
    elif syntax == "no-meta":
        ds.preamble = None
        ds.file_meta = FileMetaDataset()
        ds.save_as(buffer, enforce_file_format=False, implicit_vr=True, little_endian=True)
    else:
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ultrasound_region(
    rows: int, cols: int, *, delta_mm: tuple[float, float] = (0.1, 0.2), units: tuple[int, int] = (3, 3)
) -> Dataset:
    """One SequenceOfUltrasoundRegions item; ``delta_mm`` is (row, column) spacing, stored in cm."""
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = cols - 1
    region.RegionLocationMaxY1 = rows - 1
    region.PhysicalUnitsXDirection = units[0]
    region.PhysicalUnitsYDirection = units[1]
    region.PhysicalDeltaX = delta_mm[1] / 10
    region.PhysicalDeltaY = delta_mm[0] / 10
    return region


def ultrasound(
    *,
    rows: int = 48,
    cols: int = 64,
    frames: int = 1,
    colour: bool = False,
    pixels: np.ndarray | None = None,
    delta_mm: tuple[float, float] = (0.1, 0.2),
    regions: Sequence[Dataset] | None = None,
    syntax: str = "explicit",
    **attributes: Any,
) -> bytes:
    """An ultrasound image (US) calibrated by its ultrasound region, with a private element inside it."""
    if pixels is None:
        pixels = gradient(rows, cols, frames=frames, colour=colour)
    rows, cols = pixels.shape[1:3] if frames > 1 else pixels.shape[:2]
    if regions is None:
        regions = [ultrasound_region(rows, cols, delta_mm=delta_mm)]
    for region in regions:
        region.private_block(0x0011, "LAKESIDE VENDOR", create=True).add_new(0x01, "LO", PRIVATE_TEXT)
    attributes.setdefault("SequenceOfUltrasoundRegions", DicomSequence(list(regions)))
    attributes.setdefault("BodyPartExamined", "FOOT")
    attributes.setdefault("ImageLaterality", "L")
    attributes.setdefault("BurnedInAnnotation", "YES")
    return dicom(pixels, modality="US", syntax=syntax, **attributes)


def xray(
    *,
    pixels: np.ndarray | None = None,
    rows: int = 40,
    cols: int = 32,
    pixel_spacing: tuple[float, float] | None = (0.15, 0.15),
    imager_spacing: tuple[float, float] | None = None,
    window: tuple[Any, Any] | None = (2000, 1001),
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    syntax: str = "explicit",
    **attributes: Any,
) -> bytes:
    """A 16-bit projection radiograph (DX), 12 bits stored, with its spacing and window as given."""
    if pixels is None:
        pixels = (gradient(rows, cols, high=255).astype(np.uint16) * 16).astype(np.uint16)
    if pixel_spacing is not None:
        attributes.setdefault("PixelSpacing", list(pixel_spacing))
    if imager_spacing is not None:
        attributes.setdefault("ImagerPixelSpacing", list(imager_spacing))
    if window is not None:
        attributes.setdefault("WindowCenter", window[0])
        attributes.setdefault("WindowWidth", window[1])
    attributes.setdefault("BodyPartExamined", "FOOT")
    attributes.setdefault("ImageLaterality", "R")
    attributes.setdefault("ViewPosition", "AP")
    attributes.setdefault("BurnedInAnnotation", "NO")
    return dicom(
        pixels, modality="DX", photometric=photometric, bits_stored=bits_stored, syntax=syntax, **attributes
    )


def structured_report() -> bytes:
    """A DICOM object without pixel data (a Basic Text SR)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.30001"
    ds.Modality = "SR"
    ds.PatientName = NAME
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return write(ds)


def read(data: bytes) -> Dataset:
    """The data set in ``data`` (pixel data included)."""
    return dcmread(io.BytesIO(data))


# --------------------------------------------------------------------------- PNG and JPEG


def photo_exif() -> Image.Exif:
    """EXIF as a phone writes it: who, what, when, where, and an orientation flag."""
    exif = Image.Exif()
    exif[0x010F] = "Acme Phone"  # Make
    exif[0x010E] = DESCRIPTION  # ImageDescription
    exif[0x013B] = "Oliver Hart"  # Artist
    exif[0x0132] = "2024:03:05 10:11:12"  # DateTime
    exif[0x0112] = 6  # Orientation: rotate 90° to display
    exif.get_ifd(0x8769)[0x9003] = "2024:03:04 09:00:00"  # DateTimeOriginal
    exif.get_ifd(0x8825)[0x0001] = "N"  # GPSLatitudeRef
    return exif


def picture(
    fmt: str = "png",
    *,
    pixels: np.ndarray | None = None,
    metadata: bool = True,
    rows: int = 30,
    cols: int = 40,
) -> bytes:
    """A PNG or JPEG photograph of ``pixels`` (default: an RGB ramp) with EXIF, text chunks or a comment."""
    if pixels is None:
        pixels = gradient(rows, cols, colour=True)
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    options: dict[str, Any] = {}
    if metadata:
        options["exif"] = photo_exif()
        if fmt == "png":
            info = PngImagePlugin.PngInfo()
            info.add_text("Author", "Jane Doe")
            info.add_text("Title", INSTITUTION, zip=True)
            info.add_itxt("Comment", COMMENT, zip=True)
            options["pnginfo"] = info
        else:
            options["comment"] = f"{NAME} {PATIENT_ID}"
    if fmt == "png":
        image.save(buffer, "PNG", **options)
    else:
        image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    """The pixels of a PNG or JPEG (a rendition) as an array."""
    return np.asarray(Image.open(io.BytesIO(data)))
