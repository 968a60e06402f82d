"""Make tests/data/translation/: a short German phone call spoken by espeak-ng (make_eval_fixtures.py's voices and
MP3 encoding), with its sentences and the seconds each was placed at, for the translation tests
(tests/test_translation.py). Its English is written here beside each sentence, before any model translated it.

    apt-get install -y espeak-ng
    .venv/bin/python scripts/make_translation_fixture.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_eval_fixtures as fixtures  # noqa: E402

OUT = fixtures.ROOT / "tests" / "data" / "translation"
# (speaker, German sentence, its English)
CALL = [
    ("a", "Guten Tag, hier spricht Anna Becker vom Wohnungsamt.",
     "Good day, this is Anna Becker from the housing office."),
    ("b", "Hallo, meine Heizung ist seit Montag kaputt.", "Hello, my heating has been broken since Monday."),
    ("a", "Ein Techniker kommt am Donnerstag um neun Uhr zu Ihnen.",
     "A technician will come to you on Thursday at nine o'clock."),
    ("b", "Vielen Dank. Muss ich für die Reparatur bezahlen?", "Thank you very much. Do I have to pay for the repair?"),
    ("a", "Nein, die Reparatur ist kostenlos.", "No, the repair is free of charge."),
]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures.OUT = OUT
    # Slower than the English fixtures: at espeak-ng's 150 words a minute Whisper base heard "Wormsamt" and
    # translated it "star maker of Wormsand"; at 120 it hears most of the words (German detected at 0.57).
    spec = {"voices": {"a": "de+m1", "b": "de+f2"}, "speed": 120,
            "topics": [[(speaker, de) for speaker, de, _ in CALL]]}
    placed = fixtures.synthesize("housing_call_de.mp3", spec)
    for item, (_speaker, _de, en) in zip(placed, CALL, strict=True):
        item["english"] = en
    (OUT / "housing_call_de.json").write_text(json.dumps(placed, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
