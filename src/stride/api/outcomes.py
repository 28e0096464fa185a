"""Follow-up time points, questionnaire responses and their scores."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from stride.api import common
from stride.api.errors import from_invalid, invalid
from stride.api.schemas import (
    ERRORS,
    MAX_ID,
    WRITE_ERRORS,
    FollowUpOut,
    PageQuery,
    ResponseIn,
    ResponseOut,
    ResponseQuery,
    page_of,
)
from stride.clinics.access import Action
from stride.core import instruments as core_instruments
from stride.core.errors import Invalid
from stride.outcomes import services
from stride.outcomes.models import FollowUp, QuestionnaireResponse

router = Router(tags=["outcomes"])

FollowUpPage = page_of(FollowUpOut, "FollowUpPage")
ResponsePage = page_of(ResponseOut, "ResponsePage")
PatientId = Path(..., ge=1, le=MAX_ID, description="The patient's id.")

_RESPONSES = QuestionnaireResponse.objects.select_related("patient__clinic", "entered_by").prefetch_related(
    "scores"
)


def follow_up_out(f: FollowUp) -> dict[str, Any]:
    return {
        "id": f.pk,
        "episode_id": f.episode_id,
        "condition_id": f.episode.condition_id,
        "timepoint": f.timepoint,
        "timepoint_name": f.timepoint_name,
        "opens_on": f.opens_on,
        "due_on": f.due_on,
        "closes_on": f.closes_on,
        "accepts_until": f.accepts_until,
        "instruments": list(f.instruments or []),
        "status": f.status,
        "completed_at": f.completed_at,
    }


def response_out(r: QuestionnaireResponse) -> dict[str, Any]:
    return {
        "id": r.pk,
        "patient_id": r.patient_id,
        "follow_up_id": r.follow_up_id,
        "instrument": r.instrument,
        "instrument_version": r.instrument_version,
        "context": r.context,
        "answers": list(r.answers or []),
        "status": r.status,
        "source": r.source,
        "entered_by": common.username(r.entered_by),
        "collected_on": r.collected_on,
        "started_at": r.started_at,
        "submitted_at": r.submitted_at,
        "flags": list(r.flags or []),
        "scores": [
            {
                "scale": s.scale,
                "value": s.value,
                "valid": s.valid,
                "answered": s.answered,
                "not_applicable": s.not_applicable,
                "missing": s.missing,
                "policy": s.policy,
                "flags": list(s.flags or []),
            }
            for s in r.scores.all()
        ],
    }


@router.get(
    "/patients/{patient_id}/follow-ups",
    response={200: FollowUpPage, **ERRORS},
    summary="List a patient's follow-up time points",
)
def list_follow_ups(
    request: HttpRequest, query: Query[PageQuery], patient_id: int = PatientId
) -> dict[str, Any]:
    """Each time point's window, the instruments it asks for and its state, oldest first."""
    found = common.patient(request, patient_id)
    follow_ups = common.scoped(
        request, FollowUp.objects.filter(patient=found).select_related("episode").order_by("due_on", "pk")
    )
    result = common.page(follow_ups, query, follow_up_out)
    common.viewed(found, "follow-ups", results=result["count"])
    return result


@router.get(
    "/patients/{patient_id}/responses",
    response={200: ResponsePage, **ERRORS},
    summary="List a patient's questionnaire responses with their scores",
)
def list_responses(
    request: HttpRequest, query: Query[ResponseQuery], patient_id: int = PatientId
) -> dict[str, Any]:
    found = common.patient(request, patient_id)
    responses = common.scoped(request, _RESPONSES.filter(patient=found))
    if query.instrument:
        responses = responses.filter(instrument=query.instrument)
    result = common.page(responses.order_by("-collected_on", "-pk"), query, response_out)
    common.viewed(found, "responses", results=result["count"])
    return result


@router.post(
    "/patients/{patient_id}/responses",
    response={200: ResponseOut, 201: ResponseOut, **WRITE_ERRORS},
    summary="Enter a questionnaire's answers (validated and scored)",
)
def create_response(request: HttpRequest, payload: ResponseIn, patient_id: int = PatientId) -> Status:
    """Answers go through the same path as a paper form: validated, scored, the follow-up completed.

    201 when stored; 200, with the stored response unchanged, when this instrument was already
    completed for the follow-up. Answers after the window are kept, flagged ``late``.
    """
    found = common.patient(request, patient_id, Action.RECORD_ANSWERS)
    follow_up = None
    if payload.follow_up is not None:
        follow_up = FollowUp.objects.filter(patient=found, pk=payload.follow_up).first()
        if follow_up is None:
            raise invalid(f"This patient has no follow-up {payload.follow_up}.", "follow_up")
    definition = core_instruments.library()[payload.instrument]
    if payload.version is not None and payload.version != definition.version:
        raise invalid(
            f"{definition.short_name} is at version {definition.version}; "
            f"answers to version {payload.version!r} cannot be taken.",
            "version",
        )
    try:
        saved = services.save_answers(
            patient=found,
            follow_up=follow_up,
            instrument=payload.instrument,
            version=definition.version,
            answers=payload.answers,
            source=QuestionnaireResponse.Source.PAPER,
            submit=payload.submit,
            user=common.user_of(request),
            collected_on=payload.collected_on,
        )
    except Invalid as exc:
        raise from_invalid(exc) from None
    status = 200 if saved.outcome == "already-completed" else 201
    return Status(status, response_out(_RESPONSES.get(pk=saved.response.pk)))


@router.get(
    "/responses/{response_id}",
    response={200: ResponseOut, **ERRORS},
    summary="Read a response with its scores",
)
def read_response(
    request: HttpRequest, response_id: int = Path(..., ge=1, le=MAX_ID, description="The response's id.")
) -> dict[str, Any]:
    response = common.fetch(request, _RESPONSES, response_id, "questionnaire response")
    common.viewed(response, "response")
    return response_out(response)
