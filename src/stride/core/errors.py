"""Domain exceptions raised by the pure core and translated at the edges.

Forms turn :class:`Invalid` into a message next to its field, commands into a
one-line error, and nothing is written.
"""

from __future__ import annotations


class StrideError(Exception):
    """Base class of every error Stride reports to a person."""


class Invalid(StrideError):
    """A value breaks a clinical or data rule.

    ``field`` names the input at fault (``None`` for the record as a whole).
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class CatalogError(StrideError):
    """A catalog file, or a reference to a catalog entry, is wrong."""
