"""Issue 26, parts 3 and 5: webhooks. Signing and URL checks in-process; registering, events written with the
change they report, and delivery with retries against a real receiver on 127.0.0.1 (500 first, 200 after),
through the real app served by uvicorn on a real PostgreSQL. The notify flow's loop is called as its tasks call it
(no Prefect here; tests/test_e2e_webhooks.py runs it as a deployment on the real stack). Fast tier."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from ingestflow.notify import signing
from ingestflow.notify.targets import BadTarget, check_url
from ingestflow.settings import Settings
from tests.conftest import owner_api, served_app
from tests.webhook_receiver import Received, receiver

PORT = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000")) + 56


def test_a_signature_proves_the_body_the_secret_and_the_time() -> None:
    body, now = b'{"id":"e1","event":"job.completed"}', 1_800_000_000.0
    headers = signing.headers("s3cret-s3cret-s3", body, "job.completed", "d1", now=now)
    sig, ts = headers[signing.SIGNATURE], headers[signing.TIMESTAMP]
    assert sig.startswith("sha256=") and len(sig) == 7 + 64 and ts == "1800000000"
    assert signing.verify("s3cret-s3cret-s3", body, sig, ts, now=now + 10)
    assert not signing.verify("s3cret-s3cret-s3", body + b" ", sig, ts, now=now)  # body changed
    assert not signing.verify("another-secret-x", body, sig, ts, now=now)  # wrong secret
    assert not signing.verify("s3cret-s3cret-s3", body, sig, str(int(now) + 1), now=now)  # timestamp changed
    assert not signing.verify("s3cret-s3cret-s3", body, sig, ts, now=now + 301)  # replayed later
    assert not signing.verify("s3cret-s3cret-s3", body, sig, "soon", now=now)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "javascript:alert(1)",
                                 "example.org/hook", "http:///nohost", "https://exa mple.org/", "http://h:99999/"])
def test_a_target_that_cannot_be_delivered_to_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(BadTarget):
        check_url(url)


def test_http_and_https_targets_are_accepted() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://cases.example.org/ingestflow?team=3"):
        assert check_url(url) == url


def test_backoff_doubles_to_its_cap_and_an_hour_down_is_a_handful_of_tries() -> None:
    from ingestflow.notify.delivery import backoff_s

    settings = Settings()
    waits = [backoff_s(settings, n) for n in range(1, 10)]
    assert waits == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    tries, elapsed = 1, 0.0
    while elapsed < 3600:
        elapsed += backoff_s(settings, tries)
        tries += 1
    assert tries == 18 and settings.webhook_give_up_s >= 24 * 3600  # the hour is retried, not given up


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Settings]:
    with served_app(request, PORT, WEBHOOK_RETRY_S="0.2",
                    WEBHOOK_TIMEOUT_S="1") as settings:
        yield settings


def _client(settings: Settings, name: str) -> httpx.Client:
    return owner_api(settings, name, PORT).http


def _drain(settings: Settings, until: float = 15.0) -> None:
    """What the notify flow does: claim what is due, post it, record it; until nothing is pending."""
    from ingestflow.notify import delivery

    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        for attempt in delivery.claim_due(settings):
            delivery.deliver(settings, attempt)
        wait = delivery.next_due_in_s(settings)
        if wait is None:
            return
        time.sleep(min(wait, 0.2))
    raise AssertionError("deliveries still pending")


def _finish(settings: Settings, job_id: str, ok: bool) -> None:
    """The job's end as the flow records it (ingestflow/jobs/lifecycle.py)."""
    from ingestflow.db import Job, JobStatus, session_scope
    from ingestflow.errors import UnsupportedFormat
    from ingestflow.jobs import lifecycle

    with session_scope(settings.sqlalchemy_url) as db:
        job = db.get(Job, job_id)
        assert job is not None
        job.status, job.dispatch_key = JobStatus.running, "k"
    if ok:
        lifecycle.finish_job(job_id, "k")
    else:
        assert lifecycle.fail_job(job_id, "k", "parse", UnsupportedFormat("not a document we can read")) == "failed"


def _upload(http: httpx.Client, name: str) -> dict[str, Any]:
    r = http.post("/v1/documents", files={"file": (f"{name}.md", f"# {name}\n\nA note about {name}.\n".encode())})
    assert r.status_code == 202, r.text
    return dict(r.json())


def test_registering_checks_the_url_and_shows_the_secret_once(served: Settings) -> None:
    http = _client(served, "register")
    r = http.post("/v1/webhooks", json={"url": "ftp://cases.example.org/in"})
    assert r.status_code == 422 and "http or https, not 'ftp'" in r.text, r.text
    for bad in ({"url": "https://x.org", "events": []}, {"url": "https://x.org", "events": ["job.exploded"]},
                {"url": "https://x.org", "secret": "short"}):
        assert http.post("/v1/webhooks", json=bad).status_code == 422, bad
    r = http.post("/v1/webhooks", json={"url": "https://cases.example.org/in", "events": ["job.failed"]})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["job.failed"]
    listed = http.get("/v1/webhooks").json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    assert http.get(f"/v1/webhooks/{created['id']}").json()["url"] == "https://cases.example.org/in"
    other = _client(served, "register-other")
    assert other.get(f"/v1/webhooks/{created['id']}").status_code == 404  # a foreign one is a missing one
    assert other.delete(f"/v1/webhooks/{created['id']}").status_code == 404
    assert http.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    assert http.get("/v1/webhooks").json()["total"] == 0


