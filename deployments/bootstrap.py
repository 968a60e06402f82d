"""Make the Prefect server ready for ingestflow: work pool, crash automation, deployments from prefect.yaml.

Idempotent: run at every start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from prefect.automations import Automation, EventTrigger, Posture
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from ingestflow.prefect_names import CRASH_AUTOMATION, WORK_POOL

ROOT = Path(__file__).resolve().parent.parent


async def ensure_server_objects() -> None:
    async with get_client() as client:
        try:
            await client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))


def crash_automation(silence_s: int = 90) -> Automation:
    """A running flow whose heartbeats stop (its process and worker died) is marked Crashed; Prefect
    would otherwise show it Running forever. The dispatcher then re-dispatches the job.

    The silence is counted from the run's last heartbeat or, before its first, from its Running state: the
    server records that state itself, while the engine's first heartbeat leaves the process a moment later over
    its events connection, and a process killed in between (the worker SIGKILLed mid-batch, its runs with it) sent
    none. Counted from heartbeats alone, such a run stayed Running for good and held its jobs (tests/
    test_crash_automation.py; the likely cause of a CI run's kill-matrix batch left unfinished after 900 s)."""
    return Automation(
        name=CRASH_AUTOMATION,
        description="Mark flow runs Crashed when their heartbeats stop (ingestflow bootstrap).",
        trigger=EventTrigger(
            after={"prefect.flow-run.Running", "prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silence_s),
        ),
        actions=[ChangeFlowRunState(name="Crashed", state=StateType.CRASHED, force=False,
                                    message=f"no heartbeat for {silence_s} s: process died")],
    )


async def ensure_automation() -> None:
    """Created once; one that an earlier version of this file made is brought up to date."""
    wanted = crash_automation()
    try:
        found = await Automation.aread(name=CRASH_AUTOMATION)
    except ValueError:
        await wanted.acreate()
        return
    fields = {"trigger", "actions", "description", "enabled"}
    if found.model_dump(include=fields) != wanted.model_dump(include=fields):
        wanted.id = found.id
        await wanted.aupdate()


def deploy_all() -> None:
    env = dict(os.environ, INGESTFLOW_PROJECT_DIR=str(ROOT), INGESTFLOW_PYTHON=sys.executable)
    prefect = str(Path(sys.executable).parent / "prefect")
    subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    asyncio.run(ensure_server_objects())
    asyncio.run(ensure_automation())
    deploy_all()


if __name__ == "__main__":
    main()
