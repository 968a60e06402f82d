"""GET /v1/formats: the formats an upload may be, from the one table ingestflow.detect reads them by."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from ingestflow.detect import FORMATS

router = APIRouter(prefix="/v1/formats", tags=["formats"])


class FormatOut(BaseModel):
    name: str
    kind: str  # text (parsed) or audio (transcribed): which stages run, as GET /v1/stages plans them
    label: str
    mime_type: str
    extensions: list[str]


class FormatsOut(BaseModel):
    formats: list[FormatOut]


@router.get("", response_model=FormatsOut)
def list_formats() -> FormatsOut:
    """Every format an upload may be (told apart by its bytes, never its name), with its kind and extensions."""
    return FormatsOut(formats=[FormatOut(name=f.name, kind=f.kind, label=f.label, mime_type=f.mime_type,
                                         extensions=list(f.extensions)) for f in FORMATS.values()])
