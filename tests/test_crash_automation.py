"""The crash automation on the stack's real Prefect server: a flow run that went Running and never sent a heartbeat
(its process died first) is marked Crashed; the bootstrap keeps the automation up to date. That its jobs are then
re-dispatched is the kill matrix's to show (tests/test_zz_kill_matrix.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytestmark = pytest.mark.slow


async def _until_crashed(run_id: Any, timeout: float) -> tuple[str, float]:
    from prefect.client.orchestration import get_client

    t0 = time.monotonic()
    async with get_client() as client:
        while True:
            run = await client.read_flow_run(run_id)
            state = run.state.type.value if run.state else "NONE"
            if state != "RUNNING" or time.monotonic() - t0 > timeout:
                return state, time.monotonic() - t0
            await asyncio.sleep(1)


async def _silent_run() -> Any:
    """A flow run set Running with no process behind it: none ever sends a heartbeat."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Pending, Running

    @flow(name="ingestflow-test-died-before-heartbeat")
    def died() -> None:  # never runs
        pass

    async with get_client() as client:
        run = await client.create_flow_run(died, state=Pending())
        await client.set_flow_run_state(run.id, Running(), force=True)
        return run.id


def test_a_run_that_died_before_its_first_heartbeat_is_marked_crashed(stack: Any) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: stack.settings.prefect_url}):
        run_id = asyncio.run(_silent_run())
        # 90 s of silence, plus the server's periodic evaluation (every few seconds) and a loaded machine's slack.
        state, waited = asyncio.run(_until_crashed(run_id, timeout=90 + 60))
    assert state == "CRASHED", f"still {state} {waited:.0f} s after it went Running"
    assert waited > 80, f"crashed after {waited:.0f} s: not by the automation's 90 s of silence"


def test_bootstrap_brings_an_older_crash_automation_up_to_date(stack: Any) -> None:
    import httpx
    from prefect.automations import Automation
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.bootstrap import crash_automation, ensure_automation
    from ingestflow.prefect_names import CRASH_AUTOMATION

    def updated_at(automation_id: Any) -> str:
        return str(httpx.get(f"{stack.settings.prefect_url}/automations/{automation_id}").json()["updated"])

    async def older_then_ensure() -> tuple[set[str], set[str], str, str]:
        found = await Automation.aread(name=CRASH_AUTOMATION)
        found.trigger.after = {"prefect.flow-run.heartbeat"}  # as bootstrap made it before
        await found.aupdate()
        before = set((await Automation.aread(name=CRASH_AUTOMATION)).trigger.after)
        await ensure_automation()
        brought = await Automation.aread(name=CRASH_AUTOMATION)
        stamp = updated_at(brought.id)
        await ensure_automation()  # up to date: not written again at the next start
        return before, set(brought.trigger.after), stamp, updated_at(brought.id)

    with temporary_settings({PREFECT_API_URL: stack.settings.prefect_url}):
        before, after, stamp, stamp_again = asyncio.run(older_then_ensure())
    assert before == {"prefect.flow-run.heartbeat"}
    assert after == set(crash_automation().trigger.after)
    assert stamp_again == stamp
