"""What every endpoint shares: fetching through the access scope, saving by ``full_clean``, pages, audit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import HttpRequest

from stride.api.errors import ApiError, from_django, from_invalid, invalid, not_found
from stride.api.schemas import PageQuery
from stride.audit.log import record
from stride.audit.models import AuditEntry
from stride.clinics import access
from stride.clinics.access import Action
from stride.core.errors import Invalid
from stride.patients.models import Patient

M = TypeVar("M", bound=models.Model)


def user_of(request: HttpRequest) -> Any:
    """The token's user (the API never reads a session)."""
    return request.auth.user  # type: ignore[attr-defined]


def clinic_of(instance: models.Model) -> int:
    """The clinic id of any record with a ``scope_path``."""
    path = type(instance).scope_path  # type: ignore[attr-defined]
    obj: Any = instance
    for step in [p for p in path.split("__") if p]:
        obj = getattr(obj, step)
    return int(obj.clinic_id)


def fetch(
    request: HttpRequest, queryset: models.QuerySet[M], pk: int, what: str, action: Action | None = None
) -> M:
    """The record, if the user may see it (404 otherwise) and may ``action`` it (403 otherwise)."""
    user = user_of(request)
    found = access.scope(queryset, user, Action.VIEW_PATIENT).filter(pk=pk).first()
    if found is None:
        raise not_found(what, pk)
    if action is not None:
        access.require(user, action, clinic_of(found))
    return found


def patient(request: HttpRequest, pk: int, action: Action | None = None) -> Patient:
    return fetch(request, Patient.objects.select_related("clinic"), pk, "patient", action)


def scoped(request: HttpRequest, queryset: models.QuerySet[M]) -> models.QuerySet[M]:
    """``queryset`` narrowed to what the user may see."""
    return access.scope(queryset, user_of(request), Action.VIEW_PATIENT)


def page(queryset: Any, query: PageQuery, serialize: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    count = queryset.count()
    items = [serialize(item) for item in queryset[query.offset : query.offset + query.limit]]
    return {"count": count, "limit": query.limit, "offset": query.offset, "items": items}


def viewed(instance: models.Model, what: str, **detail: Any) -> None:
    """A read of identifiable records, audited like the pages' (one entry per read)."""
    record(AuditEntry.Action.VIEW, instance, detail={"api": what, **detail})


def searched(what: str, count: int) -> None:
    """A list read: the count, never the words searched for."""
    record(AuditEntry.Action.SEARCH, detail={"api": what, "results": count})


def save(
    instance: M,
    *,
    prefix: str = "",
    fields: Mapping[str, str] | None = None,
    exclude: list[str] | None = None,
) -> M:
    """Check ``instance`` by its model's rules (``full_clean``) and save it; 422 with the field at fault."""
    try:
        instance.full_clean(exclude=exclude)
        instance.save()
    except DjangoValidationError as exc:
        raise from_django(exc, prefix=prefix, fields=fields) from None
    except Invalid as exc:
        raise from_invalid(exc, prefix=prefix, fields=fields) from None
    return instance


def check(instance: models.Model, *, prefix: str = "", exclude: list[str] | None = None) -> list[Any]:
    """The problems ``full_clean`` finds, without raising (to report a whole request's at once)."""
    try:
        instance.full_clean(exclude=exclude)
    except DjangoValidationError as exc:
        return from_django(exc, prefix=prefix).problems
    except Invalid as exc:
        return from_invalid(exc, prefix=prefix).problems
    return []


def decimal(value: float | None, field: str) -> Decimal | None:
    """A JSON number as the decimal the model stores (its places checked by the model)."""
    if value is None:
        return None
    try:
        return Decimal(repr(float(value)))
    except (InvalidOperation, ValueError):
        raise invalid(f"{field} must be a number.", field) from None


def by_code(model: type[M], code: str | None, field: str, label: str) -> M | None:
    """The catalog entry ``code`` (not retired), or 422 naming the field."""
    if code is None:
        return None
    entry = model._default_manager.filter(code=code, retired=False).first()  # type: ignore[misc]
    if entry is None:
        raise invalid(f"Unknown {label} {code!r}: see GET /api/catalog for the codes.", field)
    return entry


def username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def number(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def raise_all(problems: list[Any]) -> None:
    if problems:
        raise ApiError(422, problems)
