"""Errors as the API answers them: one JSON shape, one plain sentence, the field at fault.

Every error under ``/api/`` is ``{"error": "<one sentence>", "field": "<name or null>",
"errors": [{"field": …, "message": …}, …]}``: the first problem in ``error`` and
``field``, every problem in ``errors``. Request-schema failures (pydantic), model
rules (``full_clean`` → the core rules) and service rules (:class:`Invalid`) all
end up here, so a client handles one shape whatever went wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError

from stride.api.schemas import PHONE, RECORD_NUMBER, SLUG
from stride.core.errors import Invalid


@dataclass(frozen=True)
class Problem:
    field: str | None
    message: str


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, problems: Sequence[Problem], headers: Mapping[str, str] | None = None):
        super().__init__(problems[0].message if problems else "")
        self.status = status
        self.problems = list(problems)
        self.headers = dict(headers or {})

    @classmethod
    def one(cls, status: int, message: str, field: str | None = None, **kwargs: Any) -> ApiError:
        return cls(status, [Problem(field, message)], **kwargs)

    def body(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else Problem(None, "The request failed.")
        return {
            "error": first.message,
            "field": first.field,
            "errors": [{"field": p.field, "message": p.message} for p in self.problems],
        }


def not_found(what: str, pk: object) -> ApiError:
    return ApiError.one(404, f"There is no {what} {pk} in your clinics.")


def invalid(message: str, field: str | None = None) -> ApiError:
    return ApiError.one(422, message, field)


# --------------------------------------------------------------------------- model and core rules


def _sentence(message: str, field: str | None) -> str:
    """Django's generic messages name "this field"; say which one."""
    message = str(message).strip()
    if field and message.startswith("This field "):
        message = f"{field} {message[len('This field ') :]}"
    elif field and message.startswith("Ensure this value "):
        message = f"{field} must {message[len('Ensure this value ') :]}".replace("must has ", "must have ")
        message = message.replace("must is ", "must be ")
    if message and message[-1] not in ".!?":
        message += "."
    return message


def from_django(
    exc: DjangoValidationError, *, prefix: str = "", fields: Mapping[str, str] | None = None
) -> ApiError:
    """A model's ``full_clean`` failure, each message on its API field (``prefix`` for nested items)."""
    problems: list[Problem] = []
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            field = None if name == NON_FIELD_ERRORS else (fields or {}).get(name, name)
            where = f"{prefix}{field}" if field else (prefix.rstrip(".") or None)
            for error in errors:
                for message in error.messages if hasattr(error, "messages") else [str(error)]:
                    problems.append(Problem(where, _sentence(message, where)))
    else:
        where = prefix.rstrip(".") or None
        problems = [Problem(where, _sentence(m, where)) for m in exc.messages]
    return ApiError(422, problems or [Problem(None, "The record is not valid.")])


def from_invalid(exc: Invalid, *, prefix: str = "", fields: Mapping[str, str] | None = None) -> ApiError:
    field = (fields or {}).get(exc.field or "", exc.field)
    where = f"{prefix}{field}" if field else (prefix.rstrip(".") or None)
    return ApiError.one(422, _sentence(exc.message, None), where)


# --------------------------------------------------------------------------- request schemas (pydantic)


def location(loc: Iterable[Any]) -> str | None:
    """``("body", "payload", "injectates", 0, "kind")`` → ``injectates[0].kind``; ``None``: the whole body."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[2:]  # the source and the name of the body parameter
    elif parts and parts[0] in ("query", "path", "header", "cookie", "form"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or None


def _choices(expected: str) -> str:
    return expected.replace("'", "")


#: What each pattern of the schemas asks for, in words.
PATTERNS = {
    SLUG: "{f} may only hold lower-case letters, digits and hyphens.",
    RECORD_NUMBER: "{f} may only hold letters, digits, '.', '/', '_' and '-', "
    "and starts with a letter or digit.",
    PHONE: "{f} must be a phone number: 6 to 30 digits, spaces and the signs + ( ) - . and /.",
}

_TEMPLATES: dict[str, str] = {
    "missing": "{f} is required.",
    "extra_forbidden": "{f} is not a field this request takes; leave it out.",
    "string_type": "{f} must be text (a JSON string).",
    "string_too_short": "{f} cannot be empty.",
    "string_too_long": "{f} can be at most {max_length} characters long.",
    "unknown_code": "Unknown {label} {given!r}: see GET /api/catalog for the codes.",
    "int_type": "{f} must be a whole number.",
    "int_parsing": "{f} must be a whole number.",
    "int_from_float": "{f} must be a whole number.",
    "float_type": "{f} must be a number.",
    "float_parsing": "{f} must be a number.",
    "finite_number": "{f} must be a finite number.",
    "bool_type": "{f} must be true or false.",
    "bool_parsing": "{f} must be true or false.",
    "greater_than_equal": "{f} must be at least {ge}.",
    "greater_than": "{f} must be more than {gt}.",
    "less_than_equal": "{f} must be at most {le}.",
    "less_than": "{f} must be less than {lt}.",
    "literal_error": "{f} must be one of {expected}.",
    "enum": "{f} must be one of {expected}.",
    "list_type": "{f} must be a list (a JSON array).",
    "tuple_type": "{f} must be a list (a JSON array).",
    "too_short": "{f} needs at least {min_length} item(s).",
    "too_long": "{f} can hold at most {max_length} item(s).",
    "dict_type": "{f} must be an object.",
    "model_type": "{f} must be an object.",
    "model_attributes_type": "{f} must be an object.",
    "date_format": "{f} must be a date written YYYY-MM-DD.",
    "nul_character": "{f} cannot contain the NUL character.",
    "not_text": "{f} must be valid Unicode text.",
    "answer_type": '{f} must be a whole number, "NA" or null.',
}


def _friendly(error: Mapping[str, Any], field: str | None) -> str:
    kind = error.get("type", "")
    ctx = dict(error.get("ctx") or {})
    if field is None:
        if kind == "missing":
            return "The request body is missing: send a JSON object."
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            return "The request body must be a JSON object."
    if error.get("input", ...) is None and kind not in ("missing",) and field:
        return f"{field} cannot be null."
    if "expected" in ctx:
        ctx["expected"] = _choices(str(ctx["expected"]))
    if kind == "string_pattern_mismatch":
        return PATTERNS.get(str(ctx.get("pattern")), "{f} holds a character it may not.").format(f=field)
    if kind == "string_too_short" and ctx.get("min_length", 1) > 1:
        return f"{field} must be at least {ctx['min_length']} characters long."
    template = _TEMPLATES.get(kind)
    if template is None:
        message = str(error.get("msg") or "is not valid")
        return _sentence(f"{field}: {message}" if field else message, None)
    try:
        return template.format(f=field or "The request body", **ctx)
    except (KeyError, IndexError):
        return template.replace("{f}", field or "The request body")


def from_pydantic(errors: Iterable[Mapping[str, Any]]) -> ApiError:
    """Pydantic's errors as plain sentences, each on its field (one per field, in order)."""
    problems: list[Problem] = []
    seen: set[str | None] = set()
    for error in errors:
        field = location(error.get("loc", ()))
        if field in seen:
            continue
        seen.add(field)
        problems.append(Problem(field if field is not None else "body", _friendly(error, field)))
    return ApiError(422, problems or [Problem("body", "The request is not valid.")])
