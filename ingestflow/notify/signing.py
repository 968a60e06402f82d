"""How a receiver knows a delivery came from ingestflow and is fresh: an HMAC-SHA256, keyed with the webhook's
secret, of the timestamp header, a dot and the raw body (the timestamp is signed so an old delivery cannot be
replayed as new). A receiver recomputes it over the bytes it got, compares in constant time, and refuses a
timestamp older than a few minutes."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE = "X-Ingestflow-Signature"
TIMESTAMP = "X-Ingestflow-Timestamp"
EVENT = "X-Ingestflow-Event"
DELIVERY = "X-Ingestflow-Delivery"
SCHEME = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def headers(secret: str, body: bytes, event: str, delivery_id: str, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {"Content-Type": "application/json", SIGNATURE: signature(secret, timestamp, body),
            TIMESTAMP: str(timestamp), EVENT: event, DELIVERY: delivery_id}


def verify(secret: str, body: bytes, signature_header: str, timestamp_header: str, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """What a receiver does (Python receivers may import this): the signature matches and is recent."""
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
