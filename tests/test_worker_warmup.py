"""A fresh Dask worker takes its first tasks with its libraries already imported (ingestflow/shell/warmup.py): a real
scheduler and a real `dask worker` with the stack's preload, restarted by its nanny again and again (as after a
crash or a recycle), each time given a chunk, an embed and a transcribe task at the same moment, on as many
threads. Before the preload, a fresh worker's first concurrent imports of transformers left docling's tokenizer
class undefined and every chunk task of that process failed (issue 21); without the preload this test fails so in
its first round ("HuggingFaceTokenizer is not fully defined")."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROUNDS = 6


def chunk_task() -> int:
    from docling_core.types.doc import DocItemLabel, DoclingDocument

    from ingestflow.parsing import chunking

    doc = DoclingDocument(name="note")
    doc.add_heading("Repairs")
    for i in range(20):
        doc.add_text(label=DocItemLabel.PARAGRAPH, text=f"The bike's rear wheel {i} was trued and its chain oiled.")
    return len(chunking.chunk(doc, max_tokens=64))


def embed_task() -> int:
    from ingestflow.models import embedding_model

    return len(embedding_model(None).encode(["the dentist moved the appointment to Tuesday"])[0])


def transcribe_task(path: str) -> str:
    from ingestflow.audio import whisper

    return " ".join(s["text"] for s in whisper.transcribe(path, device="cpu").segments)


@pytest.fixture
def worker_cluster(tmp_path: Path) -> Iterator[str]:
    port = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 60
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_CONFIG": str(ROOT / "deployments" / "dask.yaml")}
    logs = (tmp_path / "scheduler.log").open("wb"), (tmp_path / "worker.log").open("wb")
    procs = [
        subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--dashboard-address", ":0"], stdout=logs[0], stderr=subprocess.STDOUT, env=env, cwd=ROOT),
        subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "3", "--preload",
                          "ingestflow.shell.warmup", "--local-directory", str(tmp_path)], stdout=logs[1],
                         stderr=subprocess.STDOUT, env=env, cwd=ROOT),
    ]
    try:
        yield address
    finally:
        for proc in procs[::-1]:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])


def test_a_fresh_worker_runs_chunk_embed_and_transcribe_at_once(worker_cluster: str) -> None:
    from distributed import Client, wait

    jfk = str(FIXTURES / "audio" / "jfk.flac")
    with Client(worker_cluster, timeout=60) as client:
        client.wait_for_workers(1, timeout=300)
        for round_ in range(ROUNDS):
            if round_:
                t0 = time.monotonic()
                client.restart(timeout=300)  # the nanny starts a fresh process, which warms up again
                client.wait_for_workers(1, timeout=300)
                print(f"round {round_}: fresh worker in {time.monotonic() - t0:.1f}s")
            futures = [client.submit(chunk_task, pure=False), client.submit(embed_task, pure=False),
                       client.submit(transcribe_task, jfk, pure=False)]
            wait(futures, timeout=300)
            errors = [f.exception() for f in futures if f.status != "finished"]
            assert not errors, f"round {round_}: {errors!r}"
            chunks, dims, text = (f.result() for f in futures)
            assert chunks >= 2 and dims == 384 and "ask not what your country can do for you" in text.lower()
