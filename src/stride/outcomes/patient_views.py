"""The pages a patient sees: no account, a personal link, the questionnaires due now.

Mobile-first, one instrument per page with large tap targets, and complete
without JavaScript: the page's own submit saves every answer. With
JavaScript (htmx) each answer is also saved the moment it is tapped, so a
dropped connection loses nothing already answered. A link that is unknown,
altered, expired or revoked gets the same friendly page, which reveals
nothing — not even whether the link ever existed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from stride.audit.context import Actor, acting_as
from stride.audit.middleware import client_address
from stride.core import instruments as core_instruments
from stride.core.errors import Invalid
from stride.outcomes import links, services
from stride.outcomes.models import FollowUp, InstrumentWording, PatientLink, QuestionnaireResponse

#: Items with more answers than this (SANE 0–100, percent improvement) are typed as a number.
NUMERIC_OVER = 11


def _unavailable(request: HttpRequest) -> HttpResponse:
    return render(request, "outcomes/patient/unavailable.html", status=404)


def _actor(request: HttpRequest, link: PatientLink) -> Actor:
    return Actor(ip_address=client_address(request), channel="patient", label=f"patient-link:{link.pk}")


def _next_page(link: PatientLink, token: str) -> tuple[FollowUp, str] | None:
    """The first instrument the patient still has to answer, if any."""
    for follow_up in services.open_follow_ups(link.patient):
        done = {
            r.instrument
            for r in follow_up.responses.all()
            if r.status == QuestionnaireResponse.Status.COMPLETED
        }
        for code in follow_up.instruments:
            if code not in done:
                return follow_up, code
    return None


@never_cache
def home(request: HttpRequest, token: str) -> HttpResponse:
    link = links.resolve(token)
    if link is None:
        return _unavailable(request)
    PatientLink.objects.filter(pk=link.pk).update(last_used_at=timezone.now())
    follow_ups = services.open_follow_ups(link.patient)
    items = []
    for follow_up in follow_ups:
        done = {
            r.instrument
            for r in follow_up.responses.all()
            if r.status == QuestionnaireResponse.Status.COMPLETED
        }
        items.append(
            {
                "follow_up": follow_up,
                "instruments": [
                    (code, core_instruments.instrument(code).short_name, code in done)
                    for code in follow_up.instruments
                ],
            }
        )
    following = _next_page(link, token)
    started = any(done for entry in items for _, _, done in entry["instruments"])
    just_done = (
        following is None
        and FollowUp.objects.filter(
            patient=link.patient,
            status=FollowUp.Status.COMPLETED,
            completed_at__gte=timezone.now() - dt.timedelta(days=1),
        ).exists()
    )
    return render(
        request,
        "outcomes/patient/home.html",
        {
            "token": token,
            "patient": link.patient,
            "items": items,
            "next": following,
            "started": started,
            "just_done": just_done,
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
def questionnaire(request: HttpRequest, token: str, follow_up: int, instrument: str) -> HttpResponse:
    link = links.resolve(token)
    if link is None:
        return _unavailable(request)
    follow_up_obj = (
        FollowUp.objects.filter(pk=follow_up, patient=link.patient)
        .select_related("episode__condition")
        .first()
    )
    library = core_instruments.library()
    if follow_up_obj is None or instrument not in library or instrument not in follow_up_obj.instruments:
        return _unavailable(request)  # another patient's follow-up looks exactly like a missing one
    definition = library[instrument]
    response = follow_up_obj.responses.filter(instrument=instrument).first()
    if response is not None and response.status == QuestionnaireResponse.Status.COMPLETED:
        return redirect("patient-home", token=token)
    if not follow_up_obj.is_open(link.patient.clinic.today()):
        return render(
            request, "outcomes/patient/closed.html", {"token": token, "patient": link.patient}, status=410
        )
    answers: list[Any] = list(response.answers) if response is not None else [None] * len(definition.items)
    if len(answers) != len(definition.items):
        answers = [None] * len(definition.items)
    error = ""
    blanks: list[int] = []
    if request.method == "POST":
        answers, error = _read_answers(request, definition, answers)
        submit = "save" not in request.POST
        blanks = [i for i, a in enumerate(answers) if a is None]
        confirmed = request.POST.get("confirm_blanks") == "1"
        if not error and submit and blanks and not confirmed:
            submit = False  # ask once before scoring an incomplete form
        if not error:
            try:
                with acting_as(_actor(request, link)):
                    saved = services.save_answers(
                        patient=link.patient,
                        follow_up=follow_up_obj,
                        instrument=instrument,
                        version=request.POST.get("version", ""),
                        answers=answers,
                        source=QuestionnaireResponse.Source.PATIENT,
                        submit=submit,
                    )
            except Invalid as exc:
                error = exc.message
            else:
                if saved.outcome in ("completed", "already-completed"):
                    return redirect("patient-home", token=token)
                if "save" in request.POST:
                    return render(
                        request, "outcomes/patient/saved.html", {"token": token, "patient": link.patient}
                    )
    position = _position(link, follow_up_obj, instrument)
    wording = InstrumentWording.objects.filter(
        clinic_id=link.patient.clinic_id, instrument=instrument, instrument_version=definition.version
    ).first()
    texts = wording.texts if wording is not None else {}
    return render(
        request,
        "outcomes/patient/questionnaire.html",
        {
            "token": token,
            "patient": link.patient,
            "follow_up": follow_up_obj,
            "instrument": definition,
            "rows": [
                (
                    index,
                    item,
                    answer,
                    len(item.options) > NUMERIC_OVER,
                    texts.get(item.link_id) or item.text or item.label,
                )
                for index, (item, answer) in enumerate(zip(definition.items, answers, strict=True))
            ],
            "official": wording is not None,
            "own_labels": wording is None and any(not item.text for item in definition.items),
            "error": error,
            "blanks": [i + 1 for i in blanks] if request.method == "POST" and not error else [],
            "position": position,
        },
        status=422 if error else 200,
    )


@never_cache
@require_http_methods(["POST"])
def autosave(request: HttpRequest, token: str, follow_up: int, instrument: str) -> HttpResponse:
    """Save the answers on the page as they are (htmx, on every tap). Never completes a questionnaire."""
    link = links.resolve(token)
    if link is None:
        return HttpResponse(status=404)
    follow_up_obj = FollowUp.objects.filter(pk=follow_up, patient=link.patient).first()
    if follow_up_obj is None or instrument not in follow_up_obj.instruments:
        return HttpResponse(status=404)
    definition = core_instruments.instrument(instrument)
    response = follow_up_obj.responses.filter(instrument=instrument).first()
    if response is not None and response.status == QuestionnaireResponse.Status.COMPLETED:
        return HttpResponse('<span class="saved">Already sent</span>')
    current = list(response.answers) if response is not None else [None] * len(definition.items)
    answers, error = _read_answers(request, definition, current)
    if error or not follow_up_obj.is_open(link.patient.clinic.today()):
        return HttpResponse(f'<span class="not-saved">{error or "Closed"}</span>', status=422)
    try:
        with acting_as(_actor(request, link)):
            services.save_answers(
                patient=link.patient,
                follow_up=follow_up_obj,
                instrument=instrument,
                version=request.POST.get("version", ""),
                answers=answers,
                source=QuestionnaireResponse.Source.PATIENT,
                submit=False,
            )
    except Invalid as exc:
        return HttpResponse(f'<span class="not-saved">{exc.message}</span>', status=422)
    return HttpResponse('<span class="saved">Saved</span>')


def _read_answers(request: HttpRequest, definition: Any, current: list[Any]) -> tuple[list[Any], str]:
    """The page's answers over the ones already saved; an error message for a value that is not an answer."""
    answers = list(current)
    for index in range(len(definition.items)):
        key = f"item_{index}"
        if key not in request.POST:
            continue
        raw = request.POST.get(key, "").strip()
        if raw == "":
            answers[index] = None
        elif raw == "NA":
            answers[index] = "NA"
        else:
            try:
                answers[index] = int(raw)
            except ValueError:
                return answers, f"Question {index + 1}: please choose one of the answers."
    return answers, ""


def _position(link: PatientLink, follow_up: FollowUp, instrument: str) -> dict[str, int]:
    codes = [code for f in services.open_follow_ups(link.patient) for code in f.instruments]
    try:
        number = codes.index(instrument) + 1
    except ValueError:
        number = 1
    return {"number": number, "of": max(len(codes), 1)}
