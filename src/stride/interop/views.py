"""The research export page: de-identified tables of the clinics whose aggregates the user may see.

Any role with ``Action.VIEW_AGGREGATES`` may use it, researchers included — for a
researcher it is the only download of data there is. The export is written to a
temporary folder, zipped into a temporary file and streamed from it (the file is
deleted when the response is closed), so neither the page nor the server holds
the registry in memory. Every download is audited as an ``export``.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from stride.analytics.models import SavedCohort
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import deid
from stride.core.errors import Invalid
from stride.interop.research import write_research_export


def default_key(user: Any) -> str:
    """The user's own export key: derived from the installation's secret and the user, never shown.

    The same for every export the user makes (so their exports join up), different for every user.
    """
    secret = f"stride-research-key:{settings.SECRET_KEY}".encode()
    return hmac.new(secret, b"user:%d" % user.pk, hashlib.sha256).hexdigest()


class ResearchExportForm(forms.Form):
    clinics = forms.ModelMultipleChoiceField(
        label="Clinics",
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only clinics whose de-identified figures you may see.",
    )
    cohort = forms.ModelChoiceField(
        label="Cohort",
        queryset=None,
        required=False,
        empty_label="Every patient of the chosen clinics",
        help_text="A saved cohort: its patients and the conditions its index treatments are for.",
    )
    format = forms.ChoiceField(
        label="Format",
        choices=[("csv", "CSV (one file per table)"), ("parquet", "Parquet (one file per table)")],
        initial="csv",
    )
    dates = forms.ChoiceField(
        label="Dates",
        choices=[
            ("index", "Days from each patient's day 0 (Safe Harbor)"),
            ("shift", "Dates shifted by a secret offset per patient"),
        ],
        initial="index",
        help_text="Shifted dates keep seasons and calendar trends roughly, but are not one of Safe "
        "Harbor's own rules: use them only where your data-use agreement allows.",
    )
    key = forms.CharField(
        label="Export key",
        required=False,
        min_length=deid.KEY_MIN_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        error_messages={
            "min_length": f"Use at least {deid.KEY_MIN_LENGTH} characters, so the key cannot be guessed."
        },
        help_text="Leave empty to use your own key: every export you make then shares its pseudonyms. "
        f"Type a shared key (at least {deid.KEY_MIN_LENGTH} characters) to link exports made by others "
        "with it.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clinics = access.clinics(user, Action.VIEW_AGGREGATES).order_by("name")
        self.fields["clinics"].queryset = clinics
        self.fields["clinics"].initial = list(clinics)
        self.fields["cohort"].queryset = SavedCohort.objects.visible_to(user)


def _zip(folder: Path, name: str) -> Any:
    """The files of ``folder`` as a ZIP in a temporary file (deleted when closed), rewound."""
    archive_file = tempfile.TemporaryFile(suffix=".zip")  # noqa: SIM115 - streamed, then closed by the response
    try:
        with zipfile.ZipFile(archive_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, f"{name}/{path.name}")
    except BaseException:
        archive_file.close()
        raise
    archive_file.seek(0)
    return archive_file


@login_required
def research_export(request: HttpRequest) -> HttpResponse:
    """The export form; a valid POST downloads the ZIP of the tables."""
    access.require(request.user, Action.VIEW_AGGREGATES)
    form = ResearchExportForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        key = data["key"] or default_key(request.user)
        clinic_ids = {clinic.pk for clinic in data["clinics"]}
        saved = data["cohort"]
        stem = f"stride-research-{timezone.now():%Y%m%d-%H%M}"
        try:
            with tempfile.TemporaryDirectory(prefix="stride-research-") as folder:
                summary = write_research_export(
                    Path(folder),
                    fmt=data["format"],
                    clinic_ids=clinic_ids,
                    spec=saved.cohort if saved else None,
                    dates=data["dates"],
                    key=key,
                    minimum=settings.STRIDE_MIN_CELL_SIZE,
                )
                archive = _zip(Path(folder), stem)
        except Invalid as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            record(
                AuditEntry.Action.EXPORT,
                detail={
                    "export": "research",
                    "format": summary.fmt,
                    "dates": summary.dates,
                    "clinics": sorted(clinic_ids),
                    "cohort": saved.pk if saved else None,
                    "minimum": summary.minimum,
                    "key": summary.key_fingerprint,
                    "own key": not data["key"],
                    "counts": summary.tables,
                },
                model="interop.researchexport",
            )
            return FileResponse(
                archive, as_attachment=True, filename=f"{stem}.zip", content_type="application/zip"
            )
    status = 400 if form.is_bound else 200
    return render(
        request,
        "interop/research_export.html",
        {
            "form": form,
            "minimum": settings.STRIDE_MIN_CELL_SIZE,
            "own_fingerprint": deid.fingerprint(default_key(request.user)),
            "safe_harbor": deid.SAFE_HARBOR,
            "oldest": deid.OLDEST_AGE,
            "max_shift": deid.MAX_SHIFT_DAYS,
        },
        status=status,
    )
