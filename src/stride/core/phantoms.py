"""Synthetic images with known geometry: ultrasound and X-ray phantoms as DICOM files.

These are drawings, not patients. Each function builds a deterministic picture
from a seed, writes it as a DICOM file carrying the identifiers it is given
(so it can be filed under a demo or test patient) and returns, beside the
bytes, the pixel coordinates of the features drawn in it: the two ends of
the line a clinician would draw to measure each one. A measurement placed on
those landmarks must give back the size the phantom was asked for.

* :func:`ultrasound`: a B-mode picture of a forefoot interspace in short
  axis. Speckle is multiplicative Rayleigh noise (the magnitude of a complex
  Gaussian field, lightly correlated) over an echogenicity map, log-compressed
  to 8 bits, darker with depth. From the top: a bright skin line, the
  subcutaneous tissue, the interosseous muscle as a hypoechoic band of the
  requested thickness between two bright fascial lines, the two metatarsals
  on either side (a bright cortex with its acoustic shadow), and optionally a
  round hypoechoic neuroma of the requested diameter below the muscle. Pixel
  spacing travels in the ultrasound region (``SequenceOfUltrasoundRegions``,
  cm per pixel). With ``frames`` > 1 the file is a clip: the tissue moves by a
  few pixels from frame to frame (probe motion) and the speckle decorrelates
  partly; :attr:`Phantom.shifts` says where the anatomy is in each frame.
* :func:`xray`: a dorsoplantar (DP) X-ray of the 1st metatarsophalangeal
  joint (with the 2nd and 3rd rays beside it): the metatarsal head and the
  base of the proximal phalanx as bone with a bright cortical shell and a
  trabecular interior, the joint space between them of the requested medial
  and lateral widths, the soft tissue of the forefoot and toes. 12 bits,
  MONOCHROME2 (bone bright), ``PixelSpacing`` and a window in the header.

Coordinates follow Stride's measurement convention: ``(x, y)`` with ``x`` the
column and ``y`` the row of the stored pixels, pixel centres at whole numbers.
Only numpy and pydicom are used, and everything is vectorised: a 50 MB clip
builds in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from stride.core.errors import Invalid

Point = tuple[float, float]

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
DX_IMAGE_STORAGE_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"

#: Written into every phantom, so nobody mistakes one for a patient's image.
PHANTOM_COMMENT = "Synthetic phantom made by Stride: not an image of a patient."

_SEX = {"female": "F", "f": "F", "male": "M", "m": "M", "other": "O", "o": "O", "": "", "unknown": ""}
_SIDE = {"left": "L", "l": "L", "right": "R", "r": "R"}


@dataclass(frozen=True)
class Phantom:
    """A phantom's DICOM file and where its features are.

    ``landmarks`` maps a feature to the points of the line measuring it on
    frame 0 (a measurement type code where one fits: ``interosseous-thickness``,
    ``neuroma-diameter``, ``mtp1-jsw-medial``, ``mtp1-jsw-lateral``) or to one
    point (``neuroma-centre``, ``joint-centre``); ``sizes`` gives the size in mm
    each line was drawn to. ``shifts`` holds, per frame, how far (dx, dy) in
    pixels the anatomy has moved from frame 0.
    """

    data: bytes
    landmarks: Mapping[str, tuple[Point, ...]]
    sizes: Mapping[str, float]
    spacing: tuple[float, float]  # (row mm, column mm)
    width: int
    height: int
    frames: int = 1
    shifts: tuple[tuple[int, int], ...] = field(default=((0, 0),))

    def landmarks_at(self, frame: int) -> dict[str, tuple[Point, ...]]:
        """The landmarks as they lie in ``frame`` (the anatomy moves in a clip)."""
        if not 0 <= frame < self.frames:
            raise Invalid(f"The phantom has {self.frames} frames; there is no frame {frame}.", "frame")
        dx, dy = self.shifts[frame]
        return {name: tuple((x + dx, y + dy) for x, y in points) for name, points in self.landmarks.items()}

    def length_mm(self, name: str, frame: int = 0) -> float:
        """The length in mm of the landmark line ``name``, from its pixels and the spacing."""
        (x1, y1), (x2, y2) = self.landmarks_at(frame)[name]
        return math.hypot((x2 - x1) * self.spacing[1], (y2 - y1) * self.spacing[0])


# --------------------------------------------------------------------------- DICOM


def _dicom_date(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _check_common(laterality: str, sex: str, width: int, height: int, seed: int) -> tuple[str, str]:
    side = _SIDE.get(laterality.strip().lower())
    if side is None:
        raise Invalid(f"Laterality must be left or right, not {laterality!r}.", "laterality")
    code = _SEX.get(sex.strip().lower())
    if code is None:
        raise Invalid(f"Sex must be female, male, other or empty, not {sex!r}.", "sex")
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise Invalid(f"A phantom is 64 to 4096 pixels each way, not {width} × {height}.", "size")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise Invalid("The seed must be a whole number.", "seed")
    return side, code


def _uids(kind: str, seed: int, parts: tuple[object, ...]) -> tuple[str, str, str]:
    """Study, series and instance UIDs derived from the seed and the picture's parameters: repeatable."""
    base = [kind, str(seed), *(repr(p) for p in parts)]
    return (
        generate_uid(entropy_srcs=[*base, "study"]),
        generate_uid(entropy_srcs=[*base, "series"]),
        generate_uid(entropy_srcs=[*base, "instance"]),
    )


