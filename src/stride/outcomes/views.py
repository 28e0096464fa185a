"""Staff pages for follow-up: start it, send links, enter paper forms, work the list.

Records are reached through the access scope like every other patient page;
the patient-facing pages are in :mod:`stride.outcomes.patient_views`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.care.models import Condition, Procedure
from stride.clinics import access
from stride.clinics.access import Action
from stride.core import charts
from stride.core import instruments as core_instruments
from stride.core.errors import Invalid
from stride.forms import DateInput
from stride.outcomes import links, services
from stride.outcomes.models import Contact, Episode, FollowUp, QuestionnaireResponse, Score
from stride.patients.models import Patient
from stride.patients.views import patient_for

# --------------------------------------------------------------------------- the patient page panel


def patient_panel(patient: Patient, user: Any, procedures: list[Procedure]) -> dict[str, Any]:
    """What the patient page shows of follow-up: episodes, their follow-ups, score charts."""
    episodes = list(
        Episode.objects.filter(condition__patient=patient)
        .select_related("condition__condition_type", "condition__site", "index_procedure__procedure_type")
        .prefetch_related("follow_ups__responses__scores", "follow_ups__contacts")
        .order_by("-index_date")
    )
    today = patient.clinic.today()
    library = core_instruments.library()
    for episode in episodes:
        for follow_up in episode.follow_ups.all():
            follow_up.chips = _chips(follow_up, library)
    return {
        "episodes": episodes,
        "today": today,
        "charts": score_charts(patient, procedures),
        "links": list(patient.links.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())),
        "can_answer": access.can(user, Action.RECORD_ANSWERS, patient.clinic_id),
        "can_start": access.can(user, Action.START_FOLLOW_UP, patient.clinic_id),
    }


def score_text(response: QuestionnaireResponse) -> str:
    """A response's scores to one decimal, scale by scale ("54.8 / 61.2"; "—" where not scoreable)."""
    return " / ".join(
        f"{round(s.value, 1):g}" if s.valid and s.value is not None else "—"
        for s in sorted(response.scores.all(), key=lambda s: s.pk)
    )


def _chips(follow_up: FollowUp, library: dict[str, Any]) -> list[dict[str, Any]]:
    """The answered questionnaires of a follow-up, each with its scores, for the table."""
    chips = []
    order = {code: n for n, code in enumerate(follow_up.instruments)}
    for response in sorted(follow_up.responses.all(), key=lambda r: order.get(r.instrument, len(order))):
        if response.status != QuestionnaireResponse.Status.COMPLETED:
            continue
        instrument = library.get(response.instrument)
        chips.append(
            {
                "name": instrument.short_name if instrument else response.instrument,
                "scores": score_text(response),
                "response": response,
            }
        )
    return chips


def treatment_markers(patient: Patient, procedures: list[Procedure]) -> list[charts.Marker]:
    """The treatments a patient's charts mark on their time axis."""
    markers = [charts.Marker(p.performed_on, p.procedure_type.name, index=p.is_index) for p in procedures]
    # An index date set without a procedure recorded here (e.g. treated elsewhere) is marked too.
    for episode in Episode.objects.filter(condition__patient=patient, index_procedure__isnull=True):
        markers.append(charts.Marker(episode.index_date, "Index date", index=True))
    return markers


def score_charts(
    patient: Patient, procedures: list[Procedure], *, origin: dt.date | None = None
) -> list[dict[str, Any]]:
    """One SVG per instrument scale the patient has scores on, oldest score first.

    With ``origin`` the time axis counts months from that day instead of showing dates
    (de-identified case reports).
    """
    scores = (
        Score.objects.filter(response__patient=patient, response__status="completed", valid=True)
        .select_related("response__follow_up")
        .order_by("response__collected_on", "pk")
    )
    series: dict[tuple[str, str], list[Score]] = defaultdict(list)
    for score in scores:
        series[(score.instrument, score.scale)].append(score)
    markers = treatment_markers(patient, procedures)
    result = []
    library = core_instruments.library()
    for (code, scale_code), rows in series.items():
        instrument = library.get(code)
        if instrument is None:
            continue
        scale = instrument.scale(scale_code)
        low, high = scale.range
        points = [
            charts.Point(
                s.response.collected_on,
                s.value,
                label=s.response.follow_up.timepoint_name if s.response.follow_up else "",
                flagged=bool(s.response.flags),
            )
            for s in rows
            if s.value is not None
        ]
        baseline = next(
            (s.value for s in rows if s.response.follow_up and s.response.follow_up.timepoint == "baseline"),
            None,
        )
        band = None
        if baseline is not None and scale.mcid:
            band = (max(low, baseline - scale.mcid), min(high, baseline + scale.mcid))
        title = (
            instrument.short_name
            if len(instrument.scales) == 1
            else f"{instrument.short_name} — {scale.name}"
        )
        result.append(
            {
                "title": title,
                "svg": charts.score_chart(
                    title,
                    points,
                    low=low,
                    high=high,
                    markers=markers,
                    band=band,
                    higher_is_better=scale.higher_is_better,
                    unit=scale.unit,
                    origin=origin,
                ),
                "latest": points[-1] if points else None,
                "mcid": scale.mcid,
                "banded": band is not None,
            }
        )
    return result