def test_each_event_is_accepted_exactly_once_after_a_refusal(served: Settings) -> None:
    from sqlalchemy import select

    from ingestflow.db import WebhookDelivery, session_scope

    http, other = _client(served, "events"), _client(served, "events-other")
    received = Received(secret="a-shared-secret-of-the-case-system")
    with receiver(received) as url:
        hook = http.post("/v1/webhooks", json={"url": url, "secret": received.secret}).json()
        only_failed = http.post("/v1/webhooks", json={"url": url, "secret": received.secret,
                                                      "events": ["job.failed"]}).json()
        other.post("/v1/webhooks", json={"url": url, "secret": received.secret})  # never told of this owner's
        done, failed, deleted = _upload(http, "done"), _upload(http, "failed"), _upload(http, "deleted")
        _finish(served, done["job_id"], ok=True)
        _finish(served, failed["job_id"], ok=False)
        _finish(served, deleted["job_id"], ok=True)
        assert http.delete(f"/v1/documents/{deleted['document_id']}").status_code == 204
        _drain(served)

    assert received.bad_signatures == 0
    # 4 events for `hook`, 1 for `only_failed`: each a delivery of its own, each refused once and then accepted.
    assert len(received.accepted) == 5 and set(received.accepted.values()) == {1}
    assert set(received.attempts.values()) == {2}
    events = received.by_event()
    assert sorted(events) == ["document.deleted", "job.completed", "job.failed"]
    assert {e["document_id"] for e in events["job.completed"]} == {done["document_id"], deleted["document_id"]}
    assert len(events["job.failed"]) == 2 and len({e["id"] for e in events["job.failed"]}) == 1  # one event, 2 hooks
    assert events["job.failed"][0]["error"] == "parse failed: not a document we can read"
    assert events["document.deleted"][0]["document_id"] == deleted["document_id"]

    log = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()
    assert log["total"] == 4
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in log["items"]} == {("delivered", 2, 200)}
    assert http.get(f"/v1/webhooks/{only_failed['id']}/deliveries", params={"status": "pending"}).json()["total"] == 0
    with session_scope(served.sqlalchemy_url, read_only=True) as db:
        assert {d.owner_id for d in db.scalars(select(WebhookDelivery))} != set()
        assert all(d.webhook_id in (hook["id"], only_failed["id"]) for d in db.scalars(select(WebhookDelivery)))


def test_an_event_is_written_with_its_change_or_not_at_all(served: Settings) -> None:
    from sqlalchemy import func, select

    from ingestflow.db import Document, Job, WebhookDelivery, session_scope
    from ingestflow.notify import events

    http = _client(served, "outbox")
    http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/never"})
    doc = _upload(http, "outbox")

    def count() -> int:
        with session_scope(served.sqlalchemy_url, read_only=True) as db:
            return int(db.scalar(select(func.count()).select_from(WebhookDelivery)
                                 .where(WebhookDelivery.body["document_id"].as_string() == doc["document_id"])) or 0)

    with pytest.raises(RuntimeError), session_scope(served.sqlalchemy_url) as db:
        job = db.get(Job, doc["job_id"])
        assert job is not None
        job.status = "completed"
        events.job_ended(db, job, db.get(Document, doc["document_id"]))
        db.flush()
        assert count() == 0  # another transaction sees nothing yet
        raise RuntimeError("the change fails after the event was written")
    assert count() == 0


def test_a_receiver_that_does_not_answer_is_retried_then_given_up_after_a_day(served: Settings) -> None:
    from sqlalchemy import select

    from ingestflow.db import WebhookDelivery, session_scope, utcnow
    from ingestflow.notify import delivery

    http = _client(served, "silent")
    received = Received(secret="silent-receiver-secret", refuse_first=False, answer_after_s=1.5)
    with receiver(received) as url:
        hook = http.post("/v1/webhooks", json={"url": url, "secret": received.secret}).json()
        _finish(served, _upload(http, "silent")["job_id"], ok=True)
        attempts = delivery.claim_due(served)
        assert len(attempts) == 1 and delivery.claim_due(served) == []  # claimed: no second run posts it
        assert delivery.deliver(served, attempts[0]) == "pending"
    item = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"][0]
    assert item["attempts"] == 1 and item["last_error"] == "no answer within 1 s" and item["status"] == "pending"
    with session_scope(served.sqlalchemy_url) as db:
        row = db.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook["id"]))
        assert row is not None
        row.created_at = utcnow() - timedelta(days=1, seconds=1)
        row.next_attempt_at = utcnow()
    # Nothing listens there any more: refused, and a day old, so given up on.
    for attempt in delivery.claim_due(served):
        assert delivery.deliver(served, attempt) == "failed"
    item = http.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["items"][0]
    assert item["status"] == "failed" and item["attempts"] == 2
    assert item["last_error"].startswith("could not reach the receiver")
