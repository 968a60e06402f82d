"""The web dashboard: `GET /` answers the page, `/static/*` its ES modules (js/), the vendored markdown-it and
DOMPurify (vendor/) and its style sheet: no build step, nothing from a CDN."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(tags=["dashboard"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    # Read on each request: tiny, and an edited page shows without restarting the API.
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Serve api/static/ under /static (the page's modules, vendored libraries and style sheet)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
