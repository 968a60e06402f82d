"""Issue 26, part 4: keys that can be listed, expired and revoked. The real app served by uvicorn on a real
PostgreSQL: a revoked key is refused within the key cache's second (by the process it was revoked through, and by
another API process on the same database), an expired one at once, an open WebSocket on a revoked key is closed
within a pass, and each revocation is audited. Fast tier."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ingestflow.settings import Settings
from tests.conftest import api_processes, fresh_database, served_app

PORT = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 52


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT) as settings:
        yield settings


def _owner(settings: Settings, name: str) -> str:
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope

    with session_scope(settings.sqlalchemy_url) as db:
        return create_key(db, name, label="first")[1]


def _http(key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _refused_after(http: httpx.Client, limit_s: float) -> float:
    """Seconds until the key gets 401, asking every 50 ms."""
    t0 = time.monotonic()
    while http.get("/v1/keys").status_code != 401:
        assert time.monotonic() - t0 < limit_s, f"the key still worked after {limit_s} s"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_keys_are_listed_without_secrets_and_made_with_a_label_and_an_expiry(served: Settings) -> None:
    first = _http(_owner(served, "lister"))
    r = first.post("/v1/keys", json={"label": "case system", "expires_in_days": 30})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith("ifk_") and made["prefix"] == made["key"][:8] and made["label"] == "case system"
    listed = first.get("/v1/keys").json()
    assert [k["label"] for k in listed] == ["first", "case system"]
    assert [k["current"] for k in listed] == [True, False]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    expires = datetime.fromisoformat(listed[1]["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert _http(made["key"]).get("/v1/keys").json()[1]["current"] is True  # the new key works at once
    for bad in ({"expires_in_days": 0}, {"expires_in_days": "7"}, {"label": "a" * 201}):
        assert first.post("/v1/keys", json=bad).status_code == 422, bad


def test_a_revoked_key_is_refused_within_a_second_and_the_revocation_is_audited(served: Settings) -> None:
    first = _http(_owner(served, "revoker"))
    second_key = first.post("/v1/keys", json={"label": "leaked"}).json()
    leaked = _http(second_key["key"])
    assert leaked.get("/v1/keys").status_code == 200  # cached now: the cache must not keep it working
    assert first.delete(f"/v1/keys/{second_key['id']}").status_code == 204
    took = _refused_after(leaked, limit_s=2.0)
    print(f"\nrefused {took:.2f} s after the revocation")
    assert took <= served.key_cache_s + 0.3
    assert leaked.get("/v1/keys").json()["detail"] == "unknown, revoked or expired API key"
    assert first.get("/v1/keys").status_code == 200  # the owner's other key goes on working
    assert first.delete(f"/v1/keys/{second_key['id']}").status_code == 204  # again: nothing more happens
    [record] = first.get("/v1/audit", params={"action": "key_revoked"}).json()["items"]
    assert record["key_id"] == second_key["id"] and record["document_id"] is None
    assert record["title"] == f"API key {second_key['prefix']}… (leaked)" and record["actor"].startswith("key ")
    listed = {k["id"]: k for k in first.get("/v1/keys").json()}
    assert listed[second_key["id"]]["revoked_at"] is not None


def test_a_key_cannot_revoke_another_owners_and_may_revoke_itself(served: Settings) -> None:
    mine, theirs = _http(_owner(served, "self-revoker")), _http(_owner(served, "bystander"))
    their_id = theirs.get("/v1/keys").json()[0]["id"]
    assert mine.delete(f"/v1/keys/{their_id}").status_code == 404  # a foreign key is a missing one
    assert theirs.get("/v1/keys").status_code == 200
    own_id = mine.get("/v1/keys").json()[0]["id"]
    assert mine.delete(f"/v1/keys/{own_id}").status_code == 204
    _refused_after(mine, limit_s=2.0)


def test_an_expired_key_is_refused_at_once_even_while_cached(served: Settings) -> None:
    from ingestflow.db import ApiKey, session_scope, utcnow

    key = _owner(served, "expiring")
    http = _http(key)
    soon = utcnow() + timedelta(seconds=0.6)
    with session_scope(served.sqlalchemy_url) as db:
        row = db.query(ApiKey).filter(ApiKey.prefix == key[:8]).one()
        row.expires_at = soon
    assert http.get("/v1/keys").status_code == 200  # looked up and cached with its expiry
    time.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.05)
    assert http.get("/v1/keys").status_code == 401  # within the cache's second, refused all the same


def test_an_open_websocket_closes_when_its_key_is_revoked(served: Settings) -> None:
    first = _http(_owner(served, "socket-owner"))
    watcher = first.post("/v1/keys", json={"label": "dashboard"}).json()
    with connect(f"ws://127.0.0.1:{PORT}/v1/ws/jobs?token={watcher['key']}", open_timeout=10) as ws:
        assert first.delete(f"/v1/keys/{watcher['id']}").status_code == 204
        t0 = time.monotonic()  # the revocation
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=3)
        took = time.monotonic() - t0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "API key revoked or expired"
    print(f"\nsocket closed {took:.2f} s after the revocation")
    assert took <= 1.5
    # The other API process may have the key cached for key_cache_s after the revocation (the contract: refused
    # within that time on every process); a reconnect after it is refused wherever it lands.
    time.sleep(max(0.0, t0 + served.key_cache_s + 0.1 - time.monotonic()))
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{PORT}/v1/ws/jobs?token={watcher['key']}", open_timeout=10)
    assert refused.value.response.status_code == 403  # refused before the handshake completes


def test_keys_made_before_keys_had_ids_keep_working_after_the_upgrade(pg_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from ingestflow.auth import hash_key, user_for_key
    from ingestflow.db import get_engine, session_scope
    from ingestflow.migrate import alembic_config

    command.downgrade(alembic_config(pg_url), "0007")
    old = "ifk_made-before-ids"
    with get_engine(pg_url).begin() as conn:
        conn.execute(text("INSERT INTO users (id, name, created_at, redact_by_default, keep_original) "
                          "VALUES ('u1', 'old-owner', now(), false, false)"))
        conn.execute(text("INSERT INTO api_keys (key_hash, user_id, created_at) VALUES (:h, 'u1', now())"),
                     {"h": hash_key(old)})
    command.upgrade(alembic_config(pg_url), "head")
    with session_scope(pg_url) as db:
        user = user_for_key(db, old)
        assert user is not None and user.name == "old-owner"
        row = db.execute(text("SELECT id, prefix FROM api_keys")).one()
        assert len(row.id) == 32 and row.prefix == ""


def test_every_api_process_refuses_a_key_revoked_through_another(
        postgres_server: tuple[Path, int], chroma_server: int, tmp_path: Path) -> None:
    """Two API processes (uvicorn, as `ingestflow up` or a replica runs it) on one database: a key revoked through
    the first, and used on the second just before, is refused by the second within its key cache's second."""
    url = fresh_database(postgres_server, "keys_two_processes")
    env = dict(os.environ, INGESTFLOW_DATABASE_URL=url, INGESTFLOW_DATA_DIR=str(tmp_path),
               INGESTFLOW_CHROMA_PORT=str(chroma_server))
    ports = [PORT + 1, PORT + 2]
    with api_processes(ports, env):
        from ingestflow.auth import create_key
        from ingestflow.db import session_scope

        with session_scope(url) as db:
            key = create_key(db, "two-processes", label="leaked")[1]
        first, second = (httpx.Client(base_url=f"http://127.0.0.1:{p}", headers={"Authorization": f"Bearer {key}"},
                                      timeout=30) for p in ports)
        key_id = second.get("/v1/keys").json()[0]["id"]  # the second process has the key cached now
        assert first.delete(f"/v1/keys/{key_id}").status_code == 204
        t0 = time.monotonic()
        while second.get("/v1/keys").status_code != 401:
            assert time.monotonic() - t0 < 2.0, "the other process still took the key after 2 s"
            time.sleep(0.05)
        took = time.monotonic() - t0
        print(f"\nthe other process refused it {took:.2f} s after the revocation")
        assert took <= 1.3


