"""Debian's Chromium (./scripts/setup.sh --test installs it) driven by Playwright, for the dashboard tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def headless_chromium(*extra_args: str) -> Iterator[Any]:
    """A launched browser (with `extra_args` besides the usual ones); the test is skipped where Playwright or
    Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    if not chromium.exists():
        pytest.skip("Chromium is not installed (./scripts/setup.sh --test, or apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()
