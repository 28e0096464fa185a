"""Imaging: a patient's images, the measurements taken on them and the marks drawn over them.

An image's original file is stored untouched, exactly as uploaded; what Stride
shows are renditions derived from it. Geometry is always kept in the
original's pixel coordinates (x = column, y = row, from the top-left corner)
and converted to millimetres with the image's pixel spacing — from the DICOM
header, or from the user's calibration line on a photo or screenshot. A
measurement taken without a spacing is stored in pixels and says so.

FHIR: Image ~ ImagingStudy for DICOM (modality, series, instance) and Media for
photos; Measurement ~ Observation (code: the measurement type; bodySite with
laterality; derivedFrom the image); Annotation has no FHIR counterpart (vector
marks kept beside the image, never burned into it).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from stride.care.models import Condition, Laterality, Site
from stride.core import measure as core_measure
from stride.imaging.storage import image_storage
from stride.patients.models import Patient
from stride.tokens import new_key


def original_path(image: Image, filename: str = "") -> str:
    """``originals/<clinic id>/<random>.<ext>``: no name, record number or date in the path."""
    extension = {"dicom": "dcm", "png": "png", "jpeg": "jpg"}[image.format]
    return f"originals/{image.patient.clinic_id}/{new_key()}.{extension}"


class Image(models.Model):
    """One image of a patient's condition: the original file and what was read from it."""

    scope_path = "patient__"

    class Format(models.TextChoices):
        DICOM = "dicom", "DICOM"
        PNG = "png", "PNG"
        JPEG = "jpeg", "JPEG"

    class Modality(models.TextChoices):
        US = "US", "Ultrasound"
        DX = "DX", "X-ray (digital radiography)"
        CR = "CR", "X-ray (computed radiography)"
        RG = "RG", "X-ray (radiographic imaging)"
        MR = "MR", "MRI"
        CT = "CT", "CT"
        XC = "XC", "Photograph or screenshot"
        OT = "OT", "Other"

    class View(models.TextChoices):
        DP = "dp", "Dorsoplantar (DP)"
        LATERAL = "lateral", "Lateral"
        OBLIQUE = "oblique", "Oblique"
        MORTISE = "mortise", "Mortise"
        AP = "ap", "Anteroposterior (AP)"
        SESAMOID = "sesamoid", "Sesamoid axial"
        LONG_AXIS = "long-axis", "Long axis"
        SHORT_AXIS = "short-axis", "Short axis"
        CLINICAL = "clinical", "Clinical photograph"
        OTHER = "other", "Other"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="images")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="images")
    original = models.FileField(
        storage=image_storage, upload_to=original_path, max_length=255, editable=False
    )
    original_name = models.CharField(max_length=255, blank=True, editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    size_bytes = models.BigIntegerField(editable=False)
    format = models.CharField(max_length=5, choices=Format.choices, editable=False)
    modality = models.CharField(max_length=2, choices=Modality.choices)
    acquired_on = models.DateField("date taken")
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="site detail"
    )
    laterality = models.CharField(max_length=10, choices=Laterality.choices)
    view = models.CharField(max_length=12, choices=View.choices, blank=True)
    frames = models.PositiveIntegerField(default=1, editable=False)
    frame = models.PositiveIntegerField(default=0, help_text="The frame shown and measured (0 = the first).")
    width = models.PositiveIntegerField(editable=False)
    height = models.PositiveIntegerField(editable=False)
    spacing_row_mm = models.FloatField("row spacing (mm)", null=True, blank=True, editable=False)
    spacing_col_mm = models.FloatField("column spacing (mm)", null=True, blank=True, editable=False)
    spacing_source = models.CharField(
        max_length=40, blank=True, editable=False, help_text="dicom:<attribute> or user (a calibration line)."
    )
    calibration = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The user's calibration line and its known length.",
    )
    window_centre = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    masks = models.JSONField(
        default=list, blank=True, help_text="Rectangles [x, y, w, h] blanked in every rendition and export."
    )
    burned_in = models.CharField(
        "burned-in annotation", max_length=3, blank=True, editable=False, help_text="From the DICOM header."
    )
    note = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["acquired_on", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "sha256"], name="image_once_per_patient"),
            models.CheckConstraint(
                condition=models.Q(frame__lt=models.F("frames")), name="image_frame_exists"
            ),
        ]

    def __str__(self) -> str:
        view = f" {self.get_view_display().lower()}" if self.view else ""
        side = self.get_laterality_display().lower()
        return f"{self.get_modality_display()}{view}, {side}, {self.acquired_on}"

    @property
    def calibration_value(self) -> core_measure.Calibration | None:
        """The pixel spacing in force, or ``None``: measurements are then in pixels."""
        if self.spacing_row_mm and self.spacing_col_mm:
            return core_measure.Calibration(self.spacing_row_mm, self.spacing_col_mm, self.spacing_source)
        return None

    @property
    def calibrated(self) -> bool:
        return self.calibration_value is not None

    @property
    def from_dicom_spacing(self) -> bool:
        return self.spacing_source.startswith("dicom:")

    @property
    def window(self) -> tuple[float, float] | None:
        if self.window_centre is None or not self.window_width:
            return None
        return (self.window_centre, self.window_width)

    @property
    def mask_boxes(self) -> list[tuple[int, int, int, int]]:
        return [tuple(int(v) for v in box) for box in self.masks or []]  # type: ignore[misc]

    @property
    def is_xray(self) -> bool:
        return self.modality in ("DX", "CR", "RG")

    def width_mm(self) -> float | None:
        return self.width * self.spacing_col_mm if self.calibrated else None  # type: ignore[operator]


