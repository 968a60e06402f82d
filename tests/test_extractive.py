"""The extractive answer (no LLM) opens with a sentence that answers the question, with the packaged embedding
model in-process."""

from __future__ import annotations

from ingestflow.answering.extractive import extractive_answer
from ingestflow.answering.search import Source, embed_texts
from ingestflow.settings import Settings


def _source(n: int, text: str, page: int) -> Source:
    return Source(n=n, document_id=f"d{n}", chunk_id=f"d{n}:00000", text=text, score=1 / (60 + n), vector_score=0.3,
                  title="rail report", kind="text", page=page)


def test_the_answer_opens_with_what_answers_not_with_the_top_passages_cover_line() -> None:
    # Issue 22: the first-ranked passage was a cover page that matched "prepare"; the answer opened with it.
    settings = Settings()
    question = "Who has to prepare the rail agreement and by when?"
    sources = [
        _source(1, "Prepared for the Board of Trustees, March 2025. Regional transport review, volume two.", 1),
        _source(2, "Dana Whitfield must draft the rail agreement with the port authority by the end of June. "
                   "Bus timetables are reviewed every spring.", 4),
    ]
    answer = extractive_answer(settings, sources, embed_texts(settings, [question])[0])
    assert answer.startswith("Dana Whitfield must draft the rail agreement"), answer
    assert "Board of Trustees" not in answer and sources[1].cited


def test_the_first_ranked_passage_still_opens_when_it_answers() -> None:
    settings = Settings()
    question = "Who patented the typewriter, and when?"
    sources = [
        _source(1, "Christopher Latham Sholes patented the first practical typewriter in 1868.", 1),
        _source(2, "Typewriters were used in offices for a century before word processors.", 2),
    ]
    answer = extractive_answer(settings, sources, embed_texts(settings, [question])[0])
    assert answer.startswith("Christopher Latham Sholes patented") and answer.split("[")[1].startswith("1]")
