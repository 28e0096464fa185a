"""Hooks from the rest of Stride into follow-up."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from stride.audit.context import current
from stride.care.models import Procedure
from stride.outcomes.models import Episode
from stride.outcomes.services import start_episode


@receiver(post_save, sender=Procedure)
def index_treatment_starts_follow_up(
    sender: Any, instance: Procedure, raw: bool = False, **kwargs: Any
) -> None:
    """Recording an index treatment starts its condition's follow-up schedule (once)."""
    if raw or not instance.is_index or Episode.objects.filter(index_procedure=instance).exists():
        return
    start_episode(instance.condition, instance.performed_on, procedure=instance, user=current().user)
