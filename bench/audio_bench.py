"""Benchmark: real-time factor of the recording pipeline against the raw faster-whisper call on the same file.

    .venv/bin/python bench/audio_bench.py [--file PATH] [--loop N] [--repeat 3] [--translate]

RTF = processing seconds / audio seconds (lower is faster). Three figures per file:
  raw        ingestflow.audio.whisper.transcribe() in this process, model warm (the model loop alone)
  stage      the transcribe task's own run time inside the pipeline (from its Prefect task run)
  pipeline   upload -> job completed through the API (transcribe, improve, chunk, embed, entities, graph)
With --translate the file is uploaded with translate=true: the raw figure is then the multilingual model's
transcription plus its translation, against the transcribe and translate stages together.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from common import ROOT, bench_stack, wait_job

DEFAULT = ROOT.parent / "shared" / "fixtures" / "audio" / "jfk.flac"


def looped(path: Path, times: int, out_dir: Path) -> Path:
    """The recording played `times` times in a row, as 16 kHz mono WAV: a longer input from a real fixture."""
    import wave

    import numpy as np
    from faster_whisper import decode_audio

    samples = np.tile(decode_audio(str(path)), times)
    out = out_dir / f"{path.stem}-x{times}.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=DEFAULT)
    ap.add_argument("--loop", type=int, default=1, help="play the file this many times in a row")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--translate", action="store_true", help="upload with translate=true (the multilingual model)")
    args = ap.parse_args()
    if args.loop > 1:
        args.file = looped(args.file, args.loop, Path(tempfile.mkdtemp(prefix="ingestflow-audio-bench-")))

    from ingestflow.audio import whisper
    from ingestflow.audio.probe import probe

    duration = probe(args.file).duration_s
    stages = ("transcribe", "translate") if args.translate else ("transcribe",)

    def raw_call() -> None:
        if not args.translate:
            whisper.transcribe(args.file)
            return
        heard = whisper.transcribe(args.file, model=whisper.packaged.NAME)
        whisper.transcribe(args.file, model=whisper.packaged.NAME, language=heard.language, task="translate")

    raw_call()  # warm the model, as a long-lived Dask worker is
    with bench_stack() as (_settings, base, key, _stack):
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)

        def through_pipeline(i: int) -> tuple[float, float]:
            data = args.file.read_bytes() + b"\0" * (i + 1)  # distinct bytes: not a duplicate upload
            t0 = time.perf_counter()
            form = {"translate": "true"} if args.translate else {}
            r = http.post("/v1/documents", files={"file": (args.file.name, data)}, data=form)
            r.raise_for_status()
            job = wait_job(base, key, r.json()["job_id"], poll_s=1.0)  # a watcher's pace, not a busy loop
            elapsed = time.perf_counter() - t0
            assert job["status"] == "completed", job
            took = 0.0
            for stage in (s for s in job["stages"] if s["name"] in stages):
                took += (datetime.fromisoformat(stage["finished_at"])
                         - datetime.fromisoformat(stage["started_at"])).total_seconds()
            return took, elapsed

        through_pipeline(0)  # warms the Dask worker's models
        # This machine's speed drifts by tens of percent over minutes: interleave raw and pipeline runs so
        # each pair sees the same conditions, with the stack up (idle) for the raw call too.
        raw, stage, total = [], [], []
        for i in range(1, args.repeat + 1):
            t0 = time.perf_counter()
            raw_call()
            raw.append(time.perf_counter() - t0)
            took, elapsed = through_pipeline(i)
            stage.append(took)
            total.append(elapsed)
            print(f"run {i}: raw {raw[-1]:.2f} s, {'+'.join(stages)} {took:.2f} s, pipeline {elapsed:.2f} s",
                  flush=True)
    raw_s = statistics.median(raw)
    stage_s, total_s = statistics.median(stage), statistics.median(total)
    print(f"file: {args.file.name}, {duration:.1f} s of audio, median of {args.repeat}")
    print(f"raw faster-whisper:  {raw_s:6.2f} s  RTF {raw_s / duration:.3f}")
    label = "+".join(stages) + " stage"
    print(f"{label:<21}{stage_s:6.2f} s  RTF {stage_s / duration:.3f}  ({stage_s / raw_s:.2f}x raw)")
    print(f"whole pipeline:      {total_s:6.2f} s  RTF {total_s / duration:.3f}  ({total_s / raw_s:.2f}x raw)")


if __name__ == "__main__":
    main()
