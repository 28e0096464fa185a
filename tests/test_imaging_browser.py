"""A clinician measures on images in a real browser (headless Chromium): the viewer's tools end to end.

A photo is uploaded through the form, calibrated with the ruler in it and measured; the value the
viewer shows is the server's, within a pixel's worth of the drawn geometry, and it reaches the
patient page's chart and the before/after page. A DICOM X-ray carries its own pixel spacing (no
calibration offered), is windowed, measured, refused when a value is implausible, and graded; a
multi-frame ultrasound is measured on another frame.

Skipped, with the reason printed, where Chromium is not installed; CI sets
STRIDE_REQUIRE_BROWSER=1 so that there a missing browser fails instead.
Screenshots go to STRIDE_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from tests import dicoms
from tests.browser import snap as full_page_snap

pytestmark = pytest.mark.browser

# The photo: 800 × 600, a ruler whose 100 mm span runs from x = 100 to x = 500 at y = 520
# (0.25 mm a pixel), and a dark bar from (150, 250) to (650, 250): 500 px, 125 mm.
RULER = ((100, 520), (500, 520))
RULER_MM = 100
BAR = ((150, 250), (650, 250))
DESKTOP = {"width": 1280, "height": 900}

TOOLBAR_OUT_OF_VIEW = (
    "window.scrollBy(0, document.getElementById('viewer-tools').getBoundingClientRect().bottom)"
)
VIEWBOX = "(box => [box.width, box.height])(document.getElementById('viewer-overlay').viewBox.baseVal)"


@pytest.fixture(autouse=True)
def _images_in_tmp(settings: object, tmp_path: object) -> None:
    """Originals and renditions go to the test's own folder."""
    settings.STORAGES = {  # type: ignore[attr-defined]
        **settings.STORAGES,  # type: ignore[attr-defined]
        "images": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "images")},
        },
    }


