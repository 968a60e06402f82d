"""GraphStore on LadybugDB 0.22, the embedded default.

Locking, as measured on 0.22 (see NOTES.md "Stores"):
- A read-write open takes an OS file lock; a read-write open from another process fails at once
  ("Could not set lock on file ..."), surfaced here as TransientError so the caller retries.
- Read-only opens from other processes work beside a writer, but each sees a snapshot taken when
  it opened (later commits stay invisible to it): reopen to see new data. An open replays the
  writer's WAL (40 ms quiet, up to ~4 s with a large WAL) and fails while the writer checkpoints;
  that race is retried here for a few seconds.
- A second read-write Database on the same file *inside one process* is not refused by LadybugDB,
  and only one write transaction may run per database (a second fails instead of waiting). So this
  module shares one Database per path per process and serialises its use with a lock.
- An error inside an explicit transaction rolls it back by itself; later statements on that
  connection would then auto-commit, so a failed write must stop at the first error.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import ladybug

from ingestflow.errors import PermanentError, TransientError
from ingestflow.stores.graph._rows import DocumentRows, Row, document_rows
from ingestflow.stores.graph.base import (
    ChunkFacts,
    DocumentFacts,
    EntityDetail,
    EntitySummary,
    GraphCounts,
    Mention,
    Related,
    normalise_name,
)
from ingestflow.stores.graph.ladybug_cypher import (
    COUNTS,
    CREATE_CHUNKS,
    CREATE_ENTITIES,
    CREATE_MENTIONS,
    CREATE_RELATED,
    DELETE_CHUNKS,
    DELETE_ORPHANS_OF,
    DELETE_OWNER_ORPHANS,
    DELETE_RELATED,
    ENTITY,
    EXISTING_CHUNKS,
    EXISTING_ENTITIES,
    FIND,
    MENTIONS,
    MERGE_DOCUMENT,
    OLD_ENTITIES,
    RELATED,
    SCHEMA,
)
from ingestflow.stores.graph.ladybug_open import BUSY_MARKERS, LOCK_MARKERS, is_marked, open_database, open_read_only


@dataclass
class _SharedDatabase:
    db: ladybug.Database
    refs: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)


_shared: dict[Path, _SharedDatabase] = {}
_shared_guard = threading.Lock()


class LadybugGraphStore:
    backend = "ladybug"

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path).resolve()
        self.read_only = read_only
        self._closed = False
        if read_only:
            # Read-only opens are snapshots, so each store gets its own Database (40 ms on a quiet
            # file; 0.1-4 s when it must replay a large WAL left by a live writer).
            # A missing file has nothing to read: an empty in-memory graph avoids creating files
            # from a reader and keeps "no graph yet" from being an error.
            missing = not self.path.exists()
            db = ladybug.Database(":memory:") if missing else open_read_only(self.path)
            self._entry = _SharedDatabase(db=db, refs=1)
            self._conn = ladybug.Connection(db)
            if missing:
                self._create_schema()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _shared_guard:
            entry = _shared.get(self.path)
            if entry is None:
                entry = _SharedDatabase(db=open_database(self.path))
                _shared[self.path] = entry
            entry.refs += 1
        self._entry = entry
        try:
            self._conn = ladybug.Connection(entry.db)
            with entry.lock:
                self._create_schema()
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        for statement in SCHEMA:
            self._run(statement)

    def _run(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        try:
            result = self._conn.execute(query, params or {})
        except RuntimeError as exc:
            if is_marked(exc, BUSY_MARKERS + LOCK_MARKERS):
                raise TransientError(f"graph database {self.path} is busy; retry later ({exc})") from exc
            raise
        if isinstance(result, list):  # only multi-statement strings return several results
            raise TypeError("one statement per call")
        rows = result.get_all()
        result.close()
        return [list(row) for row in rows]

    def _scalar(self, query: str, params: dict[str, Any]) -> int:
        rows = self._run(query, params)
        # sum() comes back as Decimal (INT128); counts as int.
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _check_writable(self) -> None:
        if self._closed:
            raise RuntimeError("graph store is closed")
        if self.read_only:
            raise PermanentError("graph store was opened read-only")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("graph store is closed")

    # -- writes -----------------------------------------------------------------------------------

    def write_document(self, owner: str, document_id: str, title: str, chunks: Sequence[ChunkFacts]) -> GraphCounts:
        self._check_writable()
        rows = document_rows(owner, chunks)
        with self._entry.lock:
            self._in_transaction(lambda: self._replace_document(owner, document_id, title, rows))
            return self.counts(owner)

    def write_documents(self, owner: str, docs: Sequence[DocumentFacts]) -> None:
        self._check_writable()
        rows = [(d, document_rows(owner, d.chunks)) for d in docs]

        def replace_all() -> None:
            for d, r in rows:
                self._replace_document(owner, d.document_id, d.title, r)

        with self._entry.lock:
            self._in_transaction(replace_all)

    def delete_document(self, owner: str, document_id: str) -> None:
        self._check_writable()
        with self._entry.lock:
            self._in_transaction(lambda: self._delete_document(owner, document_id))

    def _in_transaction(self, body: Callable[[], None]) -> None:
        self._run("BEGIN TRANSACTION")
        try:
            body()
        except BaseException:
            # LadybugDB already rolled back if a statement failed; this covers Python-side errors.
            with contextlib.suppress(RuntimeError):
                self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def _assert_owner(self, owner: str, document_id: str) -> None:
        found = self._run("MATCH (d:Document {id: $doc}) RETURN d.owner", {"doc": document_id})
        if found and found[0][0] != owner:
            # Document ids are global keys; letting another owner overwrite one would leak facts.
            raise PermanentError(f"document {document_id} belongs to another owner")

    def _remove_document_facts(self, document_id: str) -> list[str]:
        old_ids = [row[0] for row in self._run(OLD_ENTITIES, {"doc": document_id})]
        if old_ids:
            self._run(DELETE_RELATED, {"ids": old_ids, "doc": document_id})
        self._run(DELETE_CHUNKS, {"doc": document_id})
        return old_ids

    def _replace_document(self, owner: str, document_id: str, title: str, rows: DocumentRows) -> None:
        self._assert_owner(owner, document_id)
        old_ids = self._remove_document_facts(document_id)
        taken = self._run(EXISTING_CHUNKS, {"ids": [c["id"] for c in rows.chunks]}) if rows.chunks else []
        if taken:
            # CREATE would fail on the primary key anyway; this names the cause and is not retried.
            raise PermanentError(f"chunk id {taken[0][0]} already belongs to another document")
        self._run(MERGE_DOCUMENT, {"doc": document_id, "owner": owner, "title": title})
        self._unwind(CREATE_CHUNKS, rows.chunks, {"doc": document_id, "owner": owner})
        known = {r[0] for r in self._run(EXISTING_ENTITIES, {"ids": [e["id"] for e in rows.entities]})}
        self._unwind(CREATE_ENTITIES, [e for e in rows.entities if e["id"] not in known], {"owner": owner})
        self._unwind(CREATE_MENTIONS, rows.mentions, {})
        self._unwind(CREATE_RELATED, rows.related, {"doc": document_id})
        if old_ids:
            # Entities this document alone named before the rewrite must go, or a rewrite would
            # leave a graph that writing the new version once would not.
            self._run(DELETE_ORPHANS_OF, {"ids": old_ids})

    def _delete_document(self, owner: str, document_id: str) -> None:
        self._assert_owner(owner, document_id)
        self._remove_document_facts(document_id)
        self._run("MATCH (d:Document {id: $doc}) DETACH DELETE d", {"doc": document_id})
        # A full sweep of the owner's entities (not just this document's) also heals any orphan
        # left by an older version; deletes are rare enough to afford the scan.
        self._run(DELETE_OWNER_ORPHANS, {"owner": owner})

    def _unwind(self, query: str, rows: list[Row], params: dict[str, Any]) -> None:
        if rows:  # an empty list parameter has no element type to bind
            self._run(query, {**params, "rows": rows})

    # -- reads ------------------------------------------------------------------------------------

    def counts(self, owner: str) -> GraphCounts:
        self._check_open()
        with self._entry.lock:
            documents, chunks, entities, mentions, related = (
                self._scalar(query, {"owner": owner}) for query in COUNTS
            )
        return GraphCounts(documents, chunks, entities, mentions, related)

    def find_entities(self, owner: str, q: str | None, limit: int = 50) -> list[EntitySummary]:
        self._check_open()
        params = {"owner": owner, "q": normalise_name(q or ""), "limit": max(0, int(limit))}
        with self._entry.lock:
            rows = self._run(FIND, params)
        return [EntitySummary(id=r[0], name=r[1], label=r[2], mentions=int(r[3])) for r in rows]

    def get_entity(self, owner: str, entity_id: str) -> EntityDetail | None:
        self._check_open()
        params = {"owner": owner, "id": entity_id}
        with self._entry.lock:
            found = self._run(ENTITY, params)
            if not found:
                return None
            mentions = self._run(MENTIONS, {"id": entity_id})
            related = self._run(RELATED, {"id": entity_id})
        return EntityDetail(
            id=entity_id,
            name=found[0][0],
            label=found[0][1],
            mentions=[
                Mention(
                    document_id=r[0],
                    chunk_id=r[1],
                    chunk_index=int(r[2]),
                    page=r[3],
                    start_s=r[4],
                    end_s=r[5],
                    count=int(r[6]),
                )
                for r in mentions
            ],
            related=[Related(id=r[0], name=r[1], label=r[2], weight=int(r[3])) for r in related],
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Idempotent. Releases the file lock once the last store of this process on the path closes."""
        if self._closed:
            return
        self._closed = True
        conn = getattr(self, "_conn", None)  # absent when __init__ failed before connecting
        if conn is not None:
            with self._entry.lock:
                conn.close()
        if self.read_only:
            self._entry.db.close()
            return
        with _shared_guard:
            self._entry.refs -= 1
            if self._entry.refs == 0:
                _shared.pop(self.path, None)
                self._entry.db.close()

    def __enter__(self) -> LadybugGraphStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
