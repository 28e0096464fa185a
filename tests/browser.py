"""What every browser test shares: Debian's Chromium, launched headless, and screenshots.

Browser tests are skipped, with the reason printed, where Chromium is not
installed; CI sets STRIDE_REQUIRE_BROWSER=1 so that there a missing browser
fails instead. Screenshots go to STRIDE_SCREENSHOTS (a folder) when it is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        message = "Chromium is not installed (apt-get install chromium): browser tests skipped"
        if os.environ.get("STRIDE_REQUIRE_BROWSER"):
            pytest.fail(message.replace("skipped", "required here"))
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def snap(page: object, name: str) -> None:
    folder = os.environ.get("STRIDE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
