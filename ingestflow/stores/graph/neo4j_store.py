"""GraphStore on a Neo4j 5 server through the official driver; same semantics as the Ladybug store.

Document.id, Chunk.id and Entity.id are unique constraints, which also makes every MERGE an index
lookup and lets concurrent writers of a shared entity serialise on the constraint's lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from neo4j import Driver, GraphDatabase, ManagedTransaction
from neo4j import exceptions as neo4j_errors

from ingestflow.errors import PermanentError, TransientError
from ingestflow.stores.graph._rows import DocumentRows, document_rows
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

SCHEMA = (
    "CREATE CONSTRAINT document_id IF NOT EXISTS FOR (d:Document) REQUIRE d.id IS UNIQUE",
    "CREATE CONSTRAINT chunk_id IF NOT EXISTS FOR (c:Chunk) REQUIRE c.id IS UNIQUE",
    "CREATE CONSTRAINT entity_id IF NOT EXISTS FOR (e:Entity) REQUIRE e.id IS UNIQUE",
    # counts() and find_entities() filter by owner; without these they scan every node of a label.
    "CREATE INDEX document_owner IF NOT EXISTS FOR (d:Document) ON (d.owner)",
    "CREATE INDEX chunk_owner IF NOT EXISTS FOR (c:Chunk) ON (c.owner)",
    "CREATE INDEX entity_owner IF NOT EXISTS FOR (e:Entity) ON (e.owner)",
)

_OLD_ENTITIES = (
    "MATCH (d:Document {id: $doc})-[:HAS_CHUNK]->(:Chunk)-[:MENTIONS]->(e:Entity) RETURN DISTINCT e.id AS id"
)
# Edges point from the smaller id and both ends were mentioned by the document, so the old
# entities' outgoing edges cover every edge of this document.
_DELETE_RELATED = (
    "UNWIND $ids AS eid MATCH (:Entity {id: eid})-[r:RELATED_TO]->(:Entity) WHERE r.document_id = $doc DELETE r"
)
_DELETE_CHUNKS = "MATCH (:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) DETACH DELETE c"
_EXISTING_CHUNKS = "UNWIND $ids AS i MATCH (c:Chunk {id: i}) RETURN c.id AS id"
_MERGE_DOCUMENT = "MERGE (d:Document {id: $doc}) SET d.owner = $owner, d.title = $title"
_MERGE_CHUNKS = (
    "MATCH (d:Document {id: $doc}) UNWIND $rows AS r MERGE (c:Chunk {id: r.id})"
    " SET c.owner = $owner, c.document_id = $doc, c.idx = r.idx, c.text = r.text,"
    " c.page = r.page, c.start_s = r.start_s, c.end_s = r.end_s"
    " MERGE (d)-[:HAS_CHUNK]->(c)"
)
_MERGE_ENTITIES = (
    "UNWIND $rows AS r MERGE (e:Entity {id: r.id}) ON CREATE SET e.owner = $owner, e.name = r.name, e.label = r.label"
)
_MERGE_MENTIONS = (
    "UNWIND $rows AS r MATCH (c:Chunk {id: r.chunk}), (e:Entity {id: r.entity})"
    " MERGE (c)-[m:MENTIONS]->(e) SET m.count = r.count"
)
_MERGE_RELATED = (
    "UNWIND $rows AS r MATCH (a:Entity {id: r.a}), (b:Entity {id: r.b})"
    " MERGE (a)-[x:RELATED_TO {document_id: $doc}]->(b) SET x.weight = r.weight"
)
_DELETE_ORPHANS_OF = (
    "UNWIND $ids AS eid MATCH (e:Entity {id: eid}) WHERE NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
_DELETE_OWNER_ORPHANS = (
    "MATCH (e:Entity {owner: $owner}) WHERE NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
_COUNTS = (
    "CALL { MATCH (d:Document {owner: $owner}) RETURN count(d) AS documents }"
    " CALL { MATCH (c:Chunk {owner: $owner}) RETURN count(c) AS chunks }"
    " CALL { MATCH (e:Entity {owner: $owner}) RETURN count(e) AS entities }"
    " CALL { MATCH (:Chunk {owner: $owner})-[m:MENTIONS]->(:Entity) RETURN count(m) AS mentions }"
    " CALL { MATCH (:Entity {owner: $owner})-[r:RELATED_TO]->(:Entity) RETURN count(r) AS related }"
    " RETURN documents, chunks, entities, mentions, related"
)
_FIND = (
    "MATCH (:Chunk)-[m:MENTIONS]->(e:Entity {owner: $owner}) WHERE $q = '' OR toLower(e.name) CONTAINS $q"
    " RETURN e.id AS id, e.name AS name, e.label AS label, sum(m.count) AS n"
    " ORDER BY n DESC, name, id LIMIT $limit"
)
_ENTITY = "MATCH (e:Entity {id: $id, owner: $owner}) RETURN e.name AS name, e.label AS label"
_MENTIONS = (
    "MATCH (c:Chunk)-[m:MENTIONS]->(:Entity {id: $id}) RETURN c.document_id AS doc, c.id AS chunk,"
    " c.idx AS idx, c.page AS page, c.start_s AS start_s, c.end_s AS end_s, m.count AS count"
    " ORDER BY doc, idx"
)
_RELATED = (
    "MATCH (:Entity {id: $id})-[r:RELATED_TO]-(o:Entity) RETURN o.id AS id, o.name AS name,"
    " o.label AS label, sum(r.weight) AS w ORDER BY w DESC, name, id"
)

_RETRYABLE: tuple[type[Exception], ...] = (
    neo4j_errors.ServiceUnavailable,
    neo4j_errors.SessionExpired,
    neo4j_errors.TransientError,
    neo4j_errors.DatabaseUnavailable,
    neo4j_errors.ConnectionAcquisitionTimeoutError,
    # Outcome unknown, but writes are idempotent replacements, so repeating is safe.
    neo4j_errors.IncompleteCommit,
)


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except _RETRYABLE as exc:
        raise TransientError(f"neo4j unavailable or busy; retry later ({type(exc).__name__}: {exc})") from exc
    except neo4j_errors.AuthError as exc:
        raise PermanentError(f"neo4j rejected the credentials ({exc})") from exc


def _assert_owner(tx: ManagedTransaction, owner: str, document_id: str) -> None:
    found = tx.run("MATCH (d:Document {id: $doc}) RETURN d.owner AS owner", doc=document_id).single()
    if found is not None and found["owner"] != owner:
        # Document ids are global keys; letting another owner overwrite one would leak facts.
        raise PermanentError(f"document {document_id} belongs to another owner")


def _remove_document_facts(tx: ManagedTransaction, document_id: str) -> list[str]:
    old_ids = [record["id"] for record in tx.run(_OLD_ENTITIES, doc=document_id)]
    if old_ids:
        tx.run(_DELETE_RELATED, ids=old_ids, doc=document_id).consume()
    tx.run(_DELETE_CHUNKS, doc=document_id).consume()
    return old_ids


def _replace_document(tx: ManagedTransaction, owner: str, document_id: str, title: str, rows: DocumentRows) -> None:
    _assert_owner(tx, owner, document_id)
    old_ids = _remove_document_facts(tx, document_id)
    taken = tx.run(_EXISTING_CHUNKS, ids=[c["id"] for c in rows.chunks]).data()
    if taken:
        # MERGE would silently re-parent another document's chunk; ids must be per document.
        raise PermanentError(f"chunk id {taken[0]['id']} already belongs to another document")
    tx.run(_MERGE_DOCUMENT, doc=document_id, owner=owner, title=title).consume()
    batches: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
        (_MERGE_CHUNKS, rows.chunks, {"doc": document_id, "owner": owner}),
        (_MERGE_ENTITIES, rows.entities, {"owner": owner}),
        (_MERGE_MENTIONS, rows.mentions, {}),
        (_MERGE_RELATED, rows.related, {"doc": document_id}),
    ]
    for query, batch, params in batches:
        if batch:
            tx.run(query, {**params, "rows": batch}).consume()
    if old_ids:
        # Entities only this document named before the rewrite must go, so a rewrite equals a fresh write.
        tx.run(_DELETE_ORPHANS_OF, ids=old_ids).consume()


def _delete_document(tx: ManagedTransaction, owner: str, document_id: str) -> None:
    _assert_owner(tx, owner, document_id)
    _remove_document_facts(tx, document_id)
    tx.run("MATCH (d:Document {id: $doc}) DETACH DELETE d", doc=document_id).consume()
    tx.run(_DELETE_OWNER_ORPHANS, owner=owner).consume()


def _read(tx: ManagedTransaction, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return tx.run(query, params).data()


Rows = list[dict[str, Any]]


def _read_entity(tx: ManagedTransaction, owner: str, entity_id: str) -> tuple[Rows, Rows, Rows] | None:
    # One transaction, so mentions and related edges come from the same state as the entity.
    found = tx.run(_ENTITY, owner=owner, id=entity_id).data()
    if not found:
        return None
    return found, tx.run(_MENTIONS, id=entity_id).data(), tx.run(_RELATED, id=entity_id).data()


class Neo4jGraphStore:
    backend = "neo4j"

    def __init__(self, uri: str, user: str, password: str, database: str | None = None) -> None:
        self._database = database
        self._driver: Driver = GraphDatabase.driver(uri, auth=(user, password))
        try:
            with _mapped_errors():
                self._driver.verify_connectivity()
                with self._driver.session(database=database) as session:
                    for statement in SCHEMA:
                        session.run(statement).consume()
        except BaseException:
            self._driver.close()
            raise

    def _write(self, fn: Callable[..., None], *args: Any) -> None:
        with _mapped_errors(), self._driver.session(database=self._database) as session:
            session.execute_write(fn, *args)

    def _query(self, query: str, **params: Any) -> list[dict[str, Any]]:
        with _mapped_errors(), self._driver.session(database=self._database) as session:
            return session.execute_read(_read, query, params)

    def write_document(self, owner: str, document_id: str, title: str, chunks: Sequence[ChunkFacts]) -> GraphCounts:
        rows = document_rows(owner, chunks)
        self._write(_replace_document, owner, document_id, title, rows)
        return self.counts(owner)

    def write_documents(self, owner: str, docs: Sequence[DocumentFacts]) -> None:
        rows = [(d, document_rows(owner, d.chunks)) for d in docs]

        def replace_all(tx: ManagedTransaction) -> None:
            for d, r in rows:
                _replace_document(tx, owner, d.document_id, d.title, r)

        self._write(replace_all)

    def delete_document(self, owner: str, document_id: str) -> None:
        self._write(_delete_document, owner, document_id)

    def counts(self, owner: str) -> GraphCounts:
        row = self._query(_COUNTS, owner=owner)[0]
        return GraphCounts(row["documents"], row["chunks"], row["entities"], row["mentions"], row["related"])

    def find_entities(self, owner: str, q: str | None, limit: int = 50) -> list[EntitySummary]:
        rows = self._query(_FIND, owner=owner, q=normalise_name(q or ""), limit=max(0, int(limit)))
        return [EntitySummary(id=r["id"], name=r["name"], label=r["label"], mentions=r["n"]) for r in rows]

    def get_entity(self, owner: str, entity_id: str) -> EntityDetail | None:
        with _mapped_errors(), self._driver.session(database=self._database) as session:
            read = session.execute_read(_read_entity, owner, entity_id)
        if read is None:
            return None
        found, mentions, related = read
        return EntityDetail(
            id=entity_id,
            name=found[0]["name"],
            label=found[0]["label"],
            mentions=[
                Mention(
                    document_id=r["doc"],
                    chunk_id=r["chunk"],
                    chunk_index=r["idx"],
                    page=r["page"],
                    start_s=r["start_s"],
                    end_s=r["end_s"],
                    count=r["count"],
                )
                for r in mentions
            ],
            related=[Related(id=r["id"], name=r["name"], label=r["label"], weight=r["w"]) for r in related],
        )

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Neo4jGraphStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
