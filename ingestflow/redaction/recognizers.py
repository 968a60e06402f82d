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

from ingestflow.redaction.columns import delimited_cells
from ingestflow.redaction.words import NOT_A_NAME

_DIGIT_WORDS = {"zero": 1, "oh": 1, "o": 1, "or": 1, "nought": 1, "one": 1, "two": 1, "three": 1, "four": 1, "five": 1,
                "six": 1, "seven": 1, "eight": 1, "nine": 1}
_REPEAT = r"(?:double|triple)"
# "or" is how a speech recogniser often hears "oh" inside a number ("0770 or 09100, 123").
_DIGIT_WORD = r"(?:zero|oh|o|or|nought|one|two|three|four|five|six|seven|eight|nine)"
# A spoken run of digits ("oh seven seven double four nine six, one two three"), digits groups mixed in.
_SPOKEN_DIGIT = rf"(?:(?:{_REPEAT}[ -])?(?:{_DIGIT_WORD}(?: hundred| thousand)?|\d+))"
_SPOKEN_RUN = re.compile(rf"\b(?:plus[ ,]+)?{_SPOKEN_DIGIT}(?:[ ,.-]{{1,3}}{_SPOKEN_DIGIT})+\b", re.IGNORECASE)
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_ORDINAL_WORDS = ("first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
                  "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
                  "twenty[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirtieth|"
                  "thirty[- ]first")
_TENS = (r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
         r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?)")  # "eighty", "eighty-three"
_NUMBER_WORDS = (r"(?:(?:nineteen|twenty)[- ]?(?:hundred|oh[- ]\w+|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                 rf"sixteen|seventeen|eighteen|nineteen|{_TENS})|two thousand(?: and)?(?: \w+)?)")
_DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{_ORDINAL_WORDS})"
_YEAR = rf"(?:\d{{4}}|'\d{{2}}|{_NUMBER_WORDS}|{_TENS})"  # 1983, '83, nineteen eighty-three, eighty-three
_SPOKEN_NUMBER = (rf"(?:(?:oh|zero)[- ])?(?:{_TENS}|"
                  r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                  r"sixteen|seventeen|eighteen|nineteen)")
# A date read out as its numbers: "oh three, fifteen, eighty-five", "twelve four nineteen ninety".
_SPOKEN_DATE = re.compile(rf"\b{_SPOKEN_NUMBER},? {_SPOKEN_NUMBER},? (?:(?:nineteen|twenty|two thousand(?: and)?) )?"
                          rf"{_SPOKEN_NUMBER}\b", re.IGNORECASE)
_DATE = re.compile(
    rf"(?:\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b"  # 03/11/1975, 3.11.75
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}\b"  # 1975-11-03
    # 12 March 1980, the fourth of July ..., twelfth of the first, eighty-three
    rf"|\b(?:the )?{_DAY}(?: of)? (?:{_MONTHS}|the {_DAY})\b\.?,?(?: {_YEAR})?"
    rf"|\b(?:{_MONTHS})\.? (?:the )?{_DAY},?(?: {_YEAR})?)",  # March 12, 1980
    re.IGNORECASE,
)
_STREET_TYPES = ("Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Close|Way|Place|Pl|"
                 "Terrace|Crescent|Cres|Gardens|Grove|Row|Square|Sq|Hill|Park|Mews|Walk|Parkway|Pkwy|Highway|"
                 "Hwy|Circle|Cir|Trail|View|Rise|Green|Vale|Parade|Broadway|Gate|Wharf|Quay|Heights|Approach|Yard|"
                 "Chase|Meadows?|Fields|Embankment|Passage|Circus|Cottages|Villas|Wynd|Brae|Croft|Plaza|Loop|"
                 "Ridge|Crossing|Alley|Commons|Landing|Pike|Turnpike")
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
_US_STATE_ZIP = r"[A-Z]{2},? \d{5}(?:-\d{4})?"
_BUILDING = r"(?:[A-Z][\w'’-]+ ){1,2}(?:House|Court|Building|Mansions|Lodge|Tower|Hall|Cottage|Farm|Apartments)"
_NUMBER = (r"(?:\d{1,5}(?:-\d{1,5})?[A-Za-z]?|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
           r"[a-z]+teen|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ]\w+)?)"
           r"(?: hundred(?: and)? \w+)?)")
# Between an address's parts: a comma, a space, or a new line as in a letter's address block.
_SEP = r"(?:,? ?\n|,? )"
_HOUSE = (r"(?:(?:[Ff]lat|Apartment|Apt\.?|Unit|Suite) \w+,? |\d{1,2}/\d{1,2},? )?"
          rf"(?:{_BUILDING}{_SEP}(?:{_NUMBER} )?|{_NUMBER} )")  # Rose Cottage, Mill Lane; 12-14 High Street
