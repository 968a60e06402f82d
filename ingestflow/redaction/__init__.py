"""Personal data out of what is searched, shown and stored: Presidio finds it, typed placeholders replace it.

`recognizers` adds what Presidio's defaults miss in call transcripts and case notes (spoken digits and e-mail
addresses, UK sort codes and accounts, street addresses, dates of birth, spelled-out names); `analyzer` builds
one engine on the packaged spaCy model and turns a text into spans; `apply` redacts a parsed document or a
transcript with them, keeping timings and structure.
"""
