"""`ingestflow migrate-vectors`: a store from before per-owner collections, moved into them losing nothing.

Such a store kept every owner's chunk vectors in one collection (INGESTFLOW_CHROMA_COLLECTION, `chunks`) and
every conversation turn in `turns`, told apart by an `owner_id` metadata field. Each vector is copied, with
its id, embedding, text and metadata, into its owner's collection (upserts: a repeated or interrupted run
copies nothing twice), and each chunk's text into PostgreSQL for lexical search. The old collection is removed
only once every id it holds has been read back from the owner's collection; one whose vectors cannot all be
placed (no `owner_id`) is kept, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingestflow.db import ChunkText, session_scope
from ingestflow.settings import Settings
from ingestflow.stores import lexical
from ingestflow.stores.vectors import TURNS, VectorStore, open_vector_store

PAGE = 1000


@dataclass
class SpaceReport:
    legacy: str  # the old collection's name
    copied: int = 0
    owners: set[str] = field(default_factory=set)
    unplaced: int = 0  # vectors without an owner_id: left in the old collection
    chunk_rows: int = 0  # chunk texts added to PostgreSQL
    removed: bool = False


def _copy_page(store: VectorStore, got: dict[str, Any], report: SpaceReport) -> list[ChunkText]:
    by_owner: dict[str, list[int]] = {}
    for i, meta in enumerate(got["metadatas"]):
        owner = (meta or {}).get("owner_id")
        if isinstance(owner, str) and owner:
            by_owner.setdefault(owner, []).append(i)
        else:
            report.unplaced += 1
    rows = []
    for owner, idx in by_owner.items():
        store.upsert(owner, [got["ids"][i] for i in idx], [[float(x) for x in got["embeddings"][i]] for i in idx],
                     [got["documents"][i] or "" for i in idx], [dict(got["metadatas"][i]) for i in idx])
        report.owners.add(owner)
        report.copied += len(idx)
        for i in idx:
            meta = got["metadatas"][i]
            if "document_id" in meta and "chunk_index" in meta:
                rows.append(ChunkText(id=got["ids"][i], owner_id=owner, document_id=str(meta["document_id"]),
                                      chunk_index=int(meta["chunk_index"]), kind=str(meta.get("kind", "text")),
                                      collection=meta.get("collection"), text=got["documents"][i] or "",
                                      meta=dict(meta)))
    return rows


def _all_placed(store: VectorStore, legacy: str) -> bool:
    """Every id of the old collection is in its owner's collection now."""
    offset = 0
    while True:
        got = store.page(None, offset, PAGE)
        if not got["ids"]:
            return True
        wanted: dict[str, list[str]] = {}
        for cid, meta in zip(got["ids"], got["metadatas"], strict=True):
            wanted.setdefault(str((meta or {}).get("owner_id", "")), []).append(cid)
        for owner, ids in wanted.items():
            if not owner or store.existing(owner, ids) != set(ids):
                return False
        offset += len(got["ids"])


def migrate_vectors(settings: Settings, remove_old: bool = True) -> list[SpaceReport]:
    reports = []
    for space in (settings.chroma_collection, TURNS):
        store = open_vector_store(settings, space)
        report = SpaceReport(legacy=space)
        offset = 0
        while True:
            got = store.page(None, offset, PAGE)
            if not got["ids"]:
                break
            rows = _copy_page(store, got, report)
            if rows and space == settings.chroma_collection:
                with session_scope(settings.sqlalchemy_url) as db:
                    report.chunk_rows += lexical.insert_chunks(db, rows)
            offset += len(got["ids"])
        if remove_old and offset and report.unplaced == 0 and _all_placed(store, space):
            store.drop_legacy()
            report.removed = True
        reports.append(report)
    return reports