_TOWN = r"(?!(?:And|But|So|Then|Which|On|In|At|Is)\b)[A-Z][a-z][\w'’-]*(?: [A-Z][a-z][\w'’-]*){0,2}"
_ZIP = rf"(?:{_UK_POSTCODE}|{_US_STATE_ZIP}|\d{{5}}(?:-\d{{4}})?)"  # "Austin, Texas 78745", "Chicago 60621"
_ADDRESS = re.compile(
    rf"\b{_HOUSE}(?:(?:[NSEW]|NE|NW|SE|SW)\.? )?(?:(?:[A-Z][\w'’-]+|\d+(?:st|nd|rd|th)) ){{1,3}}"
    rf"(?:{_STREET_TYPES})\b\.?(?:,? (?i:apt\.?|apartment|flat|unit|suite|#) ?\w+)?"
    rf"(?:{_SEP}{_TOWN}){{0,2}}(?:{_SEP}{_ZIP})?"
    # A street without a street type ("12 Kingsway", "3 The Broadway") when a postcode or ZIP follows.
    rf"|\b{_HOUSE}(?:The )?[A-Z][a-z]+(?: [A-Z][a-z]+)?(?:{_SEP}{_TOWN}){{0,2}}{_SEP}{_ZIP}\b",
)
_CONTINENTAL = re.compile(
    r"\b(?:[A-Z][\w'’.-]+ ){0,3}[A-Z][\w'’.-]+ \d{1,4}[a-z]?(?:[-/]\d{1,3})?, (?:[A-Z]{1,2}-)?\d{4,5}(?: [A-Z]{2})? "
    r"[A-Z][\w'’-]+"  # Keizersgracht 214-2, 1016 DZ Amsterdam; Hauptstraße 5, 10115 Berlin
    r"|\b\d{1,4},? (?:rue|avenue|boulevard|place|chemin|allée|impasse|quai|calle|via|viale|piazza) [\w'’ -]{2,40}?, "
    r"\d{5} [A-Z][\w'’-]+"  # 12 rue de la Paix, 75002 Paris
)
_POSTCODE_ALONE = re.compile(rf"\b{_UK_POSTCODE}\b")
_SPOKEN_EMAIL = re.compile(
    rf"\b[a-z][\w-]*(?:(?: dot | underscore | dash |[._-])[\w-]+| (?:{_SPOKEN_NUMBER}|\d+))* "
    r"at [a-z][\w-]*(?: [a-z][\w-]*)?(?: dot [a-z]{2,}){1,3}\b",
    re.IGNORECASE,
)
_SPELLED = re.compile(r"\b(?:[A-Z][-. ]){2,}[A-Z]\b|\b(?:[A-Z](?: as in \w+)?, ){3,}[A-Z]\b")
# Written phone numbers as people write them in the UK and the US. Presidio's own recogniser (libphonenumber)
# takes only numbers in allocated ranges, and misses the reserved ones (07700 900xxx, 555-01xx) that examples
# and some test lines use, or a number split oddly across a transcript's words.
_UK_PHONE = re.compile(r"(?<![\w+])(?:\+44 ?(?:\(0\) ?)?|0)"
                       r"(?:7\d{3}\)? ?\d{3} ?\d{3}|[1-3]\d{1,4}\)? ?\d{3,4} ?\d{3,4})(?!\w)")
_US_PHONE = re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)")
_DASHED_SORT_CODE = re.compile(r"\d{2}-\d{2}-\d{2}")  # so written, a sort code when an account is named after it
_SORT_CODE = re.compile(rf"\b\d{{2}}[- ]\d{{2}}[- ]\d{{2}}\b|\b\d{{6}}\b"
                        rf"|\b{_SPOKEN_NUMBER}[ ,-]+{_SPOKEN_NUMBER}[ ,-]+{_SPOKEN_NUMBER}\b", re.IGNORECASE)
_ACCOUNT = re.compile(r"\b\d{8,12}\b|\b\d{2,5}(?:[ -]\d{2,5}){1,3}\b(?![ -]?\d)")  # 44701928336, 4470 1928 336
_ACCOUNT_DIGITS = range(8, 18)  # a UK account has 8, a US one up to 17
_ROUTING = re.compile(r"\b\d{9}\b")


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


_BIRTH = re.compile(r"\b(?:born|birth|dob|d\.o\.b|birthday)\b", re.IGNORECASE)
_BANK = re.compile(r"\b(?:sort code|account|acct|routing|a/c)\b", re.IGNORECASE)
_BANK_CODE = re.compile(r"\b(?:bic|swift)\b", re.IGNORECASE)  # a bank's code spelled out is no name
_CARD = re.compile(r"\b(?:card|visa|mastercard|amex|long number)\b", re.IGNORECASE)
_SORT = re.compile(r"\bsort code\b", re.IGNORECASE)
_PHONE = re.compile(r"\b(?:phone|number|mobile|landline|call|ring|reach|contact|extension|cell|text|tel)\b",
                    re.IGNORECASE)
