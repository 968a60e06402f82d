"""Make the Prefect server ready for ingestflow: work pool, concurrency limits, deployments from prefect.yaml.

Idempotent: run at every start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from deployments.names import GRAPH_WRITER_LIMIT, WORK_POOL

ROOT = Path(__file__).resolve().parent.parent


async def ensure_server_objects() -> None:
    async with get_client() as client:
        try:
            await client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
        try:
            await client.read_global_concurrency_limit_by_name(GRAPH_WRITER_LIMIT)
        except ObjectNotFound:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GRAPH_WRITER_LIMIT, limit=1))


def deploy_all() -> None:
    env = dict(os.environ, INGESTFLOW_PROJECT_DIR=str(ROOT))
    prefect = str(Path(sys.executable).parent / "prefect")
    subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    asyncio.run(ensure_server_objects())
    deploy_all()


if __name__ == "__main__":
    main()
