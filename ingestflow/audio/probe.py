"""What a recording's container holds, read with PyAV; CorruptInput when there is no audio that can be decoded."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ingestflow.errors import CorruptInput

log = logging.getLogger(__name__)


@dataclass
class AudioInfo:
    duration_s: float
    has_audio: bool
    sample_rate: int | None = None
    channels: int | None = None
    codec: str | None = None
    container: str | None = None



def decode_reason(exc: BaseException) -> str:
    # PyAV's messages embed the full path; the caller already knows which file it was.
    text = str(exc).strip() or type(exc).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    return re.sub(r":\s*'[^']*'$", "", text)


def probe(path: str | Path, *, decode_all: bool = False) -> AudioInfo:
    """What the container holds. Raises CorruptInput when there is no audio that can be decoded.

    By default only the first audio frame is decoded (enough to prove the stream is readable) and the duration
    comes from the container; `decode_all=True` decodes the whole stream and measures the real duration, which
    also catches files truncated mid-way (their header still claims the full length).
    """
    import av

    path = Path(path)
    if path.stat().st_size == 0:
        raise CorruptInput("could not decode audio: the file is empty")
    try:
        container = av.open(str(path), mode="r")
    except av.error.InvalidDataError as exc:
        reason = decode_reason(exc)
        raise CorruptInput(f"could not decode audio: not a recognised audio or video format ({reason})") from exc
    except (av.error.FFmpegError, ValueError) as exc:
        raise CorruptInput(f"could not decode audio: {decode_reason(exc)}") from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "no streams at all"
            raise CorruptInput(f"no audio stream (the {container.format.name} container holds {kinds})")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        info = AudioInfo(
            duration_s=0.0,
            has_audio=False,
            sample_rate=int(ctx.sample_rate) if ctx.sample_rate else None,
            channels=int(ctx.channels) if ctx.channels else None,
            codec=ctx.name,
            container=container.format.name,
        )
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            declared = container.duration / av.time_base
        else:
            declared = 0.0
        samples = 0
        rate = info.sample_rate
        try:
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if samples and not decode_all:
                    break
        except av.error.FFmpegError as exc:
            if not samples:
                raise CorruptInput(f"could not decode audio: {decode_reason(exc)}") from exc
            # Decodable up to a point: keep what was read (Whisper's decoder stops at the same place).
            log.warning("audio %s decodes only partly: %s", path.name, decode_reason(exc))
        if not samples:
            if declared > 0:
                raise CorruptInput("could not decode audio: the audio stream yielded no samples")
            # A well-formed container whose audio stream is empty: a zero-length recording, not corruption.
            return info
        info.has_audio = True
        info.duration_s = samples / rate if decode_all and rate else declared
        return info
