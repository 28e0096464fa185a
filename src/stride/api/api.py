"""The Stride API: one NinjaAPI under ``/api/``, its error answers, its docs served offline."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from stride.api import care, imaging, meta, outcomes, patients
from stride.api.auth import TokenAuth, as_token_user, unauthorised_message
from stride.api.errors import ApiError, from_django, from_invalid, from_pydantic
from stride.core.errors import Invalid

logger = logging.getLogger("stride.api")

DESCRIPTION = """\
The registry's records as JSON, with the same roles, clinic boundaries and audit trail as the pages.

Authenticate with a personal API token (made on your account page, `/account/tokens/`):
`Authorization: Bearer <token>`. Lists take `limit` and `offset` and answer
`{count, limit, offset, items}`. Every error is `{error, field, errors: [{field, message}]}`.
"""


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large")
    return value


class StrictJSONParser(Parser):
    """JSON as the standard defines it: no NaN or Infinity, no number too large to be finite."""

    def parse_body(self, request: HttpRequest) -> Any:
        return json.loads(request.body, parse_constant=_reject_constant, parse_float=_finite)


class OfflineSwagger(Swagger):
    """Swagger UI from the files bundled with django-ninja: no CDN, no online validator."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        settings = {**self.settings, "url": self.get_openapi_url(api, kwargs)}
        context = {"swagger_settings": json.dumps(settings, indent=1), "api": api}
        response = render(request, "api/docs.html", context)
        response["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"
        )
        return response


class StrideAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        return str(operation.view_func.__name__)

    def validation_error_from_error_contexts(self, error_contexts: list[Any]) -> NinjaValidationError:
        # As ninja's own, but keeping each error's input (to tell a null from a wrong type); it is
        # never echoed back.
        errors = []
        for context in error_contexts:
            model = context.model
            for error in context.pydantic_validation_error.errors(include_url=False):
                where = model.__ninja_flatten_map_reverse__.get(error["loc"], error["loc"])
                loc = (model.__ninja_param_source__, *where)
                errors.append({**error, "loc": loc})
        return NinjaValidationError(errors)


def read_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The schema and the docs page answer GET (and HEAD) only, other methods with a JSON 405."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(request, ["GET"])
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


api = StrideAPI(
    title="Stride API",
    version="1",
    description=DESCRIPTION,
    auth=TokenAuth(),
    urls_namespace="api",
    docs=OfflineSwagger(settings={"validatorUrl": None, "tryItOutEnabled": False}),
    docs_decorator=read_only,
    parser=StrictJSONParser(),
)
api.add_decorator(as_token_user)
for module in (meta, patients, care, outcomes, imaging):
    api.add_router("", module.router)


# --------------------------------------------------------------------------- errors as JSON


def error_response(request: HttpRequest, error: ApiError) -> HttpResponse:
    response = api.create_response(request, error.body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def method_not_allowed(request: HttpRequest, allowed: list[str]) -> HttpResponse:
    methods = ", ".join(sorted(allowed))
    error = ApiError.one(
        405, f"This address does not take {request.method}; it takes {methods}.", headers={"Allow": methods}
    )
    return error_response(request, error)


def _on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(request, exc)


def _on_validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    return error_response(request, from_pydantic(exc.errors))


def _on_unauthorised(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    error = ApiError.one(
        401, unauthorised_message(request), headers={"WWW-Authenticate": 'Bearer realm="stride"'}
    )
    return error_response(request, error)


def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        if isinstance(exc.__cause__, RequestDataTooBig):
            message = "The request body is larger than the server accepts."
        else:
            message = "The request body is not valid JSON."
        return error_response(request, ApiError.one(400, message, "body"))
    return error_response(request, ApiError.one(exc.status_code, str(exc)))


def _on_forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    message = str(exc) or "Your role does not allow this."
    return error_response(request, ApiError.one(403, message))


def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(request, ApiError.one(404, "Not found."))


def _on_model_rules(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    return error_response(request, from_django(exc))


def _on_invalid(request: HttpRequest, exc: Invalid) -> HttpResponse:
    return error_response(request, from_invalid(exc))


def _on_anything_else(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
    error = ApiError.one(500, "Something went wrong on the server; the error has been logged.")
    return error_response(request, error)


for kind, handler in (
    (ApiError, _on_api_error),
    (NinjaValidationError, _on_validation),
    (AuthenticationError, _on_unauthorised),
    (HttpError, _on_http_error),
    (PermissionDenied, _on_forbidden),
    (Http404, _on_not_found),
    (DjangoValidationError, _on_model_rules),
    (Invalid, _on_invalid),
    (Exception, _on_anything_else),
):
    api.add_exception_handler(kind, handler)  # type: ignore[arg-type]
