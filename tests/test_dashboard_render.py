"""The dashboard's ES modules in a real headless Chromium, served by the real app's routes in-process (no stack):
the page loads its modules and vendored libraries from /static and nothing from elsewhere; markdown (a document's
or a chat answer's) renders through markdown-it and DOMPurify with no markup of the content's own run; the stage
badges come from GET /v1/stages, and no stage is named in the scripts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from api.routes.dashboard import STATIC_DIR
from ingestflow.pipeline import STAGES, plan
from tests.dashboard_browser import headless_chromium

ORIGIN = "http://dashboard.test"  # answered by the route handler below, never looked up
HOSTILE_MD = """# Title of the log

Some **bold words** and *emphasis*, and `<img src=x onerror=window.__pwned=1>` in code.

<script>window.__pwned = 2</script>

<img src=x onerror="window.__pwned = 3"> <b>tags stay text</b>

[a script link](javascript:window.__pwned=4) [a web link](https://example.org/a) [a relative link](page.html)

![a picture](http://dashboard.test/static/tracker.png)

<!-- image -->
<!-- table -->

| name | value |
|------|-------|
| bold | 2     |

- one
  - nested
"""


class Served:
    """Requests the page made: to the app (path, content type) and to anywhere else (refused)."""

    def __init__(self) -> None:
        self.app: list[tuple[str, str]] = []
        self.outside: list[str] = []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with headless_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def client() -> Any:
    from starlette.testclient import TestClient

    from api.main import create_app

    return TestClient(create_app())  # no `with`: no lifespan, so no database


@pytest.fixture
def page(browser: Any, client: Any) -> Iterator[tuple[Any, Served, list[str]]]:
    served = Served()

    def handle(route: Any) -> None:
        request = route.request
        if not request.url.startswith(ORIGIN + "/"):
            served.outside.append(request.url)
            route.abort()
            return
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = client.request(request.method, path, headers=request.headers, content=request.post_data_buffer)
        served.app.append((parts.path, response.headers.get("content-type", "")))
        route.fulfill(status=response.status_code, headers=dict(response.headers), body=response.content)

    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/*", handle)
    page.goto(f"{ORIGIN}/")
    page.wait_for_selector("#notice:not([hidden])")  # main.js ran init(): no key yet, so it asks for one
    page.wait_for_load_state("networkidle")  # GET /v1/stages answered
    try:
        yield page, served, errors
    finally:
        page.close()


def test_the_page_loads_its_modules_from_static_and_nothing_from_elsewhere(page: tuple[Any, Served, list[str]]) -> None:
    p, served, errors = page
    assert p.locator("#conn").get_attribute("class") == "conn conn-off"
    scripts = {path: ctype for path, ctype in served.app if path.endswith(".js")}
    assert "/static/js/main.js" in scripts and "/static/vendor/markdown-it.js" in scripts, scripts
    assert "/static/vendor/dompurify.js" in scripts, scripts
    # A module script is refused unless served as JavaScript.
    assert all(ctype.startswith("text/javascript") for ctype in scripts.values()), scripts
    modules = {f"/static/js/{f.name}" for f in (STATIC_DIR / "js").glob("*.js")}
    assert modules <= scripts.keys(), modules - scripts.keys()  # every module is reached from main.js
    assert ("/v1/stages", "application/json") in served.app
    assert served.outside == [] and errors == [], (served.outside, errors)
    # The drop zone says which formats the server takes, and the file picker offers them (GET /v1/formats).
    assert ("/v1/formats", "application/json") in served.app
    hint = p.locator("#drop-zone .hint").inner_text()
    assert all(label in hint for label in ("PDF", "Word", "PNG image", "MP3 audio")), hint
    accept = (p.locator("#file-input").get_attribute("accept") or "").split(",")
    assert {".pdf", ".docx", ".md", ".tiff", ".jpg", ".mp3", ".mov"} <= set(accept), accept


def test_document_markdown_renders_and_none_of_its_markup_runs(page: tuple[Any, Served, list[str]]) -> None:
    p, served, errors = page
    p.evaluate("""async (md) => {
        const { renderMarkdown } = await import('/static/js/markdown.js');
        const { queryRegex } = await import('/static/js/highlight.js');
        const box = document.createElement('div');
        box.id = 'rendered';
        box.className = 'markdown';
        box.append(renderMarkdown(md, queryRegex('bold')));
        document.body.append(box);
    }""", HOSTILE_MD)
    box = p.locator("#rendered")
    assert box.locator("h3.md-h.md-block").inner_text() == "Title of the log"  # headings sit below the card's
    assert box.locator("strong").first.inner_text() == "bold words"
    assert box.locator("em").inner_text() == "emphasis"
    assert "<img src=x onerror=window.__pwned=1>" in box.locator("code").inner_text()
    text = box.inner_text()
    assert "<script>window.__pwned = 2</script>" in text and "<b>tags stay text</b>" in text  # raw HTML is text
    assert box.locator("script, img, b, iframe").count() == 0
    assert p.evaluate("[...document.querySelectorAll('#rendered *')].flatMap(e => [...e.attributes])"
                      ".map(a => a.name).filter(n => n.startsWith('on'))") == []
    links = box.locator("a")
    assert links.count() == 1  # the javascript: and the relative link are words only
    assert links.get_attribute("href") == "https://example.org/a"
    assert links.get_attribute("target") == "_blank" and "noopener" in (links.get_attribute("rel") or "")
    assert "a script link" in text and "a relative link" in text
    assert box.locator(".md-image").inner_text() == "[image: a picture]"
    assert box.locator(".md-note").all_inner_texts() == ["[image]", "[table]"]
    assert box.locator(".md-table-wrap table.md-table th").all_inner_texts() == ["name", "value"]
    assert box.locator("ul.md-list ul.md-list li").inner_text() == "nested"
    # The query's words are marked in the text, never inside code.
    assert [m.lower() for m in box.locator("mark").all_inner_texts()] == ["bold", "bold"]
    p.wait_for_timeout(200)  # an onerror would have fired by now
    assert p.evaluate("window.__pwned") is None
    assert not any(url.endswith("tracker.png") for url in served.outside)
    assert not any(path.endswith("tracker.png") for path, _ in served.app)
    assert errors == [], errors


def test_a_chat_answer_renders_as_markdown_with_linked_markers(page: tuple[Any, Served, list[str]]) -> None:
    p, _served, errors = page
    answer = ("The keeper **records** every ship [1]. <img src=x onerror=\"window.__pwned=5\"> Storms, "
              "quoted as `[2]`, are noted too [2].\n\nNothing cites [9].")
    sources = [{"n": 1, "document_id": "d1", "title": "Lighthouse log", "text": "The keeper records every ship.",
                "cited": True, "page": 1, "kind": "text"},
               {"n": 2, "document_id": "d2", "title": "Weather", "text": "Storms are noted with the time of day.",
                "cited": True, "start_s": 4.0, "end_s": 9.5, "kind": "audio"},
               {"n": 3, "document_id": "d3", "title": "Unrelated", "text": "Not cited.", "kind": "text"}]
    p.evaluate("""async ([answer, sources]) => {
        const { renderAssistant } = await import('/static/js/answer.js');
        const node = document.createElement('div');
        node.id = 'turn';
        document.body.append(node);
        renderAssistant(node, { answer, sources, turn_id: 'turn1', mode: 'llm' }, 'what does the keeper record');
    }""", [answer, sources])
    turn = p.locator("#turn")
    body = turn.locator(".answer")
    assert body.locator("p").count() == 2 and body.locator("strong").inner_text() == "records"
    assert body.locator("a.cite-marker").evaluate_all("els => els.map(e => e.dataset.n)") == ["1", "2"]
    assert body.locator("code").inner_text() == "[2]"  # quoted in code: not a marker
    assert "[9]" in body.inner_text()  # no source 9: stays text
    assert body.locator("img, script").count() == 0
    cited = turn.locator(".sources-h + ol.sources li.source .source-title")  # the others are folded below
    assert cited.all_inner_texts() == ["Lighthouse log", "Weather"]
    assert turn.locator("li.source[data-document-id='d2']").get_attribute("data-start-s") == "4"
    assert turn.locator("li.source[data-document-id='d2'] .cite-time").inner_text() == "00:04–00:09"
    assert turn.locator("details.more-sources li.source").count() == 1
    p.wait_for_timeout(200)
    assert p.evaluate("window.__pwned") is None
    assert errors == [], errors


def test_stage_badges_follow_the_declared_stages(page: tuple[Any, Served, list[str]]) -> None:
    p, _served, errors = page
    kinds = sorted({k for s in STAGES for k in s.kinds})
    cases = [(kind, False, False) for kind in kinds] + [("audio", True, True)]
    for kind, redact, translate in cases:
        planned = plan(kind, redact=redact, translate=translate)
        running = planned[1]
        drawn = p.evaluate("""async ([kind, label, redact, translate]) => {
            const { loadStages } = await import('/static/js/stages.js');
            const { renderRow } = await import('/static/js/jobrows.js');
            const { state } = await import('/static/js/state.js');
            if (!(await loadStages())) return null;
            const id = `job-${kind}-${redact}`;
            const job = { id, kind, redact, translate, status: 'running', stage: label, document_id: 'd', stages: [] };
            state.jobs.set(job.id, job);
            renderRow(job);
            return [...document.querySelectorAll(`#jobs tr[data-job-id="${id}"] .stage-badge`)]
                .map((b) => [b.dataset.stage, b.dataset.state]);
        }""", [kind, running.label, redact, translate])
        # Inferred from the kind's plan before the job's own stage list arrives: the server's order and names.
        assert drawn == [[s.name, "running" if s is running else "pending"] for s in planned], (kind, drawn)
    assert errors == [], errors


def stage_keyed_code(text: str) -> list[str]:
    """Places where script text keys logic on a stage's name: an object key, a comparison, a case, a list of them."""
    names = "|".join(re.escape(s.name) for s in STAGES)
    quoted = rf"""['"`](?:{names})['"`]"""
    patterns = [rf"{quoted}\s*:", rf"[!=]==?\s*{quoted}", rf"{quoted}\s*[!=]==?", rf"case\s+{quoted}",
                rf"{quoted}\s*,\s*{quoted}"]
    return [m.group(0) for pattern in patterns for m in re.finditer(pattern, text)]


def test_no_stage_is_named_in_the_dashboard_scripts() -> None:
    """Adding a stage touches the registry, not the dashboard: its names come from GET /v1/stages."""
    assert stage_keyed_code("const SHORT = { 'extract-entities': 'entities' };") != []  # the check can fail
    for script in (STATIC_DIR / "js").glob("*.js"):
        found = stage_keyed_code(script.read_text(encoding="utf-8"))
        assert found == [], f"{script.name} keys on stage names: {found}"
