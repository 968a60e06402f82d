"""Posting due deliveries and recording each attempt. A delivery is claimed first (its next attempt moved past
the time a post can take), so two notify runs never post the same one at once and a run that dies leaves it to a
later one. 2xx is accepted; anything else (an error status, a redirect, a refused connection, a timeout) is
retried after `webhook_retry_s` doubling to `webhook_retry_max_s`, until the event is `webhook_give_up_s` old:
with the defaults a receiver down for an hour is tried 18 times and gets everything when it is back.

Delivery is at least once: an attempt whose result cannot be recorded is posted again, with the same event id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import ColumnElement, and_, select

from ingestflow.db import DeliveryStatus, Webhook, WebhookDelivery, session_scope, utcnow
from ingestflow.notify import signing
from ingestflow.settings import Settings

CLAIM_AT_ONCE = 50


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    url: str
    secret: str
    event: str
    body: bytes


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def accepted(self) -> bool:
        return self.error is None


def _due() -> ColumnElement[bool]:
    return and_(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= utcnow())


def any_due(settings: Settings) -> bool:
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        return db.scalar(select(WebhookDelivery.id).where(_due()).limit(1)) is not None


def next_due_in_s(settings: Settings) -> float | None:
    """Seconds until the next pending delivery is due (0 if one is now), or None if none is pending."""
    with session_scope(settings.sqlalchemy_url, read_only=True) as db:
        soonest = db.scalar(select(WebhookDelivery.next_attempt_at)
                            .where(WebhookDelivery.status == DeliveryStatus.pending)
                            .order_by(WebhookDelivery.next_attempt_at).limit(1))
    return None if soonest is None else max(0.0, (soonest - utcnow()).total_seconds())


def claim_due(settings: Settings, limit: int = CLAIM_AT_ONCE) -> list[Attempt]:
    lease = timedelta(seconds=settings.webhook_timeout_s + 30)
    with session_scope(settings.sqlalchemy_url) as db:
        rows = db.execute(
            select(WebhookDelivery, Webhook).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(_due()).order_by(WebhookDelivery.next_attempt_at).limit(limit)
            .with_for_update(of=WebhookDelivery, skip_locked=True)
        ).tuples().all()
        for delivery, _hook in rows:
            delivery.next_attempt_at = utcnow() + lease
        return [Attempt(d.id, h.url, h.secret, d.event, json.dumps(d.body, separators=(",", ":")).encode())
                for d, h in rows]


def post(settings: Settings, attempt: Attempt) -> Outcome:
    """One POST, signed now; redirects are not followed (a receiver that moved says so with its status)."""
    try:
        r = httpx.post(attempt.url, content=attempt.body, timeout=settings.webhook_timeout_s,
                       headers=signing.headers(attempt.secret, attempt.body, attempt.event, attempt.delivery_id))
    except httpx.TimeoutException:
        return Outcome(None, f"no answer within {settings.webhook_timeout_s:g} s")
    except httpx.HTTPError as exc:
        return Outcome(None, f"could not reach the receiver: {type(exc).__name__}: {exc}"[:500])
    if 200 <= r.status_code < 300:
        return Outcome(r.status_code, None)
    return Outcome(r.status_code, f"the receiver answered {r.status_code}")


def backoff_s(settings: Settings, attempts: int) -> float:
    return float(min(settings.webhook_retry_max_s, settings.webhook_retry_s * 2 ** max(0, attempts - 1)))


def record(settings: Settings, delivery_id: str, outcome: Outcome) -> DeliveryStatus | None:
    """The attempt's result; returns the delivery's status after it (None: its webhook was removed meanwhile)."""
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as db:
        delivery = db.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return None
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.last_status_code, delivery.last_error = outcome.status_code, outcome.error
        if outcome.accepted:
            delivery.status, delivery.delivered_at = DeliveryStatus.delivered, now
        elif (now - delivery.created_at).total_seconds() >= settings.webhook_give_up_s:
            delivery.status = DeliveryStatus.failed
        else:
            delivery.next_attempt_at = now + timedelta(seconds=backoff_s(settings, delivery.attempts))
        return DeliveryStatus(delivery.status)


def deliver(settings: Settings, attempt: Attempt) -> DeliveryStatus | None:
    return record(settings, attempt.delivery_id, post(settings, attempt))

