"""BM25's statistics kept as rows change: each owner's row count and length, and each lexeme's document frequency

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

Lexical search counted them per query (issue 28): at 100k chunks of one owner that was a scan of the owner's
rows for the mean length (54 ms) and a bitmap heap scan per query term for its frequency (15 ms each for a
common term), 115 of a query's 161 ms. Triggers on `chunks` and `turns` now keep them in `lexical_stats` and
`lexical_terms`, as a search engine keeps its index statistics, so a query reads them by key. Each statement's
changes are added in one upsert per table, the owner's `lexical_stats` row first: that row is the owner's lock,
so two transactions writing one owner's rows take their turn instead of deadlocking over the lexeme rows they
both touch (with the lexemes first, four concurrent re-embeds deadlocked in every run of
tests/test_lexical_stats.py). An owner whose rows are all gone leaves nothing behind.
PostgreSQL only (SQLite has no lexical search).
"""
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ("chunks", "turns")

# Adds (sign 1) or takes away (sign -1) a set of rows' counts: `rows` is a transition table. The stats row first
# (the owner's lock, above), owners in order.
_APPLY = """
    INSERT INTO lexical_stats AS s (tbl, owner_id, n, total_len)
        SELECT TG_TABLE_NAME, owner_id, {sign} * count(*), {sign} * coalesce(sum(token_count), 0)
        FROM {rows} GROUP BY owner_id ORDER BY owner_id
    ON CONFLICT (tbl, owner_id) DO UPDATE SET n = s.n + excluded.n, total_len = s.total_len + excluded.total_len;
    INSERT INTO lexical_terms AS t (tbl, owner_id, lexeme, df)
        SELECT TG_TABLE_NAME, r.owner_id, u.lexeme, {sign} * count(*)
        FROM {rows} r CROSS JOIN LATERAL unnest(r.tsv) AS u(lexeme, positions, weights)
        GROUP BY r.owner_id, u.lexeme ORDER BY r.owner_id, u.lexeme
    ON CONFLICT (tbl, owner_id, lexeme) DO UPDATE SET df = t.df + excluded.df;
"""
# An owner whose last row went takes their counts with them. A lexeme whose count fell to zero while the owner
# still has rows keeps its row (a query reads only df > 0): pruning those per statement joined every change with
# the whole table, and deleting an owner of 100k chunks, document by document, ran for more than ten minutes.
_PRUNE = """
    WITH gone AS (DELETE FROM lexical_stats s WHERE s.tbl = TG_TABLE_NAME AND s.n <= 0
                  AND s.owner_id IN (SELECT owner_id FROM old_rows) RETURNING s.owner_id)
    DELETE FROM lexical_terms t USING gone WHERE t.tbl = TG_TABLE_NAME AND t.owner_id = gone.owner_id;
"""
FUNCTION = f"""
CREATE OR REPLACE FUNCTION lexical_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {_APPLY.format(rows='old_rows', sign=-1)}
        {_PRUNE}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_APPLY.format(rows='new_rows', sign=1)}
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("CREATE TABLE lexical_stats (tbl text NOT NULL, owner_id varchar(32) NOT NULL, n bigint NOT NULL, "
               "total_len bigint NOT NULL, PRIMARY KEY (tbl, owner_id))")
    op.execute("CREATE TABLE lexical_terms (tbl text NOT NULL, owner_id varchar(32) NOT NULL, lexeme text NOT NULL, "
               "df bigint NOT NULL, PRIMARY KEY (tbl, owner_id, lexeme))")
    op.execute(FUNCTION)
    for table in TABLES:
        op.execute(f"LOCK TABLE {table} IN SHARE MODE")  # no row changes between the count and the triggers
        op.execute(f"INSERT INTO lexical_stats SELECT '{table}', owner_id, count(*), coalesce(sum(token_count), 0) "
                   f"FROM {table} GROUP BY owner_id")
        op.execute(f"INSERT INTO lexical_terms SELECT '{table}', c.owner_id, u.lexeme, count(*) FROM {table} c "
                   f"CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights) GROUP BY c.owner_id, u.lexeme")
        op.execute(f"CREATE TRIGGER {table}_lexical_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION lexical_count()")
        op.execute(f"CREATE TRIGGER {table}_lexical_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION lexical_count()")
        op.execute(f"CREATE TRIGGER {table}_lexical_update AFTER UPDATE ON {table} "
                   f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION lexical_count()")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        for op_name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_lexical_{op_name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS lexical_count()")
    op.execute("DROP TABLE IF EXISTS lexical_terms")
    op.execute("DROP TABLE IF EXISTS lexical_stats")