def photo(bar: tuple[tuple[int, int], tuple[int, int]] = BAR, shade: int = 0) -> bytes:
    """A grey 800 × 600 'photo' with a ruler (a tick every 10 mm) and a dark bar to measure."""
    ramp = np.add.outer(np.arange(600) // 6, np.arange(800) // 8) + 40 + shade
    image = Image.fromarray(np.clip(np.stack([ramp, ramp, ramp + 8], axis=-1), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    (x0, y), (x1, _) = RULER
    draw.rectangle((x0 - 20, y - 30, x1 + 20, y + 12), fill=(245, 240, 225))
    draw.line((x0, y, x1, y), fill=(0, 0, 0), width=2)
    for n, x in enumerate(range(x0, x1 + 1, (x1 - x0) // 10)):
        draw.line((x, y, x, y - (18 if n % 5 == 0 else 10)), fill=(0, 0, 0), width=2)
    (bx0, by), (bx1, _) = bar
    draw.line((bx0, by, bx1, by), fill=(30, 20, 20), width=6)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def snap(page: object, name: str) -> None:
    """A full-page screenshot from the top (the viewer's status strip sticks while scrolled)."""
    page.evaluate("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
    full_page_snap(page, name)


def log_in(page: object, live_server: object) -> None:
    from tests.conftest import PASSWORD

    page.goto(f"{live_server.url}/login/")  # type: ignore[attr-defined]
    page.fill("#id_username", "alice")  # type: ignore[attr-defined]
    page.fill("#id_password", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url("**/patients/")  # type: ignore[attr-defined]


def upload(page: object, live_server: object, cast: object, name: str, data: bytes, **fields: str) -> int:
    """Upload through the form; the id of the image the viewer then shows."""
    page.goto(f"{live_server.url}/patients/{cast.pat.pk}/images/new/")  # type: ignore[attr-defined]
    mime = "application/dicom" if name.endswith(".dcm") else "image/png"
    page.set_input_files("#id_file", files=[{"name": name, "mimeType": mime, "buffer": data}])  # type: ignore[attr-defined]
    page.select_option("#id_condition", str(cast.pat_condition.pk))  # type: ignore[attr-defined]
    for field, value in fields.items():
        selector = f"#id_{field}"
        if page.locator(selector).evaluate("e => e.tagName") == "SELECT":  # type: ignore[attr-defined]
            page.select_option(selector, value)  # type: ignore[attr-defined]
        else:
            page.fill(selector, value)  # type: ignore[attr-defined]
    page.click("button:has-text('Upload')")  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"/images/\d+/$"))  # type: ignore[attr-defined]
    page.wait_for_selector("#viewer-tools:not([hidden])")  # type: ignore[attr-defined]
    page.wait_for_function("document.getElementById('viewer-picture').complete")  # type: ignore[attr-defined]
    return int(page.url.rstrip("/").rsplit("/", 1)[1])  # type: ignore[attr-defined]


def on_image(page: object, x: float, y: float) -> tuple[float, float]:
    """Where the original's pixel (x, y) is on the screen now.

    The page is scrolled as the viewer scrolls it when a tool is taken up: the status strip at the
    top of the window, the whole picture under it.
    """
    page.evaluate(TOOLBAR_OUT_OF_VIEW)  # type: ignore[attr-defined]
    box = page.locator("#viewer-overlay").bounding_box()  # type: ignore[attr-defined]
    width, height = page.evaluate(VIEWBOX)  # type: ignore[attr-defined]
    return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height


def click(page: object, *points: tuple[float, float]) -> None:
    for x, y in points:
        page.mouse.click(*on_image(page, x, y))  # type: ignore[attr-defined]


def tool(page: object, name: str) -> None:
    """Take up a tool (a tool already in hand, say after choosing a type drawn only with it, stays)."""
    button = page.locator(f"button[data-tool={name}]")  # type: ignore[attr-defined]
    if button.get_attribute("aria-pressed") != "true":
        button.click()
    expect(button).to_have_attribute("aria-pressed", "true")


def rows(page: object) -> object:
    return page.locator("#measurement-table tbody tr[data-id]")  # type: ignore[attr-defined]


def near(points: list[list[float]], expected: tuple[tuple[int, int], ...], within: float = 1.0) -> bool:
    return all(math.dist(p, e) <= within for p, e in zip(points, expected, strict=True))


@pytest.mark.django_db(transaction=True)
def test_a_clinician_calibrates_and_measures_a_photo_then_compares_two(live_server, cast, page) -> None:
    from stride.imaging.models import Annotation, Measurement
    from stride.imaging.models import Image as StoredImage

    log_in(page, live_server)
    taken = {"acquired_on": "2025-01-20", "laterality": "left", "view": "clinical"}
    first = upload(page, live_server, cast, "foot.png", photo(), **taken)
    assert page.locator("#calibration-fact").inner_text().startswith("Not calibrated")
    # A photo's measurement types: those that fit photos first, the free ones last.
    groups = page.locator("#vt-type optgroup").evaluate_all("gs => gs.map(g => g.label)")
    assert groups[0].startswith("For this image") and groups[-1] == "Free measurements", groups
    snap(page, "imaging-01-photo")

    # The picture fills the page's width (it is landscape and fits the window's height at this size).
    fill = page.evaluate(
        "document.getElementById('viewer-stage').getBoundingClientRect().width"
        " / document.getElementById('viewer').getBoundingClientRect().width"
    )
    assert fill > 0.9, fill

    # Calibrating with an implausible length is refused with the server's sentence, and nothing stays drawn.
    tool(page, "calibrate")
    click(page, *RULER)
    page.fill("#viewer-prompt-input", "5000")
    page.click("#viewer-prompt-ok")
    expect(page.locator("#viewer-error")).to_contain_text("implausible")
    assert page.locator("#viewer-overlay .draft *").count() == 0
    snap(page, "imaging-02-refused")

    click(page, *RULER)
    page.fill("#viewer-prompt-input", str(RULER_MM))
    page.press("#viewer-prompt-input", "Enter")
    expect(page.locator("#calibration-fact")).to_contain_text("calibrated by hand")
    expect(page.locator("#viewer-error")).to_be_empty()
    image = StoredImage.objects.get(pk=first)
    assert image.spacing_source == "user"
    assert near(image.calibration["points"], RULER)

    # Escape drops a line half drawn.
    page.select_option("#vt-type", "length")
    tool(page, "line")
    click(page, BAR[0])
    assert page.locator("#viewer-overlay .draft .handle").count() == 1
    page.keyboard.press("Escape")
    assert page.locator("#viewer-overlay .draft *").count() == 0

    # A length along the bar: the value shown is the server's, in mm, within a pixel's worth of 125 mm.
    page.fill("#vt-note", "dark bar")
    click(page, *BAR)
    expect(rows(page)).to_have_count(1)
    measured = Measurement.objects.get()
    assert measured.unit == "mm" and measured.calibrated
    assert near(measured.points, BAR)
    image.refresh_from_db()
    assert measured.value == pytest.approx(math.dist(*measured.points) * image.spacing_col_mm)
    # A pixel off at either end of either line, at most: the bar is 500 px, the ruler's 100 mm 400 px.
    low = RULER_MM * (500 - 2) / (400 + 2)
    high = RULER_MM * (500 + 2) / (400 - 2)
    assert low <= measured.value <= high, measured.value
    shown = f"{measured.value:.1f} mm"
    expect(page.locator("#viewer-overlay text.label.measurement")).to_have_text(f"1 {shown}")
    expect(rows(page).first).to_contain_text(shown)
    expect(rows(page).first).to_contain_text("dark bar")
    page.fill("#vt-note", "")

    # The photo fits hallux dorsiflexion: an angle (vertex in the middle), reported as 180° minus it,
    # taken only at the 1st MTP joint.
    page.select_option("#vt-type", "hallux-dorsiflexion")
    sites = page.locator("#vt-site option").all_inner_texts()
    assert sites == ["The image's site", "1st MTP joint"], sites
    page.select_option("#vt-site", "mtp-1")
    assert page.locator("button[data-tool=line]").is_disabled()
    tool(page, "angle")
    click(page, (250, 400), (450, 400), (550, 300))
    expect(rows(page)).to_have_count(2)
    expect(rows(page).nth(1).locator("td").nth(2)).to_have_text(re.compile(r"^45(\.0)?°$"))
    expect(rows(page).nth(1)).to_contain_text("1st MTP joint")

    # An outline, closed with Enter: an area in mm².
    page.select_option("#vt-type", "area")
    tool(page, "polygon")
    click(page, (600, 380), (700, 380), (700, 480), (600, 480))
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(3)
    area = Measurement.objects.order_by("pk").last()
    assert area.tool == "polygon" and area.unit == "mm2"
    assert area.value == pytest.approx(100 * 100 * 0.0625, rel=0.05)

    # Marks: an arrow and a text, drawn in blue and listed under the table; one deleted again.
    tool(page, "arrow")
    click(page, (80, 120), (145, 240))
    expect(page.locator("#mark-list li")).to_have_count(1)
    tool(page, "text")
    click(page, (660, 200))
    page.fill("#viewer-prompt-input", "bar end")
    page.click("#viewer-prompt-ok")
    expect(page.locator("#mark-list li")).to_have_count(2)
    expect(page.locator("#viewer-overlay text.mark-text")).to_have_text("bar end")
    page.keyboard.press("Escape")  # puts the tool down
    expect(page.locator("button[data-tool=text]")).to_have_attribute("aria-pressed", "false")
    snap(page, "imaging-03-measured")

    arrow = page.locator("#mark-list li").first
    arrow.locator("button").click()
    expect(arrow.locator("button")).to_have_text("Confirm delete")
    arrow.locator("button").click()
    expect(page.locator("#mark-list li")).to_have_count(1)
    assert list(Annotation.objects.values_list("kind", flat=True)) == ["text"]

    # Hiding measurements hides them from the overlay only.
    page.uncheck("#vt-show-measurements")
    assert page.locator("#viewer-overlay .measurements *").count() == 0
    page.check("#vt-show-measurements")
    assert page.locator("#viewer-overlay .measurements .shape").count() == 3

    # After a reload the server draws the same: the stored measurements numbered like the table.
    page.reload()
    page.wait_for_selector("#viewer-tools:not([hidden])")
    labels = page.locator("#viewer-overlay text.label.measurement").all_text_contents()
    assert labels[0] == f"1 {shown}", labels
    assert labels[1].startswith("2 45") and labels[2].startswith("3 625"), labels

    # The outline is deleted again (a second press confirms): its row and its shape go.
    outline = rows(page).nth(2)
    outline.locator("button").click()
    expect(outline.locator("button")).to_have_text("Confirm delete")
    outline.locator("button").click()
    expect(rows(page)).to_have_count(2)
    assert page.locator("#viewer-overlay .measurements .shape").count() == 2
    assert not Measurement.objects.filter(tool="polygon").exists()

    # The patient page charts the length over time.
    page.goto(f"{live_server.url}/patients/{cast.pat.pk}/")
    page.wait_for_selector("h3:has-text('Measurements over time')")
    captions = page.locator("#images figure.chart figcaption").all_inner_texts()
    assert any(c.startswith("Length") and shown in c for c in captions), captions
    snap(page, "imaging-04-patient")

    # A second photo, months later, and the two side by side.
    later = upload(
        page,
        live_server,
        cast,
        "foot-later.png",
        photo(((150, 250), (560, 250)), shade=12),
        acquired_on="2025-06-20",
        laterality="left",
        view="clinical",
    )
    page.goto(f"{live_server.url}/patients/{cast.pat.pk}/")
    page.click("a:has-text('Before and after')")
    page.select_option("select[name=before]", str(first))
    page.select_option("select[name=after]", str(later))
    page.click("button:has-text('Show side by side')")
    page.wait_for_selector("figure.pair svg")
    assert page.locator("figure.pair svg image").count() == 2
    figure = page.locator("figure.pair").inner_text()
    assert shown in figure, figure
    snap(page, "imaging-05-compare")

    # On a tablet the toolbar wraps into rows and the picture still spans the width.
    page.set_viewport_size({"width": 820, "height": 1180})
    page.goto(f"{live_server.url}/images/{first}/")
    page.wait_for_selector("#viewer-tools:not([hidden])")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    snap(page, "imaging-06-tablet")

    # Without JavaScript the page still shows the picture and the measurement table, and no tools.
    plain = page.context.browser.new_context(java_script_enabled=False, viewport=DESKTOP)
    plain.add_cookies(page.context.cookies())
    bare = plain.new_page()
    bare.goto(f"{live_server.url}/images/{first}/")
    assert bare.locator("#viewer-picture").evaluate("img => img.complete && img.naturalWidth > 0")
    assert bare.locator("#viewer-tools").is_hidden()
    assert bare.locator("#measurement-table tbody tr[data-id]").count() == 2
    assert bare.locator("#viewer-stage").bounding_box()["width"] > 1000
    full_page_snap(bare, "imaging-06-without-javascript")
    plain.close()


@pytest.mark.django_db(transaction=True)
def test_a_clinician_windows_measures_and_grades_an_x_ray_then_a_clip(live_server, cast, page) -> None:
    from stride.imaging.models import Image as StoredImage
    from stride.imaging.models import Measurement

    pat = {"PatientName": "Lee^Pat", "PatientID": "A-001", "PatientBirthDate": "19700517"}
    pixels = np.full((600, 500), 900, dtype=np.uint16)
    pixels[200:206, 100:300] = 3200  # a bar 200 px long: 30 mm at 0.15 mm a pixel
    pixels[380:420, 140:160] = 2400
    xray = dicoms.xray(pixels=pixels, window=(2000, 4000), ImageLaterality="L", **pat)

    log_in(page, live_server)
    first = upload(page, live_server, cast, "foot.dcm", xray)
    fact = page.locator("#calibration-fact").inner_text()
    assert fact.startswith("0.1500 mm per pixel") and "DICOM header" in fact, fact
    assert page.locator("button[data-tool=calibrate]").count() == 0  # the header's spacing needs none
    assert page.locator("#vt-frame").count() == 0

    # Windowing asks for a new rendition (after the slider settles) and can become the default.
    page.fill("#vt-wc-number", "1500")
    page.wait_for_function("document.getElementById('viewer-picture').src.includes('wc=1500')")
    page.click("#vt-window-save")
    expect(page.locator("#viewer-hint")).to_contain_text("Window saved")
    assert StoredImage.objects.get(pk=first).window == (1500, 4000)
    page.fill("#vt-ww-number", "900")
    page.wait_for_function("document.getElementById('viewer-picture').src.includes('ww=900')")
    page.click("#vt-window-reset")
    page.wait_for_function("!document.getElementById('viewer-picture').src.includes('ww=')")
    expect(page.locator("#vt-ww-number")).to_have_value("4000")

    # The X-ray's own measurements come first; the 1st MTP joint space is a line in mm.
    first_group = page.locator("#vt-type optgroup").first
    assert "1st MTP minimum joint-space width, medial" in first_group.inner_text()
    page.select_option("#vt-type", "mtp1-jsw-medial")
    tool(page, "line")
    click(page, (150, 380), (150, 420))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("mm")
    value = Measurement.objects.get().value
    assert value == pytest.approx(40 * 0.15, abs=2 * 0.15), value

    # A line too long for a joint space is refused with the server's sentence; nothing is kept.
    click(page, (100, 203), (300, 203))
    expect(page.locator("#viewer-error")).to_contain_text("plausible range")
    expect(rows(page)).to_have_count(1)
    assert page.locator("#viewer-overlay .draft *").count() == 0
    snap(page, "imaging-07-xray")

    # A ratio (line A ÷ line B) and an ellipse (centre, end of one axis, end of the other).
    page.select_option("#vt-type", "ratio")
    tool(page, "ratio")
    click(page, (100, 203), (300, 203), (150, 380), (150, 420))
    expect(rows(page)).to_have_count(2)
    expect(rows(page).nth(1).locator("td").nth(2)).to_have_text(re.compile(r"^5\.0\d?$"))
    assert page.locator("#viewer-overlay .measurements text.tag").all_text_contents() == ["A", "B"]
    page.select_option("#vt-type", "area")
    tool(page, "ellipse")
    click(page, (150, 400), (160, 400), (150, 420))
    expect(rows(page)).to_have_count(3)
    area = Measurement.objects.order_by("pk").last()
    assert area.tool == "ellipse" and area.value == pytest.approx(math.pi * 1.5 * 3, rel=0.12), area.value
    assert page.locator("#viewer-overlay .measurements ellipse").count() == 2  # its halo and its line
    tool(page, "circle")
    click(page, (400, 100), (430, 100))
    expect(page.locator("#mark-list li")).to_have_count(1)
    expect(page.locator("#mark-list li")).to_contain_text("Circle")

    # A grade is chosen, not drawn.
    page.select_option("#vt-type", "latrobe-osteophyte")
    assert page.locator("#vt-draw-tools").is_hidden()
    page.select_option("#vt-grade-value", "2")
    page.select_option("select[data-qualifier=view]", "dp")
    page.click("#vt-grade-save")
    expect(rows(page)).to_have_count(4)
    expect(rows(page).nth(3)).to_contain_text("grade 2")
    expect(rows(page).nth(3)).to_contain_text("view: dp")
    snap(page, "imaging-08-graded")

    # A three-frame ultrasound clip: measured on its second frame, which then becomes the one shown.
    clip = np.zeros((3, 120, 160), dtype=np.uint8)
    for n in range(3):
        clip[n, 40 + 10 * n : 50 + 10 * n, 30:130] = 200
    ultrasound = dicoms.ultrasound(pixels=clip, frames=3, delta_mm=(0.1, 0.1), **pat)
    second = upload(page, live_server, cast, "clip.dcm", ultrasound)
    expect(page.locator("#vt-frame-shown")).to_have_text("1 of 3")
    page.focus("#vt-frame")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#vt-frame-shown")).to_have_text("2 of 3")
    page.wait_for_function("document.getElementById('viewer-picture').src.includes('frame=1')")
    page.select_option("#vt-type", "neuroma-diameter")
    sites = page.locator("#vt-site option").evaluate_all("os => os.map(o => o.value)")
    assert sites == ["", "im-space-2", "im-space-3", "im-space-4"], sites
    page.select_option("select[data-qualifier=compression]", "without")
    tool(page, "line")
    click(page, (80, 50), (80, 60))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("(frame 2)")
    assert Measurement.objects.get(image_id=second).frame == 1
    page.click("#vt-frame-save")
    expect(page.locator("#vt-frame-save")).to_be_disabled()
    assert StoredImage.objects.get(pk=second).frame == 1
    expect(rows(page).first).not_to_contain_text("frame")

    # Burned-in text is masked: a rectangle dragged over it and saved is blanked in the picture.
    tool(page, "mask")
    page.mouse.move(*on_image(page, 0.5, 0.5))
    page.mouse.down()
    page.mouse.move(*on_image(page, 60, 14), steps=5)
    page.mouse.up()
    expect(page.locator("#viewer-masks-count")).to_have_text("1 rectangle")
    snap(page, "imaging-09-mask")
    page.click("#viewer-masks-save")
    expect(page.locator("#viewer-hint")).to_contain_text("Masks saved")
    page.wait_for_function("document.getElementById('viewer-picture').src.includes('v=1')")
    (box,) = StoredImage.objects.get(pk=second).masks
    assert box[:2] == [0, 0] and 60 <= box[2] <= 61 and 14 <= box[3] <= 15, box
    snap(page, "imaging-10-clip")
