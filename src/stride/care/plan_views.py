"""Pages for protocols and care plans: start one, move its steps, see the ladder, work the list."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from stride.care import calendar, plans
from stride.care.forms import clinicians_of
from stride.care.models import CarePlan, Condition, PlanStep, ProtocolVersion
from stride.clinics import access
from stride.clinics.access import Action
from stride.clinics.models import User
from stride.core import protocols as core_protocols
from stride.core.catalog import catalog
from stride.core.errors import CatalogError, Invalid
from stride.forms import DateInput


def _condition(request: HttpRequest, pk: int, action: Action) -> Condition:
    condition = get_object_or_404(
        access.scope(
            Condition.objects.select_related("patient__clinic", "condition_type", "site"), request.user
        ),
        pk=pk,
    )
    access.require(request.user, action, condition.patient.clinic_id)
    return condition


def _plan(request: HttpRequest, pk: int, action: Action) -> CarePlan:
    plan = get_object_or_404(
        access.scope(
            CarePlan.objects.select_related(
                "condition__patient__clinic", "condition__condition_type", "protocol"
            ),
            request.user,
        ),
        pk=pk,
    )
    access.require(request.user, action, plan.condition.patient.clinic_id)
    return plan


def _step(request: HttpRequest, pk: int, action: Action) -> PlanStep:
    step = get_object_or_404(
        access.scope(PlanStep.objects.select_related("plan__condition__patient__clinic"), request.user), pk=pk
    )
    access.require(request.user, action, step.plan.condition.patient.clinic_id)
    return step


# --------------------------------------------------------------------------- starting a plan


class StartPlanForm(forms.Form):
    protocol = forms.ModelChoiceField(queryset=ProtocolVersion.objects.none())
    anchor_date = forms.DateField(
        widget=DateInput(),
        label="Day 0",
        help_text="The planned day of the index step (e.g. the BMC injection).",
    )
    clinician = forms.ModelChoiceField(queryset=User.objects.none())
    include_optional = forms.BooleanField(required=False, label="Include the optional steps")

    def __init__(self, *args: Any, condition: Condition, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = plans.current_versions(condition.patient.clinic, condition.condition_type.code)
        self.fields["protocol"].queryset = ProtocolVersion.objects.filter(pk__in=[v.pk for v in versions])
        self.fields["clinician"].queryset = clinicians_of(condition.patient)


@login_required
@require_http_methods(["GET", "POST"])
def plan_start(request: HttpRequest, pk: int) -> HttpResponse:
    condition = _condition(request, pk, Action.START_PLAN)
    form = StartPlanForm(request.POST or None, condition=condition, initial={"clinician": request.user.pk})
    if request.method == "POST" and form.is_valid():
        try:
            plan = plans.start_plan(
                condition,
                form.cleaned_data["protocol"],
                form.cleaned_data["anchor_date"],
                clinician=form.cleaned_data["clinician"],
                user=request.user,
                include_optional=form.cleaned_data["include_optional"],
            )
        except Invalid as exc:
            form.add_error("anchor_date" if exc.field in ("anchor", "planned_on") else None, exc.message)
        else:
            messages.success(request, f"{plan.protocol.name} planned from {plan.anchor_date:%d %b %Y}.")
            today = condition.patient.clinic.today()
            past = [s.name for s in plan.steps.all() if s.planned_on < today]
            if past:
                messages.warning(
                    request, f"Already in the past: {', '.join(past)}. Record, reschedule or skip them."
                )
            return redirect("plan-detail", pk=plan.pk)
    title = f"Start a protocol for {condition}"
    if not form.fields["protocol"].queryset.exists():
        messages.info(request, f"No protocol of this clinic applies to {condition.condition_type.name}.")
    return render(request, "form.html", {"form": form, "patient": condition.patient, "title": title})


# --------------------------------------------------------------------------- the plan


class RescheduleForm(forms.Form):
    planned_on = forms.DateField(widget=DateInput(), label="New date")
    reason = forms.CharField(max_length=300)


class SkipForm(forms.Form):
    reason = forms.CharField(max_length=300)


class DoneForm(forms.Form):
    done_on = forms.DateField(widget=DateInput(), label="Done on")


class AddStepForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=[(k, k.title()) for k in core_protocols.STEP_KINDS])
    planned_on = forms.DateField(widget=DateInput(), label="Date")
    reason = forms.CharField(max_length=300)


@login_required
def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk, Action.VIEW_PATIENT)
    clinic_id = plan.condition.patient.clinic_id
    steps = list(plan.steps.select_related("procedure__procedure_type").prefetch_related("changes__by"))
    today = plan.condition.patient.clinic.today()
    cat = catalog()
    for step in steps:
        defaults = step.defaults or {}
        procedure = cat.procedures.get(defaults.get("procedure") or "")
        site = cat.sites.get(defaults.get("site") or "")
        step.procedure_name = procedure.name if procedure else ""
        step.site_name = site.name if site else ""
        step.overdue = (
            step.status == PlanStep.Status.PLANNED and step.planned_on < today
        )  # as on the worklist
    context = {
        "plan": plan,
        "patient": plan.condition.patient,
        "steps": steps,
        "today": today,
        "can_manage": access.can(request.user, Action.MANAGE_PLAN, clinic_id),
        "can_record": access.can(request.user, Action.RECORD_PROCEDURE, clinic_id),
        "can_stop": access.can(request.user, Action.START_PLAN, clinic_id),
        "add_form": AddStepForm(),
    }
    return render(request, "care/plan.html", context)


def _plan_url(step: PlanStep) -> str:
    from django.urls import reverse

    return reverse("plan-detail", kwargs={"pk": step.plan_id})


def _back(step: PlanStep) -> HttpResponse:
    return redirect("plan-detail", pk=step.plan_id)


@login_required
@require_http_methods(["GET", "POST"])
def step_reschedule(request: HttpRequest, pk: int) -> HttpResponse:
    step = _step(request, pk, Action.MANAGE_PLAN)
    form = RescheduleForm(request.POST or None, initial={"planned_on": step.planned_on})
    if request.method == "POST" and form.is_valid():
        try:
            moved = plans.reschedule(
                step, form.cleaned_data["planned_on"], form.cleaned_data["reason"], request.user
            )
        except Invalid as exc:
            form.add_error("planned_on" if exc.field in ("planned_on", "anchor") else "reason", exc.message)
        else:
            step.refresh_from_db()
            others = [s.name for s in moved if s.pk != step.pk]
            text = f"{step.name} moved to {step.planned_on:%d %b %Y}."
            if others:
                text += f" Moved with it: {', '.join(others)}."
            if not step.window_start <= step.planned_on <= step.window_end:
                messages.warning(request, text + " This is outside the protocol's window: a deviation.")
            else:
                messages.success(request, text)
            return _back(step)
    title = f"Reschedule {step.name} (window {step.window_start:%d %b} – {step.window_end:%d %b %Y})"
    return render(
        request,
        "form.html",
        {"form": form, "patient": step.plan.condition.patient, "title": title, "cancel_url": _plan_url(step)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def step_skip(request: HttpRequest, pk: int) -> HttpResponse:
    step = _step(request, pk, Action.MANAGE_PLAN)
    form = SkipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            plans.skip(step, form.cleaned_data["reason"], request.user)
        except Invalid as exc:
            form.add_error("reason", exc.message)
        else:
            messages.success(request, f"{step.name} skipped.")
            return _back(step)
    return render(
        request,
        "form.html",
        {
            "form": form,
            "patient": step.plan.condition.patient,
            "title": f"Skip {step.name}",
            "cancel_url": _plan_url(step),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def step_done(request: HttpRequest, pk: int) -> HttpResponse:
    """Mark a step that is not a procedure (a review, orthotics, imaging…) done."""
    step = _step(request, pk, Action.MANAGE_PLAN)
    if step.kind == "procedure":
        return redirect(f"/patients/{step.plan.condition.patient_id}/procedures/new/?step={step.pk}")
    form = DoneForm(request.POST or None, initial={"done_on": step.plan.condition.patient.clinic.today()})
    if request.method == "POST" and form.is_valid():
        done_on = form.cleaned_data["done_on"]
        if done_on > step.plan.condition.patient.clinic.today():
            form.add_error("done_on", "A step cannot be done in the future.")
        else:
            try:
                plans.complete(step, None, done_on, request.user)
            except Invalid as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"{step.name} done.")
                return _back(step)
    return render(
        request,
        "form.html",
        {
            "form": form,
            "patient": step.plan.condition.patient,
            "title": f"{step.name}: done",
            "cancel_url": _plan_url(step),
        },
    )


@login_required
@require_POST
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk, Action.MANAGE_PLAN)
    form = AddStepForm(request.POST)
    if form.is_valid():
        try:
            step = plans.add_step(plan, **form.cleaned_data, user=request.user)
        except Invalid as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{step.name} added on {step.planned_on:%d %b %Y}.")
    else:
        messages.error(request, "To add a step, give its name, kind, date and the reason.")
    return redirect("plan-detail", pk=plan.pk)


@login_required
@require_POST
def plan_stop(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk, Action.START_PLAN)
    try:
        plans.stop(plan, request.POST.get("reason", ""))
    except Invalid as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The plan is stopped.")
    return redirect("plan-detail", pk=plan.pk)


# --------------------------------------------------------------------------- the ladder


@login_required
def ladder(request: HttpRequest, pk: int) -> HttpResponse:
    condition = _condition(request, pk, Action.VIEW_PATIENT)
    tried = [
        core_protocols.TriedItem(
            source="treatment",
            code=h.treatment.code,
            on=h.started_on,
            response=h.response,
            relief_weeks=h.relief_weeks,
        )
        for h in condition.history.select_related("treatment")
    ] + [
        core_protocols.TriedItem(
            source="procedure",
            code=p.procedure_type.code,
            on=p.performed_on,
            injectates=tuple(i.kind for i in p.injectates.all()),
        )
        for p in condition.procedures.select_related("procedure_type").prefetch_related("injectates")
    ]
    offered = {}
    for version in plans.current_versions(condition.patient.clinic, condition.condition_type.code):
        try:
            offered[version.code] = plans.parsed(version)
        except CatalogError:
            continue
    rungs = core_protocols.ladder_status(condition.condition_type.code, tried, offered=offered)
    cat = catalog()

    def label(item: core_protocols.TriedItem) -> str:
        """The catalog's name of what was tried, not its code."""
        names = cat.treatments if item.source == "treatment" else cat.procedures
        return names[item.code].name if item.code in names else item.code

    rows = [
        (
            rung,
            [offered[code].name for code in rung.protocols if code in offered],
            [(label(item), item) for item in rung.tried],
        )
        for rung in rungs
    ]
    return render(
        request, "care/ladder.html", {"condition": condition, "patient": condition.patient, "rows": rows}
    )


