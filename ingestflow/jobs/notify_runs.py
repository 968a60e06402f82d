"""Starts the `notify` deployment (flows/notify.py) when a webhook delivery is due and the run this process
started last has ended. Asked by the dispatcher's loop every tick: one indexed query when nothing is due."""

from __future__ import annotations

import asyncio
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.deployments.flow_runs import arun_deployment
from prefect.exceptions import ObjectNotFound

from ingestflow.notify import delivery
from ingestflow.prefect_names import NOTIFY_DEPLOYMENT
from ingestflow.settings import Settings


class NotifyRuns:
    def __init__(self) -> None:
        self.run_id: UUID | None = None

    async def _in_flight(self) -> bool:
        if self.run_id is None:
            return False
        async with get_client() as client:
            try:
                run = await client.read_flow_run(self.run_id)
            except ObjectNotFound:
                return False
        return run.state is not None and not run.state.is_final()

    async def tick(self, settings: Settings) -> None:
        if not await asyncio.to_thread(delivery.any_due, settings) or await self._in_flight():
            return
        self.run_id = (await arun_deployment(NOTIFY_DEPLOYMENT, timeout=0)).id
