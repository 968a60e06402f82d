"""Benchmark: real-time factor of the recording pipeline against the raw faster-whisper call on the same file.

    .venv/bin/python bench/audio_bench.py [--file PATH] [--repeat 3]

RTF = processing seconds / audio seconds (lower is faster). Three figures per file:
  raw        ingestflow.audio.transcribe() in this process, model warm (the model loop alone)
  stage      the transcribe task's own run time inside the pipeline (from its Prefect task run)
  pipeline   upload -> job completed through the API (transcribe, improve, chunk, embed, entities, graph)
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path

import httpx
from common import ROOT, bench_stack, wait_job

DEFAULT = ROOT.parent / "shared" / "fixtures" / "audio" / "jfk.flac"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from ingestflow import audio

    duration = audio.probe(args.file).duration_s
    audio.transcribe(args.file)  # warm the model, as a long-lived Dask worker is
    raw = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        audio.transcribe(args.file)
        raw.append(time.perf_counter() - t0)
    raw_s = statistics.median(raw)

    with bench_stack() as (_settings, base, key):
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        stage, total = [], []
        for i in range(args.repeat + 1):
            data = args.file.read_bytes() + b"\0" * (i + 1)  # distinct bytes: not a duplicate upload
            t0 = time.perf_counter()
            r = http.post("/v1/documents", files={"file": (args.file.name, data)})
            r.raise_for_status()
            job = wait_job(base, key, r.json()["job_id"])
            elapsed = time.perf_counter() - t0
            assert job["status"] == "completed", job
            tr = next(s for s in job["stages"] if s["name"] == "transcribe")
            started, finished = datetime.fromisoformat(tr["started_at"]), datetime.fromisoformat(tr["finished_at"])
            took = (finished - started).total_seconds()
            if i:  # the first run warms the Dask worker's models
                stage.append(took)
                total.append(elapsed)
    stage_s, total_s = statistics.median(stage), statistics.median(total)
    print(f"file: {args.file.name}, {duration:.1f} s of audio, median of {args.repeat}")
    print(f"raw faster-whisper:  {raw_s:6.2f} s  RTF {raw_s / duration:.3f}")
    print(f"transcribe stage:    {stage_s:6.2f} s  RTF {stage_s / duration:.3f}  ({stage_s / raw_s:.2f}x raw)")
    print(f"whole pipeline:      {total_s:6.2f} s  RTF {total_s / duration:.3f}  ({total_s / raw_s:.2f}x raw)")


if __name__ == "__main__":
    main()
