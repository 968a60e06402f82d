"""A webhook receiver on 127.0.0.1 for the tests, as a case system would run one: it checks every delivery's
signature, refuses the first attempt of each delivery (one event for one webhook) with a 500, so every one is
retried once, and counts what it accepted per delivery."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ingestflow.notify import signing


@dataclass
class Received:
    secret: str = ""
    refuse_first: bool = True
    answer_after_s: float = 0.0  # sleep this long before answering (a receiver that times out)
    attempts: Counter[str] = field(default_factory=Counter)  # delivery id -> requests seen
    accepted: Counter[str] = field(default_factory=Counter)  # delivery id -> 2xx answers given
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # delivery id -> the event's body
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < count:
            assert time.monotonic() < deadline, f"accepted {dict(self.accepted)} of {count} deliveries in {timeout} s"
            time.sleep(0.1)

    def by_event(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for body in self.events.values():
            out.setdefault(body["event"], []).append(body)
        return out


@contextmanager
def receiver(received: Received) -> Iterator[str]:
    """Serves until the block ends; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if received.answer_after_s:
                time.sleep(received.answer_after_s)
            if not signing.verify(received.secret, body, self.headers.get(signing.SIGNATURE, ""),
                                  self.headers.get(signing.TIMESTAMP, "")):
                with received.lock:
                    received.bad_signatures += 1
                self._answer(401)
                return
            delivery = self.headers.get(signing.DELIVERY, "")
            with received.lock:
                received.attempts[delivery] += 1
                refuse = received.refuse_first and received.attempts[delivery] == 1
                if not refuse:
                    received.accepted[delivery] += 1
                    received.events[delivery] = json.loads(body)
            self._answer(500 if refuse else 200)

        def _answer(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/ingestflow"
    finally:
        server.shutdown()
        server.server_close()
