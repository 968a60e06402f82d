"""The pipeline's stages as declared once in ingestflow.pipeline: what the dashboard draws its badges from."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ingestflow.pipeline import STAGES, plan

router = APIRouter(prefix="/v1/stages", tags=["stages"])


class StageOut(BaseModel):
    name: str
    label: str
    description: str
    kinds: list[str]
    gpu: bool
    timeout_s: float
    order: int
    only_redacted: bool  # planned for documents uploaded with redaction only
    only_translated: bool  # planned for recordings uploaded with translate=true only


class StagesOut(BaseModel):
    stages: list[StageOut]
    plans: dict[str, list[str]]  # kind -> stage names in the order a document of that kind runs them
    redacted_plans: dict[str, list[str]]  # the same for a document uploaded with redaction


@router.get("", response_model=StagesOut)
def list_stages() -> StagesOut:
    """Every stage in pipeline order, and each document kind's plan."""
    stages = [StageOut(name=s.name, label=s.label, description=s.description, kinds=sorted(s.kinds), gpu=s.gpu,
                       timeout_s=s.timeout_s, order=i, only_redacted=s.only_redacted,
                       only_translated=s.only_translated) for i, s in enumerate(STAGES)]
    kinds = sorted({k for s in STAGES for k in s.kinds})
    return StagesOut(stages=stages, plans={k: [s.name for s in plan(k)] for k in kinds},
                     redacted_plans={k: [s.name for s in plan(k, redact=True)] for k in kinds})