# --------------------------------------------------------------------------- starting follow-up


class IndexDateForm(forms.Form):
    index_date = forms.DateField(
        widget=DateInput(), help_text="The day of the treatment outcomes are measured from."
    )


@login_required
@require_http_methods(["GET", "POST"])
def start_follow_up(request: HttpRequest, pk: int) -> HttpResponse:
    condition = get_object_or_404(
        access.scope(Condition.objects.select_related("patient__clinic", "condition_type"), request.user),
        pk=pk,
    )
    patient = condition.patient
    access.require(request.user, Action.START_FOLLOW_UP, patient.clinic_id)
    form = IndexDateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.start_episode(condition, form.cleaned_data["index_date"], user=request.user)
        except Invalid as exc:
            form.add_error("index_date", exc.message)
        else:
            messages.success(
                request, f"Follow-up of {condition} starts from {form.cleaned_data['index_date']:%d %b %Y}."
            )
            return redirect("patient-detail", pk=patient.pk)
    return render(
        request,
        "form.html",
        {"form": form, "patient": patient, "title": f"Start follow-up of {condition}"},
    )


# --------------------------------------------------------------------------- patient links


@login_required
@require_POST
def create_link(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.RECORD_ANSWERS)
    link = links.new_link(patient, created_by=request.user)
    url = links.url_for(link, request.build_absolute_uri("/"))
    messages.success(
        request, f"Personal link for {patient.given_name}, valid until {link.expires_at:%d %b %Y}: {url}"
    )
    return redirect("patient-detail", pk=patient.pk)


@login_required
@require_POST
def revoke_links(request: HttpRequest, pk: int) -> HttpResponse:
    patient = patient_for(request, pk, Action.RECORD_ANSWERS)
    count = links.revoke_all(patient)
    record(AuditEntry.Action.UPDATE, patient, detail={"links revoked": count})
    messages.success(
        request, f"{count} link{'s' if count != 1 else ''} revoked: they no longer open anything."
    )
    return redirect("patient-detail", pk=patient.pk)


# --------------------------------------------------------------------------- paper forms


def _follow_up_for(request: HttpRequest, pk: int, action: Action) -> FollowUp:
    follow_up = get_object_or_404(
        access.scope(FollowUp.objects.select_related("patient__clinic", "episode__condition"), request.user),
        pk=pk,
    )
    access.require(request.user, action, follow_up.patient.clinic_id)
    return follow_up


