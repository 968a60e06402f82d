from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SettingsDep
from ingestflow.shell.health import detailed

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/detailed", responses={503: {"description": "a dependency is down (the report says which)"}})
async def health_detailed(settings: SettingsDep) -> Any:
    report = await detailed(settings)
    return JSONResponse(report, status_code=200 if report["ok"] else 503)
