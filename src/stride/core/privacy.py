"""Small-cell suppression for de-identified counts."""

from __future__ import annotations

from collections.abc import Iterable


def suppress_small(rows: Iterable[tuple[str, int]], minimum: int) -> list[tuple[str, int | None]]:
    """Counts below ``minimum`` (but above zero) become ``None``: shown as "fewer than N", never exactly.

    A group of one or two patients with a rare condition can identify them;
    hiding the exact number keeps the count from pointing at a person.
    """
    return [(label, count if count >= minimum or count == 0 else None) for label, count in rows]
