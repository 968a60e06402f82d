"""A route's answer comes after its transaction is committed: a client told 204 for a DELETE reads the document
gone at once. FastAPI ends a `yield` dependency after the response is sent unless it is declared
`scope="function"`, and the request's session commits as that dependency ends (a CI run read the deleted document
back with a 200 right after the 204). Real app on uvicorn, real PostgreSQL and Chroma. Fast tier."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from ingestflow.settings import Settings
from tests.conftest import served_app

PORT = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 54
SLOW_COMMIT_S = 1.0


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT) as settings:
        yield settings


def test_a_delete_is_committed_before_its_204(served: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestflow.auth import create_key
    from ingestflow.db import session_scope

    with session_scope(served.sqlalchemy_url) as db:
        key = create_key(db, "commit-order")[1]
    http = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    up = http.post("/v1/documents", files={"file": ("gone.md", b"# Gone\n\nA note to delete.\n")})
    assert up.status_code == 202, up.text
    doc = f"/v1/documents/{up.json()['document_id']}"

    # Every commit in the server takes a second: an answer sent before the commit comes back before it is done.
    commit = Session.commit

    def slow_commit(self: Session, *args: Any, **kwargs: Any) -> None:
        time.sleep(SLOW_COMMIT_S)
        commit(self, *args, **kwargs)

    monkeypatch.setattr(Session, "commit", slow_commit)
    assert http.delete(doc).status_code == 204
    monkeypatch.undo()
    assert http.get(doc).status_code == 404
