"""The analytics area: saved cohorts, the cohort builder, cohort reports and their downloads.

Everything here is de-identified: pages show aggregates of the viewer's
clinics (``Action.VIEW_AGGREGATES``), never a patient. Small groups are
withheld unless the viewer may see every patient behind the figures
(``Action.VIEW_PATIENT`` in each clinic) and asks to see them.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from stride.analytics import reports
from stride.analytics.case_report import (
    build_case_report,
    case_json,
    render_case_body,
    render_case_html,
    render_case_pdf,
)
from stride.analytics.forms import CohortForm, ReportForm, clinics_for
from stride.analytics.models import CaseNarrative, SavedCohort
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import charts, cohorts
from stride.core.errors import Invalid, StrideError
from stride.patients.views import patient_for

FORMATS = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    access.require(request.user, Action.VIEW_AGGREGATES)
    return _home(request, ReportForm(user=request.user))


def _home(request: HttpRequest, form: ReportForm, status: int = 200) -> HttpResponse:
    """The analytics home: the report form (with its errors, if any) and the saved cohorts."""
    return render(
        request,
        "analytics/home.html",
        {
            "cohorts": SavedCohort.objects.visible_to(request.user).prefetch_related("clinics"),
            "form": form,
            "minimum": settings.STRIDE_MIN_CELL_SIZE,
        },
        status=status,
    )


def _saved(request: HttpRequest, pk: int) -> SavedCohort:
    return get_object_or_404(SavedCohort.objects.visible_to(request.user), pk=pk)


@login_required
def cohort_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Define a cohort and save it by name (new, or an edit of a saved one)."""
    access.require(request.user, Action.VIEW_AGGREGATES)
    saved = _saved(request, pk) if pk is not None else None
    clinics = clinics_for(request.user)
    if request.method == "POST":
        form = CohortForm(request.POST, clinics=clinics)
        if form.is_valid():
            name = form.cleaned_data["name"].strip()
            if not name:
                form.add_error("name", "Give the cohort a name to save it.")
            else:
                spec = form.cleaned_data["spec"]
                chosen = [c for c in clinics if not spec.clinics or c.slug in spec.clinics]
                if saved is None:
                    saved = SavedCohort.save_for(
                        request.user, name, spec, chosen, form.cleaned_data["description"]
                    )
                else:
                    saved.name, saved.spec = name, spec.to_dict()
                    saved.description = form.cleaned_data["description"]
                    saved.save()
                    saved.clinics.set(chosen)
                messages.success(request, f"Cohort “{saved.name}” saved: {saved.describe()}")
                return redirect("analytics")
    else:
        initial = {}
        if saved is not None:
            initial = {"name": saved.name, "description": saved.description} | CohortForm.initial_for(
                saved.cohort
            )
        form = CohortForm(initial=initial, clinics=clinics)
    title = f"Edit cohort “{saved.name}”" if saved else "New cohort"
    return render(request, "analytics/cohort_form.html", {"form": form, "title": title, "saved": saved})


@login_required
@require_POST
def cohort_delete(request: HttpRequest, pk: int) -> HttpResponse:
    access.require(request.user, Action.VIEW_AGGREGATES)
    saved = _saved(request, pk)
    name = saved.name
    saved.delete()
    messages.success(request, f"Cohort “{name}” deleted.")
    return redirect("analytics")


def _minimum(request: HttpRequest, clinic_ids: set[int] | None, show_small: bool) -> int | None:
    """The small-cell minimum for this viewer, or None when they may and do ask to see everything."""
    if not show_small:
        return settings.STRIDE_MIN_CELL_SIZE
    identified = access.clinic_ids(request.user, Action.VIEW_PATIENT)
    if identified is None or (clinic_ids is not None and clinic_ids <= identified):
        return None
    return settings.STRIDE_MIN_CELL_SIZE


def _build(request: HttpRequest, form: ReportForm) -> reports.CohortReport:
    data = form.cleaned_data
    chosen: list[tuple[str, cohorts.CohortSpec]] = []
    if data.get("everyone"):
        chosen.append(("All treated patients", cohorts.CohortSpec()))
    chosen.extend((saved.name, saved.cohort) for saved in data.get("cohort") or ())
    clinic_ids = access.clinic_ids(request.user, Action.VIEW_AGGREGATES)
    return reports.cohort_report(
        chosen,
        clinic_ids=clinic_ids,
        instrument=data["instrument"],
        scale=data["scale"],
        event=data["event"],
        timepoint=data["timepoint"],
        minimum=_minimum(request, clinic_ids, data.get("show_small", False)),
        generated_by=request.user.get_username(),
    )


