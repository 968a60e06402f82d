"""Recognizers for what Presidio's defaults miss in call transcripts and case notes.

Each is a regular expression with, where the bare pattern would catch too much, a cue that must come shortly
before it in the same text ("born" before a date, "sort code" before six digits). They report the placeholder
types the redaction uses (`BANK_ACCOUNT`, `ADDRESS`, `DATE_OF_BIRTH`, ...), not Presidio's US-centred ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from ingestflow.redaction import patterns as p
from ingestflow.redaction.columns import delimited_cells
from ingestflow.redaction.words import NOT_A_NAME

# A question's cue carries into its answer ("Your date of birth? It's the 3rd of February."): only a statement
# ends a cue's reach.
_SENTENCE_END = re.compile(r"[.!]\s+(?=[A-Z])")
_SHORT_ANSWER = 16  # characters: "Yeah, it's", "Sure, that's"


def _cue(text: str, start: int, cue: re.Pattern[str], before: int) -> bool:
    """Whether the cue comes within `before` characters before `start`, in the same sentence or the question
    just before it, or in the sentence before a short answer ("Go ahead with the routing number. It's ...")."""
    sentences = _SENTENCE_END.split(text[max(0, start - before) : start])
    said = sentences[-1] if len(sentences[-1]) > _SHORT_ANSWER or len(sentences) < 2 else " ".join(sentences[-2:])
    return bool(cue.search(said))




# Words that add digits to the digit word beside them: "double four" is two, "nine hundred" three.
_MORE_DIGITS = {"double": 1, "triple": 2, "hundred": 2, "thousand": 3}


def spoken_digits(run: str) -> int:
    """How many digits a spoken run stands for: "double four" is two, "07700" five."""
    count = 0
    for token in re.split(r"[ ,.-]+", run.lower()):
        if token.isdigit():
            count += len(token)
        elif token in p.DIGIT_WORDS:
            count += 1
        else:
            count += _MORE_DIGITS.get(token, 0)
    return count


@dataclass(frozen=True)
class Found:
    entity: str
    start: int
    end: int
    score: float


def spoken_numbers(text: str) -> list[Found]:
    """Phone, card and account numbers read out digit by digit, typed by their length and the words before."""
    found = []
    for m in p.SPOKEN_RUN.finditer(text):
        run = m.group(0).rstrip(" ,.-")
        words = sum(1 for t in re.split(r"[ ,.-]+", run.lower()) if t in p.DIGIT_WORDS or t in ("double", "triple"))
        digits = spoken_digits(run)
        start, end = m.start(), m.start() + len(run)
        if digits < 6 or (words == 0 and not (digits >= 9 and _cue(text, start, p.PHONE_ONLY, 80))):
            continue  # "one or two" is no number; digits as written are the other recognizers' unless a
            # recogniser grouped them oddly after the words that ask for a phone number ("0770 09100 123")
        if _cue(text, start, p.CARD, 80) and digits >= 12:
            found.append(Found("CREDIT_CARD", start, end, 0.7))
        elif _cue(text, start, p.BANK, 60) and digits <= 12:
            found.append(Found("BANK_ACCOUNT", start, end, 0.7))
        elif digits >= 7:
            found.append(Found("PHONE_NUMBER", start, end, 0.7 if _cue(text, start, p.PHONE, 80) else 0.5))
    return found


def written_phones(text: str) -> list[Found]:
    return [Found("PHONE_NUMBER", m.start(), m.end(), 0.6 if _cue(text, m.start(), p.PHONE, 60) else 0.5)
            for pattern in (p.UK_PHONE, p.US_PHONE) for m in pattern.finditer(text)]


def dates_of_birth(text: str) -> list[Found]:
    return [Found("DATE_OF_BIRTH", m.start(), m.end(), 0.8) for pattern in (p.DATE, p.SPOKEN_DATE)
            for m in pattern.finditer(text) if _cue(text, m.start(), p.BIRTH, 50)]


def addresses(text: str) -> list[Found]:
    found = [Found("ADDRESS", m.start(), m.end(), 0.7) for pattern in (p.ADDRESS, p.CONTINENTAL)
             for m in pattern.finditer(text)]
    covered = [(f.start, f.end) for f in found]
    for m in p.POSTCODE_ALONE.finditer(text):
        if not any(s <= m.start() < e for s, e in covered):
            found.append(Found("ADDRESS", m.start(), m.end(), 0.6))
    return found


def spoken_emails(text: str) -> list[Found]:
    return [Found("EMAIL_ADDRESS", m.start(), m.end(), 0.7) for m in p.SPOKEN_EMAIL.finditer(text)]


def spelled_names(text: str) -> list[Found]:
    """A name spelled out letter by letter ("K-O-W-A-L-S-K-I"): said so that it is written down."""
    return [Found("PERSON", m.start(), m.end(), 0.6) for m in p.SPELLED.finditer(text)
            if not _cue(text, m.start(), p.BANK_CODE, 30)]


_UPPER = "A-ZÀ-Þ"
_WORD = rf"[{_UPPER}][a-zà-ÿ'’-]+(?:[A-Z][a-zà-ÿ'’-]+)?"  # one inner capital: McAllister, DeShawn, O'Neill
_NAME = rf"{_WORD}(?:[- ]{_WORD}){{0,3}}"
# Words before a person's name in calls and case notes: how people introduce themselves and others.
_NAME_CUE = re.compile(
    r"(?:\b(?:this is|my name is|my name's|name is|name's|i'm|i am|speaking with|speaking to|talking to|"
    r"spoke to|spoke with|spoken to|ask for|asked for|married to|son|daughter|husband|wife|partner|mother|"
    r"father|mum|mom|dad|brother|sister|grandson|granddaughter|client|tenant|patient|caller|carer|child|named|"
    r"called|cc|signed|regards|dear|hi|hello|thanks|thank you|it's|it is|colleague|manager|nephew|niece|aunt|"
    r"uncle|cousin|friend|neighbour|neighbor|landlord|landlady|stepson|stepdaughter|fiancée?|girlfriend|"
    r"boyfriend|grandma|grandad|grandmother|grandfather|on behalf of|attn|for the attention of|c/o|care of|"
    r"best|best wishes|kind regards|many thanks|cheers|sincerely|yours)[,:]?\s"
    # The answer to "Can I have your name, please?"
    r"|\bname(?:,? please)?\? (?:(?:yes|yeah|sure),? )?"
    # Fields of forms, letters and e-mail headers that hold a person.
    r"|(?-i:\b(?:Name|From|To|Cc|Contact|Customer|Client|Patient|Child|Parents?|Chair|Tenant|Caller|Applicant|"
    r"Next of kin|Emergency contact|Bill to|Payee|Signed|Approved by|Referred by|Social worker|Carer|Attendees|"
    r"Present|Full name|Preferred name|First names?|Forenames?|Surname|Last name|Middle names?|Maiden name|"
    r"Known as)): "
    r"|\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Nurse|Officer|Councillor|PC|DC|Sgt|Doctor|Professor|Rev|"
    r"Reverend|Inspector|Detective|Constable|Sergeant|Judge)\.? )((?-i:" + _NAME +
    # A form's "Surname, Given names" where the field ends (two spaces, a tab, the line's end).
    r"(?:, " + _NAME + r"(?=  |\t|\n|$))?))",
    re.IGNORECASE,
)
# How someone answering a call gives their name: "Riverside Medical Practice, good morning, Chloe speaking."
_SPEAKING = re.compile(rf"(?:^|[,.?!] )({_NAME}) speaking\b")


def named_people(text: str) -> list[Found]:
    """A capitalised name right after words people use to introduce someone ("this is", "my name is",
    "the tenant,", "Mrs"), or before "speaking": the small spaCy model misses many names in call transcripts."""
    found = []
    for m in (*_NAME_CUE.finditer(text), *_SPEAKING.finditer(text)):
        if m.group(1).split()[0].lower() in NOT_A_NAME:
            continue
        found.append(Found("PERSON", m.start(1), m.end(1), 0.6))
    return found


_IBAN_TOKEN = rf"(?:[A-Z]{{1,4}}|\d+|(?i:{p.REPEAT}[ -])?(?i:{p.DIGIT_WORD}))"
# An IBAN read out: its country's letters, then letters and digits in any grouping ("G B eight two, W E S T, ...").
_SPOKEN_IBAN = re.compile(rf"\b[A-Z][ -]?[A-Z](?:[ ,.-]{{1,3}}{_IBAN_TOKEN})+\b")
_IBAN = re.compile(r"\biban\b", re.IGNORECASE)


def spoken_ibans(text: str) -> list[Found]:
    found = []
    for m in _SPOKEN_IBAN.finditer(text):
        letters = sum(len(t) for t in re.findall(r"\b[A-Z]{1,4}\b", m.group(0)))
        if letters + spoken_digits(m.group(0)) >= 15 and _cue(text, m.start(), _IBAN, 60):
            found.append(Found("IBAN_CODE", m.start(), m.end(), 0.7))
    return found


# Digits grouped as cards are printed (4-4-4-4, Amex 4-6-5) or not at all; kept only if the Luhn check holds.
_CARD_DIGITS = re.compile(r"\b\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}\b|\b\d{4}[ -]?\d{6}[ -]?\d{4,5}\b")


def luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def written_cards(text: str) -> list[Found]:
    found = []
    for m in _CARD_DIGITS.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        cued = _cue(text, m.start(), p.CARD, 80)
        if 13 <= len(digits) <= 19 and luhn(digits) and (cued or len(digits) >= 15):
            found.append(Found("CREDIT_CARD", m.start(), m.end(), 0.8 if cued else 0.6))
    return found


def bank_accounts(text: str) -> list[Found]:
    found = [Found("BANK_ACCOUNT", m.start(), m.end(), 0.7) for m in p.SORT_CODE.finditer(text)
             if _cue(text, m.start(), p.SORT, 40) or (p.DASHED_SORT_CODE.fullmatch(m.group(0))
                                                     and p.BANK.search(text[m.end() : m.end() + 30]))]
    for pattern in (p.ACCOUNT, p.ROUTING):
        found += [Found("BANK_ACCOUNT", m.start(), m.end(), 0.7) for m in pattern.finditer(text)
                  if sum(c.isdigit() for c in m.group(0)) in p.ACCOUNT_DIGITS and _cue(text, m.start(), p.BANK, 60)]
    return found


def column_cells(text: str) -> list[Found]:
    """Fields of delimited rows under a header that says what they hold ("first_name,last_name,phone")."""
    return [Found(c.entity, c.start, c.end, 0.75) for c in delimited_cells(text)]


_FINDERS = {
    "spoken numbers": (spoken_numbers, ["PHONE_NUMBER", "CREDIT_CARD", "BANK_ACCOUNT"]),
    "written phone numbers": (written_phones, ["PHONE_NUMBER"]),
    "dates of birth": (dates_of_birth, ["DATE_OF_BIRTH"]),
    "street addresses": (addresses, ["ADDRESS"]),
    "spoken e-mail addresses": (spoken_emails, ["EMAIL_ADDRESS"]),
    "spelled-out names": (spelled_names, ["PERSON"]),
    "introduced names": (named_people, ["PERSON"]),
    "bank accounts": (bank_accounts, ["BANK_ACCOUNT"]),
    "spoken IBANs": (spoken_ibans, ["IBAN_CODE"]),
    "written card numbers": (written_cards, ["CREDIT_CARD"]),
    "columns": (column_cells, ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "BANK_ACCOUNT",
                               "ADDRESS", "DATE_OF_BIRTH"]),
}


class _Finder(EntityRecognizer):
    def __init__(self, name: str) -> None:
        self.find, entities = _FINDERS[name]
        super().__init__(supported_entities=entities, name=f"ingestflow {name}")

    def load(self) -> None:
        pass

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        return [RecognizerResult(f.entity, f.start, f.end, f.score) for f in self.find(text)
                if f.entity in entities]


def custom_recognizers() -> list[EntityRecognizer]:
    return [_Finder(name) for name in _FINDERS]
