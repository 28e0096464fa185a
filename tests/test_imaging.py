"""Images in the record: upload, refusals that store nothing, measuring, renditions, downloads, access.

DICOM and photo files are built by :mod:`tests.dicoms`; Pat (A-001, Pat Lee, born 17 May 1970)
is the patient, and a DICOM made for her carries her name, ID and birth date.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image as Picture

from stride.audit.models import AuditEntry
from stride.core import imaging as core_imaging
from stride.imaging import services
from stride.imaging.models import Image, Measurement
from stride.imaging.storage import image_storage
from tests import dicoms

PAT = {"PatientName": "Lee^Pat", "PatientID": "A-001", "PatientBirthDate": "19700517"}


def pat_ultrasound(**extra: object) -> bytes:
    """A 48 × 64 ultrasound of Pat's left foot, 0.1 mm per row and 0.2 mm per column, taken 4 Mar 2024."""
    return dicoms.ultrasound(**(PAT | extra))


def stored_files() -> list[str]:
    storage = image_storage()
    found = []

    def walk(folder: str) -> None:
        try:
            folders, files = storage.listdir(folder)
        except FileNotFoundError:
            return
        found.extend(f"{folder}/{name}".lstrip("/") for name in files)
        for sub in folders:
            walk(f"{folder}/{sub}".lstrip("/"))

    walk("")
    return found


def upload(client, cast, data: bytes, name: str = "scan.dcm", **fields: object):
    form = {"condition": cast.pat_condition.pk, **fields, "file": SimpleUploadedFile(name, data)}
    return client.post(reverse("image-upload", args=[cast.pat.pk]), form)


def store(cast, data: bytes, **details: object) -> Image:
    upload_details = services.Upload(condition=cast.pat_condition, **details)
    return services.store(cast.pat, data, "scan.dcm", upload_details, user=cast.alice)


def post_json(client, url: str, data: object):
    return client.post(url, json.dumps(data), content_type="application/json")


# --------------------------------------------------------------------------- upload


def test_a_coordinator_uploads_a_dicom_and_its_header_fills_in_date_side_and_spacing(client, cast) -> None:
    data = pat_ultrasound()
    client.force_login(cast.carol)
    response = upload(client, cast, data)
    image = Image.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("image-detail", args=[image.pk])
    assert (image.modality, image.laterality, image.acquired_on) == ("US", "left", dt.date(2024, 3, 4))
    assert (image.spacing_row_mm, image.spacing_col_mm) == pytest.approx((0.1, 0.2))
    assert image.spacing_source == "dicom:SequenceOfUltrasoundRegions"
    assert (image.width, image.height, image.frames) == (64, 48, 1)
    assert image.burned_in == "YES"
    # The original is kept byte for byte, under a path that names no one.
    assert services.original_bytes(image) == data
    assert "A-001" not in image.original.name and "Lee" not in image.original.name
    assert AuditEntry.objects.filter(action="create", model="imaging.Image", patient_id=cast.pat.pk).exists()


