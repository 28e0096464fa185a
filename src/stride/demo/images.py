"""The story images: synthetic pictures filed, measured and marked the way a clinician would.

Each image of a story (:data:`stride.demo.stories.IMAGE_FIELDS`) is drawn by
:mod:`stride.core.phantoms` as a DICOM file naming the story patient (name,
record number, date of birth, sex), dated its ``day`` from the story's index
treatment, and then goes through the same services as an upload on the
pages: :func:`stride.imaging.services.store` (which reads the file, checks it
names this patient and refuses what is wrong), then
:func:`~stride.imaging.services.add_measurement` on the phantom's landmarks
(the value is computed from the points and the file's pixel spacing, as for
a line drawn on the viewer) and :func:`~stride.imaging.services.add_annotation`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from stride.care.models import Condition, Site
from stride.clinics.models import User
from stride.core import phantoms
from stride.demo.stories import IMAGE_FIELDS, Story
from stride.imaging import services
from stride.imaging.models import Image
from stride.patients.models import Patient

_BUILDERS = {"ultrasound": phantoms.ultrasound, "xray": phantoms.xray}


def index_date(story: Story) -> dt.date:
    """The day of the story's index treatment, from which its images are dated."""
    days = [p["performed_on"] for p in story.procedures if p.get("is_index")]
    if len(days) != 1:
        raise ValueError(f"Story {story.patient['record_number']}: images need exactly one index treatment.")
    return days[0]


def phantom_for(patient: Patient, spec: Mapping[str, Any], taken_on: dt.date) -> phantoms.Phantom:
    """The synthetic picture of one story image, naming ``patient`` in its header."""
    settings = dict(spec["phantom"])
    build = _BUILDERS[settings.pop("kind")]
    return build(
        patient_name=f"{patient.family_name}^{patient.given_name}",
        patient_id=patient.record_number,
        birth_date=patient.date_of_birth,
        sex=patient.sex,
        laterality=spec["laterality"],
        study_date=taken_on,
        **settings,
    )


def _at(
    phantom: phantoms.Phantom, frame: int, landmark: str, offsets_mm: list[tuple[float, float]]
) -> list[list[float]]:
    """Points ``offsets_mm`` away from a landmark (the middle of a line landmark) in ``frame``, in pixels."""
    points = phantom.landmarks_at(frame)[landmark]
    x = sum(p[0] for p in points) / len(points)
    y = sum(p[1] for p in points) / len(points)
    row_mm, col_mm = phantom.spacing
    return [[x + dx / col_mm, y + dy / row_mm] for dx, dy in offsets_mm]


def load_images(story: Story, patient: Patient, conditions: Mapping[str, Condition], user: User) -> int:
    """File, measure and mark every image of ``story`` for ``patient``; the number of images filed."""
    if not story.images:
        return 0
    index = index_date(story)
    filed = 0
    for spec in story.images:
        unknown = set(spec) - set(IMAGE_FIELDS)
        if unknown:
            raise ValueError(f"Story image with unknown field(s): {', '.join(sorted(unknown))}.")
        taken_on = index + dt.timedelta(days=spec["day"])
        phantom = phantom_for(patient, spec, taken_on)
        details = services.Upload(
            condition=conditions[spec["condition"]],
            acquired_on=taken_on,
            laterality=spec["laterality"],
            site=Site.objects.get(code=spec["site"]) if spec.get("site") else None,
            view=spec.get("view", ""),
            frame=0,
            note=spec.get("note", ""),
        )
        kind = "US" if spec["phantom"]["kind"] == "ultrasound" else "DX"
        name = f"{kind}_{spec['laterality']}_{taken_on:%Y%m%d}.dcm"
        image = services.store(patient, phantom.data, name, details, user=user)
        add_marks(image, phantom, spec, user)
        filed += 1
    return filed


def add_marks(image: Image, phantom: phantoms.Phantom, spec: Mapping[str, Any], user: User) -> None:
    """The story's measurements (drawn on the phantom's landmarks, or graded) and annotations."""
    landmarks = phantom.landmarks_at(image.frame)
    for measurement in spec.get("measurements", []):
        data: dict[str, Any] = {
            "type": measurement["type"],
            "frame": image.frame,
            "site": measurement.get("site", ""),
            "qualifiers": dict(measurement.get("qualifiers", {})),
            "note": measurement.get("note", ""),
        }
        if "value" in measurement:
            data["value"] = measurement["value"]
        else:
            data["tool"] = "line"
            data["points"] = [list(p) for p in landmarks[measurement["landmark"]]]
        services.add_measurement(image, data, user=user)
    for mark in spec.get("annotations", []):
        services.add_annotation(
            image,
            {
                "kind": mark["kind"],
                "frame": image.frame,
                "points": _at(phantom, image.frame, mark["landmark"], mark["points_mm"]),
                "text": mark.get("text", ""),
            },
            user=user,
        )
