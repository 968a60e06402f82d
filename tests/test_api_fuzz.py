"""API fuzzing: schemathesis generates requests from the app's own OpenAPI schema (valid and invalid ones, with
and without the API key) and checks every response: no 5xx, and status codes, content types, headers and bodies
as documented. In-process (ASGI) against a real PostgreSQL server and a real Chroma server, authenticated with
a real API key; bounded in examples (INGESTFLOW_FUZZ_EXAMPLES per operation) so it stays in the fast tier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.main import create_app
from ingestflow.auth import PREFIX
from ingestflow.settings import Settings, get_settings

PORT_BASE = int(os.environ.get("INGESTFLOW_TEST_PORT_BASE", "18000"))
# Generated cases per operation in the fuzzing phase; the examples and coverage phases add their own.
EXAMPLES = int(os.environ.get("INGESTFLOW_FUZZ_EXAMPLES", "25"))
# Known before the schema is loaded, so schemathesis sends it through the schema's own security scheme and
# knows when a case leaves it out on purpose (those must answer 401).
KEY = PREFIX + "fuzz-" + os.urandom(16).hex()


ACCEPTABLE = ["2xx", "3xx", "401", "403", "404", "409", "413", "415", "429"]
APP = create_app()
schema = schemathesis.openapi.from_dict(APP.openapi(), config=schemathesis.Config.from_dict({
    "generation": {"max-examples": EXAMPLES},
    "auth": {"openapi": {"HTTPBearer": {"bearer": KEY}}, "auto-signup": False},
    # Schema-valid is not always acceptable: an upload's bytes must be a supported format (415) within the size
    # and quota limits (413), which no schema can say; both answers are documented on the route.
    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTABLE}},
    # A time range whose `since` is after its `until` is a 422 with that reason: a rule across two
    # parameters, which OpenAPI cannot state.
    "operations": [{"include-path-regex": "^/v1/(search|chat)", "checks": {
        "positive_data_acceptance": {"expected-statuses": [*ACCEPTABLE, "422"]}}},
        # Every multipart field is text on the wire: a "wrong type" (an object for the title) arrives as a valid
        # string, so negative cases of the upload form are not negative for the server.
        {"include-path": "/v1/documents", "include-method": "POST",
         "checks": {"negative_data_rejection": {"enabled": False}}}],
}))
schema.app = APP  # requests go to the ASGI app in-process, as `from_asgi` would send them
# Its 503 says "a dependency is down", and here Prefect and Dask are by construction: checked on its own below.
fuzzed = schema.exclude(path="/health/detailed")


@pytest.fixture(scope="module")
def api_env(postgres_server: tuple[Path, int], chroma_server: int, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Settings]:
    """One database and data directory for the module (a fresh database per operation would cost ~1 s each),
    with KEY as a real API key of a user in it."""
    from prefect.context import refresh_global_settings_context

    from ingestflow.auth import create_key
    from ingestflow.db import session_scope
    from tests.conftest import fresh_database

    url = fresh_database(postgres_server, request.module.__name__)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INGESTFLOW_DATABASE_URL", url)
        mp.setenv("INGESTFLOW_DATA_DIR", str(tmp_path_factory.mktemp("fuzz-data")))
        mp.setenv("INGESTFLOW_CHROMA_PORT", str(chroma_server))
        # No Prefect server here (and no ephemeral one started in-process): job reads fall back at once to
        # the database's view, as they do when Prefect is away.
        mp.setenv("PREFECT_API_URL", f"http://127.0.0.1:{PORT_BASE + 46}/api")
        mp.setenv("PREFECT_CLIENT_MAX_RETRIES", "0")
        refresh_global_settings_context()
        get_settings.cache_clear()
        settings_ = Settings()
        with session_scope(settings_.sqlalchemy_url) as db:
            create_key(db, "fuzzer", key=KEY)
        yield settings_
    refresh_global_settings_context()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def seeded(api_env: Settings) -> dict[str, str]:
    """Something of the key's own to read: a document with its job, a conversation. The same requests load the
    embedding and spaCy models, so no fuzzed request pays for that."""
    from starlette.testclient import TestClient

    client = TestClient(APP, headers={"Authorization": f"Bearer {KEY}"})  # no `with`: no lifespan
    up = client.post("/v1/documents", files={"file": ("notes.md", b"# Notes\n\nAda Lovelace met Babbage in London.\n")})
    assert up.status_code == 202, up.text
    assert client.get("/v1/search", params={"q": "Ada Lovelace", "expand": "graph"}).status_code == 200
    chat = client.post("/v1/chat", json={"query": "Who met Babbage?"})
    assert chat.status_code == 200, chat.text
    return {"document_id": up.json()["document_id"], "job_id": up.json()["job_id"],
            "conversation_id": chat.json()["conversation_id"]}


@fuzzed.parametrize()
# derandomize: the same cases every run, so a failure in CI is one anyone can reproduce
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=EXAMPLES, derandomize=True)
def test_fuzz_api(case: Any, seeded: dict[str, str]) -> None:
    case.call_and_validate()


def test_real_resources_conform_to_the_schema(seeded: dict[str, str]) -> None:
    """Generated ids are almost never real: each operation on the key's own resources, once with real ids, its
    answer checked by the same schemathesis checks (entities need a graph stage run, so they are left out)."""
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = [p.name for p in operation.iter_parameters() if p.location == "path"]
        if not names or not set(names) <= seeded.keys() or operation.method.upper() == "DELETE":
            continue
        operation.Case(path_parameters={n: seeded[n] for n in names}).call_and_validate()
        checked.append(operation.label)
    assert len(checked) >= 10, checked


def test_health_detailed_says_what_is_down(api_env: Settings) -> None:
    """The one documented 5xx: a 503 naming the dependencies that are down (here Prefect and Dask)."""
    case = schema["/health/detailed"]["GET"].Case()
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    assert response.status_code == 503
    report = response.json()
    deps = report["dependencies"]
    assert report["ok"] is False and deps["database"]["ok"] is True and deps["prefect"]["ok"] is False