# --------------------------------------------------------------------------- the plan worklist


@login_required
def plan_worklist(request: HttpRequest) -> HttpResponse:
    access.require(request.user, Action.VIEW_PATIENT)
    clinic_ids = access.clinic_ids(request.user, Action.VIEW_PATIENT)
    steps = PlanStep.objects.filter(
        status=PlanStep.Status.PLANNED, plan__status=CarePlan.Status.ACTIVE
    ).select_related("plan__condition__patient__clinic", "plan__condition__condition_type", "plan__clinician")
    if clinic_ids is not None:
        steps = steps.filter(plan__condition__patient__clinic_id__in=clinic_ids)
    clinic = request.GET.get("clinic", "")
    if clinic.isdigit():
        steps = steps.filter(plan__condition__patient__clinic_id=int(clinic))
    clinician = request.GET.get("clinician", "")
    if clinician == "me":
        steps = steps.filter(plan__clinician=request.user)
    elif clinician.isdigit():
        steps = steps.filter(plan__clinician_id=int(clinician))
    kind = request.GET.get("kind", "")
    if kind in core_protocols.STEP_KINDS:
        steps = steps.filter(kind=kind)
    horizon = dt.date.today() + dt.timedelta(days=31)
    groups: dict[str, list[PlanStep]] = {"overdue": [], "today": [], "week": []}
    for step in steps.filter(planned_on__lte=horizon).order_by("planned_on", "pk"):
        today = step.plan.condition.patient.clinic.today()  # the clinic's own day
        if step.planned_on < today:
            groups["overdue"].append(step)
        elif step.planned_on == today:
            groups["today"].append(step)
        elif step.planned_on <= today + dt.timedelta(days=7):
            groups["week"].append(step)
    context = {
        "groups": groups,
        "clinics": access.clinics(request.user, Action.VIEW_PATIENT),
        "clinicians": User.objects.filter(
            plans__condition__patient__clinic_id__in=access.clinics(request.user, Action.VIEW_PATIENT)
        ).distinct(),
        "kinds": core_protocols.STEP_KINDS,
        "filters": {"clinic": clinic, "clinician": clinician, "kind": kind},
    }
    return render(request, "care/plan_worklist.html", context)


