"""A small HTTP client for the CLI: the API is the one way in, so the CLI sees what users see."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from ingestflow.settings import Settings


def key_file(settings: Settings) -> Path:
    return settings.data_dir / "api_key"


def api_key(settings: Settings) -> str:
    key = os.environ.get("INGESTFLOW_API_KEY")
    if key:
        return key
    path = key_file(settings)
    if path.exists():
        return path.read_text().strip()
    raise SystemExit("no API key: set INGESTFLOW_API_KEY or run `ingestflow up` once to create one")


class ApiClient:
    def __init__(self, settings: Settings, key: str | None = None) -> None:
        self.http = httpx.Client(
            base_url=os.environ.get("INGESTFLOW_API_URL", f"http://127.0.0.1:{settings.api_port}"),
            headers={"Authorization": f"Bearer {key or api_key(settings)}"},
            timeout=60,
        )

    @staticmethod
    def _check(r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise RuntimeError(f"{r.status_code}: {detail}")
        return r

    def _json(self, r: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = self._check(r).json()
        return body

    def upload(self, path: Path, collection: str | None = None, redact: bool = False) -> dict[str, Any]:
        data = {"collection": collection} if collection else {}
        if redact:
            data["redact"] = "true"
        with path.open("rb") as fh:
            return self._json(self.http.post("/v1/documents", files={"file": (path.name, fh)}, data=data))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json(self.http.get(f"/v1/jobs/{job_id}"))

    def jobs(self, limit: int = 20) -> dict[str, Any]:
        return self._json(self.http.get("/v1/jobs", params={"limit": limit}))

    def api_keys(self) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self._check(self.http.get("/v1/keys")).json()
        return body

    def revoke_key(self, key_id: str) -> None:
        self._check(self.http.delete(f"/v1/keys/{key_id}"))

    def search(self, q: str, k: int) -> dict[str, Any]:
        return self._json(self.http.get("/v1/search", params={"q": q, "k": k}))
