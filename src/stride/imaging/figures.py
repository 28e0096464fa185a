"""Before/after figures of a patient's images, for the page and for downloads.

The drawing is :mod:`stride.core.figures`; this module turns images into its panels.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.urls import reverse

from stride.analytics.case_report import first_index_date
from stride.core import figures
from stride.imaging import services
from stride.imaging.models import Image
from stride.patients.models import Patient

LABELS = ("Before", "After")
#: A downloaded figure's panels are narrower than the page's, so its text stays legible on a printed page.
EXPORT_PANEL = 380


def _when(image: Image, identified: bool) -> str:
    if identified:
        return f"{image.acquired_on:%-d %b %Y}"
    origin = first_index_date(image.patient)
    if origin is None:
        return "date withheld"
    days = (image.acquired_on - origin).days
    return f"day {days:+d}" if days else "day 0"


def panels(images: Sequence[Image], *, identified: bool, embed: bool) -> list[figures.Panel]:
    """One panel per image: its picture (a URL, or embedded), measurements numbered, marks drawn."""
    made = []
    for n, image in enumerate(images):
        label = LABELS[n] if len(images) == 2 else f"Image {n + 1}"
        shapes: list[figures.Shape] = []
        legend = []
        measured = [m for m in image.measurements.all() if m.frame == image.frame]
        for number, m in enumerate(measured, start=1):
            if m.points:
                shapes.append(figures.Shape(m.tool, tuple(tuple(p) for p in m.points), str(number)))
            where = f" ({m.site.name})" if m.site_id and m.site_id != image.site_id else ""
            legend.append(f"{number}  {m.value_text} · {m.type_name}{where}")
        for a in image.annotations.all():
            if a.frame == image.frame:
                shapes.append(figures.Shape(a.kind, tuple(tuple(p) for p in a.points), a.text, "annotation"))
        if embed:
            href = figures.data_uri(services.rendition(image, size="web"))
        else:
            href = reverse("image-render", args=[image.pk]) + "?size=web"
        title = f"{label} · {_when(image, identified)}"
        where = ", ".join(
            part
            for part in (image.get_laterality_display().lower(), image.site.name if image.site_id else "")
            if part
        )
        view = f" {image.get_view_display().lower()}" if image.view else ""
        subtitle = f"{image.get_modality_display()}{view}, {where}"
        made.append(
            figures.Panel(
                title=title,
                subtitle=subtitle,
                width=image.width,
                height=image.height,
                spacing=(image.spacing_row_mm, image.spacing_col_mm) if image.calibrated else None,  # type: ignore[arg-type]
                href=href,
                shapes=tuple(shapes),
                legend=tuple(legend),
            )
        )
    return made


def pair_layout(images: Sequence[Image]) -> str:
    """The figure for the page: pictures fetched from their (audited) URLs."""
    return figures.pair_svg(panels(images, identified=True, embed=False))


def pair_svg(images: Sequence[Image], *, identified: bool) -> str:
    """The figure as one self-contained SVG (pictures embedded) for a report or a slide."""
    interval = (images[-1].acquired_on - images[0].acquired_on).days
    footnote = f"{interval} days apart." if interval else ""
    return figures.pair_svg(
        panels(images, identified=identified, embed=True), footnote=footnote, panel_size=EXPORT_PANEL
    )


def case_pairs(patient: Patient, *, identified: bool) -> list[dict[str, str]]:
    """For a case report: per condition, side, site, modality and view imaged more than once, the first
    and the latest image side by side."""
    groups: dict[tuple[object, ...], list[Image]] = {}
    images = (
        Image.objects.filter(patient=patient)
        .select_related("condition__condition_type", "site", "patient")
        .prefetch_related("measurements__site", "annotations")
        .order_by("acquired_on", "pk")
    )
    for image in images:
        key = (image.condition_id, image.laterality, image.site_id, image.modality, image.view)
        groups.setdefault(key, []).append(image)
    pairs = []
    for series in groups.values():
        if len(series) < 2:
            continue
        first, last = series[0], series[-1]
        where = f", {first.site.name}" if first.site_id else ""
        title = f"{first.get_modality_display()} of the {first.get_laterality_display().lower()} side{where}"
        pairs.append({"title": title, "svg": pair_svg([first, last], identified=identified)})
    return pairs
