"""`ingestflow`: start the stack, ingest files, watch jobs, search, check dependencies, manage keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ingestflow.display import visible
from ingestflow.settings import get_settings
from ingestflow.shell.keys_cli import keys


def shown(name: str) -> str:
    """A name as the terminal prints it: invisible and reordering characters as codes, no rich markup."""
    return escape(visible(name))


app = typer.Typer(help="ingestflow: recordings and documents into a knowledge base.", no_args_is_help=True)
app.add_typer(keys, name="keys")
console = Console()
TERMINAL = {"completed", "failed", "cancelled"}


@app.command()
def up() -> None:
    """Start the embedded stack (PostgreSQL, Prefect, Dask, Chroma, graph store, deployments, API) until Ctrl-C."""
    from ingestflow.auth import create_key
    from ingestflow.db import User, session_scope
    from ingestflow.shell.client import key_file
    from ingestflow.shell.stack import Stack

    settings = get_settings()
    console.print(f"Starting ingestflow in {settings.data_dir}")
    stack = Stack(settings, log=console.print)
    stack.start()
    try:
        with session_scope(settings.sqlalchemy_url) as db:
            if db.query(User).count() == 0:
                _user, key = create_key(db, "admin", settings.bootstrap_key)
                key_file(settings).write_text(key)
                key_file(settings).chmod(0o600)
                console.print(f"[bold]First API key[/] (saved to {key_file(settings)}): {key}")
        console.print(
            f"[green]ready[/]: API and dashboard http://127.0.0.1:{settings.api_port}  "
            f"Prefect UI {settings.prefect_ui_url}  (Ctrl-C stops everything)"
        )
        stack.wait()
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stack.stop()


@app.command()
def dispatcher() -> None:
    """Hand queued jobs to Prefect until SIGTERM (`up` runs one; a deployment of its own runs it once beside the
    API replicas, see docker-compose.yml)."""
    import logging

    from ingestflow.jobs.dispatcher import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(get_settings())


@app.command("import-sqlite")
def import_sqlite_cmd(
    path: Annotated[Path, typer.Argument(help="the SQLite file of an older data directory")],
) -> None:
    """Copy an older data directory's SQLite metadata into the configured PostgreSQL (`up` does it itself)."""
    from ingestflow.db import init_db
    from ingestflow.shell.stack.sqlite_import import import_sqlite

    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    console.print(import_sqlite(path, settings.sqlalchemy_url))


@app.command("migrate-vectors")
def migrate_vectors_cmd(
    keep_old: Annotated[bool, typer.Option("--keep-old", help="leave the old single collection in place")] = False,
) -> None:
    """Move a vector store from before per-owner collections into them (`up` does it itself), losing nothing:
    the old collection is removed only once every vector in it is found in its owner's collection."""
    from ingestflow.db import init_db
    from ingestflow.stores.vector_migration import migrate_vectors

    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    table = Table("old collection", "vectors copied", "owners", "chunk texts added", "without owner", "removed")
    for r in migrate_vectors(settings, remove_old=not keep_old):
        table.add_row(r.legacy, str(r.copied), str(len(r.owners)), str(r.chunk_rows), str(r.unplaced),
                      "yes" if r.removed else "no")
    console.print(table)


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            raise typer.BadParameter(f"{p} does not exist")
    return out


def _track(client: object, jobs: dict[str, str], wait: bool) -> int:
    from ingestflow.shell.client import ApiClient

    assert isinstance(client, ApiClient)
    failed = 0
    with Progress(TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[msg]}"), console=console) as progress:
        bars: dict[str, TaskID] = {jid: progress.add_task(name[:40], total=100, msg="queued") for jid, name in
                                   jobs.items()}
        pending = set(jobs)
        while pending and wait:
            for jid in list(pending):
                job = client.job(jid)
                progress.update(bars[jid], completed=job["progress"], msg=job["error"] or job["message"])
                if job["status"] in TERMINAL:
                    pending.discard(jid)
                    failed += job["status"] != "completed"
            time.sleep(1)
    return failed


def _formats_help() -> str:
    from ingestflow.detect import FORMATS

    return ", ".join(f"{f.label} (.{', .'.join(f.extensions)})" for f in FORMATS.values())


@app.command(help=f"Upload files or folders; shows a live progress bar per job. Accepted: {_formats_help()}; "
                  "a file is told by its content, not its name.")
def ingest(
    paths: list[Path],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow jobs until they end")] = True,
    collection: Annotated[str | None, typer.Option(help="collection to file the documents under")] = None,
    redact: Annotated[bool, typer.Option(
        "--redact", help="replace names, numbers, addresses and dates of birth by typed placeholders before "
                         "anything is indexed")] = False,
) -> None:
    from ingestflow.shell.client import ApiClient

    client = ApiClient(get_settings())
    jobs: dict[str, str] = {}
    for f in _files(paths):
        try:
            res = client.upload(f, collection, redact)
        except RuntimeError as exc:
            console.print(f"[red]rejected[/] {shown(str(f))}: {exc}")
            continue
        if res["duplicate"]:
            console.print(f"[yellow]duplicate[/] {shown(str(f))}: already document {res['document_id']}")
        else:
            jobs[res["job_id"]] = shown(f.name)
    failed = _track(client, jobs, wait)
    raise typer.Exit(1 if failed else 0)


