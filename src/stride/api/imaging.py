"""Images' metadata (never their pixels: those stay behind the audited viewer) and measurements."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from stride.api import common
from stride.api.errors import from_invalid
from stride.api.schemas import (
    ERRORS,
    MAX_ID,
    WRITE_ERRORS,
    ImageOut,
    MeasurementIn,
    MeasurementOut,
    PageQuery,
    page_of,
)
from stride.clinics.access import Action
from stride.core.errors import Invalid
from stride.imaging import services
from stride.imaging.models import Image, Measurement

router = Router(tags=["imaging"])

ImagePage = page_of(ImageOut, "ImagePage")
MeasurementPage = page_of(MeasurementOut, "MeasurementPage")
ImageId = Path(..., ge=1, le=MAX_ID, description="The image's id.")

_IMAGES = Image.objects.select_related("patient__clinic", "site", "uploaded_by").annotate(
    _measurements=Count("measurements")
)
_MEASUREMENTS = Measurement.objects.select_related("image__patient__clinic", "site", "measured_by")


def image_out(i: Image) -> dict[str, Any]:
    return {
        "id": i.pk,
        "patient_id": i.patient_id,
        "condition_id": i.condition_id,
        "format": i.format,
        "modality": i.modality,
        "acquired_on": i.acquired_on,
        "site": i.site.code if i.site_id else None,
        "laterality": i.laterality,
        "view": i.view,
        "frames": i.frames,
        "frame": i.frame,
        "width": i.width,
        "height": i.height,
        "spacing_row_mm": i.spacing_row_mm,
        "spacing_col_mm": i.spacing_col_mm,
        "spacing_source": i.spacing_source,
        "calibrated": i.calibrated,
        "window_centre": i.window_centre,
        "window_width": i.window_width,
        "masks": [list(box) for box in i.mask_boxes],
        "burned_in": i.burned_in,
        "note": i.note,
        "sha256": i.sha256,
        "size_bytes": i.size_bytes,
        "uploaded_by": common.username(i.uploaded_by),
        "measurement_count": i._measurements if hasattr(i, "_measurements") else i.measurements.count(),
        "created_at": i.created_at,
        "updated_at": i.updated_at,
    }


def measurement_out(m: Measurement) -> dict[str, Any]:
    return {
        "id": m.pk,
        "image_id": m.image_id,
        "type": m.type_code,
        "name": m.type_name,
        "tool": m.tool,
        "frame": m.frame,
        "points": [[float(x), float(y)] for x, y in m.points or []],
        "value": m.value,
        "unit": m.unit,
        "text": m.value_text,
        "calibrated": m.calibrated,
        "qualifiers": {str(k): str(v) for k, v in (m.qualifiers or {}).items()},
        "site": m.site.code if m.site_id else None,
        "note": m.note,
        "measured_by": common.username(m.measured_by),
        "catalog_version": m.catalog_version,
        "created_at": m.created_at,
    }


@router.get(
    "/patients/{patient_id}/images", response={200: ImagePage, **ERRORS}, summary="List a patient's images"
)
def list_images(
    request: HttpRequest,
    query: Query[PageQuery],
    patient_id: int = Path(..., ge=1, le=MAX_ID, description="The patient's id."),
) -> dict[str, Any]:
    """What was read from each file (modality, date, side, size, spacing…), oldest first."""
    found = common.patient(request, patient_id)
    images = common.scoped(request, _IMAGES.filter(patient=found)).order_by("acquired_on", "pk")
    result = common.page(images, query, image_out)
    common.viewed(found, "images", results=result["count"])
    return result


@router.get("/images/{image_id}", response={200: ImageOut, **ERRORS}, summary="Read an image's metadata")
def read_image(request: HttpRequest, image_id: int = ImageId) -> dict[str, Any]:
    image = common.fetch(request, _IMAGES, image_id, "image")
    common.viewed(image, "image")
    return image_out(image)


@router.get(
    "/images/{image_id}/measurements",
    response={200: MeasurementPage, **ERRORS},
    summary="List an image's measurements",
)
def list_measurements(
    request: HttpRequest, query: Query[PageQuery], image_id: int = ImageId
) -> dict[str, Any]:
    image = common.fetch(request, _IMAGES, image_id, "image")
    measurements = common.scoped(request, _MEASUREMENTS.filter(image=image)).order_by("pk")
    result = common.page(measurements, query, measurement_out)
    common.viewed(image, "measurements", results=result["count"])
    return result


@router.post(
    "/images/{image_id}/measurements",
    response={201: MeasurementOut, **WRITE_ERRORS},
    summary="Measure on an image (the value is computed here)",
)
def create_measurement(request: HttpRequest, payload: MeasurementIn, image_id: int = ImageId) -> Status:
    """Send the type, the tool and its points in the original's pixels; the server computes the value
    from the image's pixel spacing (in pixels, and says so, when the image has none). A graded type
    takes its ``value`` instead of points."""
    image = common.fetch(request, _IMAGES, image_id, "image", Action.MEASURE_IMAGE)
    data = payload.model_dump(exclude_unset=True)
    try:
        with transaction.atomic():
            measurement = services.add_measurement(image, data, user=common.user_of(request))
    except Invalid as exc:
        raise from_invalid(exc) from None
    return Status(201, measurement_out(_MEASUREMENTS.get(pk=measurement.pk)))
