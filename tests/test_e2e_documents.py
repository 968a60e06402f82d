"""Text documents end to end through the HTTP API on the real stack (Prefect, Dask, Chroma, LadybugDB)."""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Api

pytestmark = pytest.mark.slow

DOCS = FIXTURES / "documents"
EXPECTED = FIXTURES / "expected"
# A phrase only that document contains, and the PDF page it is on.
PHRASES: dict[str, tuple[str, int | None]] = {
    "multi_page.pdf": ("specialized tools for academic and technical writing such as LaTeX", 3),
    "ocr_test.pdf": ("Docling bundles PDF document conversion to JSON and Markdown", 1),
    "word_sample.docx": ("what a respectful duck could eat: leaves and berries", None),
    "wiki_duck.html": ("duck etymology and taxonomy of Anatidae waterfowl", None),
    "powerpoint_sample.pptx": ("a rectangle shape with this text inside", None),
}


def _fold(text: str) -> str:
    text = re.sub(r"[#*|\-_`>\[\]()]", " ", text.lower())
    return " ".join(text.split())


def similarity(got: str, want: str) -> tuple[float, float]:
    a, b = _fold(got).split(), _fold(want).split()
    # Word sequences, not characters: character-level matching is quadratic on a long web page.
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    recall = len(set(b) & set(a)) / max(1, len(set(b)))
    return ratio, recall


@pytest.fixture(scope="module")
def ingested(alice: Api) -> dict[str, dict[str, Any]]:
    uploads = {}
    latencies = []
    for path in sorted(DOCS.iterdir()):
        t0 = time.perf_counter()
        r = alice.upload(path, collection="fixtures")
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 202, r.text
        uploads[path.name] = r.json()
    print(f"upload latency max {max(latencies) * 1000:.0f} ms")
    return {name: {**up, "job": alice.wait_job(up["job_id"])} for name, up in uploads.items()}


def test_every_fixture_completes(ingested: dict[str, dict[str, Any]], alice: Api) -> None:
    for name, up in ingested.items():
        job = up["job"]
        assert job["status"] == "completed", (name, job)
        assert [s["state"] for s in job["stages"]] == ["completed"] * 6, (name, job["stages"])
        assert job["progress"] == 100
        flags = alice.get(f"/v1/documents/{up['document_id']}/indexing-status").json()
        assert flags["vector_indexed"] and flags["graph_indexed"] and flags["entities_extracted"], flags
        assert flags["chunk_count"] > 0
        assert {"parser", "embedding", "ner", "graph", "summary"} <= set(flags["models"])
        # Issue 24: a summary of sentences the document holds, each cited where it says it.
        summary = alice.get(f"/v1/documents/{up['document_id']}/summary").json()
        content = " ".join(alice.get(f"/v1/documents/{up['document_id']}/content").text.split())
        assert summary["mode"] == "extractive" and summary["sentences"], (name, summary)
        assert all(s["page"] is not None for s in summary["sentences"]) or not name.endswith((".pdf", ".pptx"))
        words = [w for s in summary["sentences"] for w in s["text"].split()[:3]]
        assert sum(w in content for w in words) >= 0.8 * len(words), (name, summary)


def test_parsed_text_matches_expected(ingested: dict[str, dict[str, Any]], alice: Api) -> None:
    thresholds = {"multi_page.pdf": 0.85, "ocr_test.pdf": 0.85, "word_sample.docx": 0.8, "wiki_duck.html": 0.6}
    for name, (min_ratio) in thresholds.items():
        got = alice.get(f"/v1/documents/{ingested[name]['document_id']}/content").text
        ratio, recall = similarity(got, (EXPECTED / f"{name}.md").read_text())
        print(f"similarity {name}: difflib {ratio:.3f} word recall {recall:.3f}")
        assert max(ratio, recall) >= min_ratio, (name, ratio, recall)


def test_search_finds_each_document_first(ingested: dict[str, dict[str, Any]], alice: Api) -> None:
    for name, (phrase, page) in PHRASES.items():
        hits = alice.get("/v1/search", q=phrase, k=5).json()["hits"]
        assert hits, name
        top = hits[0]
        assert top["document_id"] == ingested[name]["document_id"], (name, phrase, hits[:2])
        if page is not None:
            assert top["page"] <= page <= (top["page_end"] or top["page"]), (name, top)
        assert top["title"] == name


def _graph_counts(stack: Any, user_id: str) -> Any:
    from ingestflow.stores.graph import open_graph_store

    store = open_graph_store(stack.settings, read_only=True)
    try:
        return user_id, store.counts(user_id)
    finally:
        store.close()


