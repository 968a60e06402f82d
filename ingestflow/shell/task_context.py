"""Dask worker preload (`dask worker --preload ingestflow.shell.task_context`): a Prefect task run starts without
building Prefect's settings again from their serialized form.

Why: every task run a flow submits to Dask carries the flow's settings as a dict, and Prefect 3.8.8's
`prefect.context.hydrated_context` turns it back into a `Settings` on the worker for each task run, which reads the
environment, the .env and TOML files once per nested settings model (41 ms idle here). Measured on the stack's
Dask worker (a no-op task submitted 200 times in turn from a flow, NO_CACHE, no result persisted): submit to the
task's body p50 101 ms against 7 ms for a plain Dask task, and py-spy put 591 of the engine's 712 samples in
`hydrated_context`, nearly all of them building those settings. A flow run's settings are the same dict for each of
its task runs, so the worker builds them once per distinct dict and hands each task run a new context around the
same (immutable) `Settings` and `Profile`: each task run still enters a context of its own (the context variable's
token is per instance, and two task threads enter at once), and a flow run with other settings gets its own.
Prefect's own fix for its process pool runner does the same (PrefectHQ/prefect#20853); Prefect's serialized
context is the only input, so another Prefect version is left as it is rather than patched blind.
"""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import prefect.context

if TYPE_CHECKING:
    from distributed import Worker

log = logging.getLogger("distributed.worker.task_context")
PREFECT_VERSION = "3.8.8"  # the version whose hydrated_context this was measured on and fitted to
_ORIGINAL = prefect.context.SettingsContext


class ReusedSettingsContext(_ORIGINAL):
    """What `hydrated_context` builds for a task run: the same fields, from settings built once per distinct dict."""

    def __init__(self, **data: Any) -> None:
        if isinstance(data.get("settings"), dict):
            built = _built(data)
            data = {**data, "profile": built.profile, "settings": built.settings}
        super().__init__(**data)


_BUILT: dict[str, Any] = {}  # serialized context -> the context Prefect built from it
_KEEP = 16  # distinct serialized contexts kept (the flow runs of one stack send one or a few)


def _built(data: dict[str, Any]) -> Any:
    """The context Prefect builds from this serialized one, built once (two threads may both build it once)."""
    key = json.dumps(data, sort_keys=True, default=str)
    built = _BUILT.get(key)
    if built is None:
        built = _ORIGINAL(**data)
        if len(_BUILT) >= _KEEP:
            _BUILT.clear()
        _BUILT[key] = built
    return built


def install() -> bool:
    """Task runs of this process build their settings once per flow run's settings; False (nothing changed) on a
    Prefect version it was not fitted to."""
    if version("prefect") != PREFECT_VERSION:
        log.warning("prefect %s, not %s: task runs build their settings each time", version("prefect"),
                    PREFECT_VERSION)
        return False
    # hydrated_context looks the class up in its module when it runs: the one name to change.
    prefect.context.SettingsContext = ReusedSettingsContext  # type: ignore[misc]
    return True


# The flow side of the same cost: Prefect serializes the whole settings model for every task run it submits to Dask
# (`prefect.context.serialize_context`, 15-67 ms a call here), though a flow run's settings context is the same
# immutable object for all of them. Serialized once per context instance; the instance is held so its id is not
# reused while it is a key.
_SERIALIZED: dict[tuple[int, bool], tuple[Any, dict[str, Any]]] = {}
_SERIALIZE = _ORIGINAL.serialize


def _serialize_once(self: Any, include_secrets: bool = True) -> dict[str, Any]:
    key = (id(self), include_secrets)
    held = _SERIALIZED.get(key)
    if held is None or held[0] is not self:
        if len(_SERIALIZED) >= _KEEP:
            _SERIALIZED.clear()
        held = _SERIALIZED[key] = (self, _SERIALIZE(self, include_secrets=include_secrets))
    return held[1]


def install_flow_side() -> bool:
    """A flow run's process serializes its settings once per settings context, not at every task run it submits;
    False (nothing changed) on a Prefect version it was not fitted to."""
    if version("prefect") != PREFECT_VERSION:
        return False
    _ORIGINAL.serialize = _serialize_once  # type: ignore[method-assign]
    return True


def dask_setup(worker: Worker) -> None:
    install()
