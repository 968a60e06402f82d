from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.deps import SettingsDep
from ingestflow.shell.health import HealthReport, detailed

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/health", response_model=Alive)
def health() -> Alive:
    return Alive()


@router.get("/health/detailed", response_model=HealthReport, responses={
    503: {"model": HealthReport, "description": "a dependency is down (the report says which)"}})
async def health_detailed(settings: SettingsDep, response: Response) -> HealthReport:
    report = await detailed(settings)
    response.status_code = 200 if report.ok else 503
    return report
