"""Docling conversions in a child process that is killed at the wall-clock limit.

Why a child: stage tasks run in Dask worker threads, and nothing stops a thread stuck in a C extension or a
runaway recursion (Prefect's task timeout only logs that it cannot). A process can be killed, and its
memory goes with it. Why warm: starting Python and importing docling costs seconds on this machine, so each
worker process keeps its children and hands them one job after another; a killed or crashed child is
replaced (at once, so the next parse finds it importing or ready), and so is one that has done its share of
parses or grown past its memory bound (`Recycle`) although it gives its freed heap back after each parse.
One child per concurrent parse: two worker threads parsing at once use two children, and neither waits behind
the other's clock.

Why subprocess and not multiprocessing: Dask worker processes are daemonic, and multiprocessing refuses to
start children from a daemonic process. The job and the reply travel as pickles over a socket pair; the
child writes the parsed JSON and markdown itself, so only paths and a page count cross.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from ingestflow import heap
from ingestflow.errors import LimitExceeded, TransientError
from ingestflow.parsing.limits import Limits, setting_name

if TYPE_CHECKING:
    from ingestflow.settings import Settings

log = logging.getLogger(__name__)

# Python start plus the docling import; on a loaded 2-core machine ~10 s. Not the document's fault if slow.
_START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Job:
    source: Path
    fmt: str
    parsed_json: Path
    content_md: Path
    artifacts_path: Path | None
    ocr: bool
    limits: Limits


@dataclass(frozen=True)
class Recycle:
    """When a warm child is replaced after a parse. The Dask worker's memory limit does not see children."""

    max_parses: int
    max_rss_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Recycle:
        return cls(settings.parse_child_max_parses, settings.parse_child_max_rss_bytes)


@dataclass(frozen=True)
class Parsed:
    pages: int | None
    notes: list[str]  # what the user should know: pages without text, OCR off or failed, nothing found


def run(job: Job, timeout_s: float, recycle: Recycle) -> Parsed:
    """Parse `job` in a warm child; returns its page count and notes. The clock starts when a ready child has the job,
    so a cold start is not charged to the document. Raises what the parse raised, LimitExceeded when the
    clock runs out (the child is killed), TransientError when the child dies of something else."""
    child = _checkout()
    reply: tuple[str, Any] | None = None
    try:
        child.wait_ready()
        child.conn.send(job)
        if not child.conn.poll(timeout_s):
            raise LimitExceeded(
                f"parsing took longer than {timeout_s:g} s and was stopped "
                f"(limit {setting_name('parse_timeout_s')}={timeout_s:g})"
            )
        try:
            reply = child.conn.recv()
        except (EOFError, OSError):
            raise TransientError(f"the parse process died while parsing ({child.stop()})") from None
        child.parses += 1
    finally:
        # Killed at the limit, died, or this thread was interrupted: it cannot be reused. Or it has done enough.
        if reply is None or child.worn_out(recycle):
            child.stop()
            _replace()
        else:
            _checkin(child)
    kind, value = reply
    if kind == "error":
        raise value
    parsed: Parsed = value
    return parsed


# ------------------------------------------------------------------------------------------- parent side


