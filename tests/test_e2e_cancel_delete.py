"""Cancel and delete are final: caught while each stage runs, a document leaves no vectors, no graph facts and
(deleted) no files behind, and nothing of it is written back once the stage it interrupted has finished."""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client

from ingestflow.stores.graph import writer_lock_path
from tests.conftest import FIXTURES, Api, write_wav
from tests.test_e2e_jobs import long_note, wait_for

pytestmark = pytest.mark.slow

# Each stage once, cancel and delete taking turns; the graph stage both ways (it is caught deterministically,
# behind the writer lock the test holds). Improve is milliseconds without an LLM: there is nothing to catch.
CASES = [("parse", "delete"), ("chunk", "cancel"), ("embed", "delete"), ("extract-entities", "cancel"),
         ("graph", "delete"), ("graph", "cancel"), ("transcribe", "cancel")]


def long_recording(path: Path, repeats: int = 12) -> Path:
    """JFK's 11 s, twelve times over: a transcription that lasts long enough to be interrupted."""
    from faster_whisper import decode_audio

    pcm = np.tile(decode_audio(str(FIXTURES / "audio" / "jfk.flac"), sampling_rate=16000), repeats)
    return write_wav(path, (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())


@contextmanager
def graph_writer_held(settings: Any) -> Iterator[Callable[[], None]]:
    """The graph writer lock, taken as the stages take it; yields the function that lets it go early."""
    lock_path = writer_lock_path(settings)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lambda: fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def act(api: Api, action: str, up: dict[str, Any]) -> None:
    if action == "delete":
        r = api.http.delete(f"/v1/documents/{up['document_id']}")
        assert r.status_code == 204, r.text
    else:
        r = api.http.post(f"/v1/jobs/{up['job_id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text


def settle(settings: Any, timeout: float = 240) -> None:
    """Until the Dask workers run nothing: the interrupted stage has finished whatever it was going to do."""
    deadline = time.monotonic() + timeout
    with Client(settings.dask_scheduler, timeout=30) as dask:
        while any(dask.processing().values()):
            assert time.monotonic() < deadline, dask.processing()
            time.sleep(0.5)


@pytest.mark.parametrize(("stage", "action"), CASES, ids=[f"{a}-during-{s}" for s, a in CASES])
def test_cancel_or_delete_during_a_stage_leaves_nothing(alice: Api, stack: Any, tmp_path: Path, stage: str,
                                                        action: str) -> None:
    from ingestflow.refs import work_dir
    from ingestflow.stores.graph import open_graph_store
    from ingestflow.stores.storage import blob_path
    from ingestflow.stores.vectors import open_vector_store

    settings = stack.settings
    tag = f"{action}-{stage}"
    source = (long_recording(tmp_path / f"{tag}.wav") if stage == "transcribe"
              else long_note(tmp_path / f"{tag}.md", tag, 1500))
    held = graph_writer_held(settings) if stage == "graph" else nullcontext(lambda: None)
    with held as release:
        up = alice.upload(source).json()
        wait_for(alice, up["job_id"], lambda j: any(s["name"] == stage and s["state"] == "running"
                                                    for s in j["stages"]), timeout=300)
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(act, alice, action, up)
            if stage == "graph":
                # The cancel is committed at once; its purge then waits for the writer lock, as the graph
                # stage does: whichever gets it first, the stage finds the job cancelled under the lock.
                time.sleep(1.5)
                release()
            answer.result()
    settle(settings)
    time.sleep(2)  # the flow process records (or drops) the stage's result after Dask hands it back

    assert open_vector_store(settings).count(alice.user_id, up["document_id"]) == 0
    store = open_graph_store(settings, read_only=True)
    try:
        counts = store.counts(alice.user_id)
    finally:
        store.close()
    assert (counts.documents, counts.chunks, counts.mentions) == (0, 0, 0), counts
    if action == "delete":
        assert alice.get(f"/v1/documents/{up['document_id']}").status_code == 404
        assert not work_dir(settings, up["document_id"]).exists()
        assert not blob_path(settings.files_dir, hashlib.sha256(source.read_bytes()).hexdigest()).exists()
    else:
        job = alice.get(f"/v1/jobs/{up['job_id']}").json()
        assert job["status"] == "cancelled", job
        flags = alice.get(f"/v1/documents/{up['document_id']}/indexing-status").json()
        assert not flags["vector_indexed"] and not flags["graph_indexed"], flags
        # Cancelled, not deleted: the document stays; a later case must not count it.
        assert alice.http.delete(f"/v1/documents/{up['document_id']}").status_code == 204
