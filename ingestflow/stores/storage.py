"""Content-addressed file store: a blob's path is its SHA-256, written once and fsync'd before use."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024
SPOOL_PREFIX = ".upload-"
# A live upload's spool file is seconds old; one this old was left by a process killed mid-copy.
STALE_SPOOL_S = 3600.0


class TooLarge(Exception):
    pass


def blob_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool(src: BinaryIO, root: Path, max_bytes: int) -> tuple[Path, str, int]:
    """Copy an upload to a temporary file under root, hashing as it goes; nothing is buffered whole."""
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=root, prefix=SPOOL_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            while block := src.read(CHUNK):
                size += len(block)
                if size > max_bytes:
                    raise TooLarge(f"file exceeds the {max_bytes} byte limit")
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), digest.hexdigest(), size


def seal(path: Path) -> tuple[str, int]:
    """A spool file written some other way (a live call's WAV): fsync'd, with its hash and size, as spool() gives."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
        os.fsync(fh.fileno())
    return digest.hexdigest(), path.stat().st_size


def commit(tmp: Path, root: Path, sha256: str) -> Path:
    """Move a spooled file to its content address; identical bytes already there are kept as they are."""
    dest = blob_path(root, sha256)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        tmp.unlink(missing_ok=True)
        return dest
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return dest


def sweep_stale_spools(root: Path, older_than_s: float = STALE_SPOOL_S) -> int:
    """Remove half-copied uploads that a killed process left behind (any other failure removes its own)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for path in root.glob(f"{SPOOL_PREFIX}*") if root.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def remove_if_unreferenced(root: Path, sha256: str, still_used: bool) -> None:
    if not still_used:
        blob_path(root, sha256).unlink(missing_ok=True)
