"""Accent folding ("Perché" -> "Perche") in time linear in the text, whatever marks it holds."""

from __future__ import annotations

import unicodedata

# NFKD puts each run of combining marks in canonical order with an insertion sort, quadratic
# in the run: 100,000 marks took 21 s, 100,000 Tibetan vowel signs 87 s. Folded text keeps no
# marks, and cutting it anywhere changes nothing else (characters decompose one by one, and
# the reordering moves only marks), so it is decomposed in pieces too short to matter.
_PIECE = 64


def strip_accents(text: str) -> str:
    """`text` decomposed (NFKD) without its combining marks."""
    if text.isascii():
        return text
    pieces = (
        unicodedata.normalize("NFKD", text[start : start + _PIECE])
        for start in range(0, len(text), _PIECE)
    )
    return "".join(c for piece in pieces for c in piece if not unicodedata.combining(c))
