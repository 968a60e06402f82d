"""Files that readers never see half-written: a retried or killed stage leaves the old file or the new one."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh path beside `path` to write to; it replaces `path` when the block ends without an error, and is
    removed otherwise. The name is unique so that two writers of one file never write into each other's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(data, encoding="utf-8")
