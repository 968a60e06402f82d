"""Alembic environment: the schema is ingestflow.db's metadata; the URL comes from the caller's config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import create_engine

from ingestflow.db import Base

config = context.config
target_metadata = Base.metadata
# Full-text columns, their index (revision 0003), their statistics (0009) and the request budgets (0010) exist only
# in SQL: autogenerate must not drop them.
SQL_ONLY = {"tsv", "token_count", "ix_chunks_owner_tsv", "ix_turns_owner_tsv", "lexical_stats", "lexical_terms",
            "rate_buckets"}


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN201 - alembic's hook
    return not (reflected and compare_to is None and name in SQL_ONLY)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode: SQLite cannot ALTER most things in place; alembic rebuilds the table instead.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=include_object)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Every API process, the dispatcher and each replica upgrade at start: one at a time, so two of
                # them on a fresh database never both create the same table. Held to this transaction's end.
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('ingestflow-migrations'))"))
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
