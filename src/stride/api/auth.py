"""Bearer-token authentication, and the audit actor of a token's request."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from stride.api.models import ApiToken, digest
from stride.audit.context import Actor, acting_as
from stride.audit.log import record
from stride.audit.middleware import client_address
from stride.audit.models import AuditEntry

#: ``last_used_at`` is written at most this often per token (not on every request).
TOUCH_EVERY = dt.timedelta(minutes=1)
MAX_SECRET = 200


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <secret>``: the token whose digest matches, if live and its user active."""

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            request._stride_auth_problem = "missing"  # type: ignore[attr-defined]
            return None
        return self.authenticate(request, secret)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        request._stride_auth_problem = "invalid"  # type: ignore[attr-defined]
        if len(token) > MAX_SECRET:
            return _refused(request, "too long")
        wanted = digest(token)
        found = ApiToken.objects.select_related("user").filter(key_hash=wanted).first()
        if found is None or not hmac.compare_digest(found.key_hash, wanted):
            return _refused(request, "unknown")
        if found.revoked_at is not None:
            return _refused(request, "revoked", found)
        if not found.user.is_active:
            return _refused(request, "user inactive", found)
        now = timezone.now()
        if found.last_used_at is None or now - found.last_used_at > TOUCH_EVERY:
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        request.user = found.user
        request._stride_auth_problem = ""  # type: ignore[attr-defined]
        return found


def _refused(request: HttpRequest, reason: str, token: ApiToken | None = None) -> None:
    """Audit a refused token as a failed login (never its secret: only a known token's prefix)."""
    detail = {"reason": reason, "token": f"{token.prefix}…" if token is not None else ""}
    with acting_as(Actor(ip_address=client_address(request), channel="api", label="api")):
        record(
            AuditEntry.Action.LOGIN_FAILED,
            user=token.user if token is not None else None,
            model="api.ApiToken" if token is not None else "",
            object_id=str(token.pk) if token is not None else "",
            detail=detail,
        )
    return None


def unauthorised_message(request: HttpRequest) -> str:
    if getattr(request, "_stride_auth_problem", "missing") == "invalid":
        return "This API token is not valid: it was revoked, mistyped, or its user can no longer log in."
    return "Send an API token in the Authorization header: 'Authorization: Bearer <token>'."


def as_token_user(view: Callable[..., Any]) -> Callable[..., Any]:
    """Run an operation with the token's user as the audit actor, on the "api" channel."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        user = request.auth.user  # type: ignore[attr-defined]
        with acting_as(Actor(user=user, ip_address=client_address(request), channel="api")):
            return view(request, *args, **kwargs)

    return wrapper