def _dataset(
    *,
    sop_class: str,
    uids: tuple[str, str, str],
    modality: str,
    patient_name: str,
    patient_id: str,
    birth_date: dt.date | None,
    sex: str,
    side: str,
    study_date: dt.date,
    description: str,
) -> Dataset:
    study_uid, series_uid, instance_uid = uids
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names with accents survive
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    day = _dicom_date(study_date)
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101500"
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "Stride"
    ds.ManufacturerModelName = "Phantom"
    ds.StudyDescription = description
    ds.SeriesDescription = description
    ds.ImageComments = PHANTOM_COMMENT
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = _dicom_date(birth_date)
    ds.PatientSex = sex
    ds.BodyPartExamined = "FOOT"
    ds.Laterality = side
    ds.ImageLaterality = side
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    return ds


def _file_bytes(ds: Dataset, pixels: np.ndarray) -> bytes:
    raw = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(raw) % 2:
        raw += b"\0"
    ds.add_new(0x7FE00010, "OB" if pixels.dtype.itemsize == 1 else "OW", raw)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------- small vectorised helpers


def _box(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """A moving average of width 2·radius + 1 along ``axis`` (edges repeated)."""
    if radius < 1:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(a, pad, mode="edge")
    n = a.shape[axis]
    if radius <= 4:  # a few shifted sums beat cumulative sums here
        total = np.zeros_like(a)
        index: list[slice] = [slice(None)] * a.ndim
        for k in range(2 * radius + 1):
            index[axis] = slice(k, k + n)
            total += padded[tuple(index)]
        return total / np.asarray(2 * radius + 1, dtype=a.dtype)
    c = np.cumsum(padded, axis=axis, dtype=np.float64)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * radius + 1)).astype(a.dtype)


def _blur(a: np.ndarray, radius: int, passes: int = 2) -> np.ndarray:
    """Near-Gaussian smoothing: repeated box filters along both axes."""
    for _ in range(passes):
        a = _box(_box(a, radius, 0), radius, 1)
    return a


