"""Imaging work: storing an upload, deriving renditions, calibrating, measuring, de-identifying.

Every write is whole or nothing: an upload that fails a check leaves no row and
no file behind (a file already written to the storage is deleted again when
saving its row fails). Only when a caller's own, enclosing transaction rolls
back after a successful :func:`store` can a file outlive its row; ``stride
images prune`` finds and removes such files (see :func:`unreferenced_files`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from stride.care.models import Condition, Site
from stride.core import identity, rules
from stride.core import imaging as core_imaging
from stride.core import measure as core_measure
from stride.core.errors import Invalid
from stride.imaging.models import Annotation, Image, Measurement, original_path
from stride.imaging.storage import image_storage
from stride.patients.models import Patient

#: Each stored format's file extension and media type.
FILE_TYPES = {
    "dicom": ("dcm", "application/dicom"),
    "png": ("png", "image/png"),
    "jpeg": ("jpg", "image/jpeg"),
}
#: The longest side of each named rendition size, in pixels (``full``: the original's size).
SIZES = {"thumb": 240, "web": 1400, "full": None}


def max_bytes() -> int:
    return settings.STRIDE_IMAGE_MAX_MB * 1024 * 1024


def _fail(message: str, field: str = "file") -> ValidationError:
    return ValidationError({field: [message]})


def read_upload(upload: Any) -> bytes:
    """The uploaded file's bytes, refusing an empty or enormous one before reading it."""
    size = getattr(upload, "size", None)
    limit = max_bytes()
    if size is not None and size > limit:
        raise _fail(
            f"The file is {size / 1024 / 1024:.0f} MB; images of up to {settings.STRIDE_IMAGE_MAX_MB} MB "
            "are accepted. Nothing was stored."
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise _fail(f"The file is larger than {settings.STRIDE_IMAGE_MAX_MB} MB. Nothing was stored.")
    if not data:
        raise _fail("The file is empty. Nothing was stored.")
    return data


@dataclass(frozen=True)
class Upload:
    """What the person filled in beside the file; empty fields are taken from the DICOM header."""

    condition: Condition
    acquired_on: dt.date | None = None
    laterality: str = ""
    site: Site | None = None
    view: str = ""
    modality: str = ""
    frame: int | None = None
    note: str = ""


def store(patient: Patient, data: bytes, filename: str, details: Upload, *, user: Any) -> Image:
    """Check ``data`` and file it under ``patient``; :class:`ValidationError` (nothing stored) otherwise."""
    if details.condition.patient_id != patient.pk:
        raise _fail("The condition belongs to another patient.", "condition")
    try:
        info = core_imaging.inspect(data)
    except Invalid as exc:
        raise _fail(exc.message, exc.field or "file") from None
    if info.format == "dicom":
        try:
            identity.check_same_patient(
                file_name=info.patient_name,
                file_id=info.patient_id,
                file_birth_date=info.patient_birth_date,
                family_name=patient.family_name,
                given_name=patient.given_name,
                record_number=patient.record_number,
                birth_date=patient.date_of_birth,
            )
        except Invalid as exc:
            raise _fail(exc.message, "file") from None

    errors: dict[str, list[str]] = {}
    laterality = details.laterality or info.laterality
    if details.laterality and info.laterality and details.laterality != info.laterality:
        errors.setdefault("laterality", []).append(
            f"The DICOM header says this is the {info.laterality} side; you chose {details.laterality}."
        )
    if not laterality:
        errors.setdefault("laterality", []).append("Choose the side: the file does not say.")
    acquired_on = details.acquired_on or info.acquired_on
    if acquired_on is None:
        errors.setdefault("acquired_on", []).append(
            "Give the date the image was taken: the file does not say."
        )
    else:
        try:
            rules.event_date(
                acquired_on,
                "acquired_on",
                "date taken",
                born=patient.date_of_birth,
                today=patient.clinic.today(),
            )
        except Invalid as exc:
            errors.setdefault(exc.field, []).append(exc.message)
    frame = details.frame if details.frame is not None else 0
    if not 0 <= frame < info.frames:
        errors.setdefault("frame", []).append(
            f"The file has {info.frames} frame{'s' if info.frames != 1 else ''}; "
            f"choose one from 1 to {info.frames}."
        )
    if errors:
        raise ValidationError(errors)

    digest = hashlib.sha256(data).hexdigest()
    earlier = Image.objects.filter(patient=patient, sha256=digest).first()
    if earlier is not None:
        raise _fail(f"This file is already in the record (uploaded on {earlier.created_at:%d %b %Y}).")

    image = Image(
        patient=patient,
        condition=details.condition,
        original_name=(filename or "")[-255:],
        sha256=digest,
        size_bytes=len(data),
        format=info.format,
        modality=details.modality or info.modality,
        acquired_on=acquired_on,
        site=details.site,
        laterality=laterality,
        view=details.view or _view(info.view),
        frames=info.frames,
        frame=frame,
        width=info.width,
        height=info.height,
        window_centre=info.window[0] if info.window else None,
        window_width=info.window[1] if info.window else None,
        burned_in=info.burned_in_annotation,
        note=details.note,
        uploaded_by=user if getattr(user, "is_authenticated", False) else None,
    )
    if info.spacing:
        image.spacing_row_mm, image.spacing_col_mm = info.spacing
        image.spacing_source = f"dicom:{info.spacing_source}"
    image.full_clean(exclude=["original", "uploaded_by"])
    saved_name = ""
    try:
        with transaction.atomic():
            saved_name = image_storage().save(original_path(image), ContentFile(data))
            image.original.name = saved_name
            image.save()
    except IntegrityError:
        _discard(saved_name)
        raise _fail("This file is already in the record.") from None
    except BaseException:
        _discard(saved_name)
        raise
    return image


def _discard(name: str) -> None:
    if name:
        image_storage().delete(name)


_VIEWS = {
    "DP": "dp",
    "PA": "dp",
    "AP": "ap",
    "LL": "lateral",
    "RL": "lateral",
    "LAT": "lateral",
    "OBL": "oblique",
}


def _view(dicom_view: str) -> str:
    return _VIEWS.get(dicom_view.strip().upper(), "")


# --------------------------------------------------------------------------- renditions


def original_bytes(image: Image) -> bytes:
    with image_storage().open(image.original.name, "rb") as handle:
        return handle.read()


def _rendition_name(image: Image, frame: int, window: tuple[float, float] | None, size: int | None) -> str:
    masks = hashlib.sha256(repr(image.mask_boxes).encode()).hexdigest()[:10]
    shown = f"{window[0]:g}_{window[1]:g}" if window else "auto"
    return f"derived/{image.pk}/{image.sha256[:16]}-f{frame}-w{shown}-s{size or 'full'}-m{masks}.png"


def rendition(
    image: Image, *, frame: int | None = None, window: tuple[float, float] | None = None, size: str = "web"
) -> bytes:
    """A PNG of one frame, windowed and masked, from the cache or made (and cached) now."""
    if size not in SIZES:
        raise Invalid(f"Unknown size {size!r}; choose one of {', '.join(SIZES)}.", "size")
    frame = image.frame if frame is None else frame
    if not 0 <= frame < image.frames:
        raise Invalid(f"The image has {image.frames} frames; there is no frame {frame + 1}.", "frame")
    if window is None:
        window = image.window
    if window is not None and window[1] <= 0:
        raise Invalid("The window width must be more than zero.", "ww")
    storage = image_storage()
    name = _rendition_name(image, frame, window, SIZES[size])
    if storage.exists(name):
        with storage.open(name, "rb") as handle:
            return handle.read()
    png = core_imaging.render(
        original_bytes(image), frame=frame, window=window, size=SIZES[size], masks=image.mask_boxes
    )
    storage.save(name, ContentFile(png))
    return png


def forget_renditions(image: Image) -> None:
    """Delete the cached renditions (after the masks change); they are remade when next asked for."""
    storage = image_storage()
    folder = f"derived/{image.pk}"
    try:
        _, files = storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        return
    for name in files:
        storage.delete(f"{folder}/{name}")


def unreferenced_files(before: dt.datetime) -> list[str]:
    """Files written before ``before`` that no image refers to: orphaned originals and renditions."""
    storage = image_storage()
    known = set(Image.objects.values_list("original", flat=True))
    ids = {str(pk) for pk in Image.objects.values_list("pk", flat=True)}
    found = []

    def listing(folder: str) -> tuple[list[str], list[str]]:
        try:
            return storage.listdir(folder)
        except (FileNotFoundError, NotImplementedError):
            return [], []

    def old(name: str) -> bool:
        try:
            return storage.get_modified_time(name) < before
        except (FileNotFoundError, NotImplementedError):
            return False

    for clinic in listing("originals")[0]:
        for name in listing(f"originals/{clinic}")[1]:
            path = f"originals/{clinic}/{name}"
            if path not in known and old(path):
                found.append(path)
    for image_id in listing("derived")[0]:
        if image_id not in ids:
            found.extend(
                path
                for name in listing(f"derived/{image_id}")[1]
                if old(path := f"derived/{image_id}/{name}")
            )
    return sorted(found)


def delete_image(image: Image) -> None:
    name = image.original.name
    pk = image.pk
    with transaction.atomic():
        image.delete()
    image.pk = pk
    forget_renditions(image)
    _discard(name)


# --------------------------------------------------------------------------- calibration and measuring


def _points(raw: Any, field: str = "points") -> list[tuple[float, float]]:
    try:
        points = [(float(x), float(y)) for x, y in raw]
    except (TypeError, ValueError):
        raise Invalid("Points must be a list of [x, y] pairs of numbers.", field) from None
    if any(p != p or abs(p) > 1e6 for point in points for p in point):
        raise Invalid("Points must be finite numbers within the image.", field)
    return points


def _inside(image: Image, points: Sequence[tuple[float, float]], field: str = "points") -> None:
    for x, y in points:
        if not (-0.5 <= x <= image.width + 0.5 and -0.5 <= y <= image.height + 0.5):
            raise Invalid(
                f"The point ({x:.0f}, {y:.0f}) lies outside the image "
                f"({image.width} × {image.height} pixels).",
                field,
            )


def calibrate(image: Image, raw_points: Any, known_mm: Any) -> Image:
    """Set a photo's or screenshot's pixel spacing from a line of known length."""
    if image.from_dicom_spacing:
        raise Invalid(
            "This image carries its pixel spacing in its DICOM header; it cannot be recalibrated by hand.",
            "points",
        )
    points = _points(raw_points)
    _inside(image, points)
    try:
        known = float(known_mm)
    except (TypeError, ValueError):
        raise Invalid("Give the known length in millimetres, as a number.", "known_mm") from None
    result = core_measure.calibrate(points[0], points[1], known) if len(points) == 2 else None
    if result is None:
        raise Invalid("A calibration line has two points.", "points")
    with transaction.atomic():
        image.spacing_row_mm, image.spacing_col_mm = result.row_mm, result.col_mm
        image.spacing_source = "user"
        image.calibration = {"points": [list(p) for p in points], "known_mm": known}
        image.save()
    return image


def add_measurement(image: Image, data: dict[str, Any], *, user: Any) -> Measurement:
    """Measure on ``image``: type, tool, points, frame, qualifiers, site, note (a value for grades)."""
    code = str(data.get("type") or "")
    kind = core_measure.measurement_type(code)
    tool = str(data.get("tool") or "")
    frame = data.get("frame", image.frame)
    if not isinstance(frame, int) or not 0 <= frame < image.frames:
        raise Invalid(f"The image has {image.frames} frames; there is no frame {frame!r}.", "frame")
    qualifiers = data.get("qualifiers") or {}
    if not isinstance(qualifiers, dict):
        raise Invalid("Qualifiers must be an object of code → option.", "qualifiers")
    qualifiers = core_measure.check_qualifiers(kind, qualifiers)
    site = None
    if data.get("site"):
        site = Site.objects.filter(code=str(data["site"])).first()
        if site is None:
            raise Invalid(f"Unknown site {data['site']!r}.", "site")
        if kind.sites and site.code not in kind.sites:
            raise Invalid(f"{kind.name} is not measured at the {site.name.lower()}.", "site")
    elif image.site_id and kind.sites and image.site.code not in kind.sites:
        raise Invalid(
            f"{kind.name} is not measured at the {image.site.name.lower()}, where this image is filed; "
            "choose the site it was measured at.",
            "site",
        )
    note = str(data.get("note") or "")[:200]
    if kind.unit == "grade":
        grade = core_measure.check_grade(kind, data.get("value"))
        points: list[tuple[float, float]] = []
        result = core_measure.Result(float(grade), "grade", True)
        tool = "grade"
    else:
        points = _points(data.get("points"))
        _inside(image, points)
        result = core_measure.value_for(kind, tool, points, image.calibration_value)
    with transaction.atomic():
        return Measurement.objects.create(
            image=image,
            type_code=kind.code,
            catalog_version=core_measure.catalog_version(),
            tool=tool,
            frame=frame,
            points=[list(p) for p in points],
            value=result.value,
            unit=result.unit,
            calibrated=result.calibrated,
            qualifiers=qualifiers,
            site=site or image.site,
            note=note,
            measured_by=user if getattr(user, "is_authenticated", False) else None,
        )


ANNOTATION_POINTS = {"arrow": 2, "circle": 2, "text": 1}


def add_annotation(image: Image, data: dict[str, Any], *, user: Any) -> Annotation:
    kind = str(data.get("kind") or "")
    if kind not in ANNOTATION_POINTS:
        raise Invalid(f"Unknown mark {kind!r}; draw an arrow, a circle or a text.", "kind")
    points = _points(data.get("points"))
    if len(points) != ANNOTATION_POINTS[kind]:
        raise Invalid(
            f"A{'n' if kind == 'arrow' else ''} {kind} has {ANNOTATION_POINTS[kind]} point(s).", "points"
        )
    _inside(image, points)
    text = str(data.get("text") or "").strip()
    if kind == "text" and not text:
        raise Invalid("Write the text to place.", "text")
    if len(text) > 200:
        raise Invalid("Keep the text under 200 characters.", "text")
    frame = data.get("frame", image.frame)
    if not isinstance(frame, int) or not 0 <= frame < image.frames:
        raise Invalid(f"The image has {image.frames} frames; there is no frame {frame!r}.", "frame")
    with transaction.atomic():
        return Annotation.objects.create(
            image=image,
            kind=kind,
            frame=frame,
            points=[list(p) for p in points],
            text=text,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )


def set_masks(image: Image, raw: Any) -> Image:
    """Replace the rectangles blanked over burned-in text; renditions are remade."""
    if not isinstance(raw, list):
        raise Invalid("Masks must be a list of [x, y, width, height] rectangles.", "masks")
    boxes = []
    for box in raw:
        try:
            x, y, w, h = (round(float(v)) for v in box)
        except (TypeError, ValueError):
            raise Invalid("Each mask is [x, y, width, height] in pixels.", "masks") from None
        x, y = max(x, 0), max(y, 0)
        w, h = min(w, image.width - x), min(h, image.height - y)
        if w <= 0 or h <= 0:
            raise Invalid("A mask must cover part of the image.", "masks")
        boxes.append([x, y, w, h])
    with transaction.atomic():
        image.masks = boxes
        image.save(update_fields=["masks", "updated_at"])
    forget_renditions(image)
    return image


# --------------------------------------------------------------------------- de-identified copies


def pseudonym(patient: Patient) -> str:
    """A stable stand-in for the patient in de-identified files: keyed BLAKE2b of the id, not reversible."""
    secret = hashlib.sha256(f"stride-image-key:{settings.SECRET_KEY}".encode()).digest()
    return "P" + hashlib.blake2b(b"patient:%d" % patient.pk, key=secret, digest_size=5).hexdigest().upper()


def deidentified(image: Image, *, pseudonym: str, origin: dt.date | None = None) -> tuple[bytes, str, str]:
    """The image without identifiers: (bytes, file name, content type).

    DICOM attributes that identify are removed or replaced (the pseudonym stands for the patient), dates
    move by the days between ``origin`` and the image (so a pair keeps its interval), masked regions are
    blanked in the pixels; photos are re-encoded without their metadata.
    """
    offset = (dt.date(2000, 1, 1) - origin).days if origin else None
    data = core_imaging.deidentify(
        original_bytes(image), masks=image.mask_boxes, pseudonym=pseudonym, day_offset=offset
    )
    extension, content_type = FILE_TYPES[image.format]
    return data, f"{pseudonym or 'image'}-{image.pk}.{extension}", content_type
