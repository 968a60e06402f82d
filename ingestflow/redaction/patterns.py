"""The patterns the recognizers (ingestflow/redaction/recognizers.py) look for: numbers, dates, addresses, e-mail
addresses and phone numbers as people write them and as a speech recogniser writes what was said, and the cue
words that must come before the patterns that would catch too much alone."""

from __future__ import annotations

import re

DIGIT_WORDS = {"zero": 1, "oh": 1, "o": 1, "or": 1, "nought": 1, "one": 1, "two": 1, "three": 1, "four": 1, "five": 1,
               "six": 1, "seven": 1, "eight": 1, "nine": 1}
REPEAT = r"(?:double|triple)"
# "or" is how a speech recogniser often hears "oh" inside a number ("0770 or 09100, 123").
DIGIT_WORD = r"(?:zero|oh|o|or|nought|one|two|three|four|five|six|seven|eight|nine)"
# A spoken run of digits ("oh seven seven double four nine six, one two three"), digits groups mixed in.
SPOKEN_DIGIT = rf"(?:(?:{REPEAT}[ -])?(?:{DIGIT_WORD}(?: hundred| thousand)?|\d+))"
SPOKEN_RUN = re.compile(rf"\b(?:plus[ ,]+)?{SPOKEN_DIGIT}(?:[ ,.-]{{1,3}}{SPOKEN_DIGIT})+\b", re.IGNORECASE)
MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
          "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
ORDINAL_WORDS = ("first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
                 "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|"
                 "twenty[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|thirtieth|"
                 "thirty[- ]first")
TENS = (r"(?:(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
        r"(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?)")  # "eighty", "eighty-three"
NUMBER_WORDS = (r"(?:(?:nineteen|twenty)[- ]?(?:hundred|oh[- ]\w+|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                rf"sixteen|seventeen|eighteen|nineteen|{TENS})|two thousand(?: and)?(?: \w+)?)")
DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{ORDINAL_WORDS})"
YEAR = rf"(?:\d{{4}}|'\d{{2}}|{NUMBER_WORDS}|{TENS})"  # 1983, '83, nineteen eighty-three, eighty-three
SPOKEN_NUMBER = (rf"(?:(?:oh|zero)[- ])?(?:{TENS}|"
                 r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
                 r"sixteen|seventeen|eighteen|nineteen)")
# A date read out as its numbers: "oh three, fifteen, eighty-five", "twelve four nineteen ninety".
SPOKEN_DATE = re.compile(rf"\b{SPOKEN_NUMBER},? {SPOKEN_NUMBER},? (?:(?:nineteen|twenty|two thousand(?: and)?) )?"
                         rf"{SPOKEN_NUMBER}\b", re.IGNORECASE)
DATE = re.compile(
    rf"(?:\b\d{{1,2}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}\b"  # 03/11/1975, 3.11.75
    rf"|\b\d{{4}}-\d{{2}}-\d{{2}}\b"  # 1975-11-03
    # 12 March 1980, the fourth of July ..., twelfth of the first, eighty-three
    rf"|\b(?:the )?{DAY}(?: of)? (?:{MONTHS}|the {DAY})\b\.?,?(?: {YEAR})?"
    rf"|\b(?:{MONTHS})\.? (?:the )?{DAY},?(?: {YEAR})?)",  # March 12, 1980
    re.IGNORECASE,
)
STREET_TYPES = ("Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Close|Way|Place|Pl|"
                "Terrace|Crescent|Cres|Gardens|Grove|Row|Square|Sq|Hill|Park|Mews|Walk|Parkway|Pkwy|Highway|"
                "Hwy|Circle|Cir|Trail|View|Rise|Green|Vale|Parade|Broadway|Gate|Wharf|Quay|Heights|Approach|Yard|"
                "Chase|Meadows?|Fields|Embankment|Passage|Circus|Cottages|Villas|Wynd|Brae|Croft|Plaza|Loop|"
                "Ridge|Crossing|Alley|Commons|Landing|Pike|Turnpike")
UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
US_STATE_ZIP = r"[A-Z]{2},? \d{5}(?:-\d{4})?"
BUILDING = r"(?:[A-Z][\w'’-]+ ){1,2}(?:House|Court|Building|Mansions|Lodge|Tower|Hall|Cottage|Farm|Apartments)"
NUMBER = (r"(?:\d{1,5}(?:-\d{1,5})?[A-Za-z]?|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
          r"[a-z]+teen|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ]\w+)?)"
          r"(?: hundred(?: and)? \w+)?)")
# Between an address's parts: a comma, a space, or a new line as in a letter's address block.
SEP = r"(?:,? ?\n|,? )"
HOUSE = (r"(?:(?:[Ff]lat|Apartment|Apt\.?|Unit|Suite) \w+,? |\d{1,2}/\d{1,2},? )?"
         rf"(?:{BUILDING}{SEP}(?:{NUMBER} )?|{NUMBER} )")  # Rose Cottage, Mill Lane; 12-14 High Street