def test_what_the_person_fills_in_wins_over_an_empty_header_but_not_over_a_contradicting_one(
    client, cast
) -> None:
    client.force_login(cast.alice)
    response = upload(client, cast, pat_ultrasound(), laterality="right")
    assert "The DICOM header says this is the left side" in response.content.decode()
    assert not Image.objects.exists()
    photo = dicoms.picture("png", metadata=False)
    response = upload(client, cast, photo, "foot.png")
    page = response.content.decode()
    assert "Choose the side" in page and "Give the date the image was taken" in page
    upload(client, cast, photo, "foot.png", laterality="left", acquired_on="2025-01-20")
    image = Image.objects.get()
    assert (image.format, image.modality, image.calibrated) == ("png", "XC", False)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Dear colleague, please find the scan attached.", "is not a DICOM, PNG or JPEG image"),
        (pat_ultrasound()[:-700], "truncated"),
        (dicoms.structured_report(), "holds no image"),
        (b"", "The submitted file is empty"),
    ],
    ids=["text", "truncated", "no-pixels", "empty"],
)
def test_a_file_that_is_not_a_usable_image_is_refused_with_the_reason_and_nothing_is_stored(
    client, cast, data, message
) -> None:
    client.force_login(cast.alice)
    response = upload(client, cast, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Image.objects.exists()
    assert stored_files() == []


def test_a_dicom_of_another_patient_is_refused_naming_what_differs(client, cast) -> None:
    client.force_login(cast.alice)
    response = upload(client, cast, dicoms.ultrasound())  # Jane Doe, MRN-0042317
    page = response.content.decode()
    assert "This DICOM file names another patient" in page
    assert "MRN-0042317" in page and "Doe" in page and "nothing was stored" in page
    assert not Image.objects.exists() and stored_files() == []


def test_a_dicom_without_identifiers_is_accepted(cast) -> None:
    image = store(cast, dicoms.ultrasound(identified=False, AcquisitionDate="20250110"))
    assert image.acquired_on == dt.date(2025, 1, 10)


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(client, cast, settings) -> None:
    settings.STRIDE_IMAGE_MAX_MB = 1
    client.force_login(cast.alice)
    response = upload(client, cast, b"\0" * (1024 * 1024 + 1))
    assert "images of up to 1 MB are accepted" in response.content.decode()
    assert not Image.objects.exists() and stored_files() == []


def test_the_same_file_twice_is_refused(cast) -> None:
    store(cast, pat_ultrasound())
    with pytest.raises(Exception, match="already in the record"):
        store(cast, pat_ultrasound())
    assert Image.objects.count() == 1 and len(stored_files()) == 1


def test_a_failure_after_the_file_was_written_leaves_no_file_behind(cast, monkeypatch) -> None:
    def broken_save(self, *args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(Image, "save", broken_save)
    with pytest.raises(RuntimeError):
        store(cast, pat_ultrasound())
    assert stored_files() == []


def test_a_clip_is_stored_with_the_frame_chosen_and_each_frame_renders(client, cast) -> None:
    pixels = np.zeros((5, 48, 64), dtype=np.uint8)
    for frame in range(5):
        pixels[frame, :, frame * 10 : frame * 10 + 4] = 255  # a bright bar that moves right
    image = store(cast, pat_ultrasound(pixels=pixels, frames=5), frame=3)
    assert (image.frames, image.frame) == (5, 3)
    client.force_login(cast.alice)
    for frame in (0, 4):
        png = client.get(reverse("image-render", args=[image.pk]), {"frame": frame, "size": "full"}).content
        grey = np.asarray(Picture.open(io.BytesIO(png)).convert("L"))
        assert grey[:, frame * 10 : frame * 10 + 4].mean() > 200
        assert grey[:, (frame * 10 + 20) % 60].mean() < 50
    response = client.get(reverse("image-render", args=[image.pk]), {"frame": 5})
    assert response.status_code == 400 and "there is no frame 6" in response.content.decode()
    with pytest.raises(Exception, match="choose one from 1 to 5"):
        store(cast, pat_ultrasound(pixels=pixels, frames=5, SOPInstanceUID="1.2.3.4"), frame=5)


# --------------------------------------------------------------------------- measuring


def test_a_line_on_a_dicom_is_measured_in_millimetres_by_the_server(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.alice)
    response = post_json(
        client,
        reverse("image-measure", args=[image.pk]),
        {"type": "length", "tool": "line", "points": [[10, 5], [40, 5]], "value": 999},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    # 30 columns × 0.2 mm; the value the browser sent is ignored.
    assert (body["value"], body["unit"], body["calibrated"]) == (pytest.approx(6.0), "mm", True)
    vertical = post_json(
        client,
        reverse("image-measure", args=[image.pk]),
        {"type": "length", "tool": "line", "points": [[10, 5], [10, 35]]},
    ).json()
    assert vertical["value"] == pytest.approx(3.0)  # 30 rows × 0.1 mm
    assert AuditEntry.objects.filter(action="create", model="imaging.Measurement").count() == 2


def test_a_photo_measures_in_pixels_until_calibrated_and_old_values_are_never_converted(client, cast) -> None:
    image = store(
        cast, dicoms.picture("png", rows=300, cols=400), laterality="left", acquired_on=dt.date(2025, 1, 2)
    )
    client.force_login(cast.alice)
    measure = reverse("image-measure", args=[image.pk])
    before = post_json(
        client, measure, {"type": "length", "tool": "line", "points": [[0, 0], [30, 40]]}
    ).json()
    assert (before["value"], before["unit"], before["calibrated"]) == (50.0, "px", False)
    assert before["text"] == "50 px (not calibrated)"
    response = post_json(
        client,
        reverse("image-calibrate", args=[image.pk]),
        {"points": [[0, 100], [200, 100]], "known_mm": 50},
    )
    assert response.status_code == 200 and response.json()["image"]["spacing"] == [0.25, 0.25]
    after = post_json(
        client, measure, {"type": "length", "tool": "line", "points": [[0, 0], [30, 40]]}
    ).json()
    assert (after["value"], after["unit"]) == (pytest.approx(12.5), "mm")
    assert Measurement.objects.get(pk=before["id"]).unit == "px"


def test_a_dicom_spacing_cannot_be_overridden_by_hand(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.alice)
    response = post_json(
        client, reverse("image-calibrate", args=[image.pk]), {"points": [[0, 0], [10, 0]], "known_mm": 5}
    )
    assert response.status_code == 400
    assert "carries its pixel spacing in its DICOM header" in response.json()["error"]


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"type": "nonsense", "tool": "line", "points": [[0, 0], [1, 1]]}, "type", "nonsense"),
        ({"type": "length", "tool": "line", "points": [[0, 0], [500, 5]]}, "points", "outside the image"),
        ({"type": "length", "tool": "line", "points": [[1, 1]]}, "points", ""),
        ({"type": "length", "tool": "line", "points": "here"}, "points", ""),
        ({"type": "interosseous-thickness", "tool": "angle", "points": [[0, 0], [5, 5], [9, 0]]}, "tool", ""),
        ({"type": "coughlin-shurnas", "value": 7}, "value", ""),
    ],
    ids=["unknown-type", "outside", "one-point", "not-a-list", "tool-not-allowed", "grade-range"],
)
def test_a_bad_measurement_is_refused_with_the_field_at_fault_and_nothing_is_written(
    client, cast, data, field, text
) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.alice)
    response = post_json(client, reverse("image-measure", args=[image.pk]), data)
    assert response.status_code == 400
    assert response.json()["field"] == field and text in response.json()["error"]
    assert not Measurement.objects.exists()


