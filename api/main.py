"""The FastAPI app: routes only. Uploads insert rows; the dispatcher (`ingestflow dispatcher`, its own process)
hands them to Prefect, so the API can run as several processes (`api_workers`)."""

from __future__ import annotations

import sys
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
from ingestflow.settings import get_settings
from ingestflow.stores import storage

GIL_SWITCH_S = 0.001


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    init_db(settings.sqlalchemy_url)
    storage.sweep_stale_spools(settings.files_dir)
    # A thread back from a database round trip waits for the GIL until the thread holding it gives it up, after
    # at most this interval (5 ms by default). An upload makes about seven round trips, so under a burst each
    # upload waited up to 35 ms for the GIL alone; at 1 ms, 100 concurrent uploads on two processes answered
    # within p99 0.71-0.99 s instead of 1.06-1.34 s (bench/ingest_bench.py, two rounds each).
    sys.setswitchinterval(GIL_SWITCH_S)
    yield


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
