"""Live transcription: `WS /v1/ws/transcribe` takes a call's audio as it is spoken and answers with what was said.

The client sends binary frames (`format=pcm`: 16-bit little-endian mono at 16 kHz; `format=webm`: a container
stream as a browser's MediaRecorder makes it, WebM/Opus or Ogg/Opus) and, when the call ends, the text message
`{"type": "stop"}`. The server sends, as JSON:

- `ready` once, with the sample rate and the longest call it keeps;
- `partial`: the segments it hears after the last final ones, replaced by the next partial;
- `final`: segments that will not change, with start/end seconds from the call's start;
- `limit` when the call reached `live_max_s` (the stream is cut there and kept);
- `storing` while the database does not answer when the call ends (it is kept and stored when it does, for up
  to `live_store_retry_s`; past that it is kept on disk under `files/unstored/` and the socket closes with 1011);
- `document` once the call is stored: the document and job of an upload of the same recording, which goes
  through the whole pipeline (the live segments are its transcript until the pipeline's own replaces them);
- `error` with a reason, before closing with 1007 (audio that cannot be decoded), 1008 (a bad parameter) or
  1013 (too many live streams, or the upload budget spent: try again later).

A dropped connection keeps what was received: the call becomes a document all the same. The key comes as
`?token=` or a bearer header, as for the other sockets; a socket without a valid key is refused (HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.websockets import WebSocketState

from api.deps import NO_NUL, SettingsDep, caller_of
from api.intake import accept
from api.limits import spend
from api.routes.documents import LIVE_TRANSCRIPT
from api.routes.ws import key_still_valid, socket_key
from api.schemas import UploadAccepted
from ingestflow.atomic_files import write_atomic
from ingestflow.audio.live import RATE, LiveTranscriber, LiveUpdate
from ingestflow.audio.stream import StreamFormat, WavSink, decoder
from ingestflow.audio.transcript import Segment, Transcript, to_json
from ingestflow.audio.whisper import configured_model, model_for
from ingestflow.auth import Owner
from ingestflow.db import Document, session_scope
from ingestflow.errors import CorruptInput, PermanentError
from ingestflow.refs import work_dir
from ingestflow.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])
KEY_CHECK_S = 5.0  # a revoked key's stream ends within this long (and is kept: the call happened)
TICK_S = 0.05
_open_streams = 0  # per API process: every stream of a process runs in its event loop


class LiveParams(BaseModel):
    format: StreamFormat = "pcm"
    language: Annotated[str | None, Field(max_length=16, pattern=NO_NUL)] = None
    title: Annotated[str | None, Field(max_length=500, pattern=NO_NUL)] = None
    collection: Annotated[str | None, Field(max_length=200, pattern=NO_NUL)] = None
    redact: bool = False
    translate: bool = False  # the stored call's English translation (the pipeline's translate stage)


def _wire(segments: list[Segment]) -> list[dict[str, Any]]:
    return [{"start": s["start"], "end": s["end"], "text": s["text"]} for s in segments]


class _Call:
    """One live stream: receives audio, transcribes as it comes, and stores the call when it ends."""

    def __init__(self, ws: WebSocket, settings: Settings, owner: Owner, key: str, params: LiveParams) -> None:
        self.ws, self.settings, self.owner, self.key, self.params = ws, settings, owner, key, params
        self.decoder = decoder(params.format)
        self.sink = WavSink(settings.files_dir)
        self.max_samples = min(int(settings.live_max_s * RATE), (settings.max_upload_bytes - 44) // 2)
        self.connected = True
        self.ended_by: str | None = None
        self.started = datetime.now(UTC)

    async def send(self, message: dict[str, Any]) -> None:
        if self.connected and self.ws.application_state == WebSocketState.CONNECTED:
            try:
                await self.ws.send_text(json.dumps(message))
            except (WebSocketDisconnect, RuntimeError):
                self.connected = False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.connected:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self.ws.close(code=code, reason=reason)
            self.connected = False

    async def run(self) -> None:
        try:
            model, label = await asyncio.to_thread(
                lambda: configured_model(self.settings, model_for(self.settings, language=self.params.language,
                                                                  translate=self.params.translate)))
            live = LiveTranscriber(model, label, language=self.params.language, step_s=self.settings.live_step_s)
        except PermanentError as exc:  # a language the model cannot do, a model that cannot load
            self.sink.discard()
            await self.send({"type": "error", "detail": str(exc)})
            await self.close(1008, "cannot transcribe")
            return
        await self.send({"type": "ready", "sample_rate": RATE, "format": self.params.format,
                         "max_seconds": self.max_samples / RATE})
        receiving = asyncio.create_task(self._receive())
        transcribing = True
        try:
            await self._transcribe(live, receiving)
        except CorruptInput as exc:
            self.sink.discard()
            await self.send({"type": "error", "detail": str(exc)})
            await self.close(1007, "undecodable audio")
            return
        except Exception as exc:  # the call is kept all the same: the pipeline transcribes it whole
            log.exception("live transcription failed")
            await self.send({"type": "error", "detail": f"live transcription failed ({exc}); the call so far is "
                             "kept and transcribed as an upload"})
            self.ended_by, transcribing = "error", False
        finally:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiving
            await asyncio.to_thread(self.decoder.close)
        with contextlib.suppress(CorruptInput):
            self._take(live)
        if transcribing:
            await self._publish(await asyncio.to_thread(live.step, last=True))
        await self._store(live)

    async def _receive(self) -> None:
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), timeout=self.settings.live_idle_s)
            except TimeoutError:
                self.ended_by = "idle"
                return
            if message["type"] == "websocket.disconnect":
                self.connected = False
                self.ended_by = "dropped"
                return
            if message.get("bytes"):
                self.decoder.push(message["bytes"])
            elif message.get("text"):
                with contextlib.suppress(ValueError, AttributeError):
                    if json.loads(message["text"]).get("type") == "stop":
                        self.ended_by = "stop"
                        return

    async def _transcribe(self, live: LiveTranscriber, receiving: asyncio.Task[None]) -> None:
        checked = time.monotonic()
        while not receiving.done():
            self._take(live)
            if self.sink.samples >= self.max_samples:
                self.ended_by = "limit"
                await self.send({"type": "limit", "detail": f"the call reached the longest kept "
                                 f"({self.max_samples / RATE:g} s): it ends here and is stored"})
                return
            if time.monotonic() - checked >= KEY_CHECK_S:
                checked = time.monotonic()
                try:
                    valid = await asyncio.to_thread(key_still_valid, self.settings, self.key)
                except (OperationalError, InterfaceError):  # the database away: not a reason to end the call
                    valid = True
                if not valid:
                    self.ended_by = "revoked"
                    return
            if live.due():
                await self._publish(await asyncio.to_thread(live.step))
                if live.settle_due:
                    await self._publish(await asyncio.to_thread(live.settle))
            else:
                await asyncio.wait({receiving}, timeout=TICK_S)

    def _take(self, live: LiveTranscriber) -> None:
        """Move what was decoded into the transcriber and the kept file, up to the longest call kept."""
        samples = self.decoder.samples()
        samples = samples[: max(0, self.max_samples - self.sink.samples)]
        if samples.size:
            self.sink.write(samples)
            live.feed(samples)

    async def _publish(self, update: LiveUpdate) -> None:
        if update.final:
            await self.send({"type": "final", "segments": _wire(update.final)})
        await self.send({"type": "partial", "segments": _wire(update.partial)})

    async def _store(self, live: LiveTranscriber) -> None:
        if self.sink.samples == 0:
            self.sink.discard()
            await self.send({"type": "empty", "detail": "no audio was received: nothing is stored"})
            await self.close()
            return
        sha, size = await asyncio.to_thread(self.sink.seal)
        transcript = live.transcript()
        deadline = time.monotonic() + self.settings.live_store_retry_s
        delay = 0.5
        while True:
            try:
                accepted = await asyncio.to_thread(self._keep, transcript, sha, size)
                break
            except HTTPException as exc:  # the owner's quota, or these bytes already stored with other redaction
                self.sink.discard()
                await self.send({"type": "error", "status": exc.status_code, "detail": exc.detail})
                await self.close(1008, "not stored")
                return
            except (OperationalError, InterfaceError) as exc:
                # The database away (restarting, failing over): the call exists only here, so it is kept and
                # stored when the database answers again, rather than lost as a failed upload would not be
                # (an upload's client still has its file).
                if time.monotonic() + delay > deadline:
                    await self._unstored(sha, exc)
                    return
                log.warning("live call %s not stored yet (%s); again in %.1f s", sha[:12], exc, delay)
                await self.send({"type": "storing", "detail": "the database is not answering: the call is kept "
                                 "and stored as soon as it does"})
                await asyncio.sleep(delay)
                delay = min(2 * delay, 10.0)
        await self.send({"type": "document", **accepted.model_dump(mode="json"),
                         "duration_s": round(self.sink.samples / RATE, 3), "ended_by": self.ended_by})
        await self.close()

    async def _unstored(self, sha: str, exc: Exception) -> None:
        """The database stayed away past `live_store_retry_s`: the call is moved where no sweep removes it."""
        kept = self.settings.files_dir / "unstored" / f"live-{self.started:%Y%m%dT%H%M%S}-{sha[:12]}.wav"
        kept.parent.mkdir(parents=True, exist_ok=True)
        self.sink.path.replace(kept)
        log.error("live call of owner %s not stored (%s): kept as %s", self.owner.id, exc, kept)
        await self.send({"type": "error", "detail": f"the call could not be stored (the database did not answer "
                         f"for {self.settings.live_store_retry_s:g} s); it is kept on the server as {kept.name} "
                         "for an operator to upload"})
        await self.close(1011, "not stored")

    def _keep(self, transcript: Transcript, sha: str, size: int) -> UploadAccepted:
        # accept() removes the spool file it is given, stored or not: it is given a second name of the call's
        # file, so a failed attempt leaves the call in place for the next.
        attempt = self.sink.path.with_name(f"{self.sink.path.name}.{time.monotonic_ns()}")
        os.link(self.sink.path, attempt)
        started = self.started.strftime("%Y-%m-%d %H:%M UTC")
        try:
            with session_scope(self.settings.sqlalchemy_url) as db:
                accepted = accept(db, self.owner, self.settings, attempt, sha, size,
                                  filename=f"live-{sha[:12]}.wav", language=self.params.language,
                                  title=self.params.title or f"Live call, {started}",
                                  collection=self.params.collection, redact=self.params.redact,
                                  translate=self.params.translate)
                doc = db.get(Document, accepted.document_id)
                redacted = doc is None or doc.redact
        finally:
            attempt.unlink(missing_ok=True)
        self.sink.path.unlink(missing_ok=True)
        if not accepted.duplicate and not redacted:
            # A redacted document's text is served once the redact stage made it, never before.
            write_atomic(work_dir(self.settings, accepted.document_id) / LIVE_TRANSCRIPT, to_json(transcript))
        return accepted


@router.websocket("/v1/ws/transcribe")
async def ws_transcribe(ws: WebSocket, settings: SettingsDep) -> None:
    global _open_streams
    key = socket_key(ws)
    caller = await asyncio.to_thread(caller_of, settings, key) if key else None
    if caller is None:
        await ws.close(code=1008, reason="unknown API key")
        return
    await ws.accept()
    try:
        params = LiveParams.model_validate({k: v for k, v in ws.query_params.items() if k != "token"})
    except ValidationError as exc:
        await ws.send_json({"type": "error", "detail": f"bad parameters: {exc.errors(include_url=False)}"})
        await ws.close(code=1008, reason="bad parameters")
        return
    if _open_streams >= settings.live_max_streams:
        await ws.send_json({"type": "error", "status": 429, "detail": f"this server runs {settings.live_max_streams} "
                            "live streams at once and all are in use: try again in a moment"})
        await ws.close(code=1013, reason="too many live streams")
        return
    try:
        await asyncio.to_thread(spend, settings.sqlalchemy_url, "upload", "uploads", caller.owner.id,
                                settings.upload_rate_per_s, settings.upload_burst)
    except HTTPException as exc:
        await ws.send_json({"type": "error", "status": exc.status_code, "detail": exc.detail})
        await ws.close(code=1013, reason="upload budget spent")
        return
    _open_streams += 1
    try:
        await _Call(ws, settings, caller.owner, key, params).run()
    finally:
        _open_streams -= 1
