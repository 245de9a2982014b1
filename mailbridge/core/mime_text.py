"""Turning MIME bytes and header values into text, whatever charset they claim."""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.header import decode_header
from functools import lru_cache
from typing import Any

from mailbridge.core.readable import UTF8_AS_LATIN_RE, garbled, readable

_SINGLE_BYTE = frozenset(
    {"latin_1", "iso8859_1", "iso8859_15", "cp1252", "ascii", "iso8859_2", "cp1250"}
)
_DETECT_SAMPLE = 64 * 1024
_MIN_DETECT_BYTES = 48  # charset detection gets slow and no better past this

# How mail apps mark quoted history in HTML. The converter drops these markers, so
# they are annotated ("quote": lines get "> "; "cut": history or signature starts
# here) and handed to reply trimming as a plain-text quote.
_HTML_MARKERS: dict[str, list[str]] = {
    "blockquote": ["quote"],
    "div#class=gmail_quote": ["quote"],
    "div#class=yahoo_quoted": ["quote"],
    "div#class=moz-cite-prefix": ["quote"],
    "div#class=gmail_signature": ["cut"],
    "div#class=moz-signature": ["cut"],
    "div#id=divRplyFwdMsg": ["cut"],
}
# Markers that are empty elements get no annotation; a visible sentinel stands in before
# each tag that opens with one of these names and carries one of these ids.
_MARKER_OPEN_RE = re.compile(r"<(?:div|hr|span)\b", re.I)
_MARKER_ID_RE = re.compile(r"\bid\s*=\s*[\"']?(?:appendonsend|stopSpelling)\b", re.I)
_SENTINEL = "\ue000"  # private use: never in real text


@dataclass(frozen=True, slots=True)
class _Converter:
    get_text: Any
    get_annotated_text: Any
    html_config: Any
    quote_config: Any


@lru_cache(maxsize=1)
def _converter() -> _Converter:
    """inscriptis (and lxml under it), imported at first use: a process that never converts
    HTML, such as the daemon whose parse worker converts it, does not carry them."""
    from inscriptis import get_annotated_text, get_text  # type: ignore[import-untyped]
    from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]

    return _Converter(
        get_text,
        get_annotated_text,
        ParserConfig(display_links=True),
        ParserConfig(display_links=True, annotation_rules=_HTML_MARKERS),
    )


# Labels mail clients write for a charset whose superset they really send (as browsers read
# them, per the WHATWG Encoding Standard): GBK characters under "gb2312", Windows-1252
# quotes under "iso-8859-1", Microsoft's extensions under the Korean and Japanese names.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "latin_1": "cp1252",
    "iso8859_1": "cp1252",
}


