"""Number formatting for reports: one decimal, percentages, confidence intervals, withheld cells."""

from __future__ import annotations

import math
from typing import Any

from django import template

from stride.core.analysis import DAYS_PER_MONTH

register = template.Library()

DASH = "–"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


@register.filter
def num(value: Any, places: int = 1) -> str:
    """``3.14159|num`` → "3.1"; ``|num:2`` → "3.14"; nothing → "–"."""
    if _missing(value):
        return DASH
    return f"{float(value):.{int(places)}f}".replace("-", "−")


@register.filter
def pct(value: Any) -> str:
    """A proportion as a percentage: 0.4231 → "42 %"."""
    return DASH if _missing(value) else f"{100 * float(value):.0f} %"


@register.filter
def ci(bounds: Any, places: int = 1) -> str:
    """A (low, high) pair: "1.2 to 3.4"; an open end reads "not reached"."""
    if not bounds:
        return DASH
    low, high = bounds
    if _missing(low) and _missing(high):
        return DASH

    def one(value: Any) -> str:
        return "not reached" if _missing(value) else num(value, places)

    return f"{one(low)} to {one(high)}"


@register.filter
def pct_ci(proportion: Any) -> str:
    """A stats.Proportion's interval as percentages: "31 to 54 %"."""
    if proportion is None or proportion.low is None:
        return DASH
    return f"{100 * proportion.low:.0f} to {100 * proportion.high:.0f} %"


@register.filter
def months(days: Any) -> str:
    """Days from the index date as months: 182 → "6.0"; nothing → "not reached"."""
    return "not reached" if _missing(days) else f"{float(days) / DAYS_PER_MONTH:.1f}"


@register.filter
def share(part: Any, whole: Any) -> str:
    """``answered|share:due`` → "50 %" (or "–")."""
    if _missing(part) or _missing(whole) or not whole:
        return DASH
    return f"{100 * float(part) / float(whole):.0f} %"


@register.filter
def count(value: Any, minimum: Any = None) -> str:
    """A count, or "<5" when the small-cell rule withheld it (None, or -1 in at-risk tables)."""
    if value is None or (isinstance(value, int) and value < 0):
        return f"<{minimum}" if minimum else "withheld"
    return str(value)


@register.filter
def pvalue(value: Any) -> str:
    if _missing(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """``months|get_item:"6m"`` → "6 months"."""
    try:
        return mapping.get(key, key)
    except AttributeError:
        return key
