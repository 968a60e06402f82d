"""Schema migrations with Alembic: `init_db` brings any database to the latest revision at start-up.

After changing ingestflow/db.py, add a revision:
    .venv/bin/python -m ingestflow.migrate revision "what changed"
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


if __name__ == "__main__":
    from ingestflow.settings import get_settings

    if len(sys.argv) >= 3 and sys.argv[1] == "revision":
        url = get_settings().sqlalchemy_url
        upgrade(url)
        command.revision(alembic_config(url), message=sys.argv[2], autogenerate=True)
    else:
        upgrade(get_settings().sqlalchemy_url)
