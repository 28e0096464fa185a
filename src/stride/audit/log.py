"""Writing audit entries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import models

from stride.audit.context import current
from stride.audit.models import AuditEntry


def patient_and_clinic(instance: models.Model) -> tuple[int | None, int | None]:
    """The patient and clinic a record belongs to, following its ``scope_path``."""
    from stride.patients.models import Patient

    path = getattr(type(instance), "scope_path", None)
    if path is None:
        return None, getattr(instance, "clinic_id", None)
    obj: Any = instance
    for step in [p for p in path.split("__") if p]:
        obj = getattr(obj, step, None)
        if obj is None:
            return None, None
    if isinstance(obj, Patient):
        return obj.pk, obj.clinic_id
    return None, None


def record(
    action: str,
    instance: models.Model | None = None,
    *,
    detail: dict[str, Any] | None = None,
    user: Any = None,
    model: str = "",
    object_id: str = "",
    patient_id: int | None = None,
    clinic_id: int | None = None,
) -> AuditEntry:
    actor = current()
    user = user if user is not None else actor.user
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    if instance is not None:
        model = instance._meta.label
        object_id = str(instance.pk)
        patient_id, clinic_id = patient_and_clinic(instance)
    entry = AuditEntry(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else actor.label,
        action=action,
        model=model,
        object_id=object_id,
        patient_id=patient_id,
        clinic_id=clinic_id,
        ip_address=actor.ip_address,
        channel=actor.channel,
        detail=detail or {},
    )
    pending = _pending.get()
    if pending is None:
        entry.save()
    else:
        pending.add(entry)
    return entry


class Pending:
    """Audit entries written together, for a bulk operation: see :func:`batched`."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def add(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    def mark(self) -> int:
        """Where the entries of the next piece of work begin (see :meth:`discard`)."""
        return len(self.entries)

    def discard(self, mark: int) -> None:
        """Forget the entries since ``mark``: their work was rolled back (a savepoint), so they never
        happened."""
        del self.entries[mark:]

    def flush(self) -> None:
        if self.entries:
            AuditEntry.objects.bulk_create(self.entries)
            self.entries = []


_pending: ContextVar[Pending | None] = ContextVar("stride_audit_pending", default=None)


@contextmanager
def batched() -> Iterator[Pending]:
    """Within this block, audit entries are kept and written together with one query.

    For bulk operations that write many audited records inside a transaction (an import): the
    entries are the same as one by one (actor, record, patient, fields), only written together.
    The caller flushes at points where no savepoint is open (a flush inside a savepoint that is
    then rolled back would lose the earlier work's entries too) and before each commit, and
    discards the entries of work it rolled back. What is still pending at the end of the block is
    written; on an error it is dropped, with the transaction it belongs to.
    """
    pending = Pending()
    token = _pending.set(pending)
    try:
        yield pending
        pending.flush()
    finally:
        _pending.reset(token)
