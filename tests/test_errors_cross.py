"""What a stage raises reaches the flow from a Dask worker as a pickle: the libraries' own exceptions that a stage
can meet must arrive with their type name, message and verdict (transient or not), even those that do not
unpickle as themselves (issue 21: pydantic's PydanticUserError arrived as a TypeError about its `code`)."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ingestflow.errors import CorruptInput, ForeignError, PermanentError, crossable, is_transient
from tests.conftest import CLOSED_PORT


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the point is to catch whatever the library raises
        return exc
    raise AssertionError("expected the call to raise")


def _pydantic_user_error() -> BaseException:
    # The very error of issue 21, raised by pydantic itself for a model whose annotation is not yet defined.
    from pydantic import BaseModel

    class Late(BaseModel):
        tokenizer: NotDefinedYet  # type: ignore[name-defined]  # noqa: F821

    return _raised(lambda: Late(tokenizer=1))


def _pydantic_validation_error() -> BaseException:
    from pydantic import BaseModel

    class Chunk(BaseModel):
        index: int

    return _raised(lambda: Chunk(index="first"))  # type: ignore[arg-type]


def _transformers_missing_model(tmp_path: Path) -> BaseException:
    from transformers import AutoTokenizer

    return _raised(lambda: AutoTokenizer.from_pretrained(str(tmp_path / "no-model"), local_files_only=True))


def _docling_conversion_error(tmp_path: Path) -> BaseException:
    from docling.document_converter import DocumentConverter

    bad = tmp_path / "broken.docx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    return _raised(lambda: DocumentConverter().convert(bad))


def _httpx_status_error() -> BaseException:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503, request=request)))
    return _raised(lambda: client.get("http://chroma.invalid/api/v2/heartbeat").raise_for_status())


def _httpx_connect_error() -> BaseException:
    return _raised(lambda: httpx.get(f"http://127.0.0.1:{CLOSED_PORT}/", timeout=2))


def _sqlalchemy_operational_error() -> BaseException:
    from sqlalchemy import create_engine, text

    engine = create_engine(f"postgresql+psycopg://u:p@127.0.0.1:{CLOSED_PORT}/db")

    def connect() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return _raised(connect)


RAISERS: dict[str, Callable[[Path], BaseException]] = {
    "pydantic-user-error": lambda _p: _pydantic_user_error(),
    "pydantic-validation-error": lambda _p: _pydantic_validation_error(),
    "transformers-missing-model": _transformers_missing_model,
    "docling-conversion-error": _docling_conversion_error,
    "httpx-status-error": lambda _p: _httpx_status_error(),
    "httpx-connect-error": lambda _p: _httpx_connect_error(),
    "sqlalchemy-operational-error": lambda _p: _sqlalchemy_operational_error(),
}


@pytest.mark.parametrize("case", list(RAISERS))
def test_a_library_exception_crosses_processes_with_its_name_message_and_verdict(case: str, tmp_path: Path) -> None:
    exc = RAISERS[case](tmp_path)
    back = pickle.loads(pickle.dumps(crossable(exc)))
    assert is_transient(back) == is_transient(exc)
    if isinstance(back, ForeignError):
        assert back.type_name == f"{type(exc).__module__}.{type(exc).__qualname__}"
        assert back.detail == str(exc)
        assert str(back) == f"{type(exc).__name__}: {exc}"
    else:
        assert type(back) is type(exc) and str(back) == str(exc)


def test_an_exception_that_cannot_cross_is_wrapped() -> None:
    # Whether PydanticUserError unpickles depends on what the process has imported (a library that installs
    # tblib's exception pickling makes it), so the wrapping is shown on one that never can: it holds a lock.
    exc = RuntimeError("the store's connection broke")
    exc.lock = threading.Lock()  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        pickle.dumps(exc)
    back = pickle.loads(pickle.dumps(crossable(exc)))
    assert isinstance(back, ForeignError) and str(back) == "RuntimeError: the store's connection broke"
    assert back.retryable is True


def test_our_errors_and_crossable_ones_are_left_alone() -> None:
    ours = PermanentError("corrupt")
    plain = ValueError("bad value")
    assert crossable(ours) is ours and crossable(plain) is plain


def test_a_stage_task_raises_what_crosses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The task boundary wraps: the chunk stage's function raising an exception that cannot be pickled leaves the
    task as a ForeignError that unpickles, transient like the original, with the original as its cause."""
    from ingestflow.refs import DocumentRef
    from tasks import chunk
    from tasks.registry import task_for

    original = RuntimeError("the tokenizer's file handle broke")
    original.handle = threading.Lock()  # type: ignore[attr-defined]

    def boom(_ref: DocumentRef) -> None:
        raise original

    monkeypatch.setattr(chunk, "chunk_document", boom)
    ref = DocumentRef(id="d1", job_id="j1", owner_id="o1", kind="document", format="pdf", title="x", collection=None,
                      source=tmp_path / "x.pdf", work_dir=tmp_path)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("tasks.common").addHandler(handler)  # Prefect's logging set-up replaces pytest's capture
    try:
        with pytest.raises(ForeignError) as caught:
            task_for("chunk").fn([ref])
    finally:
        logging.getLogger("tasks.common").removeHandler(handler)
    back = pickle.loads(pickle.dumps(caught.value))
    assert back.type_name == "builtins.RuntimeError" and back.retryable is is_transient(original)
    # Nothing of the original travels with it (Dask pickles causes and contexts); the worker's log keeps it.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert any(r.exc_info and r.exc_info[1] is original for r in records)


def test_one_of_ours_raised_from_a_library_exception_crosses_without_it() -> None:
    cause = RuntimeError("decoder state")
    cause.state = threading.Lock()  # type: ignore[attr-defined]
    try:
        raise CorruptInput("could not decode audio: invalid data") from cause
    except CorruptInput as exc:
        raised = exc
    import tblib.pickling_support  # what Dask does to every exception it sends back

    tblib.pickling_support.install(raised, cause)
    back = pickle.loads(pickle.dumps(crossable(raised)))
    assert type(back) is CorruptInput and str(back) == "could not decode audio: invalid data"


def test_a_jobs_error_speaks_of_the_document_not_the_library() -> None:
    """Issue 28: a library's raw message is for the operator (the task run's log), never the job's error."""
    from ingestflow.jobs.lifecycle import in_words

    raw = ValueError("[E088] Text of length 5000037 exceeds maximum of 1000000. The parser and NER models ...")
    for exc in (raw, crossable(raw), ForeignError(str(raw), "builtins.ValueError", False)):
        said = in_words(exc)
        assert "E088" not in said and "5000037" not in said and "(ValueError)" in said, said
        assert "search and chat leave out" in said
    assert in_words(CorruptInput("could not decode audio: invalid data")) == "could not decode audio: invalid data"
