"""The parsed DoclingDocument as JSON between the parse and chunk stages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingestflow.atomic_files import atomic_path
from ingestflow.errors import CorruptInput
from ingestflow.parsing.conversion import reason_of

if TYPE_CHECKING:
    from docling_core.types.doc import DoclingDocument


def save_document(doc: DoclingDocument, path: Path) -> None:
    with atomic_path(path) as tmp:
        doc.save_as_json(tmp)


def load_document(path: Path) -> DoclingDocument:
    from docling_core.types.doc import DoclingDocument
    from pydantic import ValidationError

    try:
        return DoclingDocument.load_from_json(Path(path))
    except (ValidationError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise CorruptInput(f"saved document {path} could not be read: {reason_of(exc)}") from exc
