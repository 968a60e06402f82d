"""A small picklable error hierarchy: errors cross process boundaries from Dask workers.

Transient errors are retried by the stage's retry condition; permanent ones fail the job at once.
Each keeps only plain-string args so pickling round-trips exactly.
"""

from __future__ import annotations

import pickle


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


class NotFound(Exception):
    """No such thing of this owner (a job, a document, a webhook, a key): a foreign one answers exactly like a
    missing one."""

    def __init__(self, what: str, item_id: str) -> None:
        super().__init__(f"{what} {item_id} not found")
        self.message = f"{what} {item_id} not found"


class ForeignError(IngestError):
    """A library's exception that cannot cross processes as itself, kept as its type name, its message and whether
    it is worth retrying. pydantic's PydanticUserError, for one, pickles but does not unpickle (its `code` is a
    keyword-only argument): a Dask worker's chunk task raised it and the flow received a TypeError instead.
    """

    def __init__(self, detail: str, type_name: str, retryable: bool) -> None:
        # Reads as a job's error for any other library exception does: "PydanticUserError: ...".
        super().__init__(f"{type_name.rsplit('.', 1)[-1]}: {detail}")
        self.detail = detail
        self.type_name = type_name
        self.retryable = retryable

    def __reduce__(self) -> tuple[type, tuple[str, str, bool]]:  # type: ignore[override]
        return (type(self), (self.detail, self.type_name, self.retryable))


def _round_trips(exc: BaseException) -> bool:
    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to round-trip is the answer
        return False
    return type(back) is type(exc) and str(back) == str(exc)


def crossable(exc: BaseException) -> BaseException:
    """`exc` itself if it survives pickling with its type and message, else what can cross in its place: one of
    ours without the library exception it was raised from, or a ForeignError that keeps the type name, message and
    whether it is transient (what a stage raises travels from a Dask worker to the flow, and on to the job; Dask
    pickles an exception's cause and context with it)."""
    if _round_trips(exc):
        return exc
    if isinstance(exc, IngestError):
        cls, args = exc.__reduce__()[:2]
        bare: BaseException = cls(*args)
        if _round_trips(bare):
            return bare
    return ForeignError(str(exc), f"{type(exc).__module__}.{type(exc).__qualname__}", is_transient(exc))


def is_transient(exc: BaseException) -> bool:
    """Unknown errors count as transient: a bounded retry is cheaper than losing a job to a hiccup."""
    if isinstance(exc, IngestError):
        return exc.retryable
    return not isinstance(exc, (ValueError, TypeError, KeyError, NotImplementedError))
