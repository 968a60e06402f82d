"""The web dashboard in a real headless browser (Debian's Chromium driven by Playwright) on the real stack:
key, upload, live job row over the WebSocket, event log, document view (markdown rendered, its markup never run),
search highlights, chat with cited sources that open the document (kept across a reload), the audio player seeking
to a cited second, nothing fetched from anywhere but the API, screenshots."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Api, write_wav
from tests.dashboard_browser import headless_chromium

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as browser:
        yield browser


def test_dashboard_upload_live_progress_view_and_search(stack: Any, alice: Api, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    base = str(alice.http.base_url).rstrip("/")
    key = alice.http.headers["Authorization"].split(" ", 1)[1]
    token = uuid.uuid4().hex[:10]
    word = f"quillmarrow{token}"  # unique to this run: never a duplicate of an earlier upload
    doc = tmp_path / f"lighthouse-{token}.md"
    doc.write_text(
        f"# Lighthouse log {token}\n\n"
        f"The lighthouse keeper {word} records every passing ship in a **leather ledger**.\n\n"
        "## Weather\n\n"
        "Storms and tides are noted with the time of day. <img src=x onerror=\"window.__pwned=1\"> "
        "<b>tags stay text</b> <script>window.__pwned=2</script>\n\n"
        "Markup in code stays text: `<img src=x onerror=window.__pwned=1>`.\n",
        encoding="utf-8",
    )
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02\x03\xff\xfe\x80" * 40)

    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    elsewhere: list[str] = []  # the page and its modules come from the API alone: no CDN
    page.on("request", lambda r: None if r.url.startswith((base, "blob:", "data:")) else elsewhere.append(r.url))
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
        # Markdown rendered (headings below the card's own); no markup of the content's own is made an element.
        expect(page.locator("#doc-text h3")).to_have_text(f"Lighthouse log {token}")
        expect(page.locator("#doc-text h4")).to_have_text("Weather")
        expect(page.locator("#doc-text strong")).to_have_text("leather ledger")
        assert page.locator("#doc-text img, #doc-text script, #doc-text b").count() == 0
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

        # Chat: a question about this document, answered with its [n] markers and the document as a source.
        title = alice.get(f"/v1/documents/{document_id}").json()["title"]
        page.locator("#doc-close").click()
        expect(view).to_be_hidden()
        chat = page.locator("#chat")
        expect(chat.locator(".chat-empty")).to_be_visible()
        page.fill("#chat-input", f"What does the lighthouse keeper {word} record?")
        page.click("#chat-send")
        expect(chat.locator(".turn-user")).to_have_count(1)
        answer = chat.locator(".turn-assistant").first
        expect(answer).not_to_have_class(re.compile(r"\bpending\b"), timeout=180_000)
        expect(answer.locator(".answer")).to_contain_text(re.compile(r"ledger|ship", re.I))
        expect(answer.locator(".answer a.cite-marker").first).to_be_visible()
        expect(answer.locator(".answer p").first).to_be_visible()  # rendered as markdown
        sources = answer.locator(".sources li.source .source-link", has_text=title)
        expect(sources.first).to_be_visible()
        expect(sources.first.locator(".source-title")).to_have_text(title)
        expect(answer.locator(f'li.source[data-document-id="{document_id}"]').first).to_be_visible()
        conversation_id = chat.get_attribute("data-conversation-id")
        assert conversation_id and re.fullmatch(r"[0-9a-f]{32}", conversation_id), conversation_id
        stored = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ingestflow.conversation.'))"
                               ".map(k => localStorage.getItem(k))")
        assert stored == [conversation_id], stored

        # A source opens the document view at its passage; so does a [n] marker in the answer.
        sources.first.click()
        expect(view).to_be_visible()
        expect(view).to_have_attribute("data-document-id", document_id)
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(page.locator("#doc-text .focus").first).to_be_visible()
        expect(page.locator("#doc-text .focus").first).to_contain_text(word)
        page.locator("#doc-close").click()
        expect(view).to_be_hidden()
        marker = answer.locator(f'.answer a.cite-marker[data-document-id="{document_id}"]').first
        marker.click()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(view).to_have_attribute("data-document-id", document_id)

        # A follow-up keeps the conversation; a reload shows it again from the API.
        page.fill("#chat-input", "And what does it say about storms?")
        page.press("#chat-input", "Enter")
        expect(chat.locator(".turn-assistant")).to_have_count(2)
        expect(chat.locator(".turn-assistant").nth(1)).not_to_have_class(re.compile(r"\bpending\b"), timeout=180_000)
        expect(chat.locator(".turn-assistant").nth(1).locator(".answer")).not_to_be_empty()
        assert chat.get_attribute("data-conversation-id") == conversation_id
        assert not chat.locator(".turn-error").count(), chat.inner_text()

        page.reload()
        expect(chat).to_have_attribute("data-state", "loaded", timeout=60_000)
        assert chat.get_attribute("data-conversation-id") == conversation_id
        expect(chat.locator(".turn-user")).to_have_count(2)
        expect(chat.locator(".turn-assistant")).to_have_count(2)
        expect(chat.locator(".turn-user").first).to_contain_text(word)
        restored = chat.locator(".turn-assistant").first.locator(".sources .source-link", has_text=title)
        expect(restored.first).to_be_visible()
        restored.first.click()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(view).to_have_attribute("data-document-id", document_id)
        expect(page.locator("#doc-text .focus").first).to_be_visible()
        expect(page.locator("#chat-history option", has_text=word)).to_have_count(1, timeout=30_000)
        chat.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "dashboard-chat.png"))

        # "New conversation" starts over: no turns, and the next question gets a new id.
        page.click("#chat-new")
        expect(chat.locator(".turn")).to_have_count(0)
        assert not chat.get_attribute("data-conversation-id")
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('ingestflow.conversation.'))") == []
        assert page.evaluate("window.__pwned") is None
        assert not errors, errors
        assert not elsewhere, elsewhere
    except BaseException:
        _dump(page, errors)
        raise
    finally:
        page.close()


def _dump(page: Any, errors: list[str], name: str = "dashboard-failure.png") -> None:
    """What the page showed when the test failed: a screenshot and the text of its panels."""
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
        for sel in ("#conn", "#notice", "#uploads", "#jobs", "#event-log", "#doc-view", "#search-results", "#chat"):
            print(f"--- {sel}:\n{page.locator(sel).inner_text(timeout=2_000)[:2_000]}", flush=True)
        print(f"--- page errors: {errors}", flush=True)
    except Exception as exc:  # the dump must never hide the real failure
        print(f"(could not dump the page: {exc})", flush=True)


def _processed(api: Api, path: Path) -> str:
    """Uploads a file (or finds the identical one already there) and waits until its job has ended."""
    up = api.upload(path)
    assert up.status_code == 202, up.text
    body = up.json()
    if body["job_id"]:
        job = api.wait_job(body["job_id"], timeout=900)
    else:  # uploaded before in this session: wait for that upload's job
        deadline = time.monotonic() + 900
        while True:
            job = api.get(f"/v1/documents/{body['document_id']}").json().get("latest_job") or {}
            if job.get("status") in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert job.get("status") == "completed", job
    return str(body["document_id"])


def _speech_after_silence(path: Path, silence_s: float) -> Path:
    """jfk.flac after some silence, as 16 kHz mono WAV: its speech (and so its chunk) starts seconds in."""
    import av

    pcm = bytearray()
    with av.open(str(FIXTURES / "audio" / "jfk.flac")) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                pcm += bytes(out.planes[0])[: out.samples * 2]
    return write_wav(path, b"\x00\x00" * int(16_000 * silence_s) + bytes(pcm))


def test_dashboard_audio_player_seeks_to_the_cited_second(stack: Any, bob: Api, browser: Any, tmp_path: Path) -> None:
    """A recording opened from a search hit or a chat source plays from its second; a timestamp seeks it."""
    from playwright.sync_api import expect

    document_id = _processed(bob, _speech_after_silence(tmp_path / "jfk-after-silence.wav", 6.0))
    segments = bob.get(f"/v1/documents/{document_id}/transcript", format="json", version="improved").json()["segments"]
    assert segments and segments[0]["start"] > 3, segments  # the speech starts after the silence
    base = str(bob.http.base_url).rstrip("/")
    key = bob.http.headers["Authorization"].split(" ", 1)[1]

    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    current_time = "document.querySelector('#doc-audio').currentTime"
    try:
        page.goto(f"{base}/")
        page.fill("#api-key", key)
        page.click("#key-save")
        view = page.locator("#doc-view")
        player = page.locator("#doc-player")

        # A search hit of the recording opens it with the player loaded (from a blob) at the hit's second.
        page.fill("#search-input", "ask not what your country can do for you")
        page.select_option("#search-kind", "audio")
        page.press("#search-input", "Enter")
        hit = page.locator(f'#search-results li.hit[data-document-id="{document_id}"]').first
        expect(hit).to_be_visible(timeout=120_000)
        expect(hit.locator(".cite-time")).to_have_text(re.compile(r"^\d\d:\d\d(–\d\d:\d\d)?$"))
        hit.click()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(player).to_be_visible()
        expect(player).to_have_attribute("data-state", "ready", timeout=60_000)
        url = page.eval_on_selector("#doc-audio", "a => a.src")
        assert url.startswith("blob:"), url
        duration = page.evaluate("document.querySelector('#doc-audio').duration")
        assert 16 < duration < 18.5, duration
        expect(page.locator("#doc-text .seg.active")).to_have_count(1)
        hit_start = float(page.locator("#doc-view").get_attribute("data-time"))
        assert hit_start > 3, hit_start
        page.wait_for_function(f"Math.abs({current_time} - {hit_start}) < 0.6", timeout=15_000)

        # A transcript timestamp seeks the player to its line.
        page.evaluate("document.querySelector('#doc-audio').currentTime = 0")
        last = page.locator("#doc-text .seg").last
        start = float(last.get_attribute("data-start"))
        assert start > 3, start
        last.locator("button.ts").click()
        expect(last).to_have_class(re.compile(r"\bactive\b"))
        page.wait_for_function(f"Math.abs({current_time} - {start}) < 0.6", timeout=15_000)

        # A chat source of the recording shows its seconds and opens the recording there.
        page.locator("#doc-close").click()
        expect(view).to_be_hidden()
        assert page.evaluate("u => fetch(u).then(() => 'alive', () => 'revoked')", url) == "revoked"
        page.fill("#chat-input", "What should you ask, according to the speech?")
        page.click("#chat-send")
        answer = page.locator("#chat .turn-assistant").first
        expect(answer).not_to_have_class(re.compile(r"\bpending\b"), timeout=180_000)
        source = answer.locator(f'li.source[data-document-id="{document_id}"]').first
        expect(source).to_be_attached()
        expect(source.locator(".cite-time")).to_have_text(re.compile(r"^\d\d:\d\d(–\d\d:\d\d)?$"))
        at = float(source.get_attribute("data-start-s"))
        assert at > 3, at
        if not source.is_visible():  # retrieved but not cited: under "more passages"
            answer.locator("details.more-sources summary").click()
        source.locator(".source-link").click()
        expect(view).to_have_attribute("data-state", "loaded", timeout=60_000)
        expect(view).to_have_attribute("data-document-id", document_id)
        expect(player).to_have_attribute("data-state", "ready", timeout=60_000)
        page.wait_for_function(f"Math.abs({current_time} - {at}) < 0.6", timeout=15_000)
        expect(view).to_have_attribute("data-time", re.compile(r"^\d"))
        assert float(view.get_attribute("data-time")) == pytest.approx(at)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-audio.png"))
        assert not errors, errors
    except BaseException:
        _dump(page, errors, "dashboard-audio-failure.png")
        raise
    finally:
        page.close()


def test_a_name_with_bidi_controls_cannot_pose_as_another_type(stack: Any, browser: Any) -> None:
    """Issue 28: "invoice" + U+202E + "gnp.exe.pdf" renders as "invoicefdp.exe.png" where the control is obeyed.
    The stored filename keeps its bytes; the API's title, the job table and the document view show the control
    as a code, so the name reads as what it is."""
    from playwright.sync_api import expect

    from tests.conftest import _api

    api = _api(stack, "bidi-names")
    name = "invoice\u202egnp.exe.pdf"
    r = api.http.post("/v1/documents", files={"file": (name, (FIXTURES / "documents" / "ocr_test.pdf").read_bytes())})
    assert r.status_code == 202, r.text
    doc = api.get(f"/v1/documents/{r.json()['document_id']}").json()
    shown = "invoice⟨U+202E⟩gnp.exe.pdf"
    assert doc["filename"] == name and doc["title"] == shown, doc
    base = str(api.http.base_url).rstrip("/")
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{base}/")
        page.fill("#api-key", api.http.headers["Authorization"].split(" ", 1)[1])
        page.click("#key-save")
        cell = page.locator(f'#jobs tr[data-job-id="{r.json()["job_id"]}"] .doc-name')
        expect(cell).to_have_text(shown, timeout=60_000)
        assert cell.get_attribute("title") == shown
        cell.click()
        expect(page.locator("#doc-title")).to_have_text(shown, timeout=60_000)
        expect(page.locator("#doc-meta dd").first).to_have_text(shown)
        assert "\u202e" not in page.inner_text("body")
        assert not errors, errors
    except Exception:
        _dump(page, errors, "dashboard-bidi-failure.png")
        raise
    finally:
        page.close()


def test_the_dashboard_shows_the_owners_retention_rules(stack: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    from tests.conftest import _api

    api = _api(stack, "retention-view")
    rules = {"default": {"days": 365}, "collections": {"calls": {"days": 30, "action": "keep_redacted"}}}
    assert api.http.put("/v1/retention", json=rules).status_code == 200
    page = browser.new_page(viewport={"width": 1440, "height": 1100})
    try:
        page.goto(str(api.http.base_url).rstrip("/") + "/")
        page.fill("#api-key", api.http.headers["Authorization"].split(" ", 1)[1])
        page.click("#key-save")
        expect(page.locator("#retention")).to_have_text(
            "Retention: documents: deleted after 365 days; collection “calls”: kept only redacted after 30 days.",
            timeout=60_000)
    finally:
        page.close()
