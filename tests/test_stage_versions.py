"""Fast tier: stages that know their version (issue 24, part 4). Every document records the version each stage
ran at; the backfill finds the first stage whose version moved, re-runs it and the stages after it only, and
says how long that took last time. The re-run itself on the real stack: tests/test_e2e_redaction.py."""

from __future__ import annotations

from ingestflow.db import Document, Job
from ingestflow.jobs.backfill import estimate, stale_stage
from ingestflow.pipeline import BY_NAME, plan

EMBEDDING = "all-MiniLM-L6-v2 (current)"


def _doc(kind: str = "text", redacted: bool = False, keep: bool = False, **versions: str) -> Document:
    ran = {s.name: s.version for s in plan(kind, redact=redacted)}
    ran.update({k.replace("_", "-"): v for k, v in versions.items()})
    return Document(id="d", owner_id="o", kind=kind, redact=redacted, keep_original=keep, stage_versions=ran,
                    models={"embedding": EMBEDDING})


def test_every_stage_declares_a_version() -> None:
    assert all(stage.version for stage in BY_NAME.values())


def test_an_up_to_date_document_and_one_from_before_versions_are_left_alone() -> None:
    assert stale_stage(_doc(), EMBEDDING) is None
    legacy = _doc()
    legacy.stage_versions = {}
    assert stale_stage(legacy, EMBEDDING) is None


def test_the_first_stage_whose_version_moved_is_where_the_rerun_starts() -> None:
    assert stale_stage(_doc(summarise="0"), EMBEDDING) == ("summarise", "summarise ran at version 0, now "
                                                            f"{BY_NAME['summarise'].version}")
    stage, _ = stale_stage(_doc(chunk="0", summarise="0"), EMBEDDING) or ("", "")
    assert stage == "chunk"
    # Another embedding model: from embed, not from the start as before.
    doc = _doc()
    doc.models = {"embedding": "older-model"}
    assert stale_stage(doc, EMBEDDING) == ("embed", f"embedded by older-model, now {EMBEDDING}")


def test_new_redaction_rules_rerun_from_redaction_only_where_the_original_was_kept() -> None:
    stage, reason = stale_stage(_doc("audio", redacted=True, keep=True, redact="0"), EMBEDDING) or ("", "")
    assert stage == "redact" and "redact ran at version 0" in reason
    # Without the unredacted text, only the upload still says what was said: everything runs again.
    stage, reason = stale_stage(_doc("audio", redacted=True, keep=False, redact="0"), EMBEDDING) or ("", "")
    assert stage == "transcribe" and "read again from the upload" in reason


def test_the_estimate_is_what_those_stages_took_last_time() -> None:
    doc = _doc()
    job = Job(stage_metrics={name: {"wall_s": w} for name, w in [("parse", 5.0), ("chunk", 0.5), ("embed", 2.0),
                             ("extract-entities", 1.0), ("graph", 0.25), ("summarise", 0.75)]})
    assert estimate(doc, job, "embed") == 4.0
    assert estimate(doc, Job(stage_metrics={"parse": {"wall_s": 1.0}}), "embed") is None  # no accounting for it
