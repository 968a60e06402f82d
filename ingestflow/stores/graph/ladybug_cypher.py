"""The Cypher statements of the LadybugDB store (ingestflow/stores/graph/ladybug_store.py): its schema, what a
document's facts are written and removed with, and what the entity views read."""

from __future__ import annotations

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
OLD_ENTITIES = (
    "MATCH (d:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) MATCH (c)-[:MENTIONS]->(e:Entity) RETURN DISTINCT e.id"
)
# Edges point from the smaller id, and both ends were mentioned by the document, so starting
# from each old entity's outgoing edges reaches every edge of this document exactly once.
DELETE_RELATED = (
    "UNWIND $ids AS eid MATCH (a:Entity {id: eid})-[r:RELATED_TO]->(:Entity) WHERE r.document_id = $doc DELETE r"
)
DELETE_CHUNKS = "MATCH (d:Document {id: $doc})-[:HAS_CHUNK]->(c:Chunk) DETACH DELETE c"
MERGE_DOCUMENT = "MERGE (d:Document {id: $doc}) SET d.owner = $owner, d.title = $title"
# After the delete above, the document's chunks and edges cannot exist, so plain CREATE replaces
# them exactly. UNWIND + MERGE is planned as a join against a full scan of the node table: at 150
# documents, MERGE of ~480 entities took 170 ms and grew with the graph, while looking them up by
# primary key and creating the missing ones took ~30 ms. Single writer (file lock + the in-process
# lock below), so check-then-create cannot race.
CREATE_CHUNKS = (
    "MATCH (d:Document {id: $doc}) UNWIND $rows AS r CREATE (d)-[:HAS_CHUNK]->(:Chunk {id: r.id, owner: $owner,"
    " document_id: $doc, idx: r.idx, text: r.text, page: CAST(r.page AS INT64),"
    " start_s: CAST(r.start_s AS DOUBLE), end_s: CAST(r.end_s AS DOUBLE)})"
)
EXISTING_CHUNKS = "UNWIND $ids AS i MATCH (c:Chunk {id: i}) RETURN c.id"
EXISTING_ENTITIES = "UNWIND $ids AS i MATCH (e:Entity {id: i}) RETURN e.id"
CREATE_ENTITIES = "UNWIND $rows AS r CREATE (:Entity {id: r.id, owner: $owner, name: r.name, label: r.label})"
# Each endpoint gets its own MATCH: `MATCH (a {id: r.a}), (b {id: r.b})` is planned as two full
# table scans joined by hash (2.1 s for 1,000 pairs at 60 documents, growing with the graph);
# separate MATCH clauses are primary-key lookups (~50 ms).
CREATE_MENTIONS = (
    "UNWIND $rows AS r MATCH (c:Chunk {id: r.chunk}) WITH c, r MATCH (e:Entity {id: r.entity})"
    " CREATE (c)-[:MENTIONS {count: r.count}]->(e)"
)
CREATE_RELATED = (
    "UNWIND $rows AS r MATCH (a:Entity {id: r.a}) WITH a, r MATCH (b:Entity {id: r.b})"
    " CREATE (a)-[:RELATED_TO {document_id: $doc, weight: r.weight}]->(b)"
)
DELETE_ORPHANS_OF = (
    "UNWIND $ids AS eid MATCH (e:Entity {id: eid}) WHERE NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
DELETE_OWNER_ORPHANS = (
    "MATCH (e:Entity) WHERE e.owner = $owner AND NOT EXISTS { MATCH (e)<-[:MENTIONS]-(:Chunk) } DETACH DELETE e"
)
COUNTS = (
    "MATCH (d:Document) WHERE d.owner = $owner RETURN count(d)",
    "MATCH (c:Chunk) WHERE c.owner = $owner RETURN count(c)",
    "MATCH (e:Entity) WHERE e.owner = $owner RETURN count(e)",
    "MATCH (c:Chunk)-[m:MENTIONS]->(:Entity) WHERE c.owner = $owner RETURN count(m)",
    "MATCH (a:Entity)-[r:RELATED_TO]->(:Entity) WHERE a.owner = $owner RETURN count(r)",
)
# `x CONTAINS ''` is false in LadybugDB (true in Neo4j), hence the explicit empty-query branch.
FIND = (
    "MATCH (:Chunk)-[m:MENTIONS]->(e:Entity) WHERE e.owner = $owner AND ($q = '' OR lower(e.name) CONTAINS $q)"
    " RETURN e.id, e.name, e.label, sum(m.count) AS n ORDER BY n DESC, e.name, e.id LIMIT $limit"
)
ENTITY = "MATCH (e:Entity {id: $id}) WHERE e.owner = $owner RETURN e.name, e.label"
MENTIONS = (
    "MATCH (c:Chunk)-[m:MENTIONS]->(e:Entity {id: $id}) RETURN c.document_id, c.id, c.idx, c.page,"
    " c.start_s, c.end_s, m.count ORDER BY c.document_id, c.idx"
)
RELATED = (
    "MATCH (e:Entity {id: $id})-[r:RELATED_TO]-(o:Entity) RETURN o.id, o.name, o.label,"
    " sum(r.weight) AS w ORDER BY w DESC, o.name, o.id"
)
