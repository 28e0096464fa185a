"""Who may do what to which records: the one place access is decided.

Every model that holds patient data declares ``scope_path``, the lookup from
that model to its patient (``""`` for Patient itself, ``"patient__"`` for a
Condition, ``"procedure__patient__"`` for an Injectate). :func:`scope` filters
any queryset of such a model to the clinics where the user holds a role that
allows the action. Views, forms, the admin and the CLI fetch patient data
only through it, so a record of another clinic is simply not found (404),
whatever id is typed into the address bar.

Researchers hold no action on identifiable records: they never reach a
patient page, only de-identified aggregates.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import models

from stride.clinics.models import Clinic, Membership, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser

M = TypeVar("M", bound=models.Model)


class Action(StrEnum):
    VIEW_PATIENT = "view patient records"
    EDIT_PATIENT = "register and edit patients"
    DELETE_PATIENT = "delete patients"
    RECORD_CONSENT = "record registry consent"
    EDIT_CONDITION = "record conditions"
    EDIT_HISTORY = "record treatment history"
    RECORD_PROCEDURE = "record procedures"
    START_FOLLOW_UP = "start follow-up"
    START_PLAN = "start and stop care plans"
    MANAGE_PLAN = "reschedule, skip and add plan steps"
    EDIT_PROTOCOL = "edit the clinic's protocols"
    RECORD_ANSWERS = "enter questionnaire answers and work the follow-up list"
    UPLOAD_IMAGE = "upload images"
    MEASURE_IMAGE = "measure, annotate, mask and delete images"
    VIEW_AGGREGATES = "view de-identified aggregates"
    ADMINISTER = "administer the clinic"


_CLINICAL = frozenset({Role.CLINICIAN, Role.ADMIN})
_STAFF = frozenset({Role.CLINICIAN, Role.COORDINATOR, Role.ADMIN})

#: The roles that allow each action, in the clinics where the user holds them.
PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW_PATIENT: _STAFF,
    Action.EDIT_PATIENT: _STAFF,
    Action.DELETE_PATIENT: frozenset({Role.ADMIN}),
    Action.RECORD_CONSENT: _STAFF,
    Action.EDIT_CONDITION: _CLINICAL,
    Action.EDIT_HISTORY: _STAFF,
    Action.RECORD_PROCEDURE: _CLINICAL,
    Action.START_FOLLOW_UP: _CLINICAL,
    Action.START_PLAN: _CLINICAL,
    Action.MANAGE_PLAN: _STAFF,
    Action.EDIT_PROTOCOL: frozenset({Role.ADMIN}),
    Action.RECORD_ANSWERS: _STAFF,
    Action.UPLOAD_IMAGE: _STAFF,
    Action.MEASURE_IMAGE: _CLINICAL,
    Action.VIEW_AGGREGATES: frozenset(Role),
    Action.ADMINISTER: frozenset({Role.ADMIN}),
}


def clinic_ids(user: AnyUser, action: Action) -> set[int] | None:
    """Ids of the clinics where ``user`` may perform ``action``; ``None`` means every clinic."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    cache = user.__dict__.setdefault("_stride_roles", None)
    if cache is None:
        cache = list(Membership.objects.filter(user_id=user.pk).values_list("clinic_id", "role"))
        user.__dict__["_stride_roles"] = cache
    allowed = PERMISSIONS[action]
    return {clinic_id for clinic_id, role in cache if role in allowed}


def clinics(user: AnyUser, action: Action) -> models.QuerySet[Clinic]:
    ids = clinic_ids(user, action)
    return Clinic.objects.all() if ids is None else Clinic.objects.filter(pk__in=ids)


def can(user: AnyUser, action: Action, clinic_id: int | None = None) -> bool:
    """Whether ``user`` may perform ``action`` in ``clinic_id`` (in any clinic when ``None``)."""
    ids = clinic_ids(user, action)
    if ids is None:
        return True
    return bool(ids) if clinic_id is None else clinic_id in ids


def scope(
    queryset: models.QuerySet[M], user: AnyUser, action: Action = Action.VIEW_PATIENT
) -> models.QuerySet[M]:
    """``queryset`` narrowed to the rows ``user`` may ``action``."""
    path = getattr(queryset.model, "scope_path", None)
    if path is None:
        raise TypeError(f"{queryset.model.__name__} declares no scope_path; it cannot be scoped.")
    ids = clinic_ids(user, action)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{path}clinic_id__in": ids})


def require(user: AnyUser, action: Action, clinic_id: int | None = None) -> None:
    """Raise ``PermissionDenied`` unless ``user`` may ``action`` in the clinic (any clinic when ``None``)."""
    if not can(user, action, clinic_id):
        where = "in this clinic" if clinic_id is not None else "in any of your clinics"
        raise PermissionDenied(f"Your role {where} does not allow you to {action}.")


def roles(user: AnyUser) -> dict[int, Role]:
    """The user's role per clinic id."""
    if not user.is_authenticated:
        return {}
    clinic_ids(user, Action.VIEW_PATIENT)  # fills the cache
    return {clinic_id: Role(role) for clinic_id, role in user.__dict__.get("_stride_roles") or []}