def test_reupload_and_rerun_leave_no_duplicates(ingested: dict[str, dict[str, Any]], alice: Api, stack: Any) -> None:
    from ingestflow.stores.vectors import open_vector_store

    name = "multi_page.pdf"
    doc_id = ingested[name]["document_id"]
    again = alice.upload(DOCS / name).json()
    # The existing document and its latest job, which a client can poll like the one it was first given.
    assert again == {"document_id": doc_id, "job_id": ingested[name]["job_id"], "status": "completed",
                     "duplicate": True}
    assert alice.get(f"/v1/jobs/{again['job_id']}").json()["status"] == "completed"

    user_id, before = _graph_counts(stack, alice.user_id)
    vectors = open_vector_store(stack.settings)
    chunks = alice.get(f"/v1/documents/{doc_id}").json()["chunk_count"]
    assert vectors.count(user_id, doc_id) == chunks

    rerun = alice.http.post(f"/v1/documents/{doc_id}/reindex")
    assert rerun.status_code == 202, rerun.text
    assert alice.wait_job(rerun.json()["job_id"])["status"] == "completed"
    _, after = _graph_counts(stack, alice.user_id)
    assert after == before
    assert vectors.count(user_id, doc_id) == chunks
    assert before.documents == len(ingested)


def test_bad_input_is_refused_or_fails_clearly(alice: Api, tmp_path: Path) -> None:
    r = alice.upload_bytes("noise.bin", os.urandom(4096))
    assert r.status_code == 415, r.text
    assert "unrecognised" in r.json()["detail"]

    r = alice.upload_bytes("empty.pdf", b"")
    assert r.status_code == 415 and "empty" in r.json()["detail"]

    corrupt = b"%PDF-1.7\n" + os.urandom(2048) + b"\n%%EOF\n"
    r = alice.upload_bytes("corrupt.pdf", corrupt)
    assert r.status_code == 202, r.text
    job = alice.wait_job(r.json()["job_id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("parse failed:") and "PDF" in job["error"], job["error"]
    assert job["error_retryable"] is False
    parse = job["stages"][0]
    assert parse["state"] == "failed" and parse["attempts"] == 1, parse  # permanent: no retries
    doc = alice.get(f"/v1/documents/{r.json()['document_id']}").json()
    assert not doc["vector_indexed"] and doc["last_error"] == job["error"]


def test_owners_are_isolated(ingested: dict[str, dict[str, Any]], alice: Api, bob: Api) -> None:
    assert bob.get("/v1/documents").json()["total"] == 0
    some = ingested["multi_page.pdf"]
    assert bob.get(f"/v1/documents/{some['document_id']}").status_code == 404
    assert bob.get(f"/v1/documents/{some['document_id']}/content").status_code == 404
    assert bob.get(f"/v1/jobs/{some['job_id']}").status_code == 404
    assert bob.get("/v1/search", q=PHRASES["multi_page.pdf"][0]).json()["hits"] == []
    assert alice.http.get("/v1/documents", headers={"Authorization": "Bearer nope"}).status_code == 401
    # The same bytes uploaded by another owner are that owner's own document.
    r = bob.upload(DOCS / "powerpoint_sample.pptx")
    assert r.status_code == 202 and r.json()["duplicate"] is False
    assert bob.wait_job(r.json()["job_id"])["status"] == "completed"
    hits = bob.get("/v1/search", q="rectangle shape with text").json()["hits"]
    assert {h["document_id"] for h in hits} == {r.json()["document_id"]}


def test_delete_removes_everything(alice: Api, stack: Any, tmp_path: Path) -> None:
    from ingestflow.stores.vectors import open_vector_store

    note = tmp_path / "delete_me.md"
    note.write_text("# Zanzibar memo\n\nKaterina Novak of Borealis Shipping met the Zanzibar port authority.\n")
    up = alice.upload(note).json()
    assert alice.wait_job(up["job_id"])["status"] == "completed"
    user_id, before = _graph_counts(stack, alice.user_id)
    assert alice.http.delete(f"/v1/documents/{up['document_id']}").status_code == 204
    assert alice.get(f"/v1/documents/{up['document_id']}").status_code == 404
    assert open_vector_store(stack.settings).count(user_id, up["document_id"]) == 0
    _, after = _graph_counts(stack, alice.user_id)
    assert after.documents == before.documents - 1
    assert after.chunks < before.chunks
    assert not (stack.settings.derived_dir / up["document_id"]).exists()


def test_health_detailed_reports_every_dependency(alice: Api) -> None:
    report = alice.get("/health/detailed").json()
    assert report["ok"], report
    assert {"database", "prefect", "dask", "chroma", "graph", "models"} <= set(report["dependencies"])


def test_text_in_other_encodings_reads_as_saved(alice: Api) -> None:
    """Issue 23: a Markdown note saved as UTF-16 with a byte-order mark (Notepad's "Unicode") and a web page in
    windows-1252 that says so are accepted, and their stored content and search hits read as the original."""
    note = "# Boiler visit\n\nThe engineer Zoë Müller charged 85 € — “call-out” included — for the façade flue.\n"
    page = ('<!DOCTYPE html><html><head><meta charset="windows-1252"><title>Caf\u00e9</title></head><body>'
            "<h1>Café opening</h1><p>The crème brûlée costs 4,50 € at the Zürich café.</p></body></html>")
    for name, data, phrase in [("visit-utf16.md", note.encode("utf-16"), "Zoë Müller charged 85 €"),
                               ("cafe-1252.html", page.encode("cp1252"), "crème brûlée costs 4,50 €")]:
        r = alice.upload_bytes(name, data)
        assert r.status_code == 202, r.text
        job = alice.wait_job(r.json()["job_id"])
        assert job["status"] == "completed", job
        content = alice.get(f"/v1/documents/{r.json()['document_id']}/content").text
        assert phrase in content, content
        hits = alice.get("/v1/search", q=phrase, k=3, document_id=r.json()["document_id"]).json()["hits"]
        assert hits and phrase in hits[0]["text"], hits


def test_a_photo_of_a_notice_is_ocrd_and_cited_by_page(alice: Api, tmp_path: Path) -> None:
    """Issue 23: a PNG photo of a typed notice is OCR'd, chunked, embedded and found with its page; a photo with
    no text completes with no chunks and says so."""
    from tests.test_images import NOTICE, typed_photo

    photo = tmp_path / "notice.png"
    typed_photo(NOTICE).save(photo)
    r = alice.upload(photo)
    assert r.status_code == 202, r.text
    job = alice.wait_job(r.json()["job_id"])
    assert job["status"] == "completed", job
    hits = alice.get("/v1/search", q="when is the community hall on Mill Lane closed", k=3,
                     document_id=r.json()["document_id"]).json()["hits"]
    assert hits and "Friday 16 January" in hits[0]["text"] and hits[0]["page"] == 1, hits

    from PIL import Image

    sky = tmp_path / "sky.jpg"
    Image.new("RGB", (640, 480), (120, 170, 230)).save(sky)
    r = alice.upload(sky)
    assert r.status_code == 202, r.text
    job = alice.wait_job(r.json()["job_id"])
    assert job["status"] == "completed", job
    assert any("no text" in note for note in job["notes"]), job
    status = alice.get(f"/v1/documents/{r.json()['document_id']}/indexing-status").json()
    assert status["chunk_count"] == 0, status


def test_a_csv_row_is_found_with_its_column_names(alice: Api, tmp_path: Path) -> None:
    """Issue 23: a CSV upload becomes a table whose every row chunk names its columns, so a question about one
    row's value finds that row; so does every sheet of an Excel workbook; an AsciiDoc upload keeps its sections."""
    from tests.test_text_formats import BRANCHES

    r = alice.upload_bytes("branches.csv", BRANCHES.encode("utf-8"))
    assert r.status_code == 202, r.text
    doc = alice.get(f"/v1/documents/{r.json()['document_id']}").json()
    assert doc["format"] == "csv", doc
    job = alice.wait_job(r.json()["job_id"])
    assert job["status"] == "completed", job
    hits = alice.get("/v1/search", q="How did the Hillside branch change on 2023?", k=3,
                     document_id=r.json()["document_id"]).json()["hits"]
    assert hits and "Hillside, Change on 2023 = -21%" in hits[0]["text"], hits
    # An Excel workbook: a row of its second sheet is found with its column names, cited by that sheet.
    from tests.test_text_formats import workbook

    r = alice.upload(workbook(tmp_path / "branch-report.xlsx"))
    assert r.status_code == 202, r.text
    assert alice.get(f"/v1/documents/{r.json()['document_id']}").json()["format"] == "xlsx"
    assert alice.wait_job(r.json()["job_id"])["status"] == "completed"
    hits = alice.get("/v1/search", q="When did Lukas Brandt start?", k=3,
                     document_id=r.json()["document_id"]).json()["hits"]
    assert hits and "Lukas Brandt, Start year = 2021" in hits[0]["text"], hits
    assert hits[0]["headings"] == ["Staff"] and hits[0]["page"] == 2, hits[0]
    # An AsciiDoc guide is parsed as AsciiDoc, its sections the hits' heading paths.
    from tests.test_text_formats import ADOC

    r = alice.upload_bytes("boiler-guide.adoc", ADOC.encode("utf-8"))
    assert r.status_code == 202, r.text
    assert alice.wait_job(r.json()["job_id"])["status"] == "completed"
    hits = alice.get("/v1/search", q="how long do I press the reset button", k=3,
                     document_id=r.json()["document_id"]).json()["hits"]
    assert hits and hits[0]["headings"] == ["Boiler Guide", "Resetting the boiler"], hits