TOWN = r"(?!(?:And|But|So|Then|Which|On|In|At|Is)\b)[A-Z][a-z][\w'’-]*(?: [A-Z][a-z][\w'’-]*){0,2}"
ZIP = rf"(?:{UK_POSTCODE}|{US_STATE_ZIP}|\d{{5}}(?:-\d{{4}})?)"  # "Austin, Texas 78745", "Chicago 60621"
ADDRESS = re.compile(
    rf"\b{HOUSE}(?:(?:[NSEW]|NE|NW|SE|SW)\.? )?(?:(?:[A-Z][\w'’-]+|\d+(?:st|nd|rd|th)) ){{1,3}}"
    rf"(?:{STREET_TYPES})\b\.?(?:,? (?i:apt\.?|apartment|flat|unit|suite|#) ?\w+)?"
    rf"(?:{SEP}{TOWN}){{0,2}}(?:{SEP}{ZIP})?"
    # A street without a street type ("12 Kingsway", "3 The Broadway") when a postcode or ZIP follows.
    rf"|\b{HOUSE}(?:The )?[A-Z][a-z]+(?: [A-Z][a-z]+)?(?:{SEP}{TOWN}){{0,2}}{SEP}{ZIP}\b",
)
CONTINENTAL = re.compile(
    r"\b(?:[A-Z][\w'’.-]+ ){0,3}[A-Z][\w'’.-]+ \d{1,4}[a-z]?(?:[-/]\d{1,3})?, (?:[A-Z]{1,2}-)?\d{4,5}(?: [A-Z]{2})? "
    r"[A-Z][\w'’-]+"  # Keizersgracht 214-2, 1016 DZ Amsterdam; Hauptstraße 5, 10115 Berlin
    r"|\b\d{1,4},? (?:rue|avenue|boulevard|place|chemin|allée|impasse|quai|calle|via|viale|piazza) [\w'’ -]{2,40}?, "
    r"\d{5} [A-Z][\w'’-]+"  # 12 rue de la Paix, 75002 Paris
)
POSTCODE_ALONE = re.compile(rf"\b{UK_POSTCODE}\b")
SPOKEN_EMAIL = re.compile(
    rf"\b[a-z][\w-]*(?:(?: dot | underscore | dash |[._-])[\w-]+| (?:{SPOKEN_NUMBER}|\d+))* "
    r"at [a-z][\w-]*(?: [a-z][\w-]*)?(?: dot [a-z]{2,}){1,3}\b",
    re.IGNORECASE,
)
SPELLED = re.compile(r"\b(?:[A-Z][-. ]){2,}[A-Z]\b|\b(?:[A-Z](?: as in \w+)?, ){3,}[A-Z]\b")
# Written phone numbers as people write them in the UK and the US. Presidio's own recogniser (libphonenumber)
# takes only numbers in allocated ranges, and misses the reserved ones (07700 900xxx, 555-01xx) that examples
# and some test lines use, or a number split oddly across a transcript's words.
UK_PHONE = re.compile(r"(?<![\w+])(?:\+44 ?(?:\(0\) ?)?|0)"
                      r"(?:7\d{3}\)? ?\d{3} ?\d{3}|[1-3]\d{1,4}\)? ?\d{3,4} ?\d{3,4})(?!\w)")
US_PHONE = re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\w)")
DASHED_SORT_CODE = re.compile(r"\d{2}-\d{2}-\d{2}")  # so written, a sort code when an account is named after it
SORT_CODE = re.compile(rf"\b\d{{2}}[- ]\d{{2}}[- ]\d{{2}}\b|\b\d{{6}}\b"
                       rf"|\b{SPOKEN_NUMBER}[ ,-]+{SPOKEN_NUMBER}[ ,-]+{SPOKEN_NUMBER}\b", re.IGNORECASE)
ACCOUNT = re.compile(r"\b\d{8,12}\b|\b\d{2,5}(?:[ -]\d{2,5}){1,3}\b(?![ -]?\d)")  # 44701928336, 4470 1928 336
ACCOUNT_DIGITS = range(8, 18)  # a UK account has 8, a US one up to 17
ROUTING = re.compile(r"\b\d{9}\b")

# Cue words: what must come shortly before a pattern that would catch too much alone.
BIRTH = re.compile(r"\b(?:born|birth|dob|d\.o\.b|birthday)\b", re.IGNORECASE)
BANK = re.compile(r"\b(?:sort code|account|acct|routing|a/c)\b", re.IGNORECASE)
BANK_CODE = re.compile(r"\b(?:bic|swift)\b", re.IGNORECASE)  # a bank's code spelled out is no name
CARD = re.compile(r"\b(?:card|visa|mastercard|amex|long number)\b", re.IGNORECASE)
SORT = re.compile(r"\bsort code\b", re.IGNORECASE)
PHONE = re.compile(r"\b(?:phone|number|mobile|landline|call|ring|reach|contact|extension|cell|text|tel)\b",
                   re.IGNORECASE)
# "number" alone asks as often for an order or tracking number as for a phone number.
PHONE_ONLY = re.compile(r"\b(?:phone|mobile|landline|call|ring|reach|contact|cell|tel)\b", re.IGNORECASE)