def test_an_owner_setting_is_stored_and_holds_for_the_very_next_upload(served: Settings) -> None:
    """The caller comes from the key cache; a setting written to that copy lived only there (until the cache let it
    go, 5 minutes before this change) and was never stored."""
    from ingestflow.db import Document, User, session_scope

    http = _http(_owner(served, "policy-owner"))
    assert http.get("/v1/keys").status_code == 200  # the caller is cached now
    r = http.put("/v1/settings", json={"redact_by_default": True, "keep_original": True})
    assert r.status_code == 200 and r.json() == {"redact_by_default": True, "keep_original": True}
    up = http.post("/v1/documents", files={"file": ("note.md", b"# Note\n\nCall Amara on 07700 900456.\n")})
    assert up.status_code == 202, up.text
    with session_scope(served.sqlalchemy_url, read_only=True) as db:
        owner = db.query(User).filter(User.name == "policy-owner").one()
        assert (owner.redact_by_default, owner.keep_original) == (True, True)
        doc = db.get(Document, up.json()["document_id"])
        assert doc is not None and doc.redact and doc.keep_original
    assert http.get("/v1/settings").json() == {"redact_by_default": True, "keep_original": True}


def test_threads_that_miss_the_cache_together_share_one_lookup(served: Settings) -> None:
    """When a key's cached caller runs out under a burst, one thread looks it up and the others wait for its answer
    (each of a process's threads repeating the lookup was 10% of an API process's samples under 100 concurrent
    uploads). A revoked key is still refused: the shared answer is the database's."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager
    from threading import Barrier

    from ingestflow.auth import KeyCache
    from ingestflow.db import session_scope

    key = _owner(served, "single-flight")
    lookups: list[float] = []

    @contextmanager
    def counted() -> Iterator[Any]:
        lookups.append(time.monotonic())
        time.sleep(0.2)  # a slow round trip: every other thread arrives while it is out
        with session_scope(served.sqlalchemy_url, read_only=True) as db:
            yield db

    cache, threads = KeyCache(ttl_s=60), 16
    start = Barrier(threads)

    def ask(_: int) -> str | None:
        start.wait()
        caller = cache.caller(counted, key)
        return caller.owner.id if caller else None

    with ThreadPoolExecutor(threads) as pool:
        owners = list(pool.map(ask, range(threads)))
    assert len(lookups) == 1 and len(set(owners)) == 1 and owners[0] is not None
    assert cache.caller(counted, "if_unknown-key") is None and len(lookups) == 2  # unknown keys are not cached
    assert cache.caller(counted, "if_unknown-key") is None and len(lookups) == 3


def test_a_fresh_entry_is_answered_without_a_lookup(served: Settings) -> None:
    """What the API's event loop asks before it sends a lookup to the thread pool: a key's caller while its entry
    is fresh, MISS for a key never looked up (unknown keys are never cached) or one whose entry ran out."""
    from ingestflow.auth import MISS, KeyCache
    from ingestflow.db import session_scope

    key = _owner(served, "fresh-entry")
    cache = KeyCache(ttl_s=0.5)
    assert cache.cached(key) is MISS
    looked_up = cache.caller(lambda: session_scope(served.sqlalchemy_url, read_only=True), key)
    assert looked_up is not None and cache.cached(key) == looked_up
    assert cache.cached("if_unknown-key") is MISS
    time.sleep(0.6)
    assert cache.cached(key) is MISS
