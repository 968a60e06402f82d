"""Live transcription bench (issue 27): each recording streamed in real time over `WS /v1/ws/transcribe` to a
throwaway stack, as 16 kHz PCM frames of --frame-ms.

Prints, per recording and over all of them:
- the delay from a word's end in the audio to the first message (partial or final) that holds it, p50 and p95
  (a word's end is taken from the pipeline's own transcript of the stored call; a message "holds" a word when the
  words settled so far plus the partial, aligned to that transcript, match it);
- the final text's word error rate against the same call transcribed whole by the pipeline (the upload path), and,
  for the generated recordings whose script is known, both texts' WER against the script;
- the CPU seconds of the stack's processes while the calls streamed.

    .venv/bin/python bench/live_bench.py                 # jfk.flac and two generated calls of 80-90 s
    .venv/bin/python bench/live_bench.py --files a.mp3 b.wav
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
from common import ROOT, bench_stack, wait_job
from cpu import CpuMeter
from websockets.sync.client import connect

from ingestflow.text import word_error_rate, words_of

SHOWN_SLACK_S = 0.2  # segment ends and word ends from two decodes differ by this much
FIXTURES = ROOT.parent / "shared" / "fixtures"
DEFAULT = [FIXTURES / "audio" / "jfk.flac", ROOT / "tests/data/eval/dev_gp_surgery_call.mp3",
           ROOT / "tests/data/eval/team_meeting.mp3"]


def scripts() -> dict[str, str]:
    """The generated recordings' scripts (scripts/make_eval_fixtures.py), by file name."""
    spec = importlib.util.spec_from_file_location("make_eval_fixtures", ROOT / "scripts/make_eval_fixtures.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {}
    for group in (module.RECORDINGS, module.DEV_RECORDINGS):
        for name, rec in group.items():
            out[name] = " ".join(sentence for topic in rec["topics"] for _, sentence in topic)
    return out


def stream(base_ws: str, key: str, path: Path, frame_ms: int) -> tuple[list[tuple[float, dict[str, Any]]], float]:
    """Stream a file in real time; (each message with its time from the first frame, the first frame's time)."""
    from faster_whisper.audio import decode_audio

    audio = np.asarray(decode_audio(str(path), sampling_rate=16_000))
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    frame = 16_000 * frame_ms // 1000 * 2
    messages: list[tuple[float, dict[str, Any]]] = []
    query = urlencode({"token": key, "title": f"live bench {path.name}"})
    with connect(f"{base_ws}/v1/ws/transcribe?{query}", open_timeout=30, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        t0 = time.monotonic()

        def receive() -> None:
            for raw in ws:
                messages.append((time.monotonic() - t0, json.loads(raw)))

        reader = threading.Thread(target=receive)
        reader.start()
        for i, at in enumerate(range(0, len(pcm), frame)):
            time.sleep(max(0.0, t0 + (i + 1) * frame_ms / 1000 - time.monotonic()))  # the frame's audio has passed
            ws.send(pcm[at:at + frame])
        ws.send(json.dumps({"type": "stop"}))
        reader.join(timeout=300)
    return messages, t0


def delays(messages: list[tuple[float, dict[str, Any]]], ref: list[tuple[str, float]]) -> tuple[list[float],
                                                                                                  list[float]]:
    """For each word of the reference, the time from the second its speaking ended to the first message that
    (1) shows text over that second (the settled segments' or the partial's end reaches it, whatever the words),
    and (2) holds the word itself (the words settled so far plus the partial, aligned to the reference)."""
    ref_words = [w for w, _ in ref]
    right: dict[int, float] = {}
    shown: dict[int, float] = {}
    settled: list[str] = []
    settled_end = 0.0
    for at, message in messages:
        if message["type"] not in ("final", "partial"):
            continue
        text = " ".join(s["text"] for s in message["segments"])
        reach = max([settled_end, *(s["end"] for s in message["segments"])])
        if message["type"] == "final":
            settled += words_of(text)
            settled_end, heard = reach, settled
        else:
            heard = settled + words_of(text)
        for i, (_, end) in enumerate(ref):
            if end <= reach + SHOWN_SLACK_S:
                shown.setdefault(i, at - end)
        matcher = difflib.SequenceMatcher(a=ref_words, b=heard, autojunk=False)
        for block in matcher.get_matching_blocks():
            for i in range(block.a, block.a + block.size):
                right.setdefault(i, at - ref[i][1])
    return list(shown.values()), list(right.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", type=Path, default=DEFAULT)
    parser.add_argument("--frame-ms", type=int, default=100)
    parser.add_argument("--save", type=Path, help="a folder for each recording's messages and reference words")
    args = parser.parse_args()
    known = scripts()
    with bench_stack() as (_settings, base, key, stack):
        ws_base = base.replace("http://", "ws://")
        streamed = []
        meter = CpuMeter(stack)
        for path in args.files:
            messages, _ = stream(ws_base, key, path, args.frame_ms)
            stored = messages[-1][1]
            assert stored["type"] == "document", stored
            streamed.append((path, messages, stored))
            print(f"{path.name}: streamed {stored['duration_s']:.1f} s, {len(messages)} messages", flush=True)
        print(f"while streaming, {meter.report()}")
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        all_shown: list[float] = []
        all_right: list[float] = []
        for path, messages, stored in streamed:
            job = wait_job(base, key, stored["job_id"])
            assert job["status"] == "completed", job
            whole = http.get(f"/v1/documents/{stored['document_id']}/transcript", params={"version": "raw"}).json()
            ref = [(w, float(word["end"])) for seg in whole["segments"] for word in seg["words"]
                   for w in words_of(word["word"])]
            shown, right = delays(messages, ref)
            all_shown += shown
            all_right += right
            finals = words_of(" ".join(s["text"] for _, m in messages if m["type"] == "final" for s in m["segments"]))
            whole_words = [w for w, _ in ref]
            line = (f"{path.name}: a word's second first shown p50 {_p(shown, 50)}, p95 {_p(shown, 95)}; the word "
                    f"itself first held p50 {_p(right, 50)}, p95 {_p(right, 95)} ({len(right)}/{len(ref)} words); "
                    f"final vs whole upload WER {100 * word_error_rate(whole_words, finals):.1f}%")
            if path.name in known:
                script = words_of(known[path.name])
                line += (f"; against the script: live {100 * word_error_rate(script, finals):.1f}%, "
                         f"whole {100 * word_error_rate(script, whole_words):.1f}%")
            print(line, flush=True)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"{path.stem}.json").write_text(json.dumps({"messages": messages, "reference": ref}))
        print(f"all: first shown p50 {_p(all_shown, 50)}, p95 {_p(all_shown, 95)}; first held p50 "
              f"{_p(all_right, 50)}, p95 {_p(all_right, 95)} over {len(all_right)} words")


def _p(values: list[float], q: int) -> str:
    return f"{np.percentile(values, q):.2f} s" if values else "-"


if __name__ == "__main__":
    main()