class Measurement(models.Model):
    """One measurement on an image, of a catalog type; its value computed from its geometry on the server."""

    scope_path = "image__patient__"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="measurements")
    type_code = models.CharField("measurement", max_length=40)
    catalog_version = models.PositiveIntegerField(default=1)
    tool = models.CharField(max_length=10)
    frame = models.PositiveIntegerField(default=0)
    points = models.JSONField(default=list, blank=True, help_text="[[x, y], …] in the original's pixels.")
    value = models.FloatField()
    unit = models.CharField(max_length=8)
    calibrated = models.BooleanField(help_text="False: the value is in pixels (the image had no spacing).")
    qualifiers = models.JSONField(default=dict, blank=True)
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="site detail"
    )
    note = models.CharField(max_length=200, blank=True)
    measured_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image__acquired_on", "pk"]
        indexes = [models.Index(fields=["type_code"])]

    def __str__(self) -> str:
        return f"{self.type_name}: {self.value_text}"

    @property
    def type(self) -> core_measure.MeasurementType | None:
        return core_measure.measurement_types().get(self.type_code)

    @property
    def type_name(self) -> str:
        kind = self.type
        return kind.name if kind else self.type_code

    @property
    def value_text(self) -> str:
        return format_value(self.value, self.unit)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "type": self.type_code,
            "name": self.type_name,
            "tool": self.tool,
            "frame": self.frame,
            "points": self.points,
            "value": self.value,
            "unit": self.unit,
            "text": self.value_text,
            "calibrated": self.calibrated,
            "qualifiers": self.qualifiers,
            "site": self.site.code if self.site_id else "",
            "note": self.note,
            "by": str(self.measured_by) if self.measured_by_id else "",
        }


def format_value(value: float, unit: str) -> str:
    """``4.2 mm``, ``1.35 cm²``, ``23.0°``, ``0.82``, ``grade 2``, ``88 px (not calibrated)``."""
    if unit == "grade":
        return f"grade {value:g}"
    return core_measure.Result(value, unit, unit not in ("px", "px2")).text


class Annotation(models.Model):
    """An arrow, circle or text drawn over an image: vector data beside the original, never in it."""

    scope_path = "image__patient__"

    class Kind(models.TextChoices):
        ARROW = "arrow", "Arrow"
        CIRCLE = "circle", "Circle"
        TEXT = "text", "Text"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    frame = models.PositiveIntegerField(default=0)
    points = models.JSONField(default=list, help_text="[[x, y], …] in the original's pixels.")
    text = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}{': ' + self.text if self.text else ''}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.pk,
            "kind": self.kind,
            "frame": self.frame,
            "points": self.points,
            "text": self.text,
        }
