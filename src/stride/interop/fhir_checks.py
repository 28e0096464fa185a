"""Checking FHIR resources against the fhir.resources models, on other cores when there are any.

The check (pydantic building the model of every element) is the largest single
cost of an import that is otherwise bound by the database, and of an export
that is otherwise bound by building the resources. It needs nothing but the
resource, so :class:`Checker` runs it in a worker process, one run of
resources ahead of (or behind) the one being written or built: the import or
export then costs about the larger of the two instead of their sum. On a
single core, or for a run too small to be worth starting a process for, it
checks in the calling process.

Pure: no Django here, so a worker process starts without the project's settings.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from stride.interop.fhir_plans import validate


def problem(resource: dict[str, Any]) -> str | None:
    """Why ``resource`` is not a valid FHIR R4 resource (the first few problems), or ``None``."""
    try:
        validate(resource)
    except Exception as error:  # pydantic's ValidationError, or worse (a resourceType nobody knows)
        return describe(error)
    return None


def problems(resources: Sequence[dict[str, Any] | None]) -> list[str | None]:
    """:func:`problem` of each resource; ``None`` for a ``None`` (nothing to check)."""
    return [problem(r) if r is not None else None for r in resources]


def line_problems(lines: Sequence[str]) -> list[str | None]:
    """:func:`problem` of each NDJSON line: the resource exactly as it will be read back."""
    return [problem(json.loads(line)) for line in lines]


def describe(error: Exception) -> str:
    """The first few problems pydantic found, as ``element: message``."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        parts = []
        for item in errors()[:3]:
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
            parts.append(f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", "")))
        return "not a valid FHIR resource: " + "; ".join(parts)
    return f"not a valid FHIR resource: {error}"


def default_workers() -> int:
    """One worker when this process may use more than one core and can fork, none otherwise."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return 1 if cores > 1 else 0


def checked_here(
    items: Sequence[Any], check: Callable[[Sequence[Any]], list[str | None]] = problems
) -> Future[list[str | None]]:
    """``check`` of ``items`` done in this process, as a future that already holds it."""
    done: Future[list[str | None]] = Future()
    done.set_result(check(items))
    return done


class Checker:
    """Checks runs of resources, in a worker process once more than one run has been asked for.

    ``submit`` returns a future of ``check`` of a run (:func:`problems` of resources, or
    :func:`line_problems` of NDJSON lines); the first run is checked here (a small import or
    export never starts a process), the next ones in ``workers`` processes (0: always here).
    Use it as a context manager: the workers stop at the end of the block.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._runs = 0

    def submit(
        self,
        items: Sequence[Any],
        check: Callable[[Sequence[Any]], list[str | None]] = problems,
    ) -> Future[list[str | None]]:
        self._runs += 1
        if self.workers > 0 and self._runs > 1:
            if self._pool is None:
                # fork: the worker starts at once with the models already imported, and needs nothing
                # of the caller's (its copies of the database connections are never used; it ends with
                # os._exit, so nothing of them is closed either). spawn would run the caller's main
                # script again in the worker.
                context = multiprocessing.get_context("fork")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            return self._pool.submit(check, list(items))
        return checked_here(items, check)

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
