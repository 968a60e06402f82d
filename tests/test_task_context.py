"""A Dask worker's task runs reuse the Prefect settings built for their flow run's serialized settings
(ingestflow/shell/task_context.py), through Prefect's own hydrated_context, with the same values as without it."""

from __future__ import annotations

import threading
from typing import Any

import prefect.context
import pytest
from prefect.context import hydrated_context, serialize_context
from prefect.settings import PREFECT_API_URL, PREFECT_TASK_DEFAULT_RETRIES, temporary_settings

from ingestflow.shell import task_context


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefect.context, "SettingsContext", prefect.context.SettingsContext)  # put back afterwards
    monkeypatch.setattr(task_context, "_BUILT", {})
    assert task_context.install()


def _hydrated_settings(serialized: dict[str, Any]) -> Any:
    with hydrated_context(serialized):
        ctx = prefect.context.SettingsContext.get()
        assert ctx is not None
        return ctx.settings


def test_task_runs_of_one_flow_run_share_settings_built_once(installed: None) -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api", PREFECT_TASK_DEFAULT_RETRIES: 2}):
        serialized = serialize_context()
    first, second = _hydrated_settings(serialized), _hydrated_settings(serialized)
    assert first is second
    # The values Prefect itself builds from the same serialized context.
    assert first == task_context._ORIGINAL(**serialized["settings_context"]).settings
    assert first.api.url == "http://127.0.0.1:1/api" and first.tasks.default_retries == 2


def test_other_settings_get_their_own(installed: None) -> None:
    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 1}):
        one = serialize_context()
    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 3}):
        three = serialize_context()
    assert _hydrated_settings(one).tasks.default_retries == 1
    assert _hydrated_settings(three).tasks.default_retries == 3
    assert len(task_context._BUILT) == 2


def test_two_task_threads_enter_and_leave_their_own_contexts(installed: None) -> None:
    """Each task run still enters a context of its own: a shared one would reset the other thread's token."""
    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 4}):
        serialized = serialize_context()
    outside = prefect.context.SettingsContext.get()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def task_run() -> None:
        try:
            for _ in range(20):
                with hydrated_context(serialized):
                    barrier.wait(timeout=10)
                    ctx = prefect.context.SettingsContext.get()
                    assert ctx is not None and ctx.settings.tasks.default_retries == 4
        except BaseException as exc:  # noqa: BLE001  (reported by the test's thread)
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=task_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert prefect.context.SettingsContext.get() is outside


def test_another_prefect_version_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefect.context, "SettingsContext", prefect.context.SettingsContext)
    monkeypatch.setattr(task_context, "version", lambda _name: "3.9.0")
    before = prefect.context.SettingsContext
    assert not task_context.install()
    assert prefect.context.SettingsContext is before


def test_a_flow_run_serializes_its_settings_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The flow side: every task run submitted carries the same settings dict, walked once per settings context,
    equal to what Prefect's own serialize gives; another context (other settings) is walked on its own."""
    original = task_context._ORIGINAL
    monkeypatch.setattr(original, "serialize", original.serialize)  # put back afterwards
    monkeypatch.setattr(task_context, "_SERIALIZED", {})
    walks: list[int] = []
    plain = task_context._SERIALIZE

    def counted(self: Any, include_secrets: bool = True) -> dict[str, Any]:
        walks.append(id(self))
        return plain(self, include_secrets=include_secrets)

    monkeypatch.setattr(task_context, "_SERIALIZE", counted)
    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 5}):
        expected = plain(prefect.context.SettingsContext.get())
        assert task_context.install_flow_side()
        first, second = serialize_context(), serialize_context()
    assert first["settings_context"] is second["settings_context"]
    assert first["settings_context"] == expected
    assert len(walks) == 1
    with temporary_settings(updates={PREFECT_TASK_DEFAULT_RETRIES: 6}):
        other = serialize_context()
    assert other["settings_context"]["settings"]["tasks"]["default_retries"] == 6
    assert len(walks) == 2