def _watch(client: object) -> None:
    """Live bars for every job not yet finished, until they all are (Ctrl-C to leave)."""
    from ingestflow.shell.client import ApiClient

    assert isinstance(client, ApiClient)
    active = {j["id"]: j["document_id"][:12] for j in client.jobs(200)["items"] if j["status"] not in TERMINAL}
    if not active:
        console.print("no running or queued jobs")
        return
    _track(client, active, wait=True)


@app.command()
def status(
    job_id: Annotated[str | None, typer.Argument()] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="live progress bars until jobs end")] = False,
) -> None:
    """One job in detail, or the latest jobs."""
    from ingestflow.shell.client import ApiClient

    client = ApiClient(get_settings())
    if watch:
        _watch(client)
        return
    if job_id:
        job = client.job(job_id)
        console.print(f"{job['id']}  {job['status']}  {job['progress']}%  {job['message']}")
        for st in job["stages"]:
            console.print(f"  {st['name']:<18} {st['state']:<10} attempts={st['attempts']} {st['error'] or ''}")
        if job.get("flow_run_url"):
            console.print(f"  Prefect: {job['flow_run_url']}")
        return
    table = Table("job", "document", "kind", "status", "stage", "error")
    for job in client.jobs()["items"]:
        table.add_row(job["id"], job["document_id"], job["kind"], job["status"], job["stage"] or "", job["error"] or "")
    console.print(table)


@app.command()
def search(query: str, k: Annotated[int, typer.Option(help="hits to show")] = 5) -> None:
    """Semantic search over your documents."""
    from ingestflow.shell.client import ApiClient

    for hit in ApiClient(get_settings()).search(query, k)["hits"]:
        where = f"p.{hit['page']}" if hit["page"] else (f"{hit['start_s']:.1f}s" if hit["start_s"] is not None else "")
        console.print(f"[bold]{hit['score']:.3f}[/] {shown(hit['title'])} {where}\n  {hit['text'][:200]}")


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


@app.command()
def backfill(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be re-queued")] = False,
) -> None:
    """Re-queue documents that failed, are stuck, miss an index or were indexed by an older model."""
    from ingestflow.db import session_scope
    from ingestflow.jobs import backfill as sweep

    settings = get_settings()
    if dry_run:
        with session_scope(settings.sqlalchemy_url) as db:
            repairs = sweep.plan(db, settings)
        table = Table("document", "owner", "action", "from stage", "estimate", "reason")
        for r in repairs:
            table.add_row(r.document_id, r.owner_id, r.action, r.from_stage or "", _seconds(r.estimate_s), r.reason)
        console.print(table)
        known = [r.estimate_s for r in repairs if r.estimate_s is not None]
        total = f"; about {_seconds(sum(known))} of stage work" if known else ""
        unknown = f" ({len(repairs) - len(known)} with no accounting to go by)" if len(known) < len(repairs) else ""
        console.print(f"{len(repairs)} document(s) would be re-queued{total}{unknown}")
        return
    from ingestflow.prefect_names import BACKFILL_DEPLOYMENT

    _run_deployment(BACKFILL_DEPLOYMENT, "backfill", timeout_s=120)


def _run_deployment(deployment: str, label: str, timeout_s: int) -> None:
    """A real run goes through the deployment, so it shows in the Prefect UI like the scheduled ones."""
    import asyncio

    from prefect.deployments.flow_runs import arun_deployment

    run = asyncio.run(arun_deployment(deployment, parameters={"dry_run": False}, timeout=timeout_s))
    console.print(f"{label} run {run.id}: {run.state.name if run.state else '?'} "
                  f"({get_settings().prefect_ui_url}/runs/flow-run/{run.id})")


@app.command()
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what the policies would expire")] = False,
) -> None:
    """Apply the retention policies now (through the `retention` deployment, so the run shows in Prefect)."""
    from ingestflow.db import session_scope
    from ingestflow.jobs import retention as policies

    settings = get_settings()
    if dry_run:
        with session_scope(settings.sqlalchemy_url, read_only=True) as db:
            due = policies.plan(db, settings)
        table = Table("document", "owner", "title", "collection", "uploaded", "policy", "action")
        for e in due:
            table.add_row(e.document_id, e.owner_id, shown(e.title), e.collection or "",
                          e.created_at.date().isoformat(), f"{e.days} days", e.action)
        console.print(table)
        console.print(f"{len(due)} document(s) would expire")
        return
    from ingestflow.prefect_names import RETENTION_DEPLOYMENT

    _run_deployment(RETENTION_DEPLOYMENT, "retention", timeout_s=300)


@app.command()
def doctor() -> None:
    """Check every dependency and say what is wrong."""
    import asyncio

    from ingestflow.shell.health import detailed

    report = asyncio.run(detailed(get_settings()))
    for name, dep in report.dependencies.items():
        mark = "[green]ok[/]" if dep.ok else "[red]FAIL[/]"
        console.print(f"{mark:<20} {name:<10} {dep.error or ''}")
    raise typer.Exit(0 if report.ok else 1)


if __name__ == "__main__":
    app()