def test_a_request_body_that_is_not_json_is_refused(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.alice)
    response = client.post(reverse("image-measure", args=[image.pk]), "x=1", content_type="text/plain")
    assert response.status_code == 400 and response.json()["field"] == "body"


def test_grades_and_qualifiers_are_stored_clean(client, cast) -> None:
    image = store(cast, dicoms.xray(**PAT))
    client.force_login(cast.alice)
    grade = post_json(
        client, reverse("image-measure", args=[image.pk]), {"type": "coughlin-shurnas", "value": "2"}
    )
    assert grade.status_code == 201 and grade.json()["text"] == "grade 2"
    assert Measurement.objects.get().value == 2.0


def test_marks_are_stored_as_vectors_beside_the_untouched_original(client, cast) -> None:
    data = pat_ultrasound()
    image = store(cast, data)
    client.force_login(cast.alice)
    annotate = reverse("image-annotate", args=[image.pk])
    arrow = post_json(client, annotate, {"kind": "arrow", "points": [[5, 5], [20, 20]]})
    note = post_json(client, annotate, {"kind": "text", "points": [[30, 30]], "text": "wasted interossei"})
    assert arrow.status_code == note.status_code == 201
    assert post_json(client, annotate, {"kind": "text", "points": [[30, 30]]}).status_code == 400
    assert services.original_bytes(image) == data
    response = client.post(reverse("annotation-delete", args=[arrow.json()["id"]]))
    assert response.json() == {"deleted": arrow.json()["id"]}
    assert list(image.annotations.values_list("text", flat=True)) == ["wasted interossei"]