@lru_cache(maxsize=64)
def _codec_name(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    if name in ("unknown-8bit", "x-unknown", "unknown", "default", "8bit", "binary"):
        return None
    try:
        codec = codecs.lookup(name).name.replace("-", "_")
    except (LookupError, ValueError):  # unknown, or a name codecs refuses (a NUL in it)
        return None
    return _SUPERSETS.get(codec, codec)


def _detect(data: bytes) -> str | None:
    if len(data) < _MIN_DETECT_BYTES:
        return None  # too little to go on: the caller's western default beats a guess
    from charset_normalizer import from_bytes  # at first use, as _converter

    best = from_bytes(data[:_DETECT_SAMPLE]).best()
    return None if best is None else str(best.encoding)


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode body bytes by the declared charset, detecting it when that fails.

    Returns the text and a defect note, or None when the declared charset was right.
    """
    if not data:
        return "", None
    codec = _codec_name(charset)
    if codec is None and data.isascii():
        return data.decode("ascii"), None
    if codec is not None:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
        else:
            if not (codec in _SINGLE_BYTE and UTF8_AS_LATIN_RE.search(text)):
                return text, None
    label = f"charset {charset!r}" if charset else "no charset"
    # Valid UTF-8 with non-ASCII bytes is almost never an accident: trust it first.
    utf8 = _try_utf8(data)
    if utf8 is not None:
        return (
            utf8,
            None if codec is None and not charset else f"{label} did not fit; text is utf-8",
        )
    detected = _detect(data) or "cp1252"
    return data.decode(detected, errors="replace"), f"{label} did not fit; decoded as {detected}"


# Charsets whose bytes could never be 8-bit header text: 7-bit encodings decode "+ACI-" to
# a quote, which would let bytes the sender chose become a delimiter after the fact.
_NOT_FOR_HEADERS = frozenset(
    {"ascii", "utf_7", "utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le"}
)
_HEADER_DETECT_SAMPLE = 8 * 1024
# Fewer 8-bit bytes than this say too little for a guess: "Caf\xe9" is Western, not Hebrew.
_GUESS_FROM_BYTES = 4
_GUESS_FROM = 64 * 1024


def _header_codecs(declared: Sequence[str | None], data: bytes) -> Iterator[str]:
    """Codecs to try on raw 8-bit header bytes, best first: the message's declared charsets,
    UTF-8, what detection guesses from the bytes, Windows-1252."""
    for charset in declared:
        codec = _codec_name(charset)
        if codec is not None and codec not in _NOT_FOR_HEADERS:
            yield codec
    yield "utf_8"
    if sum(byte >= 0x80 for byte in data[:_GUESS_FROM]) >= _GUESS_FROM_BYTES:
        guessed = _codec_name(_guess_short(data))
        if guessed is not None and guessed not in _NOT_FOR_HEADERS:
            yield guessed
    yield "cp1252"


def _guess_short(data: bytes) -> str | None:
    """chardet's guess: its models hold up on the few bytes of a subject or a name, where
    charset-normalizer's (tuned for documents) confuse Chinese with Korean."""
    import chardet  # at first use: only mail with undeclared 8-bit headers needs it

    guess = chardet.detect(data[:_HEADER_DETECT_SAMPLE])
    return guess.get("encoding") if guess else None


def decode_unknown(data: bytes, declared: Sequence[str | None] = ()) -> str | None:
    """Short 8-bit text (a header, a name, an encoded word) in the first charset that reads
    it cleanly (mailbridge.core.readable): the declared ones, UTF-8, a detected one,
    Windows-1252. None when none does."""
    for codec in _header_codecs(declared, data):
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if not garbled(text):
            return text
    return None


def header_charset(samples: Sequence[bytes], declared: Sequence[str | None]) -> str | None:
    """The one charset that reads all of a message's raw 8-bit header values cleanly, chosen
    from all of them together (a name and a subject say more than either alone); None when
    no header has 8-bit bytes or no charset reads them all."""
    if not samples:
        return None
    joined = b"\n".join(samples)
    for codec in _header_codecs(declared, joined):
        try:
            if not any(garbled(sample.decode(codec)) for sample in samples):
                return codec
        except (UnicodeDecodeError, LookupError):
            continue
    return None


def raw_header_bytes(value: str) -> bytes | None:
    """The raw bytes of a header value the parser kept as surrogates, or None if it had no
    8-bit bytes."""
    return value.encode("utf-8", "surrogateescape") if _has_surrogates(value) else None


def _try_utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: paragraphs, lists and links kept."""
    converter = _converter()
    return str(converter.get_text(html, converter.html_config)).strip("\n")


@dataclass(frozen=True, slots=True)
class HtmlText:
    text: str  # readable plain text, as html_to_text gives it
    quoted: str  # the same with quoted lines as "> " and history/signature cut off


def html_to_texts(html: str) -> HtmlText:
    """Readable text from HTML, and a view of it in which reply trimming sees the quotes."""
    if _SENTINEL in html:
        html = html.replace(_SENTINEL, "")
    marked = _mark_empty_markers(html)
    converter = _converter()
    result: dict[str, Any] = converter.get_annotated_text(marked, converter.quote_config) or {}
    raw_text = str(result.get("text", ""))
    labels: list[tuple[int, int, str]] = result.get("label", [])
    cut = min([start for start, _, label in labels if label == "cut"], default=len(raw_text))
    sentinel = raw_text.find(_SENTINEL)
    if sentinel >= 0:
        cut = min(cut, sentinel)
    # A line's quote depth is the number of quotes that have begun but not ended at it.
    quotes = [(start, end) for start, end, label in labels if label == "quote" and start < end]
    quote_starts = sorted(start for start, _ in quotes)
    quote_ends = sorted(end for _, end in quotes)
    text_lines: list[str] = []
    quoted_lines: list[str] = []
    offset = 0
    for line in raw_text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        if _SENTINEL in line:
            line = line.replace(_SENTINEL, "")
            if not line.strip():
                continue
        text_lines.append(line)
        if start >= cut:
            continue
        first = start + len(line) - len(line.lstrip())
        depth = bisect_right(quote_starts, first) - bisect_right(quote_ends, first)
        quoted_lines.append(f"{'> ' * depth}{line.strip()}" if depth and line.strip() else line)
    return HtmlText("\n".join(text_lines).strip("\n"), "\n".join(quoted_lines).strip("\n"))


def _mark_empty_markers(html: str) -> str:
    """The sentinel put before each marker tag, in one pass over the HTML.

    A tag ends at the first ">" after its "<", so every candidate opener before that ">"
    shares its end: when the first has no marker id before it, none has, and the scan
    resumes after the ">" instead of trying each "<div" again (quadratic in "<div <div …").
    """
    pieces: list[str] = []
    done = position = 0
    while opener := _MARKER_OPEN_RE.search(html, position):
        close = html.find(">", opener.end())
        if close < 0:
            break
        if _MARKER_ID_RE.search(html, opener.end(), close):
            pieces += [
                html[done : opener.start()],
                f"<div>{_SENTINEL}</div>",
                html[opener.start() : close + 1],
            ]
            done = close + 1
        position = close + 1
    return "".join([*pieces, html[done:]]) if pieces else html


_SURROGATE_RE = re.compile("[\udc80-\udcff]")
# An encoded word as clients write it: spaces inside its text ("=?us-ascii?Q?ABC / 123?="),
# no space before the next one. Its text stops at the first "?", so the scan is linear.
_WORD = r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?="
# A run of adjacent words is decoded as one: a character split across two words (as
# clients split long UTF-8 subjects) is whole again, and the space between them dropped.
_ENCODED_RUN_RE = re.compile(f"{_WORD}(?:\\s*{_WORD})*")


def decode_8bit(value: str, charset: str | None = None) -> str:
    """Header text with its raw 8-bit bytes (kept as surrogates by the parser) decoded, and
    nothing else: what structured headers get, whose encoded words are no text (RFC 2047
    section 5). `charset` is the message's header charset (header_charset), tried first."""
    data = raw_header_bytes(value)
    if data is None:
        return value
    text = decode_unknown(data, (charset,))
    if text is not None:
        return text
    # Nothing reads it cleanly. Often the bytes are UTF-8 of text already garbled once
    # (Big5 read as Latin-1, then written as UTF-8): that is read again from its bytes.
    fallback = _try_utf8(data) or data.decode("cp1252", errors="replace")
    return readable(fallback) or fallback


def decode_header_value(value: str, charset: str | None = None) -> str:
    """A header value as text: raw 8-bit bytes and RFC 2047 words decoded, spaces collapsed.

    Only for unstructured text (a subject, a display name): each run of encoded words is
    decoded on its own, so one broken word stays as it was written instead of costing the
    rest. A word's charset is tried first, then what reads its bytes cleanly: a word
    labelled iso-8859-1 that holds GB2312 reads as Chinese, not as "¹ØÓÚ".
    """
    value = decode_8bit(value, charset)
    if "=?" in value:
        value = _ENCODED_RUN_RE.sub(_decode_run, value)
    return " ".join(value.split())


def _decode_run(match: re.Match[str]) -> str:
    run = match.group(0)
    try:
        chunks = decode_header(run)
    except Exception:  # noqa: BLE001 - binascii and header errors alike: keep the words as written
        return run
    return "".join(_decoded_chunk(chunk, charset) for chunk, charset in chunks)


def _decoded_chunk(chunk: str | bytes, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    if _codec_name(charset) == "utf_7":  # "=?unicode-1-1-utf-7?Q?+AOQ-?=", as Outlook wrote
        try:
            return chunk.decode("utf_7")
        except UnicodeDecodeError:
            pass
    if chunk.isascii():
        return chunk.decode("ascii")
    text = decode_unknown(chunk, (charset,))
    return text if text is not None else decode_bytes(chunk, charset)[0]


def _has_surrogates(value: str) -> bool:
    return _SURROGATE_RE.search(value) is not None
