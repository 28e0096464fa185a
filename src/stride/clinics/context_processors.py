from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from stride.clinics import access
from stride.clinics.access import Action


def memberships(request: HttpRequest) -> dict[str, Any]:
    """What the navigation needs to know about the user's roles."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "can_see_patients": access.can(user, Action.VIEW_PATIENT),
        "can_administer": user.is_staff and (user.is_superuser or access.can(user, Action.ADMINISTER)),
        "my_memberships": list(user.memberships.select_related("clinic")),
    }
