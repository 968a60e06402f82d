"""The FastAPI app: routes only. Uploads insert rows; the dispatcher (`ingestflow dispatcher`, its own process)
hands them to Prefect, so the API can run as several processes (`api_workers`)."""

from __future__ import annotations

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
    live,
    owner_settings,
    retention,
    search,
    stages,
    webhooks,
    ws,
)
from ingestflow.db import init_db
from ingestflow.settings import get_settings
from ingestflow.stores import storage


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    storage.sweep_stale_spools(settings.files_dir)
    yield


def create_app() -> FastAPI:
    app = FastAPI(title="ingestflow", version="0.1.0", lifespan=lifespan)
    for module in (documents, jobs, keys, stages, formats, owner_settings, retention, webhooks, search, entities,
                   chat, ws, live, health, dashboard):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(limits.BodyIdleTimeout)
    dashboard.mount_static(app)
    return app


app = create_app()
