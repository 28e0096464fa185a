from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from stride.audit.context import Actor, acting_as


def client_address(request: HttpRequest) -> str | None:
    if settings.STRIDE_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    """Makes the request's user and address the actor of everything the request writes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        channel = "admin" if request.path.startswith("/admin/") else "web"
        with acting_as(Actor(user=request.user, ip_address=client_address(request), channel=channel)):
            return self.get_response(request)