def _speckle_field(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The real and imaginary parts of a complex Gaussian field with unit variance per part, smoothed
    over an ultrasound resolution cell: about 5 pixels across, 3 deep."""
    parts = []
    for _ in range(2):
        field = rng.standard_normal(shape, dtype=np.float32)
        field = _box(_box(field, 1, 0), 2, 1)
        field[:, 1:-1] = 0.25 * field[:, :-2] + 0.5 * field[:, 1:-1] + 0.25 * field[:, 2:]
        field /= np.float32(max(float(field.std()), 1e-6))
        parts.append(field)
    return parts[0], parts[1]


def _seed(kind: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"stride-phantom:{kind}:{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# --------------------------------------------------------------------------- ultrasound

#: Echo amplitudes of the tissues (relative; 1.0 displays mid-bright after log compression).
_ECHO = {
    "gel": 0.04,
    "skin": 3.2,
    "subcutis": 0.55,
    "septum": 1.1,
    "fascia": 2.6,
    "muscle": 0.2,
    "fibre": 0.7,
    "deep": 0.5,
    "cortex": 5.0,
    "shadow": 0.015,
    "neuroma": 0.1,
    "rim": 0.9,
}
_US_DYNAMIC_RANGE_DB = 46.0
_US_ATTENUATION_PER_MM = 0.045  # amplitude falls to exp(-0.045 · depth in mm)


def ultrasound(
    *,
    patient_name: str,
    patient_id: str,
    birth_date: dt.date | None,
    sex: str,
    laterality: str,
    study_date: dt.date,
    seed: int,
    muscle_mm: float = 4.0,
    neuroma_mm: float | None = None,
    muscle_depth_mm: float = 5.5,
    depth_mm: float = 30.0,
    width: int = 640,
    height: int = 480,
    frames: int = 1,
    frame_time_ms: float = 40.0,
    description: str = "US forefoot interspace, short axis",
) -> Phantom:
    """An ultrasound-like B-mode picture (8-bit, modality US) of a forefoot interspace.

    ``patient_name`` is a DICOM person name (``Family^Given``). The picture is
    ``depth_mm`` deep over its ``height`` rows, with square pixels; the muscle
    band's upper edge lies ``muscle_depth_mm`` below the skin surface and the
    band is ``muscle_mm`` thick; a neuroma of ``neuroma_mm`` diameter (none when
    ``None``) sits centred below it, between the metatarsals.
    """
    side, sex_code = _check_common(laterality, sex, width, height, seed)
    if not 1 <= frames <= 2000:
        raise Invalid(f"A phantom clip has 1 to 2000 frames, not {frames}.", "frames")
    if not 5 <= depth_mm <= 200:
        raise Invalid(f"The depth must be 5 to 200 mm, not {depth_mm}.", "depth_mm")
    mm = depth_mm / height  # the side of one (square) pixel
    if not 0.3 <= muscle_mm <= 20 or muscle_depth_mm < 1.5:
        raise Invalid("The muscle must be 0.3–20 mm thick and at least 1.5 mm deep.", "muscle_mm")
    neuroma_r = (neuroma_mm or 0.0) / 2
    if neuroma_mm is not None and not 1 <= neuroma_mm <= 20:
        raise Invalid(f"The neuroma must be 1–20 mm across, not {neuroma_mm}.", "neuroma_mm")
    deepest = muscle_depth_mm + muscle_mm + (1.6 + 2 * neuroma_r if neuroma_mm else 0.5) + 1.5
    if deepest > depth_mm:
        raise Invalid(f"The anatomy ({deepest:.1f} mm deep) does not fit in {depth_mm:g} mm.", "depth_mm")

    rng = _seed("us", seed)
    # Probe motion: small, smooth, whole-pixel shifts of the anatomy, frame 0 at rest.
    k = np.arange(frames)
    shift_x = np.rint(3.0 * np.sin(2 * np.pi * k / 47.0)).astype(int)
    shift_y = np.rint(1.5 * np.sin(2 * np.pi * k / 29.0 + 0.3) - 1.5 * math.sin(0.3)).astype(int)
    pad = 4
    big_h, big_w = height + 2 * pad, width + 2 * pad

    # The echogenicity map, in mm from the top-left corner of frame 0, on a padded canvas.
    rows = (np.arange(big_h, dtype=np.float32) - pad) * mm
    cols = (np.arange(big_w, dtype=np.float32) - pad) * mm
    y = rows[:, None]
    x = cols[None, :]
    centre_x = (width - 1) / 2 * mm
    echo = np.full((big_h, big_w), _ECHO["deep"], dtype=np.float32)

    skin_top, skin = 0.35, 0.45
    top = muscle_depth_mm
    bottom = muscle_depth_mm + muscle_mm
    fascia = 0.4
    echo[(y < skin_top).repeat(big_w, 1)] = _ECHO["gel"]
    subcutis = (y >= skin_top + skin) & (y < top - fascia)
    echo[np.broadcast_to(subcutis, echo.shape)] = _ECHO["subcutis"]
    # Fibrous septa in the subcutaneous fat: thin, gently sloping bright lines.
    for _ in range(3):
        depth = rng.uniform(skin_top + skin + 0.5, max(top - fascia - 0.5, skin_top + skin + 0.6))
        slope = rng.uniform(-0.06, 0.06)
        line = np.abs(y - (depth + slope * (x - centre_x))) < 0.12
        echo[line & subcutis] = _ECHO["septum"]
    echo[np.broadcast_to((y >= skin_top) & (y < skin_top + skin), echo.shape)] = _ECHO["skin"]
    band = (y >= top) & (y < bottom)
    echo[np.broadcast_to(band, echo.shape)] = _ECHO["muscle"]
    fibres = rng.random((big_h, big_w), dtype=np.float32) < 0.012  # the "starry sky" of muscle in short axis
    echo[fibres & band] = _ECHO["fibre"]
    echo[
        np.broadcast_to(
            ((y >= top - fascia) & (y < top)) | ((y >= bottom) & (y < bottom + fascia)), echo.shape
        )
    ] = _ECHO["fascia"]

    # A round hypoechoic neuroma with a faint rim, centred below the muscle band.
    neuroma_y = bottom + fascia + 1.2 + neuroma_r
    if neuroma_mm:
        distance = np.hypot(x - centre_x, y - neuroma_y)
        echo[(distance >= neuroma_r) & (distance < neuroma_r + 0.25)] = _ECHO["rim"]
        echo[distance < neuroma_r] = _ECHO["neuroma"]
        below = (np.abs(x - centre_x) < neuroma_r * 0.8) & (y > neuroma_y + neuroma_r + 0.25)
        echo[below] *= 1.35  # posterior acoustic enhancement
    # The two metatarsals: bright cortex, nothing but shadow beneath it.
    bone_r = 5.5
    half_gap = max(4.5, neuroma_r + 1.5)
    bone_y = top + bone_r - 0.2
    for sign in (-1, 1):
        bone_x = centre_x + sign * (half_gap + bone_r)
        dx = x - bone_x
        inside = np.abs(dx) < bone_r
        surface = bone_y - np.sqrt(np.clip(bone_r**2 - dx**2, 0, None))
        shadow = inside & (y > surface + 0.45)
        cortex = inside & (y >= surface) & (y <= surface + 0.45)
        echo[np.broadcast_to(shadow, echo.shape)] = _ECHO["shadow"]
        # The cortex echoes most where the beam meets it square, fading where the surface turns away.
        facing = np.broadcast_to(np.clip(1 - (dx / bone_r) ** 2, 0, 1), echo.shape)
        echo[cortex] = _ECHO["shadow"] + (_ECHO["cortex"] - _ECHO["shadow"]) * facing[cortex] ** 1.5

    # Tissue texture (slow variations of echogenicity) and the loss of signal with depth.
    texture = _blur(rng.standard_normal((big_h, big_w), dtype=np.float32), 6)
    echo *= np.exp(0.25 * texture / np.float32(max(float(texture.std()), 1e-6)))
    echo *= np.exp(-_US_ATTENUATION_PER_MM * np.clip(y, 0, None)).astype(np.float32)

    # Speckle: a complex Gaussian field, correlated over the resolution cell (wider than deep), that
    # moves with the tissue and is partly renewed every frame from a pool of fresh fields.
    tissue_re, tissue_im = _speckle_field(rng, (big_h, big_w))
    spare = 48 if frames > 1 else 0
    fresh_re, fresh_im = _speckle_field(rng, (height + spare, width + spare)) if frames > 1 else (None, None)
    persist = np.float32(0.9)
    renew = np.float32(math.sqrt(1 - 0.9**2))
    norm = np.float32(1 / math.sqrt(math.pi / 2))  # the mean envelope of unit fields is sqrt(pi / 2)
    scale = np.float32(255 / _US_DYNAMIC_RANGE_DB)
    offset = np.float32(_US_DYNAMIC_RANGE_DB - 8.0)  # echo 1.0 → about 210 grey levels
    # Grey level = (20·log10(envelope · echo) + offset) · scale, with envelope = |re + i·im|: the echo's
    # part is computed once, the speckle's as 10·log10(re² + im²) per frame.
    echo_grey = (np.float32(20) * np.log10(np.maximum(echo * norm, np.float32(1e-9))) + offset) * scale
    speckle_scale = np.float32(10) * scale
    pixels = np.empty((frames, height, width), dtype=np.uint8)
    for i in range(frames):
        top_row, left = pad - int(shift_y[i]), pad - int(shift_x[i])
        window = np.s_[top_row : top_row + height, left : left + width]
        re, im = tissue_re[window], tissue_im[window]
        if i:
            oy, ox = (int(v) for v in rng.integers(0, spare + 1, size=2))
            other = np.s_[oy : oy + height, ox : ox + width]
            re = persist * re + renew * fresh_re[other]  # type: ignore[index]
            im = persist * im + renew * fresh_im[other]  # type: ignore[index]
        power = re * re
        power += im * im
        power += np.float32(1e-12)
        grey = np.log10(power, out=power)
        grey *= speckle_scale
        grey += echo_grey[window]
        np.clip(grey, 0, 255, out=grey)
        pixels[i] = grey

    landmarks: dict[str, tuple[Point, ...]] = {}
    sizes: dict[str, float] = {}
    middle = (width - 1) / 2
    landmarks["interosseous-thickness"] = ((middle, top / mm), (middle, bottom / mm))
    sizes["interosseous-thickness"] = float(muscle_mm)
    if neuroma_mm:
        landmarks["neuroma-diameter"] = (
            (middle - neuroma_r / mm, neuroma_y / mm),
            (middle + neuroma_r / mm, neuroma_y / mm),
        )
        landmarks["neuroma-centre"] = ((middle, neuroma_y / mm),)
        sizes["neuroma-diameter"] = float(neuroma_mm)

    parts = (
        patient_id,
        study_date,
        side,
        muscle_mm,
        neuroma_mm,
        muscle_depth_mm,
        depth_mm,
        width,
        height,
        frames,
    )
    multi = frames > 1
    ds = _dataset(
        sop_class=US_MULTIFRAME_IMAGE_STORAGE if multi else US_IMAGE_STORAGE,
        uids=_uids("us", seed, parts),
        modality="US",
        patient_name=patient_name,
        patient_id=patient_id,
        birth_date=birth_date,
        sex=sex_code,
        side=side,
        study_date=study_date,
        description=description,
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.TransducerType = "LINEAR"
    ds.TransducerFrequency = 15000  # kHz
    if multi:
        ds.NumberOfFrames = frames
        ds.FrameTime = frame_time_ms
        ds.CineRate = round(1000 / frame_time_ms)
        ds.add_new(0x00280009, "AT", [0x00181063])  # FrameIncrementPointer → FrameTime
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D tissue image
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = width - 1
    region.RegionLocationMaxY1 = height - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = mm / 10
    region.PhysicalDeltaY = mm / 10
    region.ReferencePixelX0 = width // 2
    region.ReferencePixelY0 = 0
    region.ReferencePixelPhysicalValueX = 0.0
    region.ReferencePixelPhysicalValueY = 0.0
    ds.SequenceOfUltrasoundRegions = [region]
    data = _file_bytes(ds, pixels if multi else pixels[0])
    return Phantom(
        data=data,
        landmarks=landmarks,
        sizes=sizes,
        spacing=(mm, mm),
        width=width,
        height=height,
        frames=frames,
        shifts=tuple((int(a), int(b)) for a, b in zip(shift_x, shift_y, strict=True)),
    )


# --------------------------------------------------------------------------- X-ray


def _chord(depth: np.ndarray, radius: float) -> np.ndarray:
    """The length of a ray through a round bone of ``radius`` passing ``depth`` inside its edge."""
    d = np.clip(depth, 0, radius)
    return 2 * np.sqrt(d * (2 * radius - d))


def _smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """The union of two shapes by their signed distances, the corner between them filleted over ``k`` mm."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


@dataclass(frozen=True)
class _Ray:
    """One ray of the forefoot: a metatarsal with a round head and the proximal phalanx beyond it (mm)."""

    x: float  # the bones' axis
    head_y: float  # the centre of the metatarsal head
    head_r: float
    shaft_half: float
    base_half: float  # the half-width of the phalanx base
    phalanx_half: float
    phalanx_length: float


def _ray_bones(
    X: np.ndarray, Y: np.ndarray, ray: _Ray, gap: np.ndarray | float, osteophyte: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signed distances (mm, negative inside) of the metatarsal and the phalanx, and their half-widths."""
    dx, dy = X - ray.x, Y - ray.head_y
    distance = np.hypot(dx, dy)
    head = distance - ray.head_r
    shaft = np.maximum(np.abs(dx) - ray.shaft_half, -dy)
    metatarsal = _smooth_union(head, shaft, 4.0)
    if osteophyte > 0:
        for sign in (-1, 1):
            angle = math.radians(70)
            ox, oy = ray.x + sign * ray.head_r * math.sin(angle), ray.head_y - ray.head_r * math.cos(angle)
            metatarsal = _smooth_union(metatarsal, np.hypot(X - ox, Y - oy) - osteophyte, 1.0)
    outer = ray.head_r + gap
    apex = ray.head_y - outer
    taper = ray.phalanx_half + (ray.base_half - ray.phalanx_half) * np.exp(np.minimum((Y - apex) / 5.0, 0))
    half = np.minimum(taper, outer * math.sin(math.radians(56)))
    cut = ray.head_y - outer * math.cos(math.radians(56))
    tip = apex - ray.phalanx_length
    sides = -_smooth_union(-(np.abs(dx) - half), -(tip - Y), 2.5)  # the far end rounded off
    phalanx = np.maximum(np.maximum(outer - distance, sides), Y - cut)
    # The metatarsal's radius for its projected thickness: the shaft's, widening into the head's.
    radius = ray.shaft_half + (ray.head_r - ray.shaft_half) * _smoothstep((3.0 - dy) / 6.0)
    return metatarsal, phalanx, radius, half


def xray(
    *,
    patient_name: str,
    patient_id: str,
    birth_date: dt.date | None,
    sex: str,
    laterality: str,
    study_date: dt.date,
    seed: int,
    medial_mm: float = 2.0,
    lateral_mm: float = 2.0,
    osteophyte_mm: float = 0.0,
    spacing_mm: float = 0.1,
    width: int = 1024,
    height: int = 1024,
    weight_bearing: bool = True,
    description: str = "",
) -> Phantom:
    """A DP X-ray-like picture (DX, 12-bit, MONOCHROME2) of the 1st MTP joint of one foot.

    The joint space between the metatarsal head and the base of the proximal
    phalanx is ``medial_mm`` wide over its medial half and ``lateral_mm`` over
    its lateral half (both surfaces are concentric arcs, so the width is the
    same anywhere along a half, measured along the radius). Displayed as the
    foot is seen from above with the toes up (``PatientOrientation`` L\\P): the
    medial side, towards the patient's other foot, lies right on a right foot
    and left on a left one. ``osteophyte_mm`` adds a bony lip of that radius at
    both margins of the head.
    """
    side, sex_code = _check_common(laterality, sex, width, height, seed)
    for name, value in (("medial_mm", medial_mm), ("lateral_mm", lateral_mm)):
        if not 0.2 <= value <= 8:
            raise Invalid(f"The joint space must be 0.2–8 mm wide, not {value}.", name)
    if not 0.02 <= spacing_mm <= 1.0:
        raise Invalid(f"The pixel spacing must be 0.02–1 mm, not {spacing_mm}.", "spacing_mm")
    if not 0 <= osteophyte_mm <= 4:
        raise Invalid(f"An osteophyte of 0–4 mm, not {osteophyte_mm}.", "osteophyte_mm")
    if min(width, height) * spacing_mm < 60:
        raise Invalid("The picture must cover at least 60 mm each way.", "size")
    rng = _seed("dx", seed)
    medial = 1 if side == "R" else -1  # + x is towards the patient's left

    s = spacing_mm
    cx, cy = (width - 1) / 2, (height - 1) / 2
    X = ((np.arange(width, dtype=np.float64) - cx) * s).astype(np.float32)[None, :]
    Y = ((np.arange(height, dtype=np.float64) - cy) * s).astype(np.float32)[:, None]

    head = _Ray(
        x=0.0, head_y=8.0, head_r=9.5, shaft_half=6.6, base_half=8.4, phalanx_half=5.6, phalanx_length=27
    )
    # The joint space around the 1st metatarsal head: the medial width over the medial half, the lateral
    # over the lateral half, blended within 10° of the apex.
    angle = np.degrees(np.arctan2(X - head.x, -(Y - head.head_y))) * medial
    blend = _smoothstep((angle + 10.0) / 20.0)
    gap = lateral_mm + (medial_mm - lateral_mm) * blend
    rays = [
        (head, gap, osteophyte_mm),
        (
            _Ray(-medial * 24.0, 3.5, 6.2, 4.2, 5.6, 3.8, 22),
            2.2,
            0.0,
        ),
        (
            _Ray(-medial * 40.0, 6.0, 5.6, 3.8, 5.0, 3.4, 18),
            2.3,
            0.0,
        ),
    ]

    # Projected thickness: a cortical shell around a trabecular interior, per bone.
    # Trabecular texture: noise smoothed at half resolution, enlarged (the final blur hides the steps).
    coarse = _blur(rng.standard_normal(((height + 1) // 2, (width + 1) // 2), dtype=np.float32), 1)
    coarse = 1.0 + 0.3 * coarse / max(float(np.std(coarse)), 1e-6)
    trabecular = coarse.repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    cortex = np.zeros((height, width), dtype=np.float32)
    plate = np.zeros((height, width), dtype=np.float32)
    marrow = np.zeros((height, width), dtype=np.float32)
    soft = np.zeros((height, width), dtype=np.float32)
    cortical = 1.1  # mm
    for ray, ray_gap, spur in rays:
        # Each ray is drawn within the columns it can reach (its toe's soft tissue is the widest part).
        widest_gap = float(np.max(ray_gap))
        reach = max(ray.head_r + widest_gap, ray.base_half + 4.0) + 2 * spur + 1.0
        cols = slice(
            max(0, math.floor(cx + (ray.x - reach) / s)), min(width, math.ceil(cx + (ray.x + reach) / s) + 1)
        )
        if cols.start >= cols.stop:
            continue
        Xr = X[:, cols]
        gap_r = ray_gap[:, cols] if isinstance(ray_gap, np.ndarray) else ray_gap
        metatarsal, phalanx, shaft_half, base_half = _ray_bones(Xr, Y, ray, gap_r, spur)
        for sdf, radius in ((metatarsal, shaft_half), (phalanx, base_half)):
            depth = -sdf
            outer = _chord(depth, radius)
            inner = _chord(depth - cortical, np.maximum(radius - cortical, 0.5))
            # The cortical shell: seen edge-on along the beam it ends in a sharp, bright margin (the
            # subchondral plate at a joint), and it thickens with the path through it.
            plate[:, cols] += (depth > 0) & (depth <= cortical)
            cortex[:, cols] += outer - inner
            marrow[:, cols] += inner
        # The soft tissue of the toe around this ray: a capsule over the phalanx.
        toe_r = ray.base_half + 4.0
        toe_top = ray.head_y - ray.head_r - ray.phalanx_length - 6.0 + toe_r
        along = np.maximum(toe_top - Y, 0)
        toe = np.hypot(Xr - ray.x, along) - toe_r
        soft[:, cols] = np.maximum(soft[:, cols], _chord(np.maximum(-toe, 0), toe_r))
    web = head.head_y - head.head_r - 6.0  # the webspaces begin here
    edge = head.x + medial * (head.head_r + 7.0)
    forefoot = np.maximum((X - edge) * medial, web - Y)
    soft = np.maximum(soft, _chord(np.maximum(-forefoot, 0), 14.0))
    # Sesamoids under the 1st metatarsal head (seen through it on a DP view).
    for sign in (-1, 1):
        ellipse = np.hypot((X - sign * 4.6) / 3.2, (Y - 11.5) / 4.2)
        sesamoid = _chord((1 - ellipse) * 3.2, 3.2)
        cortex += 0.25 * sesamoid

    attenuation = 0.016 * soft + 1.0 * plate + 0.04 * cortex + 0.05 * marrow * trabecular
    attenuation = _blur(attenuation.astype(np.float32), 1)
    noise = rng.standard_normal((height, width), dtype=np.float32) * np.float32(0.012)
    values = 250 + 1150 * (attenuation + noise)
    pixels = np.clip(np.rint(values), 0, 4095).astype(np.uint16)

    def to_px(point_mm: tuple[float, float]) -> Point:
        return (cx + point_mm[0] / s, cy + point_mm[1] / s)

    landmarks: dict[str, tuple[Point, ...]] = {}
    sizes: dict[str, float] = {}
    for name, sign, wide in (
        ("mtp1-jsw-medial", medial, medial_mm),
        ("mtp1-jsw-lateral", -medial, lateral_mm),
    ):
        theta = math.radians(30.0) * sign
        ux, uy = math.sin(theta), -math.cos(theta)
        on_head = (head.x + head.head_r * ux, head.head_y + head.head_r * uy)
        on_base = (head.x + (head.head_r + wide) * ux, head.head_y + (head.head_r + wide) * uy)
        landmarks[name] = (to_px(on_head), to_px(on_base))
        sizes[name] = float(wide)
    landmarks["joint-centre"] = (to_px((head.x, head.head_y - head.head_r)),)

    parts = (patient_id, study_date, side, medial_mm, lateral_mm, osteophyte_mm, spacing_mm, width, height)
    ds = _dataset(
        sop_class=DX_IMAGE_STORAGE_FOR_PRESENTATION,
        uids=_uids("dx", seed, parts),
        modality="DX",
        patient_name=patient_name,
        patient_id=patient_id,
        birth_date=birth_date,
        sex=sex_code,
        side=side,
        study_date=study_date,
        description=description or f"Foot DP{' weight-bearing' if weight_bearing else ''}",
    )
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition = "AP"  # dorsoplantar: the beam enters the dorsum
    ds.PatientOrientation = ["L", "P"]
    ds.PositionerType = "NONE"
    ds.KVP = 55
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelSpacing = [s, s]
    ds.ImagerPixelSpacing = [s, s]
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 1500
    ds.WindowWidth = 2600
    ds.PresentationLUTShape = "IDENTITY"
    ds.LossyImageCompression = "00"
    data = _file_bytes(ds, pixels)
    return Phantom(data=data, landmarks=landmarks, sizes=sizes, spacing=(s, s), width=width, height=height)
