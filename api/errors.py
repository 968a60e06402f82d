"""Domain errors to HTTP, in one place: routes raise what went wrong, this says what it means to a client."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from ingestflow.chat import ConversationBusy, ConversationNotFound
from ingestflow.control import Conflict
from ingestflow.errors import TransientError, UnsupportedFormat

# error class -> (status, detail override or None for the error's own message, extra headers)
_MAPPING: list[tuple[type[Exception], int, str | None, dict[str, str]]] = [
    (ConversationNotFound, status.HTTP_404_NOT_FOUND, "conversation not found", {}),
    (ConversationBusy, status.HTTP_409_CONFLICT, "another question to this conversation was stored first; ask again",
     {}),
    (Conflict, status.HTTP_409_CONFLICT, None, {}),
    (UnsupportedFormat, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, None, {}),
    # A store or the orchestrator busy or away for a moment: worth a retry, never a 500.
    (TransientError, status.HTTP_503_SERVICE_UNAVAILABLE, None, {"Retry-After": "5"}),
]


def install(app: FastAPI) -> None:
    for exc_type, code, detail, headers in _MAPPING:

        def handler(_request: Request, exc: Exception, code: int = code, detail: str | None = detail,
                    headers: dict[str, str] = headers) -> JSONResponse:
            message = detail or getattr(exc, "message", None) or str(exc)
            return JSONResponse({"detail": message}, status_code=code, headers=headers)

        app.add_exception_handler(exc_type, handler)
