"""A fresh process whose first two chunk tasks start together (a Dask worker after a crash or a recycle) must
build its chunker in both threads: the kill matrix once found every chunk of such a worker failing with
"HuggingFaceTokenizer is not fully defined" after two threads imported transformers and docling together."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import threading
from ingestflow.models import embedding_model_path
from ingestflow.parsing import chunking

errors, start = [], threading.Barrier(4)

def first_use(i):
    start.wait()
    try:
        if i % 2:
            chunking._chunker(str(embedding_model_path(None)), 256)
        else:
            chunking.count_tokens("Alice met Bob in Paris.")
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=first_use, args=(i,)) for i in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ERRORS", errors)
"""


def test_two_threads_building_the_chunker_in_a_fresh_process_both_succeed() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ERRORS []" in done.stdout, done.stdout[-2000:]
