"""The imaging pages: upload, the viewer with its measuring tools, before/after, downloads.

The viewer's drawing happens in the browser (``static/stride/imaging.js``); it
posts geometry in the original's pixels and the server computes every value,
so a measurement means the same thing whoever or whatever took it. The JSON
endpoints answer ``{"error": sentence, "field": name}`` with status 400 on bad
input and write nothing.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from stride.analytics.case_report import first_index_date
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import measure as core_measure
from stride.core.errors import Invalid
from stride.imaging import figures, services
from stride.imaging.forms import ImageEditForm, UploadForm
from stride.imaging.models import Annotation, Image, Measurement
from stride.patients.views import patient_for


def _image_for(request: HttpRequest, pk: int, action: Action = Action.VIEW_PATIENT) -> Image:
    image = get_object_or_404(
        access.scope(
            Image.objects.select_related("patient__clinic", "condition__condition_type", "site"), request.user
        ),
        pk=pk,
    )
    access.require(request.user, action, image.patient.clinic_id)
    return image


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise Invalid("The request body is not valid JSON.", "body") from None
    if not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object.", "body")
    return data


def _error(exc: Invalid) -> JsonResponse:
    return JsonResponse({"error": exc.message, "field": exc.field}, status=400)


def _int(value: str | None, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{field} must be a whole number.", field) from None


def _float(value: str | None, field: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise Invalid(f"{field} must be a number.", field) from None
    if number != number or abs(number) > 1e9:
        raise Invalid(f"{field} must be a finite number.", field)
    return number


# --------------------------------------------------------------------------- upload, edit, delete


@login_required
@require_http_methods(["GET", "POST"])
def image_upload(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.UPLOAD_IMAGE)
    form = UploadForm(request.POST or None, request.FILES or None, patient=patient)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            data = services.read_upload(upload)
            image = services.store(patient, data, upload.name, form.details(), user=request.user)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Image stored: {image}.")
            return redirect("image-detail", pk=image.pk)
    if "condition" in request.GET and not form.is_bound:
        form.initial["condition"] = request.GET["condition"]
    return render(
        request,
        "imaging/upload.html",
        {
            "form": form,
            "patient": patient,
            "title": "Upload an image",
            "max_mb": services.max_bytes() // 2**20,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def image_edit(request: HttpRequest, pk: int) -> HttpResponse:
    image = _image_for(request, pk, Action.UPLOAD_IMAGE)
    form = ImageEditForm(request.POST or None, instance=image)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Image details saved.")
        return redirect("image-detail", pk=image.pk)
    return render(
        request,
        "form.html",
        {
            "form": form,
            "patient": image.patient,
            "title": "Image details",
            "cancel_url": reverse("image-detail", args=[image.pk]),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def image_delete(request: HttpRequest, pk: int) -> HttpResponse:
    image = _image_for(request, pk, Action.MEASURE_IMAGE)
    patient = image.patient
    if request.method == "POST":
        try:
            services.delete_image(image)
        except ProtectedError:  # pragma: no cover - nothing protects an image today
            messages.error(request, "This image cannot be deleted.")
            return redirect("image-detail", pk=pk)
        messages.success(request, "The image, its measurements and its marks were deleted.")
        return redirect("patient-detail", pk=patient.pk)
    return render(
        request,
        "confirm_delete.html",
        {"patient": patient, "object": image, "what": "this image and its measurements"},
    )


# --------------------------------------------------------------------------- viewing


def _types_for(image: Image) -> list[dict[str, Any]]:
    """The measurement types offered on this image: its modality's first, then the free ones."""
    offered = []
    for kind in core_measure.measurement_types().values():
        fits = not kind.modalities or image.modality in kind.modalities
        offered.append({**core_measure.type_json(kind), "fits": fits})
    offered.sort(key=lambda t: (not t["fits"], t["free"], t["name"]))
    return offered