def test_a_coordinator_uploads_but_does_not_measure(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.carol)
    response = post_json(
        client,
        reverse("image-measure", args=[image.pk]),
        {"type": "length", "tool": "line", "points": [[0, 0], [9, 9]]},
    )
    assert response.status_code == 403
    assert client.get(reverse("image-detail", args=[image.pk])).status_code == 200


# --------------------------------------------------------------------------- renditions


def test_renditions_are_cached_and_remade_when_missing(client, cast) -> None:
    image = store(cast, dicoms.xray(**PAT))
    client.force_login(cast.alice)
    url = reverse("image-render", args=[image.pk])
    first = client.get(url, {"size": "thumb"})
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    cached = [name for name in stored_files() if name.startswith("derived/")]
    assert len(cached) == 1
    image_storage().delete(cached[0])
    again = client.get(url, {"size": "thumb"})
    assert again.content == first.content and image_storage().exists(cached[0])
    assert (
        AuditEntry.objects.filter(action="view", model="imaging.Image", object_id=str(image.pk)).count() == 2
    )


def test_the_window_can_be_chosen_per_request_and_saved(client, cast) -> None:
    image = store(cast, dicoms.xray(**PAT))
    assert image.window == (2000, 1001)
    client.force_login(cast.alice)
    url = reverse("image-render", args=[image.pk])
    narrow = client.get(url, {"wc": 100, "ww": 50, "size": "full"}).content
    assert np.asarray(Picture.open(io.BytesIO(narrow)).convert("L")).mean() > 200  # most pixels above 125
    assert client.get(url, {"wc": 100, "ww": 0}).status_code == 400
    assert client.get(url, {"wc": "bright", "ww": 10}).status_code == 400
    response = post_json(client, reverse("image-settings", args=[image.pk]), {"window": [1500, 800]})
    assert response.json()["image"]["window"] == [1500, 800]


def test_masks_blank_burned_in_text_in_every_rendition(client, cast) -> None:
    pixels = dicoms.burn_text(dicoms.gradient(48, 64))
    image = store(cast, pat_ultrasound(pixels=pixels))
    client.force_login(cast.alice)
    response = post_json(
        client, reverse("image-settings", args=[image.pk]), {"masks": [list(dicoms.TEXT_BOX)]}
    )
    assert response.status_code == 200
    png = client.get(reverse("image-render", args=[image.pk]), {"size": "full"}).content
    x, y, w, h = dicoms.TEXT_BOX
    assert np.asarray(Picture.open(io.BytesIO(png)).convert("L"))[y : y + h, x : x + w].max() == 0
    bad = post_json(client, reverse("image-settings", args=[image.pk]), {"masks": [[1000, 1000, 5, 5]]})
    assert bad.status_code == 400


# --------------------------------------------------------------------------- downloads and privacy


def test_the_de_identified_download_carries_no_identifier(client, cast) -> None:
    pixels = dicoms.burn_text(dicoms.gradient(48, 64))
    image = store(cast, pat_ultrasound(pixels=pixels))
    services.set_masks(image, [list(dicoms.TEXT_BOX)])
    client.force_login(cast.alice)
    response = client.get(reverse("image-deidentified", args=[image.pk]))
    data = response.content
    assert response["Content-Disposition"].startswith('attachment; filename="P')
    for secret in ("Lee", "A-001", "19700517", *dicoms.SECRETS[4:]):
        assert secret.encode() not in data, secret
    assert core_imaging.identifiers(data, pseudonym=services.pseudonym(cast.pat)) == []
    ds = dicoms.read(data)
    assert str(ds.PatientName) == services.pseudonym(cast.pat) and ds.PatientIdentityRemoved == "YES"
    x, y, w, h = dicoms.TEXT_BOX
    assert ds.pixel_array[y : y + h, x : x + w].max() == 0
    assert AuditEntry.objects.filter(action="export", detail__what="de-identified").exists()


