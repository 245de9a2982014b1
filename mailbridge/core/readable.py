"""Does decoded text read as a person wrote it, or as bytes decoded with the wrong charset?

Mojibake has marks no writer makes: U+FFFD where bytes did not fit, C1 control characters,
UTF-8 read as Latin-1 ("Ã©"), a double-byte charset read as a single-byte one (long runs of
Latin-1 symbols and accented letters: "¹ØÓÚ¶©µ¥"), and Cyrillic read as Latin or the other
way round (Latin and Cyrillic letters side by side in one word: "dйjа"). Real text has at
most two accented letters in a row ("informação") and one alphabet per word.
"""

from __future__ import annotations

import re

# Latin-1 supplement and the letters and signs cp1252 puts at 0x80-0x9F: what a
# double-byte charset's bytes become when read one by one as Western text.
_WESTERN_HIGH = (
    "\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_HIGH_RUN_RE = re.compile(f"[{_WESTERN_HIGH}]{{3,}}")
# UTF-8 read as a single-byte charset: "é" as "Ã©" (also read by mime_text for bodies).
UTF8_AS_LATIN_RE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf]")
_BROKEN_RE = re.compile("[\ufffd\u0080-\u009f]")
_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_CYRILLIC = "\u0400-\u04ff"
_MIXED_WORD_RE = re.compile(f"[{_LATIN}][{_CYRILLIC}]|[{_CYRILLIC}][{_LATIN}]")
# Longer text may quote a few odd characters honestly; past this share it is garbled.
_SHORT = 200
_LONG_SHARE = 0.02


def garbled(text: str) -> bool:
    """True when `text` shows the marks of a wrong decoding (see the module docstring).

    A text up to 200 characters (a subject, a name) may show none; a longer one, marks on
    at most 2% of its characters. Linear in the text: each pattern is one scan.
    """
    if text.isascii():
        return False
    marks = (
        len(_BROKEN_RE.findall(text))
        + sum(len(run) for run in _HIGH_RUN_RE.findall(text))
        + 2 * len(UTF8_AS_LATIN_RE.findall(text))
        + 2 * len(_MIXED_WORD_RE.findall(text))
    )
    if len(text) <= _SHORT:
        return marks > 0
    return marks > _LONG_SHARE * len(text)


def readable(text: str) -> str | None:
    """`text` if it reads as written; else its repair (the Western bytes it was decoded
    from, decoded again as the header decoder would); else None: say nothing rather than
    show a customer garbage."""
    if not garbled(text):
        return text
    from mailbridge.core.mime_text import decode_unknown  # the decoder imports this module

    for codec in ("cp1252", "latin_1"):
        try:
            data = text.encode(codec)
        except UnicodeEncodeError:
            continue
        repaired = decode_unknown(data)
        if repaired is not None and not garbled(repaired):
            return repaired
    return None
