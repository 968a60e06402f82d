"""ingestflow/heap.py: the memory a process freed goes back to the system (the soak's growth, issue 28)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a process of its own: 200 MiB of 10 KiB blocks (malloc's heap, below its mmap threshold), every 50th kept
# so that the freed memory sits below live blocks where glibc's own top-of-heap trim cannot reach it.
_SCRIPT = """
import psutil
from ingestflow import heap
proc = psutil.Process()
blocks = [bytearray(10_240) for _ in range(20_000)]
kept = blocks[::50]
del blocks
before = proc.memory_info().rss
heap.trim()
after = proc.memory_info().rss
print(before >> 20, after >> 20, len(kept))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_trim_gives_freed_heap_back() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
    before, after, _ = (int(n) for n in out.split())
    assert before - after > 150, (before, after)  # of the 196 MiB freed