def test_the_original_is_served_only_to_those_who_may_see_the_patient(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    client.force_login(cast.olga)
    for name in ("image-detail", "image-render", "image-original", "image-deidentified"):
        assert client.get(reverse(name, args=[image.pk])).status_code == 404, name
    client.force_login(cast.rita)
    assert client.get(reverse("image-original", args=[image.pk])).status_code == 404
    client.force_login(cast.alice)
    response = client.get(reverse("image-original", args=[image.pk]))
    assert response.content == services.original_bytes(image)
    assert AuditEntry.objects.filter(action="export", detail__what="original", user=cast.alice).count() == 1


# ------------------------------------------------------------------- before and after, the patient page


def _pair(cast) -> tuple[Image, Image]:
    before = store(cast, pat_ultrasound(AcquisitionDate="20250115"))
    after = store(
        cast, pat_ultrasound(AcquisitionDate="20250715", SOPInstanceUID="1.2.826.0.1.3680043.8.498.20002")
    )
    for image, end in ((before, 20), (after, 30)):
        services.add_measurement(
            image,
            {
                "type": "interosseous-thickness",
                "tool": "line",
                "points": [[10, 10], [10, end]],
                "site": "interossei-3",
            },
            user=cast.alice,
        )
    return before, after


def test_before_and_after_side_by_side_at_one_scale(client, cast) -> None:
    before, after = _pair(cast)
    client.force_login(cast.alice)
    page = client.get(reverse("image-compare", args=[cast.pat.pk]), {"before": before.pk, "after": after.pk})
    text = page.content.decode()
    assert "Same scale" in text and "1.0 mm" in text and "2.0 mm" in text
    svg = client.get(
        reverse("image-compare-figure", args=[cast.pat.pk]), {"before": before.pk, "after": after.pk}
    ).content.decode()
    assert svg.startswith("<svg") and "data:image/png;base64," in svg
    assert "2025" not in svg and "day " in svg  # de-identified: days from the first index treatment
    assert "181 days apart" in svg
    identified = client.get(
        reverse("image-compare-figure", args=[cast.pat.pk]),
        {"before": before.pk, "after": after.pk, "identified": "1", "format": "svg"},
    ).content.decode()
    assert "15 Jan 2025" in identified


def test_the_figure_downloads_as_png(client, cast) -> None:
    from tests.libraries import require

    require("cairosvg")
    before, after = _pair(cast)
    client.force_login(cast.alice)
    response = client.get(
        reverse("image-compare-figure", args=[cast.pat.pk]),
        {"before": before.pk, "after": after.pk, "format": "png"},
    )
    assert response["Content-Type"] == "image/png"
    picture = Picture.open(io.BytesIO(response.content))
    assert picture.width > 600


def test_the_patient_page_shows_the_images_and_each_measurement_over_time(client, cast) -> None:
    _pair(cast)
    client.force_login(cast.alice)
    page = client.get(reverse("patient-detail", args=[cast.pat.pk])).content.decode()
    assert page.count("size=thumb") == 2
    assert "Interosseous muscle thickness — left, Interossei, 3rd interspace" in page
    assert "latest 2.0 mm" in page


def test_deleting_an_image_removes_its_file_and_renditions(client, cast) -> None:
    image = store(cast, pat_ultrasound())
    services.rendition(image, size="thumb")
    assert len(stored_files()) == 2
    client.force_login(cast.alice)
    response = client.post(reverse("image-delete", args=[image.pk]))
    assert response.status_code == 302
    assert not Image.objects.exists() and stored_files() == []


# --------------------------------------------------------------------------- S3-compatible storage


def test_images_can_live_in_an_s3_bucket(cast, settings) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="stride-images")
        settings.STORAGES = {
            **settings.STORAGES,
            "images": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "stride-images",
                    "region_name": "us-east-1",
                    "access_key": "test",
                    "secret_key": "test",
                    "location": "images",
                },
            },
        }
        data = pat_ultrasound()
        image = store(cast, data)
        assert services.original_bytes(image) == data
        assert services.rendition(image, size="thumb")[:8] == b"\x89PNG\r\n\x1a\n"
        listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="stride-images")
        keys = sorted(item["Key"] for item in listed["Contents"])
        assert keys[0].startswith("images/derived/") and keys[1].startswith("images/originals/")


