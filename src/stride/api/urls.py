"""``/api/``: the API's operations, its OpenAPI document and docs, and JSON for every other address.

Nothing under ``/api/`` answers with an HTML error page: a method an address does not
take is a JSON 405 (with ``Allow``), an address that does not exist a JSON 404.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, URLPattern, include, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt

from stride.api.api import api, error_response, method_not_allowed
from stride.api.errors import ApiError


def _json_errors(view: Any) -> Any:
    """ninja answers a method it does not route with a plain-text 405; answer it in JSON. A HEAD is
    answered as the GET would be (its status and headers, audited alike), without the body."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "HEAD":
            request.method = "GET"
            try:
                response = view(request, *args, **kwargs)
            finally:
                request.method = "HEAD"
            if response.status_code == 405:
                return method_not_allowed(request, _allowed(response))
            if not response.streaming:
                response["Content-Length"] = str(len(response.content))  # that of the GET
                response.content = b""
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            return method_not_allowed(request, _allowed(response))
        return response

    return wrapper


def _allowed(response: HttpResponse) -> list[str]:
    allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
    return [*allowed, "HEAD"] if "GET" in allowed else allowed


@csrf_exempt
def index(request: HttpRequest) -> HttpResponse:
    """``/api/`` itself: where the documents are."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(request, ["GET"])
    body = {"title": api.title, "version": api.version, "docs": "/api/docs", "openapi": "/api/openapi.json"}
    return api.create_response(request, body, status=200)


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    message = f"There is nothing at {request.path}; the API's addresses are listed at /api/docs."
    bare = request.path.rstrip("/")
    if request.path.endswith("/") and _routed(bare):
        message = f"There is nothing at {request.path}; the API's addresses end without a slash: {bare}."
    return error_response(request, ApiError.one(404, message))


def _routed(path: str) -> bool:
    try:
        return resolve(path).url_name != "api-not-found"
    except Resolver404:
        return False


def _routes() -> list[Any]:
    patterns, app_name, namespace = api.urls
    wrapped = []
    for pattern in patterns:
        if not isinstance(pattern, URLPattern):
            wrapped.append(pattern)
        elif pattern.name == "api-root":
            wrapped.append(path("", index, name="api-root"))
        else:
            wrapped.append(
                URLPattern(
                    pattern.pattern, _json_errors(pattern.callback), pattern.default_args, pattern.name
                )
            )
    return [path("", include((wrapped, app_name), namespace=namespace))]


urlpatterns = [*_routes(), re_path(r"^(?P<rest>.*)$", not_found, name="api-not-found")]
