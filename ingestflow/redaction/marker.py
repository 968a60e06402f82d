"""Which derived files hold redacted text: the redact stage notes the SHA-256 of each file it wrote. A file
that does not match (fresh from a re-run's parse, before the redact stage has come round again) is never
served for a redacted document, and the stage tells its own output from a fresh one by it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ingestflow.atomic_files import write_atomic

MARKER = "redaction.json"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(work_dir: Path) -> dict[str, str]:
    marker = work_dir / MARKER
    try:
        return dict(json.loads(marker.read_text()))
    except (OSError, ValueError):
        return {}


def is_redacted(path: Path) -> bool:
    """Whether the file is the redact stage's own output, as it wrote it."""
    return path.exists() and written(path.parent).get(path.name) == digest(path)


def note(work_dir: Path, *names: str) -> None:
    write_atomic(work_dir / MARKER, json.dumps({n: digest(work_dir / n) for n in names}))
