"""The FastAPI app: routes plus the dispatcher loop that hands queued jobs to Prefect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import errors, limits
from api.routes import (
    chat,
    dashboard,
    documents,
    entities,
    formats,
    health,
    jobs,
    keys,
    owner_settings,
    retention,
    search,
    stages,
    webhooks,
    ws,
)
from ingestflow.db import init_db
from ingestflow.jobs.dispatcher import run_forever
from ingestflow.settings import get_settings
from ingestflow.stores import storage


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    storage.sweep_stale_spools(settings.files_dir)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(run_forever(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await loop_task


def create_app() -> FastAPI:
    app = FastAPI(title="ingestflow", version="0.1.0", lifespan=lifespan)
    for module in (documents, jobs, keys, stages, formats, owner_settings, retention, webhooks, search, entities,
                   chat, ws, health, dashboard):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(limits.BodyIdleTimeout)
    dashboard.mount_static(app)
    return app


app = create_app()
