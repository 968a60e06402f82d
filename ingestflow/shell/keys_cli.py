"""`ingestflow keys`: make a key (an operator's command, on the database), list and revoke the caller's keys
(through the API, as any client would)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ingestflow.settings import get_settings

keys = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
console = Console()


@keys.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="user the key belongs to")] = "admin",
    label: Annotated[str | None, typer.Option(help="a name to tell the key apart in lists")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="the key stops working after this")] = None,
) -> None:
    """Create an API key (and the user, if new); the key is printed once."""
    from ingestflow.auth import create_key
    from ingestflow.db import init_db, session_scope, utcnow

    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with session_scope(settings.sqlalchemy_url) as db:
        _user, key = create_key(db, user, label=label, expires_at=expires)
    print(key)


@keys.command("list")
def keys_list() -> None:
    """The keys of the key in use (INGESTFLOW_API_KEY or the saved one): never the keys themselves."""
    from ingestflow.shell.client import ApiClient

    table = Table("id", "key", "label", "created", "expires", "revoked")
    for k in ApiClient(get_settings()).api_keys():
        mark = " (this one)" if k["current"] else ""
        table.add_row(k["id"], f"{k['prefix']}…{mark}", k["label"] or "", k["created_at"][:19],
                      (k["expires_at"] or "")[:19], (k["revoked_at"] or "")[:19])
    console.print(table)


@keys.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the id `ingestflow keys list` shows")]) -> None:
    """Revoke a key: every API process refuses it within a second (open WebSockets included)."""
    from ingestflow.shell.client import ApiClient

    ApiClient(get_settings()).revoke_key(key_id)
    console.print(f"revoked {key_id}")