class PaperForm(forms.Form):
    """A paper questionnaire, entered item by item; blanks stay unanswered."""

    collected_on = forms.DateField(widget=DateInput(), label="Date the patient filled it in")

    def __init__(self, *args: Any, instrument: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instrument = instrument
        for index, item in enumerate(instrument.items):
            choices = [("", "— not answered —")] + [
                (str(o.value), o.label if str(o.value) in o.label else f"{o.value} — {o.label}")
                for o in item.options
            ]
            self.fields[f"item_{index}"] = forms.ChoiceField(
                label=f"{index + 1}. {item.label}", choices=choices, required=False
            )

    def answers(self) -> list[int | str | None]:
        result: list[int | str | None] = []
        for index in range(len(self.instrument.items)):
            raw = self.cleaned_data.get(f"item_{index}", "")
            result.append(None if raw == "" else ("NA" if raw == "NA" else int(raw)))
        return result


@login_required
@require_http_methods(["GET", "POST"])
def paper_entry(request: HttpRequest, pk: int, instrument: str) -> HttpResponse:
    follow_up = _follow_up_for(request, pk, Action.RECORD_ANSWERS)
    patient = follow_up.patient
    try:
        definition = core_instruments.instrument(instrument)
    except Invalid:
        return render(request, "404.html", status=404)
    form = PaperForm(
        request.POST or None, instrument=definition, initial={"collected_on": patient.clinic.today()}
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_answers(
                patient=patient,
                follow_up=follow_up,
                instrument=instrument,
                version=definition.version,
                answers=form.answers(),
                source=QuestionnaireResponse.Source.PAPER,
                submit=True,
                user=request.user,
                collected_on=form.cleaned_data["collected_on"],
            )
        except Invalid as exc:
            form.add_error(None, exc.message)
        else:
            if saved.outcome == "already-completed":
                messages.warning(
                    request,
                    f"{definition.short_name} was already answered for this follow-up; nothing changed.",
                )
            else:
                messages.success(request, f"{definition.short_name} entered and scored.")
            return redirect("patient-detail", pk=patient.pk)
    title = f"Enter a paper {definition.short_name} — {follow_up.timepoint_name} follow-up"
    return render(
        request,
        "outcomes/paper.html",
        {"form": form, "patient": patient, "title": title, "instrument": definition},
    )


# --------------------------------------------------------------------------- worklist


@login_required
def worklist(request: HttpRequest) -> HttpResponse:
    access.require(request.user, Action.RECORD_ANSWERS)
    clinic_ids = access.clinic_ids(request.user, Action.RECORD_ANSWERS)
    follow_ups = FollowUp.objects.select_related("patient__clinic", "episode__condition__condition_type")
    contacts = Contact.objects.select_related(
        "follow_up__patient__clinic", "follow_up__episode__condition__condition_type"
    )
    if clinic_ids is not None:
        follow_ups = follow_ups.filter(patient__clinic_id__in=clinic_ids)
        contacts = contacts.filter(follow_up__patient__clinic_id__in=clinic_ids)
    today = timezone.localdate()
    open_now = list(
        follow_ups.filter(status=FollowUp.Status.DUE, episode__ended_on__isnull=True)
        .prefetch_related("contacts")
        .order_by("due_on")
    )
    # "Today" is the clinic's own day.
    context = {
        "due": [f for f in open_now if not f.window.overdue(f.patient.clinic.today())],
        "overdue": [f for f in open_now if f.window.overdue(f.patient.clinic.today())],
        "missed": follow_ups.filter(
            status=FollowUp.Status.MISSED, accepts_until__gte=today - dt.timedelta(days=30)
        ).order_by("-accepts_until")[:200],
        "tasks": contacts.filter(state=Contact.State.OPEN).order_by("due_at"),
        "outcomes": TaskOutcomeForm.OUTCOMES,
        "today": today,
    }
    return render(request, "outcomes/worklist.html", context)


@login_required
@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    follow_up = _follow_up_for(request, pk, Action.RECORD_ANSWERS)
    if follow_up.status not in (FollowUp.Status.DUE, FollowUp.Status.PENDING) or not follow_up.is_open(
        follow_up.patient.clinic.today()
    ):
        messages.error(request, "This follow-up is not open, so there is nothing to send.")
    elif not follow_up.patient.email:
        messages.error(request, "The patient has no email address: call them or send a letter.")
    else:
        Contact.objects.create(
            follow_up=follow_up,
            kind=Contact.Kind.RESEND,
            channel=Contact.Channel.EMAIL,
            due_at=timezone.now(),
            state=Contact.State.SCHEDULED,
            handled_by=request.user,
        )
        messages.success(
            request, f"The invitation to {follow_up.patient.full_name} goes out again within a minute."
        )
    return redirect(request.POST.get("next") or "worklist")


class TaskOutcomeForm(forms.Form):
    OUTCOMES = [
        (Contact.Outcome.REACHED, "Reached"),
        (Contact.Outcome.NO_ANSWER, "No answer"),
        (Contact.Outcome.LEFT_MESSAGE, "Left a message"),
        (Contact.Outcome.WRONG_NUMBER, "Wrong number"),
        (Contact.Outcome.DECLINED, "Declined"),
        (Contact.Outcome.LETTER_SENT, "Letter sent"),
    ]
    outcome = forms.ChoiceField(choices=OUTCOMES)
    note = forms.CharField(max_length=300, required=False)


@login_required
@require_POST
def task_outcome(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(
        access.scope(
            Contact.objects.select_related("follow_up__patient"), request.user, Action.RECORD_ANSWERS
        ),
        pk=pk,
    )
    form = TaskOutcomeForm(request.POST)
    if contact.state != Contact.State.OPEN:
        messages.error(request, "This task is already closed.")
    elif not form.is_valid():
        messages.error(request, "Choose what came of the call or letter.")
    else:
        with transaction.atomic():
            updated = Contact.objects.filter(pk=contact.pk, state=Contact.State.OPEN).update(
                state=Contact.State.DONE,
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
                handled_by=request.user,
                finished_at=timezone.now(),
            )
        if updated:
            messages.success(
                request, f"{contact.get_kind_display()} for {contact.follow_up.patient.full_name} recorded."
            )
    return redirect("worklist")


@login_required
def letter(request: HttpRequest, pk: int) -> HttpResponse:
    """The letter of a letter task, ready to print."""
    from django.conf import settings

    from stride.outcomes.messages import render_message

    contact = get_object_or_404(
        access.scope(
            Contact.objects.select_related("follow_up__patient__clinic"), request.user, Action.RECORD_ANSWERS
        ),
        pk=pk,
        kind=Contact.Kind.LETTER,
    )
    subject, body = render_message(contact, base_url=settings.STRIDE_BASE_URL, now=timezone.now())
    record(AuditEntry.Action.VIEW, contact.follow_up.patient, detail={"letter": contact.pk})
    return render(request, "outcomes/letter.html", {"contact": contact, "subject": subject, "body": body})
