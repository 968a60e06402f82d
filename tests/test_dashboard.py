"""The web dashboard in a real headless browser (Debian's Chromium driven by Playwright) on the real stack:
key, upload, live job row over the WebSocket, event log, document view, search highlights, screenshot."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    if not chromium.exists():
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_dashboard_upload_live_progress_view_and_search(stack: Any, alice: Api, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base = str(alice.http.base_url).rstrip("/")
    key = alice.http.headers["Authorization"].split(" ", 1)[1]
    token = uuid.uuid4().hex[:10]
    word = f"quillmarrow{token}"  # unique to this run: never a duplicate of an earlier upload
    doc = tmp_path / f"lighthouse-{token}.md"
    doc.write_text(
        f"# Lighthouse log {token}\n\n"
        f"The lighthouse keeper {word} records every passing ship in a leather ledger.\n\n"
        "## Weather\n\n"
        "Storms and tides are noted with the time of day. <img src=x onerror=\"window.__pwned=1\"> "
        "<b>tags stay text</b>\n\n"
        "Markup in code stays text: `<img src=x onerror=window.__pwned=1>`.\n",
        encoding="utf-8",
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02\x03\xff\xfe\x80" * 40)

    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/")
        expect(page).to_have_title("ingestflow")
        for sel in ("#api-key", "#file-input", "#drop-zone", "#jobs", "#event-log", "#search-input",
                    "#search-results", "#chat"):
            assert page.locator(sel).count() == 1, sel

        page.fill("#api-key", key)
        page.click("#key-save")
        assert page.evaluate("localStorage.getItem('ingestflow.apiKey')") == key
        expect(page.locator("#conn")).to_have_class(re.compile(r"\bconn-live\b"), timeout=60_000)  # the WebSocket is up

        # A refused upload shows the API's reason.
        page.set_input_files("#file-input", str(junk))
        expect(page.locator("#uploads li.up-error")).to_contain_text("415", timeout=60_000)
        expect(page.locator("#uploads li.up-error")).to_contain_text("unrecognised file content")

        page.set_input_files("#file-input", str(doc))
        row = page.locator("#jobs tr[data-job-id]", has_text=doc.name)
        expect(row).to_have_count(1, timeout=60_000)
        expect(row.locator(".job-status")).to_have_text("completed", timeout=300_000)
        expect(row.locator(".progress[data-progress]")).to_have_attribute("data-progress", "100")
        expect(row.locator(".stage-badge.state-completed").first).to_be_visible()
        assert row.locator(".stage-badge").count() == row.locator(".stage-badge.state-completed").count()
        expect(row.locator("a.flow-link")).to_have_attribute("href", re.compile(r"^https?://.+/runs/flow-run/[0-9a-f-]{36}$"))
        document_id = row.get_attribute("data-document-id")
        assert document_id

        # The event log saw the job move (over the WebSocket or the polling fallback).
        log = page.locator("#event-log li.job-event", has_text=doc.name)
        expect(log.filter(has_text="→ completed")).to_have_count(1, timeout=15_000)

        # Document view: metadata and the parsed text, with markup kept as text.
        row.locator(".doc-name").click()
        view = page.locator("#doc-view")
        expect(view).to_be_visible()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(page.locator("#doc-text")).to_contain_text(word)
        expect(page.locator("#doc-meta")).to_contain_text("vectors")
        expect(page.locator("#doc-text code")).to_contain_text("<img src=x")  # shown as text, never run
        assert page.locator("#doc-text img").count() == 0
        assert page.evaluate("window.__pwned") is None

        # Search: the hit of this document, with the query's words marked, and a click opens it.
        page.fill("#search-input", f"lighthouse keeper {word}")
        page.press("#search-input", "Enter")
        hit = page.locator(f'#search-results li.hit[data-document-id="{document_id}"]')
        expect(hit.first).to_be_visible(timeout=120_000)  # the first query loads the embedding model
        expect(hit.first.locator("mark").first).to_be_visible()
        marked = [m.lower() for m in hit.first.locator("mark").all_text_contents()]
        assert word in marked and "lighthouse" in marked, marked
        page.locator("#doc-close").click()
        expect(view).to_be_hidden()
        hit.first.click()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(page.locator("#doc-text mark").first).to_be_visible()

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert not errors, errors
    except BaseException:
        _dump(page, errors)
        raise
    finally:
        page.close()


def _dump(page: Any, errors: list[str]) -> None:
    """What the page showed when the test failed: a screenshot and the text of its panels."""
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-failure.png"), full_page=True)
        for sel in ("#conn", "#notice", "#uploads", "#jobs", "#event-log", "#doc-view", "#search-results"):
            print(f"--- {sel}:\n{page.locator(sel).inner_text(timeout=2_000)[:2_000]}", flush=True)
        print(f"--- page errors: {errors}", flush=True)
    except Exception as exc:  # the dump must never hide the real failure
        print(f"(could not dump the page: {exc})", flush=True)