def test_the_case_report_shows_the_first_and_latest_image_side_by_side(client, cast) -> None:
    from stride.analytics.case_report import build_case_report, render_case_body

    _pair(cast)
    report = build_case_report(cast.pat, identified=False)
    (pair,) = report.images
    assert pair["title"] == "Ultrasound of the left side"
    body = render_case_body(report)
    assert "Imaging" in body and "first and latest image" in body and "2025" not in pair["svg"]
    assert "Interosseous muscle thickness — left" in body
    identified = build_case_report(cast.pat, identified=True)
    assert "15 Jan 2025" in identified.images[0]["svg"]


def test_the_case_report_pdf_carries_the_image_pair(cast) -> None:
    from tests.libraries import require

    require("weasyprint")
    from pypdf import PdfReader

    from stride.analytics.case_report import build_case_report, render_case_pdf

    _pair(cast)
    pdf = render_case_pdf(build_case_report(cast.pat, identified=False))
    reader = PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() for page in reader.pages)
    assert "Imaging" in text and "Same scale" in text
    assert sum(len(page.images) for page in reader.pages) >= 2  # the two pictures, embedded


def test_files_left_by_a_rolled_back_transaction_are_found_and_pruned(cast) -> None:
    from django.core.management import call_command
    from django.db import transaction

    kept = store(cast, pat_ultrasound())
    services.rendition(kept, size="thumb")
    wanted = set(stored_files())  # the original and its thumbnail
    with pytest.raises(RuntimeError), transaction.atomic():  # e.g. a loader's transaction around the upload
        store(cast, pat_ultrasound(SOPInstanceUID="1.2.826.0.1.3680043.8.498.20009"))
        raise RuntimeError("a later step failed")
    assert Image.objects.count() == 1 and len(stored_files()) == 3
    out = io.StringIO()
    call_command("images", "prune", "--older-than", "0", stdout=out)
    assert "Found 1 unreferenced file." in out.getvalue()
    assert len(stored_files()) == 3
    call_command("images", "prune", "--older-than", "0", "--delete", stdout=io.StringIO())
    assert set(stored_files()) == wanted
    store(cast, pat_ultrasound(SOPInstanceUID="1.2.826.0.1.3680043.8.498.20010"))
    Image.objects.filter(pk__gt=kept.pk).delete()  # its file remains, but it is new
    out = io.StringIO()
    call_command("images", "prune", "--older-than", "60", "--delete", stdout=out)
    assert "Deleted 0 unreferenced files." in out.getvalue()  # a fresh file is never touched


def test_a_measurement_refuses_the_image_site_when_its_type_is_measured_elsewhere(cast) -> None:
    from stride.care.models import Site
    from stride.core.errors import Invalid

    image = store(cast, pat_ultrasound(), site=Site.objects.get(code="mtp-1"))
    with pytest.raises(Invalid, match="is not measured at the"):
        services.add_measurement(
            image, {"type": "neuroma-diameter", "tool": "line", "points": [[1, 1], [9, 9]]}, user=cast.alice
        )
    measured = services.add_measurement(
        image,
        {"type": "neuroma-diameter", "tool": "line", "points": [[1, 1], [9, 9]], "site": "im-space-3"},
        user=cast.alice,
    )
    assert measured.site.code == "im-space-3"
