"""Text from someone's mail made safe to write again: one line of header text, a file name."""

from __future__ import annotations

import re
import unicodedata

MAX_FILENAME = 200  # characters of an attachment's name
_WHITESPACE = re.compile(r"\s+")
# Refused in file names by Windows; "/" and "\" are handled as path separators.
_NOT_IN_FILENAMES = re.compile(r'[:*?"<>|]')


def clean_header_text(value: str) -> str:
    """One line of header text: control and line-breaking characters become spaces."""
    if not value.isprintable():  # printable text has none of them: skip the scan
        value = "".join(
            " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value
        )
    return _WHITESPACE.sub(" ", value).strip()


def safe_filename(name: str) -> str:
    """`name` as a file name anyone can save, or "" when nothing of it is left.

    Only its last path component, on one line, without control, format or bidirectional
    characters (U+202E makes "photo<U+202E>gpj.exe" look like a picture), without
    characters Windows refuses, without dots or spaces at either end ("..", "name."), and
    at most MAX_FILENAME characters with the extension kept.
    """
    text = clean_header_text(name).replace("\\", "/").rstrip("/ ")
    text = _NOT_IN_FILENAMES.sub("_", text.rpartition("/")[2]).strip(" .")
    return bounded_filename(text)


def bounded_filename(name: str) -> str:
    """At most MAX_FILENAME characters, the extension kept: "report….pdf"."""
    if len(name) <= MAX_FILENAME:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 16:
        return name[: MAX_FILENAME - 1] + "…"
    return f"{stem[: MAX_FILENAME - len(extension) - 2]}….{extension}"