# --------------------------------------------------------------------------- calendars


@login_required
def plan_calendar(request: HttpRequest, pk: int) -> HttpResponse:
    """The plan's steps as an .ics file to import into a calendar."""
    plan = _plan(request, pk, Action.VIEW_PATIENT)
    steps = plan.steps.select_related("plan__condition__patient__clinic").exclude(
        status=PlanStep.Status.SKIPPED
    )
    body = calendar.calendar_for(steps, f"{plan.protocol.name} — {plan.condition.patient.record_number}")
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="plan-{plan.pk}.ics"'
    return response


def _feed_steps(user: Any) -> Any:
    today = dt.date.today()
    steps = PlanStep.objects.filter(
        plan__clinician=user,
        plan__status=CarePlan.Status.ACTIVE,
        planned_on__gte=today - dt.timedelta(days=30),
        planned_on__lte=today + dt.timedelta(days=400),
    ).select_related("plan__condition__patient__clinic")
    # Only the clinics where the clinician still works: leaving a clinic empties its part of the feed.
    return access.scope(steps, user, Action.VIEW_PATIENT)


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """A clinician's subscribed feed (no login: the signed address is the secret)."""
    feed = calendar.feed_for(token.removesuffix(".ics"))
    if feed is None or not feed.user.is_active:
        return HttpResponse("No such calendar.", status=404, content_type="text/plain")
    body = calendar.calendar_for(_feed_steps(feed.user), f"Stride — {feed.user}")
    return HttpResponse(body, content_type="text/calendar; charset=utf-8")


@login_required
@require_http_methods(["GET", "POST"])
def my_calendar(request: HttpRequest) -> HttpResponse:
    """Create, show or revoke the user's calendar feed address."""
    from django.urls import reverse
    from django.utils import timezone

    from stride.care.models import CalendarFeed

    access.require(request.user, Action.VIEW_PATIENT)  # a feed lists patients' record numbers
    if request.method == "POST":
        CalendarFeed.objects.filter(user=request.user, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if request.POST.get("action") == "new":
            CalendarFeed.objects.create(user=request.user)
            messages.success(request, "A new calendar address is ready; the old one no longer works.")
        else:
            messages.success(request, "Your calendar address no longer works.")
        return redirect("my-calendar")
    feed = CalendarFeed.objects.filter(user=request.user, revoked_at__isnull=True).first()
    url = (
        request.build_absolute_uri(
            reverse("calendar-feed", kwargs={"token": calendar.feed_token(feed) + ".ics"})
        )
        if feed
        else ""
    )
    return render(request, "care/my_calendar.html", {"url": url, "count": _feed_steps(request.user).count()})