@login_required
def report(request: HttpRequest) -> HttpResponse:
    """The cohort report for the cohorts and outcome in the query; ``format=`` downloads it."""
    access.require(request.user, Action.VIEW_AGGREGATES)
    form = ReportForm(request.GET, user=request.user)
    if not form.is_valid():
        return _home(request, form, status=400)
    wanted = request.GET.get("format", "")
    figure = request.GET.get("figure", "")
    if wanted and wanted not in FORMATS and not figure:
        raise Http404("Unknown format.")
    try:
        built = _build(request, form)
    except Invalid as error:
        form.add_error(None, error.message)
        return _home(request, form, status=400)
    name = slugify(built.title)[:60] or "cohort-report"
    stamp = dt.date.today().isoformat()
    if figure:
        return _figure(request, built, figure, f"{name}-{figure}-{stamp}")
    if wanted:
        record(
            AuditEntry.Action.EXPORT,
            detail={
                "report": "cohort",
                "format": wanted,
                "cohorts": list(built.labels),
                "minimum": built.minimum,
            },
            model="analytics.cohortreport",
        )
        if wanted == "json":
            response: HttpResponse = JsonResponse(reports.report_json(built), json_dumps_params={"indent": 1})
        elif wanted == "pdf":
            try:
                response = HttpResponse(reports.render_pdf(built), content_type=FORMATS["pdf"])
            except StrideError as error:
                messages.error(request, str(error))
                return redirect(f"{reverse('analytics-report')}?{_without(request, 'format')}")
        elif wanted == "csv":
            response = HttpResponse(reports.render_csv(built), content_type=FORMATS["csv"])
        else:
            response = HttpResponse(reports.render_html(built), content_type=FORMATS["html"])
        response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{wanted}"'
        return response
    figures = reports.report_charts(built)
    return render(
        request,
        "analytics/report.html",
        {
            "report": built,
            "body": reports.render_body(built, figures),
            "query": _without(request, "format"),
            "figures": [f["name"] for f in figures],
        },
    )


def _without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _figure(request: HttpRequest, built: reports.CohortReport, name: str, filename: str) -> HttpResponse:
    """One chart of the report as SVG (default) or PNG (``format=png``)."""
    figures = {f["name"]: f for f in reports.report_charts(built)}
    if name not in figures:
        raise Http404("No such figure in this report.")
    svg = figures[name]["svg"]
    if request.GET.get("format") == "png":
        try:
            response = HttpResponse(charts.to_png(svg), content_type="image/png")
        except (StrideError, RuntimeError) as error:
            return HttpResponse(str(error), status=503, content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.png"'
        return response
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Content-Disposition"] = f'attachment; filename="{filename}.svg"'
    return response


# --------------------------------------------------------------------------- case reports


class NarrativeForm(forms.Form):
    text = forms.CharField(
        label="Narrative paragraph",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Shown in every version of the report, de-identified ones too: write no names or dates.",
    )


@login_required
def case_report(request: HttpRequest, pk: int) -> HttpResponse:
    """A patient's case report: de-identified unless ``identified=1``; ``format=`` downloads it."""
    patient = patient_for(request, pk)
    identified = request.GET.get("identified") == "1"
    can_write = access.can(request.user, Action.RECORD_PROCEDURE, patient.clinic_id)
    form = NarrativeForm(initial={"text": getattr(getattr(patient, "case_narrative", None), "text", "")})
    if request.method == "POST":
        if not can_write:
            raise PermissionDenied("Only clinicians write case narratives.")
        form = NarrativeForm(request.POST)
        if form.is_valid():
            CaseNarrative.objects.update_or_create(
                patient=patient,
                defaults={"text": form.cleaned_data["text"].strip(), "updated_by": request.user},
            )
            messages.success(request, "Narrative saved.")
            return redirect(request.get_full_path())
    wanted = request.GET.get("format", "")
    if wanted and wanted not in ("html", "pdf", "json"):
        raise Http404("Unknown format.")
    built = build_case_report(patient, identified=identified, user=request.user)
    if identified or wanted:
        record(
            AuditEntry.Action.EXPORT if wanted else AuditEntry.Action.VIEW,
            patient,
            detail={"report": "case", "identified": identified, "format": wanted or "page"},
        )
    if wanted:
        stem = (
            f"case-report-{patient.record_number if identified else patient.pk}-{dt.date.today().isoformat()}"
        )
        if wanted == "json":
            response: HttpResponse = JsonResponse(case_json(built), json_dumps_params={"indent": 1})
        elif wanted == "pdf":
            try:
                response = HttpResponse(render_case_pdf(built), content_type=FORMATS["pdf"])
            except StrideError as error:
                messages.error(request, str(error))
                return redirect(request.path + ("?identified=1" if identified else ""))
        else:
            response = HttpResponse(render_case_html(built), content_type=FORMATS["html"])
        response["Content-Disposition"] = f'attachment; filename="{slugify(stem)}.{wanted}"'
        return response
    return render(
        request,
        "analytics/case_report.html",
        {
            "patient": patient,
            "report": built,
            "body": render_case_body(built),
            "form": form,
            "can_write": can_write,
        },
    )
