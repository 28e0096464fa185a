"""Who is acting right now, for the audit trail.

The web middleware sets the actor for each request; CLI commands set it with
:func:`acting_as`. Model signals read it, so every write is attributed
without each view or command passing the user along.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    user: Any = None
    ip_address: str | None = None
    channel: str = "web"
    #: Who acted when no Stride user did (the operating-system account running a command).
    label: str = ""


_current: ContextVar[Actor | None] = ContextVar("stride_audit_actor", default=None)


def current() -> Actor:
    return _current.get() or Actor(channel="system")


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def cli_actor() -> Actor:
    """The actor for a command run in a terminal: the operating-system account."""
    import getpass

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(channel="cli", label=f"cli:{who}")
