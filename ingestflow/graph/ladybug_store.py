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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import ladybug

from ingestflow.errors import PermanentError, TransientError
from ingestflow.graph._rows import DocumentRows, Row, document_rows
from ingestflow.graph.base import (
    ChunkFacts,
    DocumentFacts,
    EntityDetail,
    EntitySummary,
    GraphCounts,
    Mention,
    Related,
    normalise_name,
)

SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Document(id STRING, owner STRING, title STRING, PRIMARY KEY(id))",
    "CREATE NODE TABLE IF NOT EXISTS Chunk(id STRING, owner STRING, document_id STRING, idx INT64,"
    " text STRING, page INT64, start_s DOUBLE, end_s DOUBLE, PRIMARY KEY(id))",
    "CREATE NODE TABLE IF NOT EXISTS Entity(id STRING, owner STRING, name STRING, label STRING, PRIMARY KEY(id))",
    "CREATE REL TABLE IF NOT EXISTS HAS_CHUNK(FROM Document TO Chunk)",
    "CREATE REL TABLE IF NOT EXISTS MENTIONS(FROM Chunk TO Entity, count INT64)",
    "CREATE REL TABLE IF NOT EXISTS RELATED_TO(FROM Entity TO Entity, document_id STRING, weight INT64)",
)

# Old entities are looked up before the chunks go, so stale RELATED_TO edges and orphans can be
# found by primary key instead of scanning whole tables.
_OLD_ENTITIES = (
    "MATCH (d:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) MATCH (c)-[:MENTIONS]->(e:Entity) RETURN DISTINCT e.id"
)
# Edges point from the smaller id, and both ends were mentioned by the document, so starting
# from each old entity's outgoing edges reaches every edge of this document exactly once.
_DELETE_RELATED = (
    "UNWIND $ids AS eid MATCH (a:Entity {id: eid})-[r:RELATED_TO]->(:Entity) WHERE r.document_id = $doc DELETE r"
)
_DELETE_CHUNKS = "MATCH (d:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) DETACH DELETE c"
_MERGE_DOCUMENT = "MERGE (d:Document {id: $doc}) SET d.owner = $owner, d.title = $title"
# After the delete above, the document's chunks and edges cannot exist, so plain CREATE replaces
# them exactly. UNWIND + MERGE is planned as a join against a full scan of the node table: at 150
# documents, MERGE of ~480 entities took 170 ms and grew with the graph, while looking them up by
# primary key and creating the missing ones took ~30 ms. Single writer (file lock + the in-process
# lock below), so check-then-create cannot race.
_CREATE_CHUNKS = (
    "MATCH (d:Document {id: $doc}) UNWIND $rows AS r CREATE (d)-[:HAS_CHUNK]->(:Chunk {id: r.id, owner: $owner,"
    " document_id: $doc, idx: r.idx, text: r.text, page: CAST(r.page AS INT64),"
    " start_s: CAST(r.start_s AS DOUBLE), end_s: CAST(r.end_s AS DOUBLE)})"
)
_EXISTING_CHUNKS = "UNWIND $ids AS i MATCH (c:Chunk {id: i}) RETURN c.id"
_EXISTING_ENTITIES = "UNWIND $ids AS i MATCH (e:Entity {id: i}) RETURN e.id"
_CREATE_ENTITIES = "UNWIND $rows AS r CREATE (:Entity {id: r.id, owner: $owner, name: r.name, label: r.label})"
# Each endpoint gets its own MATCH: `MATCH (a {id: r.a}), (b {id: r.b})` is planned as two full
# table scans joined by hash (2.1 s for 1,000 pairs at 60 documents, growing with the graph);
# separate MATCH clauses are primary-key lookups (~50 ms).
_CREATE_MENTIONS = (
    "UNWIND $rows AS r MATCH (c:Chunk {id: r.chunk}) WITH c, r MATCH (e:Entity {id: r.entity})"
    " CREATE (c)-[:MENTIONS {count: r.count}]->(e)"
)
_CREATE_RELATED = (
    "UNWIND $rows AS r MATCH (a:Entity {id: r.a}) WITH a, r MATCH (b:Entity {id: r.b})"
    " CREATE (a)-[:RELATED_TO {document_id: $doc, weight: r.weight}]->(b)"
)
_DELETE_ORPHANS_OF = (
    "UNWIND $ids AS eid MATCH (e:Entity {id: eid}) WHERE NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
_DELETE_OWNER_ORPHANS = (
    "MATCH (e:Entity) WHERE e.owner = $owner AND NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
_COUNTS = (
    "MATCH (d:Document) WHERE d.owner = $owner RETURN count(d)",
    "MATCH (c:Chunk) WHERE c.owner = $owner RETURN count(c)",
    "MATCH (e:Entity) WHERE e.owner = $owner RETURN count(e)",
    "MATCH (c:Chunk)-[m:MENTIONS]->(:Entity) WHERE c.owner = $owner RETURN count(m)",
    "MATCH (a:Entity)-[r:RELATED_TO]->(:Entity) WHERE a.owner = $owner RETURN count(r)",
)
# `x CONTAINS ''` is false in LadybugDB (true in Neo4j), hence the explicit empty-query branch.
_FIND = (
    "MATCH (:Chunk)-[m:MENTIONS]->(e:Entity) WHERE e.owner = $owner AND ($q = '' OR lower(e.name) CONTAINS $q)"
    " RETURN e.id, e.name, e.label, sum(m.count) AS n ORDER BY n DESC, e.name, e.id LIMIT $limit"
)
_ENTITY = "MATCH (e:Entity {id: $id}) WHERE e.owner = $owner RETURN e.name, e.label"
_MENTIONS = (
    "MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity {id: $id}) RETURN c.document_id, c.id, c.idx, c.page,"
    " c.start_s, c.end_s, m.count ORDER BY c.document_id, c.idx"
)
_RELATED = (
    "MATCH (e:Entity {id: $id})-[r:RELATED_TO]-(o:Entity) RETURN o.id, o.name, o.label,"
    " sum(r.weight) AS w ORDER BY w DESC, o.name, o.id"
)

_LOCK_MARKERS = ("could not set lock", "lock is held", "resource temporarily unavailable")
_BUSY_MARKERS = ("only one write transaction",)
_READER_RACE_MARKERS = ("checkpoint recovery is pending", "checksum verification failed")
READ_ONLY_OPEN_RETRY_S = 3.0


def _is_marked(exc: BaseException, markers: tuple[str, ...]) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in markers)


@dataclass
class _SharedDatabase:
    db: ladybug.Database
    refs: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock)


