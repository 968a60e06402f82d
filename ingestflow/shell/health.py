"""Each dependency's state, for /health/detailed and `ingestflow doctor`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from ingestflow.db import get_engine
from ingestflow.models import embedding_model_path
from ingestflow.settings import Settings


class Check(BaseModel):
    """One dependency's state: ok, or the error that says why not; each check adds what it knows (where the
    dependency is, its workers, its processes), which differs per dependency, hence free-form extras."""

    model_config = ConfigDict(extra="allow")
    ok: bool
    error: str | None = None


class HealthReport(BaseModel):
    ok: bool
    dependencies: dict[str, Check]


def _ok(**extra: Any) -> Check:
    return Check(ok=True, **extra)


def _fail(exc: BaseException) -> Check:
    return Check(ok=False, error=f"{type(exc).__name__}: {exc}")


def check_database(settings: Settings) -> Check:
    try:
        with get_engine(settings.sqlalchemy_url).connect() as conn:
            conn.execute(text("SELECT 1"))
        return _ok(url=settings.sqlalchemy_url.split("@")[-1])
    except Exception as exc:
        return _fail(exc)


def _answers(url: str, shown_as: str) -> Check:
    try:
        httpx.get(url, timeout=3).raise_for_status()
        return _ok(url=shown_as)
    except Exception as exc:
        return _fail(exc)


def check_prefect(settings: Settings) -> Check:
    return _answers(f"{settings.prefect_url}/health", settings.prefect_ui_url)


def check_chroma(settings: Settings) -> Check:
    server = f"http://{settings.chroma_host}:{settings.chroma_port}"
    return _answers(f"{server}/api/v2/heartbeat", server)


def check_dask(settings: Settings) -> Check:
    try:
        from distributed import Client

        with Client(settings.dask_scheduler, timeout=3) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        return _ok(
            scheduler=settings.dask_scheduler,
            workers=[{"address": a, "threads": w.get("nthreads"), "resources": w.get("resources", {})}
                     for a, w in workers.items()],
        ) if workers else Check.model_validate(
            {"ok": False, "error": "no Dask workers connected", "scheduler": settings.dask_scheduler})
    except Exception as exc:
        return _fail(exc)


def check_graph(settings: Settings) -> Check:
    if settings.graph_backend == "ladybug":
        path = settings.graph_path
        return _ok(backend="ladybug", path=str(path), exists=path.exists())
    try:
        from neo4j import GraphDatabase

        with GraphDatabase.driver(settings.neo4j_uri or "", auth=(settings.neo4j_user, settings.neo4j_password)) as d:
            d.verify_connectivity()
        return _ok(backend="neo4j", uri=settings.neo4j_uri)
    except Exception as exc:
        return _fail(exc)


def check_models(settings: Settings) -> Check:
    try:
        import importlib.util

        path = embedding_model_path(settings.embedding_model)
        return _ok(
            embedding=str(path) if path.exists() else None,
            spacy=settings.spacy_model if importlib.util.find_spec(settings.spacy_model) else None,
        )
    except Exception as exc:
        return _fail(exc)


def check_processes(settings: Settings) -> Check:
    """The supervised children of `ingestflow up` (absent when the stack runs elsewhere)."""
    from ingestflow.shell.stack.supervisor import read_states

    states = read_states(settings.data_dir / "stack.json")
    return Check.model_validate({"ok": all(s.state == "running" for s in states),
                                 "processes": [s.model_dump(mode="json") for s in states]})


CHECKS = {
    "database": check_database,
    "prefect": check_prefect,
    "dask": check_dask,
    "chroma": check_chroma,
    "graph": check_graph,
    "models": check_models,
    "processes": check_processes,
}


async def detailed(settings: Settings) -> HealthReport:
    results = await asyncio.gather(*(asyncio.to_thread(fn, settings) for fn in CHECKS.values()))
    deps = dict(zip(CHECKS, results, strict=True))
    deps["llm"] = _ok(configured=False)
    return HealthReport(ok=all(d.ok for d in deps.values()), dependencies=deps)