@login_required
@require_GET
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    image = _image_for(request, pk)
    patient = image.patient
    record(AuditEntry.Action.VIEW, image)
    measurements = list(image.measurements.select_related("site", "measured_by"))
    annotations = list(image.annotations.all())
    can_measure = access.can(request.user, Action.MEASURE_IMAGE, patient.clinic_id)
    others = list(
        patient.images.exclude(pk=image.pk)
        .select_related("condition__condition_type")
        .order_by("-acquired_on")
    )
    state = {
        "image": image_json(image),
        "measurements": [m.as_json() for m in measurements],
        "annotations": [a.as_json() for a in annotations],
        "types": _types_for(image),
        "sites": [{"code": s.code, "name": s.name} for s in _sites()],
        "canMeasure": can_measure,
        "urls": {
            "render": reverse("image-render", args=[image.pk]),
            "measure": reverse("image-measure", args=[image.pk]),
            "annotate": reverse("image-annotate", args=[image.pk]),
            "calibrate": reverse("image-calibrate", args=[image.pk]),
            "settings": reverse("image-settings", args=[image.pk]),
            "deleteMeasurement": reverse("measurement-delete", args=[0]),
            "deleteAnnotation": reverse("annotation-delete", args=[0]),
        },
    }
    return render(
        request,
        "imaging/detail.html",
        {
            "image": image,
            "patient": patient,
            "measurements": measurements,
            "annotations": annotations,
            "others": others,
            "state": state,
            "can_measure": can_measure,
            "can_edit": access.can(request.user, Action.UPLOAD_IMAGE, patient.clinic_id),
        },
    )


def _sites() -> list[Any]:
    from stride.care.models import Site

    return list(Site.objects.filter(retired=False).order_by("name"))


def image_json(image: Image) -> dict[str, Any]:
    return {
        "id": image.pk,
        "width": image.width,
        "height": image.height,
        "frames": image.frames,
        "frame": image.frame,
        "modality": image.modality,
        "xray": image.is_xray,
        "grey": image.format == "dicom",
        "spacing": [image.spacing_row_mm, image.spacing_col_mm] if image.calibrated else None,
        "spacingSource": image.spacing_source,
        "calibration": image.calibration,
        "window": list(image.window) if image.window else None,
        "masks": image.masks,
        "date": image.acquired_on.isoformat(),
        "laterality": image.laterality,
    }


@login_required
@require_GET
def image_render(request: HttpRequest, pk: int) -> HttpResponse:
    image = _image_for(request, pk)
    try:
        frame = _int(request.GET.get("frame"), "frame")
        centre, width = _float(request.GET.get("wc"), "wc"), _float(request.GET.get("ww"), "ww")
        window = (centre, width) if centre is not None and width is not None else None
        size = request.GET.get("size", "web")
        png = services.rendition(image, frame=frame, window=window, size=size)
    except Invalid as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    record(
        AuditEntry.Action.VIEW,
        image,
        detail={"rendition": size, "frame": image.frame if frame is None else frame},
    )
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


def _attachment(data: bytes, content_type: str, name: str) -> HttpResponse:
    """A download that no cache keeps."""
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def image_original(request: HttpRequest, pk: int) -> HttpResponse:
    """The file exactly as uploaded, identifiers and all: only for those who may see the patient."""
    image = _image_for(request, pk)
    record(AuditEntry.Action.EXPORT, image, detail={"what": "original", "bytes": image.size_bytes})
    extension, content_type = services.FILE_TYPES[image.format]
    name = f"{image.patient.record_number}-image-{image.pk}.{extension}"
    return _attachment(services.original_bytes(image), content_type, name)


@login_required
@require_GET
def image_deidentified(request: HttpRequest, pk: int) -> HttpResponse:
    """A copy without identifiers: DICOM attributes removed or replaced, masked regions blanked."""
    image = _image_for(request, pk)
    data, name, content_type = services.deidentified(
        image, pseudonym=services.pseudonym(image.patient), origin=first_index_date(image.patient)
    )
    record(AuditEntry.Action.EXPORT, image, detail={"what": "de-identified"})
    return _attachment(data, content_type, name)


# --------------------------------------------------------------------------- the viewer's writes (JSON)


def _json_write(request: HttpRequest, pk: int, work: Any) -> JsonResponse:
    image = _image_for(request, pk, Action.MEASURE_IMAGE)
    try:
        result = work(image, _body(request))
    except Invalid as exc:
        return _error(exc)
    return JsonResponse(result, status=201 if "id" in result else 200)


@login_required
@require_POST
def image_measure(request: HttpRequest, pk: int) -> JsonResponse:
    return _json_write(
        request, pk, lambda image, data: services.add_measurement(image, data, user=request.user).as_json()
    )