class _Child:
    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"from ingestflow.parsing.worker import serve; serve({fd})"],
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
            )
        self.conn = Connection(mine.detach())
        self.ready = False
        self.parses = 0

    def wait_ready(self) -> None:
        if self.ready:
            return
        if not self.conn.poll(_START_TIMEOUT_S):
            self.stop()
            raise TransientError(f"the parse process did not start within {_START_TIMEOUT_S:g} s")
        try:
            self.conn.recv()
        except (EOFError, OSError):
            raise TransientError(f"the parse process failed to start ({self.stop()})") from None
        self.ready = True

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        try:
            return int(psutil.Process(self.proc.pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return 0

    def worn_out(self, recycle: Recycle) -> bool:
        if self.parses >= recycle.max_parses:
            log.info("parse process %d replaced after %d parses", self.proc.pid, self.parses)
            return True
        if (rss := self.rss()) > recycle.max_rss_bytes:
            log.info("parse process %d replaced at %d MiB after %d parses", self.proc.pid, rss >> 20, self.parses)
            return True
        return False

    def stop(self) -> str:
        """Kill (a no-op if it is gone) and reap it; says how it ended."""
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        self.conn.close()
        if code < 0:
            name = signal.Signals(-code).name
            return f"killed by {name}" + (", perhaps for lack of memory" if name == "SIGKILL" else "")
        return f"exited with status {code}"


_lock = threading.Lock()
_idle: list[_Child] = []


def _checkout() -> _Child:
    with _lock:
        while _idle:
            child = _idle.pop()
            if child.alive():
                return child
            child.stop()  # died while idle (OOM killer): reap it, try the next
    return _Child()


def _checkin(child: _Child) -> None:
    with _lock:
        _idle.append(child)


def _replace() -> None:
    """Start the replacement now: its docling import overlaps whatever the worker does next."""
    _checkin(_Child())


@atexit.register
def _shutdown() -> None:
    with _lock:
        children, _idle[:] = list(_idle), []
    for child in children:
        child.stop()


# -------------------------------------------------------------------------------------------- child side


def serve(fd: int) -> None:
    """The child's loop: warm up, then parse one job at a time until the parent goes away."""
    # Ctrl-C goes to the whole process group; whether a parse stops is the parent's call, not the terminal's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    logging.basicConfig(level=logging.WARNING, format="parse[%(process)d] %(levelname)s %(name)s: %(message)s")
    conn = Connection(fd)
    import docling.document_converter  # noqa: F401  the seconds of import, before any job's clock starts

    from ingestflow.parsing import ocr
    from ingestflow.settings import get_settings

    if get_settings().parse_child_warm_ocr:
        ocr.warm()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent closed its end or exited
            return
        try:
            reply: tuple[str, Any] = ("ok", parse_to_files(job))
        except Exception as exc:
            reply = ("error", _portable(exc))
        # What the parse freed goes back to the system before the parent reads this process's size: kept by the
        # allocator, it was 582 of a child's 1,241 MiB after an OCR'd PDF (ingestflow/heap.py).
        heap.trim()
        conn.send(reply)


def parse_to_files(job: Job) -> Parsed:
    """Check the limits, convert, write parsed JSON and markdown; the page count and the notes. Runs in the child
    (and in-process in tests that compare the two)."""
    from ingestflow.atomic_files import write_atomic
    from ingestflow.detect import IMAGE_FORMATS, TEXT_ENCODED
    from ingestflow.parsing import limits
    from ingestflow.parsing.conversion import convert_detailed, to_markdown
    from ingestflow.parsing.images import image_to_pdf
    from ingestflow.parsing.persistence import save_document
    from ingestflow.text_encoding import as_utf8

    with tempfile.TemporaryDirectory(prefix="ingestflow-parse-") as tmp:
        source, fmt = job.source, job.fmt
        if fmt in TEXT_ENCODED:  # read in the encoding it was saved in; the limits and docling see UTF-8
            data = job.source.read_bytes()
            utf8 = as_utf8(data, fmt)
            if utf8 != data:
                source = Path(tmp) / job.source.name  # the same name: docling names the document after it
                source.write_bytes(utf8)
        elif fmt in IMAGE_FORMATS:  # a page per frame, OCR'd as a scanned PDF is
            source, fmt = Path(tmp) / f"{job.source.stem}.pdf", "pdf"
            image_to_pdf(job.source, source, job.limits.max_pages)
        limits.check(source, fmt, job.limits)
        conversion = convert_detailed(source, fmt, artifacts_path=job.artifacts_path, ocr=job.ocr)
    doc = conversion.document
    save_document(doc, job.parsed_json)
    write_atomic(job.content_md, to_markdown(doc))
    return Parsed(len(doc.pages) if getattr(doc, "pages", None) else None, conversion.notes)


def _portable(exc: Exception) -> BaseException:
    """The exception itself when it survives pickling (ours always do), else its type, message and verdict."""
    from ingestflow.errors import IngestError, crossable

    if not isinstance(exc, IngestError):
        log.warning("parse failed", exc_info=exc)
    return crossable(exc)


def _exit_with_parent() -> None:
    """An idle child sees its parent go as EOF on the socket; a busy one reads nothing until its parse ends.
    Noticing the re-parenting ends a long parse that nobody waits for any more (the parent died by -9)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
