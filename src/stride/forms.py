"""Form plumbing shared by every app."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs, format="%Y-%m-%d")


class StrideModelForm(forms.ModelForm):
    """A ModelForm whose model-level errors always reach the person.

    Model ``clean()`` methods name the field at fault; when that field is not
    on this form the message is shown at the top instead of being lost.
    """

    def add_error(self, field: str | None, error: Any) -> None:
        if field is None and isinstance(error, ValidationError) and hasattr(error, "error_dict"):
            moved: dict[str, list[Any]] = {}
            for name, messages in error.error_dict.items():
                key = name if name in self.fields or name == NON_FIELD_ERRORS else NON_FIELD_ERRORS
                moved.setdefault(key, []).extend(messages)
            error = ValidationError(moved)
        elif field is not None and field not in self.fields and field != NON_FIELD_ERRORS:
            field = None
        super().add_error(field, error)
