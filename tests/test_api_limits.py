"""Hostile clients against the real app, served by a real uvicorn (so a client can really hang up mid-body) on a
real PostgreSQL and a real Chroma server: the per-owner quota of stored bytes, upload bodies that stop mid-way,
and the per-key rate limits. Every refusal must leave nothing behind: no document row, no blob, no spool file
in the files directory, no temporary file of the request still open. Fast tier."""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ingestflow.settings import Settings
from ingestflow.stores import storage
from tests.conftest import api_processes, served_app

PORT_BASE = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000"))
PORT = PORT_BASE + 47
SECOND_PORT = PORT_BASE + 49  # a second API process on the same database
QUOTA = 300_000
UPLOAD_BURST, QUERY_BURST, RATE = 5, 3, 0.2  # one token per 5 s: a test's quick requests see no refill
BODY_IDLE_S = 2.0


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT,
                    STORAGE_QUOTA_BYTES=str(QUOTA), UPLOAD_RATE_PER_S=str(RATE), UPLOAD_BURST=str(UPLOAD_BURST),
                    QUERY_RATE_PER_S=str(RATE), QUERY_BURST=str(QUERY_BURST),
                    BODY_IDLE_TIMEOUT_S=str(BODY_IDLE_S)) as settings:
        yield settings


def new_key(settings: Settings, name: str) -> str:
    """A new user's API key (budgets and quotas are per owner, so each test starts with full ones)."""
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope

    with session_scope(settings.sqlalchemy_url) as db:
        return create_key(db, name)[1]