_shared: dict[Path, _SharedDatabase] = {}
_shared_guard = threading.Lock()


def _open_database(path: Path) -> ladybug.Database:
    try:
        return ladybug.Database(str(path))
    except RuntimeError as exc:
        if _is_marked(exc, _LOCK_MARKERS):
            raise TransientError(
                f"graph database {path} is locked by another read-write process; retry later ({exc})"
            ) from exc
        raise


def _open_read_only(path: Path) -> ladybug.Database:
    """A reader beside a live writer can catch it checkpointing, or read a WAL record still being
    appended (checksum error); both clear within a second or two, so retry briefly here (measured:
    ~1 in 6 opens failed while a writer wrote continuously) before handing the caller a TransientError."""
    deadline = time.monotonic() + READ_ONLY_OPEN_RETRY_S
    delay = 0.05
    while True:
        try:
            return ladybug.Database(str(path), read_only=True)
        except RuntimeError as exc:
            if not _is_marked(exc, _READER_RACE_MARKERS):
                raise
            if time.monotonic() + delay > deadline:
                raise TransientError(f"graph database {path} is being checkpointed; retry later ({exc})") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


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
            db = ladybug.Database(":memory:") if missing else _open_read_only(self.path)
            self._entry = _SharedDatabase(db=db, refs=1)
            self._conn = ladybug.Connection(db)
            if missing:
                self._create_schema()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _shared_guard:
            entry = _shared.get(self.path)
            if entry is None:
                entry = _SharedDatabase(db=_open_database(self.path))
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
            if _is_marked(exc, _BUSY_MARKERS + _LOCK_MARKERS):
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
        old_ids = [row[0] for row in self._run(_OLD_ENTITIES, {"doc": document_id})]
        if old_ids:
            self._run(_DELETE_RELATED, {"ids": old_ids, "doc": document_id})
        self._run(_DELETE_CHUNKS, {"doc": document_id})
        return old_ids

    def _replace_document(self, owner: str, document_id: str, title: str, rows: DocumentRows) -> None:
        self._assert_owner(owner, document_id)
        old_ids = self._remove_document_facts(document_id)
        taken = self._run(_EXISTING_CHUNKS, {"ids": [c["id"] for c in rows.chunks]}) if rows.chunks else []
        if taken:
            # CREATE would fail on the primary key anyway; this names the cause and is not retried.
            raise PermanentError(f"chunk id {taken[0][0]} already belongs to another document")
        self._run(_MERGE_DOCUMENT, {"doc": document_id, "owner": owner, "title": title})
        self._unwind(_CREATE_CHUNKS, rows.chunks, {"doc": document_id, "owner": owner})
        known = {r[0] for r in self._run(_EXISTING_ENTITIES, {"ids": [e["id"] for e in rows.entities]})}
        self._unwind(_CREATE_ENTITIES, [e for e in rows.entities if e["id"] not in known], {"owner": owner})
        self._unwind(_CREATE_MENTIONS, rows.mentions, {})
        self._unwind(_CREATE_RELATED, rows.related, {"doc": document_id})
        if old_ids:
            # Entities this document alone named before the rewrite must go, or a rewrite would
            # leave a graph that writing the new version once would not.
            self._run(_DELETE_ORPHANS_OF, {"ids": old_ids})

    def _delete_document(self, owner: str, document_id: str) -> None:
        self._assert_owner(owner, document_id)
        self._remove_document_facts(document_id)
        self._run("MATCH (d:Document {id: $doc}) DETACH DELETE d", {"doc": document_id})
        # A full sweep of the owner's entities (not just this document's) also heals any orphan
        # left by an older version; deletes are rare enough to afford the scan.
        self._run(_DELETE_OWNER_ORPHANS, {"owner": owner})

    def _unwind(self, query: str, rows: list[Row], params: dict[str, Any]) -> None:
        if rows:  # an empty list parameter has no element type to bind
            self._run(query, {**params, "rows": rows})

    # -- reads ------------------------------------------------------------------------------------

    def counts(self, owner: str) -> GraphCounts:
        self._check_open()
        with self._entry.lock:
            documents, chunks, entities, mentions, related = (
                self._scalar(query, {"owner": owner}) for query in _COUNTS
            )
        return GraphCounts(documents, chunks, entities, mentions, related)

    def find_entities(self, owner: str, q: str | None, limit: int = 50) -> list[EntitySummary]:
        self._check_open()
        params = {"owner": owner, "q": normalise_name(q or ""), "limit": max(0, int(limit))}
        with self._entry.lock:
            rows = self._run(_FIND, params)
        return [EntitySummary(id=r[0], name=r[1], label=r[2], mentions=int(r[3])) for r in rows]

    def get_entity(self, owner: str, entity_id: str) -> EntityDetail | None:
        self._check_open()
        params = {"owner": owner, "id": entity_id}
        with self._entry.lock:
            found = self._run(_ENTITY, params)
            if not found:
                return None
            mentions = self._run(_MENTIONS, {"id": entity_id})
            related = self._run(_RELATED, {"id": entity_id})
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
