"""Hooks from the rest of Stride into follow-up."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from stride.audit.context import current
from stride.care.models import CarePlan, Procedure
from stride.care.plans import plan_started, plan_stopped
from stride.outcomes.models import Episode
from stride.outcomes.services import end_episode, start_episode
from stride.patients.models import Consent


@receiver(post_save, sender=Procedure)
def index_treatment_starts_follow_up(
    sender: Any, instance: Procedure, raw: bool = False, **kwargs: Any
) -> None:
    """Recording an index treatment starts its condition's follow-up schedule (once).

    When follow-up was already started for that very day (a care plan's anchor, or a
    clinician's index date), the procedure is linked to it instead.
    """
    if raw or not instance.is_index or Episode.objects.filter(index_procedure=instance).exists():
        return
    if instance.patient.consent_status == "withdrawn":
        return  # a patient who withdrew is followed no further
    awaiting = Episode.objects.filter(
        condition_id=instance.condition_id, ended_on__isnull=True, index_procedure__isnull=True
    )
    planned = awaiting.filter(index_date=instance.performed_on).first()
    if planned is not None:
        planned.index_procedure = instance
        planned.save(update_fields=["index_procedure"])
        return
    # Follow-up planned from a later day whose treatment came early (a care plan's day 0, say) is
    # replaced: outcomes are timed from the treatment given, not from the one planned.
    for early in awaiting.filter(index_date__gt=instance.performed_on):
        end_episode(early, instance.performed_on, Episode.EndReason.NEW_INDEX)
    start_episode(instance.condition, instance.performed_on, procedure=instance, user=current().user)


@receiver(plan_started)
def plan_starts_follow_up(sender: Any, plan: CarePlan, user: Any = None, **kwargs: Any) -> None:
    """Starting a care plan sets the index date from which follow-up is scheduled."""
    if plan.condition.patient.consent_status == "withdrawn":
        return
    active = Episode.objects.filter(condition=plan.condition, ended_on__isnull=True).first()
    if active is not None and active.index_date == plan.anchor_date:
        return
    start_episode(plan.condition, plan.anchor_date, user=user)


@receiver(plan_stopped)
def plan_stop_ends_its_follow_up(sender: Any, plan: CarePlan, on: Any, **kwargs: Any) -> None:
    """A plan stopped before its index step was done ends the follow-up it started: no treatment to follow."""
    for episode in Episode.objects.filter(
        condition=plan.condition,
        ended_on__isnull=True,
        index_procedure__isnull=True,
        index_date=plan.anchor_date,
    ):
        end_episode(episode, on, Episode.EndReason.STOPPED)


@receiver(post_save, sender=Consent)
def withdrawal_ends_follow_up(sender: Any, instance: Consent, raw: bool = False, **kwargs: Any) -> None:
    """A patient who withdraws is followed no further: their open episodes end that day."""
    if raw or instance.withdrawn_on is None:
        return
    for episode in Episode.objects.filter(condition__patient_id=instance.patient_id, ended_on__isnull=True):
        end_episode(episode, instance.withdrawn_on, Episode.EndReason.WITHDRAWN)