def client(settings: Settings, name: str) -> httpx.Client:
    key = new_key(settings, name)
    return httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def note(size: int, tag: str) -> bytes:
    line = f"{tag}: Ada Lovelace wrote to Charles Babbage about the engine.\n".encode()
    return (f"# Note {tag}\n\n".encode() + line * (size // len(line) + 1))[:size]


def upload(http: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return http.post("/v1/documents", files={"file": (name, data)})


def stored(settings: Settings, http: httpx.Client) -> list[str]:
    """The caller's documents' hashes, as the API lists them."""
    from sqlalchemy import select

    from ingestflow.db import Document, session_scope

    items = http.get("/v1/documents", params={"limit": 500}).json()["items"]
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return list(db.scalars(select(Document.sha256).where(Document.id.in_([d["id"] for d in items]))))


def assert_nothing_of(settings: Settings, *contents: bytes) -> None:
    from sqlalchemy import select

    from ingestflow.db import Document, session_scope

    shas = [hashlib.sha256(c).hexdigest() for c in contents]
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        assert not list(db.scalars(select(Document.id).where(Document.sha256.in_(shas))))
    for sha in shas:
        assert not storage.blob_path(settings.files_dir, sha).exists()
    assert not list(settings.files_dir.glob(f"{storage.SPOOL_PREFIX}*"))


def open_temp_files() -> set[str]:
    """Files of this process (the server's) open under the temporary directory: where Starlette spools bodies."""
    import psutil

    tmp = os.path.realpath(tempfile.gettempdir())
    return {f.path for f in psutil.Process().open_files() if f.path.startswith(tmp)}


# ------------------------------------------------------------------------------------------------ quota


def test_quota_refuses_with_a_reason_and_stores_nothing(served: Settings) -> None:
    http = client(served, "quota")
    kept, big, small = note(200_000, "kept"), note(150_000, "big"), note(90_000, "small")
    assert upload(http, "kept.md", kept).status_code == 202
    refused = upload(http, "big.md", big)
    assert refused.status_code == 413, refused.text
    detail = refused.json()["detail"]
    assert "storage quota exceeded" in detail and f"{len(kept)} of its {QUOTA} bytes" in detail, detail
    assert_nothing_of(served, big)
    # The same bytes again take no room; what still fits is taken.
    again = upload(http, "kept.md", kept)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert upload(http, "small.md", small).status_code == 202
    assert sorted(stored(served, http)) == sorted(hashlib.sha256(c).hexdigest() for c in (kept, small))


def test_parallel_uploads_of_one_owner_cannot_share_the_same_room(served: Settings) -> None:
    http = client(served, "quota-race")
    files = [note(100_000, f"race-{i}") for i in range(UPLOAD_BURST)]  # 500 kB asked at once, 300 kB allowed
    with ThreadPoolExecutor(len(files)) as pool:
        codes = list(pool.map(lambda i: upload(http, f"race-{i}.md", files[i]).status_code, range(len(files))))
    assert sorted(codes) == [202, 202, 202, 413, 413], codes
    held = stored(served, http)
    assert len(held) == 3
    assert_nothing_of(served, *[f for f in files if hashlib.sha256(f).hexdigest() not in held])


# ---------------------------------------------------------------------------------------- bodies cut short


def _multipart(content: bytes, boundary: str = "cutboundary") -> tuple[bytes, bytes, bytes]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.md\"\r\n"
            f"Content-Type: text/markdown\r\n\r\n").encode()
    return head, content, f"\r\n--{boundary}--\r\n".encode()


def _request(settings: Settings, name: str, length: int) -> bytes:
    """An upload's request line and headers, announcing `length` bytes of body."""
    return (f"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\n"
            f"Authorization: Bearer {new_key(settings, name)}\r\n"
            f"Content-Type: multipart/form-data; boundary=cutboundary\r\nContent-Length: {length}\r\n\r\n").encode()


def _response(sock: socket.socket) -> str:
    """One whole HTTP response (status line, headers and the body its Content-Length announces)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        block = sock.recv(65536)
        if not block:
            break
        data += block
    return data.decode(errors="replace")


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _server_still_answers() -> None:
    # Its answer comes after the server has dealt with the request before it.
    assert httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=10).status_code == 200


def test_a_client_that_hangs_up_mid_body_leaves_nothing(served: Settings) -> None:
    content = note(3_000_000, "hang-up")  # past Starlette's 1 MB in memory: its spool file is on disk
    head, body, tail = _multipart(content)
    before = open_temp_files()
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.sendall(_request(served, "hang-up", len(head) + len(body) + len(tail)) + head + body[:2_000_000])
        time.sleep(0.5)  # the server has read and spooled what came
    _server_still_answers()
    time.sleep(0.5)
    assert_nothing_of(served, content, content[:2_000_000])
    assert open_temp_files() <= before


def test_a_multipart_body_without_its_end_is_refused_and_leaves_nothing(served: Settings) -> None:
    content = note(3_000_000, "no-end")
    head, body, _tail = _multipart(content)
    partial = head + body[:2_000_000]  # the body is complete as framed, the multipart is not
    before = open_temp_files()
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.settimeout(30)
        sock.sendall(_request(served, "no-end", len(partial)) + partial)
        answer = _response(sock)
    status = int(answer.split(" ", 2)[1])
    assert status in (400, 422), answer
    assert_nothing_of(served, content, content[:2_000_000])
    assert open_temp_files() <= before


def test_a_stalled_body_is_dropped_with_408_and_leaves_nothing(served: Settings) -> None:
    content = note(500_000, "stalled")
    head, body, tail = _multipart(content)
    before = open_temp_files()
    with socket.create_connection(("127.0.0.1", PORT)) as sock:
        sock.settimeout(BODY_IDLE_S + 20)
        sock.sendall(_request(served, "stalled", len(head) + len(body) + len(tail)) + head + body[:200_000])
        t0 = time.monotonic()
        answer = _response(sock)  # nothing more is sent: the server gives up
        waited = time.monotonic() - t0
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "nothing was stored" in answer
    assert BODY_IDLE_S - 0.5 <= waited < BODY_IDLE_S + 10
    assert_nothing_of(served, content, content[:200_000])
    assert open_temp_files() <= before


# ------------------------------------------------------------------------------------------- rate limits


def test_uploads_past_the_budget_get_429_with_retry_after(served: Settings) -> None:
    http = client(served, "upload-rate")
    files = [note(2_000, f"rate-{i}") for i in range(UPLOAD_BURST + 1)]
    codes = [upload(http, f"rate-{i}.md", f).status_code for i, f in enumerate(files[:-1])]
    assert codes == [202] * UPLOAD_BURST
    refused = upload(http, "one-more.md", files[-1])
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 1 / RATE
    assert "rate limit for uploads" in refused.json()["detail"]
    assert_nothing_of(served, files[-1])
    # Another key's owner has a budget of its own; queries are counted apart.
    assert upload(client(served, "upload-rate-other"), "other.md", files[-1]).status_code == 202
    assert http.get("/v1/search", params={"q": "Babbage"}).status_code == 200


def test_queries_past_the_budget_get_429_and_pass_after_retry_after(served: Settings) -> None:
    client(served, "query-warm").get("/v1/search", params={"q": "warm the embedding model"})
    http = client(served, "query-rate")
    codes = [http.get("/v1/search", params={"q": f"engine {i}"}).status_code for i in range(QUERY_BURST)]
    assert codes == [200] * QUERY_BURST
    refused = http.post("/v1/chat", json={"query": "who wrote to Babbage?"})  # chat shares the query budget
    assert refused.status_code == 429, refused.text
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 1 / RATE
    assert "rate limit for queries" in refused.json()["detail"]
    time.sleep(wait)
    assert http.get("/v1/search", params={"q": "engine again"}).status_code == 200


def test_a_budget_holds_across_api_processes(served: Settings) -> None:
    """The API runs several processes behind its port (`api_workers`), and replicas beside it: a key's owner
    spends one budget in all of them. With buckets in each process's memory, two processes let a key send two
    bursts."""
    # The served app's settings are in this process's environment while the module's fixture lives.
    with api_processes([SECOND_PORT], dict(os.environ)):
        key = new_key(served, "two-processes")
        first_http, second_http = (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            for port in (PORT, SECOND_PORT))
        files = [note(1_000, f"shared-{i}") for i in range(UPLOAD_BURST + 2)]
        half = UPLOAD_BURST // 2
        codes = [upload(first_http, f"shared-{i}.md", f).status_code for i, f in enumerate(files[:half])]
        codes += [upload(second_http, f"shared-{i}.md", f).status_code
                  for i, f in enumerate(files[half:UPLOAD_BURST], half)]
        assert codes == [202] * UPLOAD_BURST
        for http, data in zip((first_http, second_http), files[UPLOAD_BURST:], strict=True):
            refused = upload(http, "past-the-budget.md", data)
            assert refused.status_code == 429, refused.text
            assert_nothing_of(served, data)
