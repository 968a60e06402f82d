"""A small picklable error hierarchy: errors cross process boundaries from Dask workers.

Transient errors are retried by the stage's retry condition; permanent ones fail the job at once.
Each keeps only plain-string args so pickling round-trips exactly.
"""

from __future__ import annotations


class IngestError(Exception):
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (self.message,))


class TransientError(IngestError):
    """Worth retrying: a store was busy or unreachable, a lock was held."""

    retryable = True


class PermanentError(IngestError):
    """Retrying cannot help: corrupt or unsupported input."""


class UnsupportedFormat(PermanentError):
    pass


class CorruptInput(PermanentError):
    pass


class LimitExceeded(PermanentError):
    """The document is beyond a parse limit (time, nesting, pages, decompressed size); the message names the
    setting that raises it."""


def is_transient(exc: BaseException) -> bool:
    """Unknown errors count as transient: a bounded retry is cheaper than losing a job to a hiccup."""
    if isinstance(exc, IngestError):
        return exc.retryable
    return not isinstance(exc, (ValueError, TypeError, KeyError, NotImplementedError))
