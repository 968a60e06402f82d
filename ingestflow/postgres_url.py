"""How the embedded PostgreSQL is reached: its superuser, its password (made on first use) and its URL. The
settings read them to connect; the stack (ingestflow/shell/stack/postgres.py) starts the server."""

from __future__ import annotations

import secrets
from pathlib import Path

SUPERUSER = "ingestflow"


def password_file(data_dir: Path) -> Path:
    return data_dir / "postgres.password"


def password(data_dir: Path) -> str:
    """The cluster's password, made on first use; only this data directory's owner can read it."""
    path = password_file(data_dir)
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def url(data_dir: Path, port: int, database: str = "ingestflow", driver: str = "psycopg") -> str:
    return f"postgresql+{driver}://{SUPERUSER}:{password(data_dir)}@127.0.0.1:{port}/{database}"
