"""Live transcription (issue 27): the transcriber on a moving window, the stream decoders, and the socket on the
real app (uvicorn, PostgreSQL) with the packaged Whisper model: partial and final segments, the call stored as a
document with its live transcript, the longest call, the bound on streams, a dropped connection, a bad key."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from ingestflow.settings import Settings
from ingestflow.text import words_of
from tests.conftest import FIXTURES, owner_api, served_app

PORT = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 64
JFK = FIXTURES / "audio" / "jfk.flac"
JFK_WORDS = "ask not what your country can do for you ask what you can do for your country"
JFK_OPENING = "And so, my fellow Americans, ask not what your country can do for you"  # its first 5.5 s
MAX_S = 6.0  # the served app's longest call


def _words(text: str) -> str:
    return " ".join(words_of(text))


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return np.asarray(decode_audio(str(JFK), sampling_rate=16_000), dtype=np.float32)


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _webm(samples: np.ndarray) -> bytes:
    """Opus in WebM, as a browser's MediaRecorder sends it (48 kHz)."""
    import av

    pcm = (np.clip(np.repeat(samples, 3), -1, 1) * 32767).astype(np.int16)  # 16 kHz to 48 kHz, plainly
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        for i in range(0, len(pcm), 960):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 960], format="s16", layout="mono")
            frame.rate = 48_000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def test_the_transcriber_settles_what_was_said_with_its_seconds(jfk: np.ndarray) -> None:
    from ingestflow.audio.live import RATE, LiveTranscriber
    from ingestflow.audio.whisper import load_model

    model, label = load_model(None, device="cpu")
    live = LiveTranscriber(model, label, step_s=1.0)  # half the passes of the default: the same logic, sooner
    partials: list[str] = []
    for i in range(0, jfk.size, RATE // 10):
        live.feed(jfk[i:i + RATE // 10])
        if live.due():
            update = live.step()
            partials.append(" ".join(s["text"] for s in update.partial))
            if live.settle_due:
                live.settle()
    live.step(last=True)
    text = _words(" ".join(s["text"] for s in live.finals))
    assert JFK_WORDS in text
    assert any("country" in _words(p) for p in partials)  # heard before the end, not only when it settled
    assert [s["id"] for s in live.finals] == list(range(len(live.finals)))
    assert all(0 <= s["start"] < s["end"] <= jfk.size / RATE + 0.05 for s in live.finals)
    transcript = live.transcript()
    assert transcript.language == "en" and abs(transcript.duration_s - jfk.size / RATE) < 0.01
    assert transcript.model is not None and transcript.model.endswith(" live")


def test_the_transcriber_keeps_silence_out(jfk: np.ndarray) -> None:
    from ingestflow.audio.live import RATE, LiveTranscriber
    from ingestflow.audio.whisper import load_model

    live = LiveTranscriber(*load_model(None, device="cpu"))
    silence = np.zeros(RATE // 10, dtype=np.float32)
    for _ in range(60):
        live.feed(silence)
        if live.due():
            assert live.step().partial == []
    assert live.step(last=True).final == []
    assert live._audio.size <= 2 * RATE  # six seconds of silence are not kept to be decoded again


def test_a_container_stream_is_decoded_as_it_arrives(jfk: np.ndarray) -> None:
    from ingestflow.audio.stream import ContainerDecoder, PcmDecoder
    from ingestflow.errors import CorruptInput

    data = _webm(jfk)
    dec = ContainerDecoder()
    got = 0
    for i in range(0, len(data), 3000):
        dec.push(data[i:i + 3000])
        got += dec.samples().size
    dec.close()
    got += dec.samples().size
    assert abs(got / 16_000 - jfk.size / 16_000) < 0.1

    pcm = PcmDecoder()
    raw = _pcm(jfk[:1001])
    pcm.push(raw[:1001])  # half a sample at the end waits for its other byte
    pcm.push(raw[1001:])
    assert pcm.samples().size == 1001

    bad = ContainerDecoder()
    bad.push(b"this is not audio at all " * 200)
    bad.close()
    with pytest.raises(CorruptInput, match="could not decode"):
        bad.samples()


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT, LIVE_MAX_S=str(MAX_S), LIVE_MAX_STREAMS="1") as settings:
        yield settings


@pytest.fixture(scope="module")
def owner(served: Settings) -> tuple[httpx.Client, str]:
    api = owner_api(served, "caller", PORT)
    key = api.http.headers["Authorization"].removeprefix("Bearer ")
    return api.http, key


def _socket(key: str, **params: str) -> ClientConnection:
    query = urlencode({"token": key, **params})
    return connect(f"ws://127.0.0.1:{PORT}/v1/ws/transcribe?{query}", open_timeout=10, max_size=None)


def _stream(ws: ClientConnection, data: bytes, piece: int, pause_s: float = 0.0) -> None:
    for i in range(0, len(data), piece):
        ws.send(data[i:i + piece])
        if pause_s:
            time.sleep(pause_s)


def _until_closed(ws: ClientConnection) -> list[dict[str, Any]]:
    messages = []
    with pytest.raises(ConnectionClosed):
        while True:
            messages.append(json.loads(ws.recv(timeout=60)))
    return messages


def test_a_live_call_is_transcribed_as_it_comes_and_becomes_a_document(
        owner: tuple[httpx.Client, str], jfk: np.ndarray) -> None:
    http, key = owner
    clip = jfk[: int(5.5 * 16_000)]  # under the served app's longest call
    with _socket(key, title="Support call") as ws:
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["sample_rate"] == 16_000 and ready["max_seconds"] == MAX_S
        _stream(ws, _pcm(clip), 3200, pause_s=0.02)
        ws.send(json.dumps({"type": "stop"}))
        messages = _until_closed(ws)
    kinds = [m["type"] for m in messages]
    assert "partial" in kinds[:-1] and kinds[-1] == "document"
    finals = [s for m in messages if m["type"] == "final" for s in m["segments"]]
    said = _words(" ".join(s["text"] for s in finals))
    assert "my fellow americans ask not what" in said
    assert all(0 <= s["start"] < s["end"] <= 5.55 for s in finals)
    stored = messages[-1]
    assert stored["duplicate"] is False and stored["ended_by"] == "stop" and stored["duration_s"] == 5.5

    doc = http.get(f"/v1/documents/{stored['document_id']}").json()
    assert (doc["kind"], doc["format"], doc["title"]) == ("audio", "wav", "Support call")
    assert doc["latest_job"]["id"] == stored["job_id"]
    transcript = http.get(f"/v1/documents/{stored['document_id']}/transcript")
    assert transcript.status_code == 200 and transcript.json()["version"] == "live"  # until the pipeline's own
    assert [s["text"] for s in transcript.json()["segments"]] == [s["text"] for s in finals]
    assert _words(http.get(f"/v1/documents/{stored['document_id']}/transcript?format=txt").text) == said
    kept = http.get(f"/v1/documents/{stored['document_id']}/file")
    assert kept.status_code == 200 and len(kept.content) == 44 + 2 * clip.size  # the call as 16 kHz WAV


def test_a_browser_stream_in_webm_is_transcribed(owner: tuple[httpx.Client, str], jfk: np.ndarray) -> None:
    http, key = owner
    with _socket(key, format="webm") as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        _stream(ws, _webm(jfk[: 5 * 16_000]), 4000, pause_s=0.02)
        ws.send(json.dumps({"type": "stop"}))
        messages = _until_closed(ws)
    assert "fellow americans ask not" in _words(
        " ".join(s["text"] for m in messages if m["type"] == "final" for s in m["segments"]))
    assert messages[-1]["type"] == "document" and abs(messages[-1]["duration_s"] - 5.0) < 0.1


def test_a_call_ended_while_the_database_is_away_is_stored_when_it_answers(
        owner: tuple[httpx.Client, str], served: Settings, jfk: np.ndarray) -> None:
    """The call exists only on the server: the real PostgreSQL refusing the app's database (connections
    cut and not allowed, as in a restart) must not lose it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    http, key = owner
    url = make_url(served.sqlalchemy_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def connections(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
            if not allowed:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                             {"name": url.database})

    try:
        with _socket(key, title="Call during a restart") as ws:
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
            _stream(ws, _pcm(jfk[: 3 * 16_000]), 3200, pause_s=0.02)
            connections(False)
            ws.send(json.dumps({"type": "stop"}))
            while (message := json.loads(ws.recv(timeout=60)))["type"] != "storing":
                assert message["type"] in ("partial", "final"), message
            connections(True)
            messages = _until_closed(ws)
    finally:
        connections(True)
        admin.dispose()
    stored = messages[-1]
    assert stored["type"] == "document" and stored["duration_s"] == 3.0, messages
    doc = http.get(f"/v1/documents/{stored['document_id']}").json()
    assert doc["title"] == "Call during a restart" and doc["latest_job"]["status"] == "queued"
    assert len(http.get(f"/v1/documents/{stored['document_id']}/file").content) == 44 + 2 * 3 * 16_000
    assert not list(served.files_dir.glob(".upload-*")), "the call's spool file is gone once stored"


@pytest.mark.slow
def test_a_call_in_german_is_heard_by_the_multilingual_model_and_kept_for_translation(
        owner: tuple[httpx.Client, str]) -> None:
    from faster_whisper.audio import decode_audio

    from tests.test_translation import CALL

    http, key = owner
    german = np.asarray(decode_audio(str(CALL), sampling_rate=16_000), dtype=np.float32)[: int(5.5 * 16_000)]
    with _socket(key, language="de", translate="true") as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        _stream(ws, _pcm(german), 3200, pause_s=0.02)
        ws.send(json.dumps({"type": "stop"}))
        messages = _until_closed(ws)
    said = _words(" ".join(s["text"] for m in messages if m["type"] == "final" for s in m["segments"]))
    assert "guten tag" in said and "wohnungsamt" in said, said
    doc = http.get(f"/v1/documents/{messages[-1]['document_id']}").json()
    assert doc["translate"] and doc["language"] == "de" and doc["latest_job"]["translate"], doc


def test_a_call_is_cut_at_the_longest_kept(owner: tuple[httpx.Client, str], jfk: np.ndarray) -> None:
    http, key = owner
    with _socket(key) as ws:
        json.loads(ws.recv(timeout=30))
        _stream(ws, _pcm(jfk), 16_000)  # 11 s, more than the 6 s kept
        messages = _until_closed(ws)
    kinds = [m["type"] for m in messages]
    assert "limit" in kinds and kinds[-1] == "document"
    assert messages[-1]["duration_s"] == MAX_S and messages[-1]["ended_by"] == "limit"


def test_a_dropped_call_is_kept_and_a_stream_beyond_the_bound_is_refused(
        owner: tuple[httpx.Client, str], jfk: np.ndarray) -> None:
    http, key = owner
    before = http.get("/v1/documents").json()["total"]
    ws = _socket(key, title="Dropped")
    assert json.loads(ws.recv(timeout=30))["type"] == "ready"
    with _socket(key) as second:  # the served app runs one stream at once
        refusal = json.loads(second.recv(timeout=30))
        assert refusal["type"] == "error" and "live streams at once" in refusal["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            second.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    _stream(ws, _pcm(jfk[16_000: 4 * 16_000]), 3200)
    time.sleep(0.5)
    ws.close_socket()  # the caller's connection goes, with no goodbye
    deadline = time.monotonic() + 60
    while http.get("/v1/documents").json()["total"] == before:
        assert time.monotonic() < deadline, "the dropped call was not stored"
        time.sleep(0.2)
    doc = http.get("/v1/documents", params={"limit": 1}).json()["items"][0]
    assert doc["title"] == "Dropped" and doc["duration_s"] is None and doc["size_bytes"] == 44 + 2 * 3 * 16_000


def test_a_stream_needs_a_valid_key_and_good_parameters(owner: tuple[httpx.Client, str]) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _socket("not-a-key")
    assert refused.value.response.status_code == 403
    with _socket(owner[1], format="mp3") as ws:
        assert "bad parameters" in json.loads(ws.recv(timeout=30))["detail"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.slow
def test_the_dashboards_record_button_streams_the_microphone(
        owner: tuple[httpx.Client, str], jfk: np.ndarray, tmp_path: Any) -> None:
    """Headless Chromium with a fake microphone that plays the start of jfk.flac (as WAV, once): the words appear
    on the page while it records, and when the file ends the call becomes a document the page links to."""
    from tests.conftest import write_wav
    from tests.dashboard_browser import headless_chromium

    http, key = owner
    clip = jfk[: int(5.5 * 16_000)]  # under the served app's longest call
    mic = write_wav(tmp_path / "mic.wav", _pcm(np.repeat(clip, 3)), rate=48_000)  # the rate Chromium captures at
    before = http.get("/v1/documents").json()["total"]
    with headless_chromium("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                           f"--use-file-for-fake-audio-capture={mic}%noloop") as browser:
        page = browser.new_page()
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        page.goto(f"http://127.0.0.1:{PORT}/")
        page.fill("#api-key", key)
        page.click("#key-save")
        page.click("#record-btn")
        t0 = time.monotonic()
        try:  # words on the page while the microphone still records
            page.wait_for_function("document.querySelector('#record-btn').getAttribute('aria-pressed') === 'true' "
                                   "&& document.querySelector('#record-text').textContent.split(' ').length > 3",
                                   timeout=30_000)
        except Exception:
            status, shown = page.text_content("#record-status"), page.text_content("#record-text")
            raise AssertionError(f"no words on the page while recording: status {status!r}, text {shown!r}, "
                                 f"console {console}") from None
        heard_while_recording = time.monotonic() - t0
        # The fake microphone plays the file in real time, once: its end stops the recorder.
        page.wait_for_selector("#record-doc:not([hidden])", timeout=120_000)
        stored_after = time.monotonic() - t0
        document_id = page.get_attribute("#record-doc", "data-document-id")
        text = _words(page.text_content("#record-final") or "")
    print(f"\nwords on the page {heard_while_recording:.1f} s after the click, stored {stored_after:.1f} s after")
    # "my fellow" and at least four words of the fixture's opening: how well they are heard is the PCM socket test's
    # and bench/live_bench.py's to measure. Through Chromium's fake microphone on a loaded machine the capture itself
    # can lose audio (a CI run showed "and so my fellow america and not wow", the 5.5 s call stored 12.6 s after the
    # click).
    said = set(_words(JFK_OPENING).split())
    assert "my fellow" in text and len(said & set(text.split())) >= 4, text
    assert http.get("/v1/documents").json()["total"] == before + 1
    doc = http.get(f"/v1/documents/{document_id}").json()
    assert doc["kind"] == "audio" and doc["latest_job"]["status"] == "queued"