@login_required
@require_POST
def image_annotate(request: HttpRequest, pk: int) -> JsonResponse:
    return _json_write(
        request, pk, lambda image, data: services.add_annotation(image, data, user=request.user).as_json()
    )


@login_required
@require_POST
def image_calibrate(request: HttpRequest, pk: int) -> JsonResponse:
    def work(image: Image, data: dict[str, Any]) -> dict[str, Any]:
        services.calibrate(image, data.get("points"), data.get("known_mm"))
        return {"image": image_json(image)}

    return _json_write(request, pk, work)


@login_required
@require_POST
def image_settings(request: HttpRequest, pk: int) -> JsonResponse:
    """Save the frame shown, the default window, or the masks over burned-in text."""

    def work(image: Image, data: dict[str, Any]) -> dict[str, Any]:
        if "masks" in data:
            services.set_masks(image, data["masks"])
        changed = []
        if "frame" in data:
            frame = data["frame"]
            if not isinstance(frame, int) or not 0 <= frame < image.frames:
                raise Invalid(f"The image has {image.frames} frames; there is no frame {frame!r}.", "frame")
            image.frame = frame
            changed.append("frame")
        if "window" in data:
            window = data["window"]
            if window is None:
                image.window_centre = image.window_width = None
            else:
                try:
                    centre, width = (float(v) for v in window)
                except (TypeError, ValueError):
                    raise Invalid("The window is [centre, width].", "window") from None
                if width <= 0:
                    raise Invalid("The window width must be more than zero.", "window")
                image.window_centre, image.window_width = centre, width
            changed += ["window_centre", "window_width"]
        if changed:
            image.save(update_fields=[*changed, "updated_at"])
        return {"image": image_json(image)}

    return _json_write(request, pk, work)


@login_required
@require_POST
def measurement_delete(request: HttpRequest, pk: int) -> JsonResponse:
    measurement = get_object_or_404(
        access.scope(Measurement.objects.select_related("image__patient"), request.user), pk=pk
    )
    access.require(request.user, Action.MEASURE_IMAGE, measurement.image.patient.clinic_id)
    measurement.delete()
    return JsonResponse({"deleted": pk})


@login_required
@require_POST
def annotation_delete(request: HttpRequest, pk: int) -> JsonResponse:
    annotation = get_object_or_404(
        access.scope(Annotation.objects.select_related("image__patient"), request.user), pk=pk
    )
    access.require(request.user, Action.MEASURE_IMAGE, annotation.image.patient.clinic_id)
    annotation.delete()
    return JsonResponse({"deleted": pk})


# --------------------------------------------------------------------------- before and after


def _pair(request: HttpRequest, pk: int) -> tuple[Any, Image | None, Image | None, list[Image]]:
    patient = patient_for(request, pk)
    images = list(
        patient.images.select_related("condition__condition_type", "site").order_by("acquired_on", "pk")
    )
    by_id = {str(i.pk): i for i in images}
    before = by_id.get(request.GET.get("before", ""))
    after = by_id.get(request.GET.get("after", ""))
    return patient, before, after, images


@login_required
@require_GET
def compare(request: HttpRequest, pk: int) -> HttpResponse:
    patient, before, after, images = _pair(request, pk)
    pair = None
    if before and after:
        pair = figures.pair_layout([before, after])
        record(AuditEntry.Action.VIEW, before, detail={"compare": after.pk})
    return render(
        request,
        "imaging/compare.html",
        {"patient": patient, "images": images, "before": before, "after": after, "pair": pair},
    )


@login_required
@require_GET
def compare_figure(request: HttpRequest, pk: int) -> HttpResponse:
    """The pair as one figure (SVG or PNG) for a case report or a slide."""
    _, before, after, _ = _pair(request, pk)
    if not (before and after):
        return HttpResponse(
            "Choose two images of this patient.", status=400, content_type="text/plain; charset=utf-8"
        )
    identified = request.GET.get("identified") == "1"
    svg = figures.pair_svg([before, after], identified=identified)
    record(AuditEntry.Action.EXPORT, before, detail={"what": "before/after figure", "after": after.pk})
    name = f"before-after-{before.pk}-{after.pk}"
    if request.GET.get("format") == "png":
        from stride.core.charts import ChartError, to_png

        try:
            return _attachment(to_png(svg), "image/png", f"{name}.png")
        except ChartError as exc:
            return HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
    return _attachment(svg.encode(), "image/svg+xml", f"{name}.svg")
