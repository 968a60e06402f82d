"""Domain errors to HTTP, in one place: routes raise what went wrong, this says what it means to a client."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas import ErrorOut
from ingestflow.answering.chat import ConversationBusy, ConversationNotFound
from ingestflow.errors import NotFound, TransientError, UnsupportedFormat
from ingestflow.jobs.control import Conflict
from ingestflow.stores.storage import TooLarge

# error class -> (status, detail override or None for the error's own message, extra headers)
_MAPPING: list[tuple[type[Exception], int, str | None, dict[str, str]]] = [
    (ConversationNotFound, status.HTTP_404_NOT_FOUND, "conversation not found", {}),
    (ConversationBusy, status.HTTP_409_CONFLICT, "another question to this conversation was stored first; ask again",
     {}),
    (NotFound, status.HTTP_404_NOT_FOUND, None, {}),
    (Conflict, status.HTTP_409_CONFLICT, None, {}),
    (UnsupportedFormat, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, None, {}),
    (TooLarge, status.HTTP_413_CONTENT_TOO_LARGE, None, {}),
    # A store or the orchestrator busy or away for a moment: worth a retry, never a 500.
    (TransientError, status.HTTP_503_SERVICE_UNAVAILABLE, None, {"Retry-After": "5"}),
    # PostgreSQL restarting or out of connections: the same, not a 500 (the pool reconnects on the next request).
    (OperationalError, status.HTTP_503_SERVICE_UNAVAILABLE, "the database is unavailable for a moment; retry",
     {"Retry-After": "5"}),
]


def install(app: FastAPI) -> None:
    for exc_type, code, detail, headers in _MAPPING:

        def handler(_request: Request, exc: Exception, code: int = code, detail: str | None = detail,
                    headers: dict[str, str] = headers) -> JSONResponse:
            message = detail or getattr(exc, "message", None) or str(exc)
            return JSONResponse({"detail": message}, status_code=code, headers=headers)

        app.add_exception_handler(exc_type, handler)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED and request.scope.get("type") == "http":
        # Starlette's Allow names only the first route on the path (POST /v1/documents: "POST", though GET is
        # there too); RFC 9110 wants every method the resource has. Asked of the router itself, per method.
        methods = [m for m in _METHODS if any(route.matches({**request.scope, "method": m})[0] == Match.FULL
                                              for route in request.app.router.routes)]
        if methods:
            exc = StarletteHTTPException(exc.status_code, exc.detail,
                                         headers={**(exc.headers or {}), "Allow": ", ".join(methods)})
    return await http_exception_handler(request, exc)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


# What each error status means here, for the OpenAPI schema: routes list the ones they can answer
# (`responses=errors.documented(404, 409)`), so clients and the API fuzz test know what to expect.
_RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
_DESCRIPTIONS: dict[int, str] = {
    400: "the request body could not be read (malformed multipart, or JSON that is not UTF-8)",
    401: "missing, unknown, revoked or expired API key",
    404: "no such resource of this API key's owner",
    408: "the request body stopped arriving; nothing of it was stored",
    409: "conflicts with the resource's current state",
    413: "the file is larger than the upload limit, or does not fit in this key's storage quota",
    415: "not a supported file format",
    429: "this API key's rate limit for the kind of request is spent",
    503: "a store or the orchestrator is busy or away for a moment",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorOut, "description": _DESCRIPTIONS[code]}
        if code == 429:
            entry["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
        elif code == 503:
            entry["headers"] = {"Retry-After": _RETRY_AFTER}
        out[code] = entry
    return out
