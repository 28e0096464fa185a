"""System libraries some formats need: Pango (PDF through WeasyPrint) and Cairo (PNG through CairoSVG).

Tests that need one are skipped, with the reason printed, on a machine without it; CI sets
STRIDE_REQUIRE_PDF=1 so that there a missing library fails instead.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str) -> None:
    """Import ``module`` (``weasyprint`` or ``cairosvg``), or skip: both load a C library on import."""
    try:
        importlib.import_module(module)
    except OSError as error:
        if os.environ.get("STRIDE_REQUIRE_PDF"):
            raise
        pytest.skip(f"{module} cannot load its system library here: {error}")