# "number" alone asks as often for an order or tracking number as for a phone number.
_PHONE_ONLY = re.compile(r"\b(?:phone|mobile|landline|call|ring|reach|contact|cell|tel)\b", re.IGNORECASE)


# Words that add digits to the digit word beside them: "double four" is two, "nine hundred" three.
_MORE_DIGITS = {"double": 1, "triple": 2, "hundred": 2, "thousand": 3}


def spoken_digits(run: str) -> int:
    """How many digits a spoken run stands for: "double four" is two, "07700" five."""
    count = 0
    for token in re.split(r"[ ,.-]+", run.lower()):
        if token.isdigit():
            count += len(token)
        elif token in _DIGIT_WORDS:
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
    for m in _SPOKEN_RUN.finditer(text):
        run = m.group(0).rstrip(" ,.-")
        words = sum(1 for t in re.split(r"[ ,.-]+", run.lower()) if t in _DIGIT_WORDS or t in ("double", "triple"))
        digits = spoken_digits(run)
        start, end = m.start(), m.start() + len(run)
        if digits < 6 or (words == 0 and not (digits >= 9 and _cue(text, start, _PHONE_ONLY, 80))):
            continue  # "one or two" is no number; digits as written are the other recognizers' unless a
            # recogniser grouped them oddly after the words that ask for a phone number ("0770 09100 123")
        if _cue(text, start, _CARD, 80) and digits >= 12:
            found.append(Found("CREDIT_CARD", start, end, 0.7))
        elif _cue(text, start, _BANK, 60) and digits <= 12:
            found.append(Found("BANK_ACCOUNT", start, end, 0.7))
        elif digits >= 7:
            found.append(Found("PHONE_NUMBER", start, end, 0.7 if _cue(text, start, _PHONE, 80) else 0.5))
    return found


def written_phones(text: str) -> list[Found]:
    return [Found("PHONE_NUMBER", m.start(), m.end(), 0.6 if _cue(text, m.start(), _PHONE, 60) else 0.5)
            for pattern in (_UK_PHONE, _US_PHONE) for m in pattern.finditer(text)]


def dates_of_birth(text: str) -> list[Found]:
    return [Found("DATE_OF_BIRTH", m.start(), m.end(), 0.8) for pattern in (_DATE, _SPOKEN_DATE)
            for m in pattern.finditer(text) if _cue(text, m.start(), _BIRTH, 50)]


def addresses(text: str) -> list[Found]:
    found = [Found("ADDRESS", m.start(), m.end(), 0.7) for pattern in (_ADDRESS, _CONTINENTAL)
             for m in pattern.finditer(text)]
    covered = [(f.start, f.end) for f in found]
    for m in _POSTCODE_ALONE.finditer(text):
        if not any(s <= m.start() < e for s, e in covered):
            found.append(Found("ADDRESS", m.start(), m.end(), 0.6))
    return found


def spoken_emails(text: str) -> list[Found]:
    return [Found("EMAIL_ADDRESS", m.start(), m.end(), 0.7) for m in _SPOKEN_EMAIL.finditer(text)]


def spelled_names(text: str) -> list[Found]:
    """A name spelled out letter by letter ("K-O-W-A-L-S-K-I"): said so that it is written down."""
    return [Found("PERSON", m.start(), m.end(), 0.6) for m in _SPELLED.finditer(text)
            if not _cue(text, m.start(), _BANK_CODE, 30)]


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


_IBAN_TOKEN = rf"(?:[A-Z]{{1,4}}|\d+|(?i:{_REPEAT}[ -])?(?i:{_DIGIT_WORD}))"
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
        cued = _cue(text, m.start(), _CARD, 80)
        if 13 <= len(digits) <= 19 and luhn(digits) and (cued or len(digits) >= 15):
            found.append(Found("CREDIT_CARD", m.start(), m.end(), 0.8 if cued else 0.6))
    return found


def bank_accounts(text: str) -> list[Found]:
    found = [Found("BANK_ACCOUNT", m.start(), m.end(), 0.7) for m in _SORT_CODE.finditer(text)
             if _cue(text, m.start(), _SORT, 40) or (_DASHED_SORT_CODE.fullmatch(m.group(0))
                                                     and _BANK.search(text[m.end() : m.end() + 30]))]
    for pattern in (_ACCOUNT, _ROUTING):
        found += [Found("BANK_ACCOUNT", m.start(), m.end(), 0.7) for m in pattern.finditer(text)
                  if sum(c.isdigit() for c in m.group(0)) in _ACCOUNT_DIGITS and _cue(text, m.start(), _BANK, 60)]
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
