"""Recordings end to end through the HTTP API on the real stack: transcribe, improve, chunk by time, search."""

from __future__ import annotations

import difflib
import itertools
import os
import re
from typing import Any

import pytest

from ingestflow.text import word_error_rate
from tests.conftest import FIXTURES, Api

pytestmark = pytest.mark.slow

AUDIO = FIXTURES / "audio"
JFK_REFERENCE = ("And so my fellow Americans, ask not what your country can do for you, "
                 "ask what you can do for your country.")
CLIPS = ["sample_10s.mp3", "sample_10s_audio-m4a.m4a", "sample_10s_audio-ogg.ogg", "sample_10s_video-mp4.mp4"]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def recordings(alice: Api) -> dict[str, dict[str, Any]]:
    ups = {}
    for name in ["jfk.flac", "silent_1s.wav", *CLIPS]:
        r = alice.upload(AUDIO / name)
        assert r.status_code == 202, r.text
        ups[name] = r.json()
    return {name: {**up, "job": alice.wait_job(up["job_id"])} for name, up in ups.items()}


def test_recordings_complete_with_audio_stages(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    for name, rec in recordings.items():
        job = rec["job"]
        assert job["status"] == "completed", (name, job)
        assert [s["stage"] for s in job["stages"]][:2] == ["transcribing", "improving"]
        doc = alice.get(f"/v1/documents/{rec['document_id']}").json()
        assert doc["kind"] == "audio" and doc["language"] == "en" and doc["duration_s"] > 0.5, doc
        assert "asr" in doc["models"] and doc["models"]["improve"] == "deterministic"


def test_jfk_word_error_rate(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    doc_id = recordings["jfk.flac"]["document_id"]
    raw = alice.get(f"/v1/documents/{doc_id}/transcript", format="txt", version="raw").text
    improved = alice.get(f"/v1/documents/{doc_id}/transcript", format="txt", version="improved").text
    raw_wer, improved_wer = word_error_rate(JFK_REFERENCE, raw), word_error_rate(JFK_REFERENCE, improved)
    print(f"jfk.flac WER raw {raw_wer:.3f} improved {improved_wer:.3f}")
    assert raw_wer <= 0.10 and improved_wer <= 0.10
    assert words(raw) == words(improved)  # the cleanup never adds or drops words


def test_same_clip_in_every_container_reads_the_same(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    texts = {n: alice.get(f"/v1/documents/{recordings[n]['document_id']}/transcript", format="txt").text for n in CLIPS}
    for a, b in itertools.combinations(CLIPS, 2):
        # Characters, not words: "LibriVox" vs "Libra-Vox" is one small slip, not two wrong words.
        ratio = difflib.SequenceMatcher(None, "".join(words(texts[a])), "".join(words(texts[b]))).ratio()
        print(f"clip similarity {a} vs {b}: {ratio:.3f}")
        assert ratio >= 0.9, (a, b, texts[a], texts[b])


def test_silence_completes_empty(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    rec = recordings["silent_1s.wav"]
    assert rec["job"]["error"] is None
    body = alice.get(f"/v1/documents/{rec['document_id']}/transcript").json()
    assert body["segments"] == []
    assert alice.get(f"/v1/documents/{rec['document_id']}").json()["chunk_count"] == 0


def test_transcript_formats(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    doc_id = recordings["jfk.flac"]["document_id"]
    srt = alice.get(f"/v1/documents/{doc_id}/transcript", format="srt").text
    assert re.search(r"^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n", srt, re.M), srt
    vtt = alice.get(f"/v1/documents/{doc_id}/transcript", format="vtt", version="raw").text
    assert vtt.startswith("WEBVTT") and re.search(r"00:00:\d\d\.\d{3} --> ", vtt)
    js = alice.get(f"/v1/documents/{doc_id}/transcript", format="json").json()
    seg = js["segments"][0]
    assert seg["end"] > seg["start"] >= 0 and seg["words"], seg
    assert alice.get(f"/v1/documents/{doc_id}/transcript", format="pdf").status_code == 422


def test_search_finds_the_second_it_was_said(recordings: dict[str, dict[str, Any]], alice: Api) -> None:
    hits = alice.get("/v1/search", q="ask not what your country", k=5).json()["hits"]
    top = hits[0]
    assert top["document_id"] == recordings["jfk.flac"]["document_id"], hits[:2]
    assert top["kind"] == "audio" and top["page"] is None
    assert 0 <= top["start_s"] < top["end_s"] <= 12, top


def test_bad_audio_is_refused(alice: Api) -> None:
    cases = [("empty.wav", b""), ("noise.mp3", os.urandom(8192)), ("notes.mp3", b"just text, no audio\n")]
    for name, data in cases:
        r = alice.upload_bytes(name, data)
        if r.status_code == 202:  # bytes that look like audio at a glance fail in the pipeline instead
            job = alice.wait_job(r.json()["job_id"])
            assert job["status"] == "failed" and job["error"].startswith("transcribe failed:"), (name, job)
            assert job["error_retryable"] is False
            continue
        assert r.status_code == 415, (name, r.status_code, r.text)
        assert r.json()["detail"], name


def test_a_subtitle_file_is_a_transcript_cited_by_seconds(alice: Api) -> None:
    """Issue 23: a WebVTT upload runs the recording plan with its cues as the transcript (nothing to hear), and a
    hit cites the seconds of the cue that says it."""
    from tests.test_subtitle_input import VTT

    r = alice.upload_bytes("repairs-call.vtt", VTT.encode("utf-8"))
    assert r.status_code == 202, r.text
    job = alice.wait_job(r.json()["job_id"])
    assert job["status"] == "completed", job
    doc = alice.get(f"/v1/documents/{r.json()['document_id']}").json()
    assert (doc["kind"], doc["format"], doc["duration_s"]) == ("audio", "vtt", 9.125), doc
    hits = alice.get("/v1/search", q="When will the plumber Tony Reed come?", k=3,
                     document_id=r.json()["document_id"]).json()["hits"]
    assert hits and "Tony Reed" in hits[0]["text"], hits
    assert hits[0]["start_s"] <= 4.25 and hits[0]["end_s"] >= 9.0, hits[0]
