"""Small-cell suppression for de-identified counts."""

from __future__ import annotations

from collections.abc import Iterable


def suppress_small(rows: Iterable[tuple[str, int]], minimum: int) -> list[tuple[str, int | None]]:
    """Counts below ``minimum`` (but above zero) become ``None``: shown as "fewer than N", never exactly.

    A group of one or two patients with a rare condition can identify them;
    hiding the exact number keeps the count from pointing at a person. Shown
    groups come first, largest first; suppressed ones follow in alphabetical
    order, so their order reveals nothing about their sizes either.
    """
    shown = [(label, count) for label, count in rows if count >= minimum or count == 0]
    hidden = [(label, None) for label, count in rows if 0 < count < minimum]
    shown.sort(key=lambda row: (-row[1], row[0]))
    hidden.sort(key=lambda row: row[0])
    return [*shown, *hidden]
