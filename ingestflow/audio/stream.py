"""Audio arriving in pieces, as 16 kHz mono samples: raw PCM frames, or a container stream that PyAV reads as it
comes (WebM/Opus from a browser's MediaRecorder, Ogg/Opus), and the WAV file the call is kept in."""

from __future__ import annotations

import io
import logging
import os
import queue
import tempfile
import threading
import wave
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from ingestflow.audio.live import RATE
from ingestflow.errors import CorruptInput
from ingestflow.stores import storage

log = logging.getLogger(__name__)
# pcm: 16-bit little-endian mono at 16 kHz; webm: any container PyAV reads as it comes (WebM/Opus, Ogg/Opus)
StreamFormat = Literal["pcm", "webm"]


class Decoder(Protocol):
    def push(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def samples(self) -> np.ndarray:
        """What was decoded since the last call (float32 mono, 16 kHz); raises CorruptInput if it cannot be."""
        ...


class PcmDecoder:
    def __init__(self) -> None:
        self._pending = b""
        self._out: list[np.ndarray] = []

    def push(self, data: bytes) -> None:
        data = self._pending + data
        whole = len(data) - len(data) % 2
        self._pending = data[whole:]
        if whole:
            self._out.append(np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0)

    def close(self) -> None:
        self._pending = b""

    def samples(self) -> np.ndarray:
        out, self._out = self._out, []
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class _Pipe(io.RawIOBase):
    """Bytes written on one side, read on the other; a read waits for bytes until the writer closes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._done = False
        self._cond = threading.Condition()

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._buf += data
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        with self._cond:
            while not self._buf and not self._done:
                self._cond.wait()
            n = min(len(b), len(self._buf))
            b[:n] = self._buf[:n]
            del self._buf[:n]
            return n


class ContainerDecoder:
    """PyAV reading a container stream in a thread of its own: its reads wait for the next bytes."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._queue: queue.SimpleQueue[np.ndarray | BaseException] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="live-decode", daemon=True)
        self._thread.start()

    def push(self, data: bytes) -> None:
        self._pipe.feed(data)

    def close(self) -> None:
        self._pipe.finish()
        self._thread.join(timeout=30)

    def samples(self) -> np.ndarray:
        out: list[np.ndarray] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                raise CorruptInput(f"could not decode the audio stream: {item}") from item
            out.append(item)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def _run(self) -> None:
        import av

        decoded = False
        try:
            with av.open(io.BufferedReader(self._pipe), mode="r") as container:
                if not container.streams.audio:
                    raise ValueError("the stream holds no audio")
                resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        self._queue.put(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
                        decoded = True
                for out in resampler.resample(None):
                    self._queue.put(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        except Exception as exc:  # noqa: BLE001 - handed to the reader, who says why the stream was refused
            if decoded:  # a stream cut off mid-packet (a dropped connection) ends there; what came before stands
                log.info("audio stream ended early: %s", exc)
            else:
                self._queue.put(exc)
        finally:
            self._pipe.finish()  # nobody waits on bytes that will not be read


def decoder(fmt: StreamFormat) -> Decoder:
    return PcmDecoder() if fmt == "pcm" else ContainerDecoder()


class WavSink:
    """The call as it arrives, in a 16-bit WAV spool file beside the uploads (the sweep removes one a killed
    process left); `seal()` fsyncs it and gives its hash and size for the content store."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=root, prefix=storage.SPOOL_PREFIX, suffix=".wav")
        os.close(fd)
        self.path = Path(name)
        self._wav = wave.open(name, "wb")  # noqa: SIM115 - closed by seal() or discard()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RATE)
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self._wav.writeframes((np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
        self.samples += int(samples.size)

    def seal(self) -> tuple[str, int]:
        self._wav.close()
        return storage.seal(self.path)

    def discard(self) -> None:
        try:
            self._wav.close()
        finally:
            self.path.unlink(missing_ok=True)
