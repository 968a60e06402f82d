"""Names as people see them. A file's name keeps its bytes in storage, but a view never lets it pose as another:
bidirectional controls (U+202E turns "invoice\u202egnp.exe.pdf" into what reads "invoicefdp.exe.png"),
zero-width and other invisible format characters, and control characters are shown as visible codes instead.
The dashboard does the same (api/static/js/format.js `visible`)."""

from __future__ import annotations

import unicodedata

# Format (bidi controls, zero-width marks), control, private-use, unassigned, line and paragraph separators.
_HIDDEN = frozenset({"Cf", "Cc", "Co", "Cn", "Zl", "Zp"})


def visible(name: str) -> str:
    """The name with every character that could hide or reorder what follows written as ⟨U+XXXX⟩."""
    return "".join(f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c) in _HIDDEN else c for c in name)
