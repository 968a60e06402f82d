"""Personal data known by its column: a contact export's `last_name` or `dob` column holds a name or a birth date
in every row, with no words around it that a recognizer could take as a cue ("Gareth,Pugh,+44 7700 900 642").

Used for tables docling parsed (each cell redacted whole, by its column's header) and for delimited rows left in
plain text (CSV lines, Markdown tables in a transcript or a note).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ingestflow.redaction.words import is_organisation

# A header's words, in this order: "account name" is a person, "account number" an account.
_HEADERS = (
    ("DATE_OF_BIRTH", r"\b(?:dob|d o b|date of birth|birth ?date|birthday|born)\b"),
    ("EMAIL_ADDRESS", r"\be ?mail\b"),
    ("PHONE_NUMBER", r"\b(?:phone|telephone|tel|mobile|cell|landline|fax|contact (?:no|number))\b"),
    ("IBAN_CODE", r"\biban\b"),
    ("CREDIT_CARD", r"\bcard (?:no|number|num)\b|\bpan\b"),
    ("BANK_ACCOUNT", r"\b(?:sort ?code|account (?:no|number|num)|acct|routing)\b"),
    ("ADDRESS", r"\b(?:address|addr|street|address line \d|postcode|post code)\b"),
    ("PERSON", r"\b(?:name|first|last|surname|forenames?|given|family|contact|customer|client|patient|payee|"
               r"employee|tenant|caller|next of kin|signatory|account holder)\b"),
)
_HEADER_TYPES = [(kind, re.compile(pattern)) for kind, pattern in _HEADERS]
# Columns named for a thing, not a person.
_NOT_PERSON = re.compile(r"\b(?:company|organi[sz]ation|business|product|file|user|brand|team|project|event|item|"
                         r"street|city|town|place|venue|site|domain|host|ref|reference|id|date|time|day|count|"
                         r"status|type|no|number)\b|\blast (?!name)")  # last_contact, last_seen
_DELIMITERS = (",", ";", "\t", "|")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z _./-]{0,40}")
_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?")  # a Markdown table's |---|---| line


def holds(kind: str, value: str) -> bool:
    """Whether a value under a column of this type is such data: a "Customer" column holds companies too."""
    return bool(value.strip()) and (kind != "PERSON" or (any(c.isalpha() for c in value)
                                                            and not is_organisation(value)))


def column_type(header: str) -> str | None:
    """The type of personal data a column with this header holds, if any."""
    words = re.sub(r"[^a-z0-9]+", " ", header.lower()).strip()
    for kind, pattern in _HEADER_TYPES:
        if pattern.search(words) and not (kind == "PERSON" and _NOT_PERSON.search(words)):
            return kind
    return None


@dataclass(frozen=True)
class Cell:
    entity: str
    start: int
    end: int


def _fields(line: str, delimiter: str) -> list[tuple[str, int]]:
    """A row's fields and where each starts in the line (quotes of CSV fields left out)."""
    parts = line.strip().strip("|").split("|") if delimiter == "|" else next(csv.reader([line], delimiter=delimiter))
    out, at = [], 0
    for part in parts:
        value = part.strip()
        start = line.find(value, at) if value else at
        out.append((value, start if start >= 0 else at))
        at = (start if start >= 0 else at) + len(value)
    return out


def _header(line: str) -> tuple[str, list[str | None]] | None:
    for delimiter in _DELIMITERS:
        if line.count(delimiter) < 1:
            continue
        names = [value for value, _ in _fields(line, delimiter)]
        if len(names) >= 2 and all(_IDENTIFIER.fullmatch(n) for n in names if n):
            types = [column_type(n) for n in names]
            if any(types):
                return delimiter, types
    return None


def delimited_cells(text: str) -> Iterator[Cell]:
    """The fields under personal-data headers in runs of delimited lines (a header line, then rows with as many
    fields)."""
    lines, offsets, at = text.split("\n"), [], 0
    for line in lines:
        offsets.append(at)
        at += len(line) + 1
    i = 0
    while i < len(lines):
        found = _header(lines[i])
        i += 1
        if not found:
            continue
        delimiter, types = found
        while i < len(lines) and (_RULE.fullmatch(lines[i].strip()) or
                                  len(fields := _fields(lines[i], delimiter)) == len(types)):
            if not _RULE.fullmatch(lines[i].strip()):
                for (value, start), kind in zip(fields, types, strict=True):
                    if kind and holds(kind, value):
                        yield Cell(kind, offsets[i] + start, offsets[i] + start + len(value))
            i += 1
