"""Where a webhook may point: an http or https URL with a host. Receivers inside the network are allowed (a case
system usually lives there; ingestflow is self-hosted)."""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("http", "https")


class BadTarget(ValueError):
    """A webhook URL that cannot be delivered to; the message says why."""


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError as exc:
        raise BadTarget(f"not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise BadTarget(f"a webhook URL must be http or https, not {parts.scheme or 'schemeless'!r}")
    if not parts.hostname:
        raise BadTarget("a webhook URL needs a host")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise BadTarget("a webhook URL cannot contain spaces or control characters")
    return url
