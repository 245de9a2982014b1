"""Cut quoted history, forwarded headers and signatures off a plain-text reply.

Every line gets a kind (text, empty, quote, delimiter, signature); attribution
lines ("On … wrote:") and header blocks are found as spans. Decisions are made on
those kinds, so supporting another language means adding a row to a table below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Attribution lines: "<opener> <date> … <verb>:" in the languages customers write.
# The opener is optional for detection (many clients drop it); the verb is not.
ATTRIBUTIONS: tuple[tuple[str, str, str], ...] = (
    ("en", r"On|At", r"wrote"),
    ("it", r"Il|In data", r"ha scritto"),
    ("de", r"Am", r"schrieb(?: am .{1,60}?)?"),
    ("fr", r"Le", r"a écrit"),
    ("es", r"El", r"escribió"),
    ("pt", r"Em|No dia", r"escreveu"),
    ("nl", r"Op", r"schreef|het volgende geschreven"),
    ("sv", r"Den", r"skrev"),
    ("pl", r"Dnia|W dniu", r"napisał(?:\(a\)|a)?"),
    ("ru", r"", r"написал(?:\(а\)|а)?"),
    ("uk", r"", r"пише|написав"),
    ("zh", r"在", r"写道"),
    ("ja", r"", r"書きました"),
)

# Lines that open a forwarded or original message, whatever follows them.
MARKERS: tuple[tuple[str, str], ...] = (
    ("en", r"original message|forwarded message|begin forwarded message"),
    ("de", r"ursprüngliche nachricht|weitergeleitete nachricht|originalnachricht"),
    ("it", r"messaggio originale|messaggio inoltrato|inizio messaggio inoltrato"),
    ("fr", r"message d'origine|message original|message transféré"),
    ("es", r"mensaje original|mensaje reenviado"),
    ("pt", r"mensagem original|mensagem encaminhada"),
    ("nl", r"oorspronkelijk bericht|origineel bericht|doorgestuurd bericht"),
    ("sv", r"ursprungligt meddelande|vidarebefordrat meddelande"),
)

# Outlook-style header blocks: a sender label followed by other header labels.
FROM_LABELS: tuple[tuple[str, str], ...] = (
    ("en", r"From"),
    ("de", r"Von"),
    ("fr", r"De"),
    ("it", r"Da"),
    ("es", r"De"),
    ("nl", r"Van"),
    ("sv", r"Från"),
    ("no", r"Fra"),
    ("pl", r"Od"),
    ("ru", r"От"),
)
FIELD_LABELS: tuple[tuple[str, str], ...] = (
    ("en", r"Sent|Date|To|Cc|Subject|Reply-To"),
    ("de", r"Gesendet|Datum|An|Cc|Betreff|Antwort an"),
    ("fr", r"Envoyé|Date|À|A|Cc|Objet|Répondre à"),
    ("it", r"Inviato|Data|A|Cc|Oggetto|Risposta"),
    ("es", r"Enviado|Fecha|Para|CC|Asunto"),
    ("pt", r"Enviada|Enviado|Data|Para|Assunto"),
    ("nl", r"Verzonden|Datum|Aan|CC|Onderwerp"),
    ("sv", r"Skickat|Datum|Till|Kopia|Ämne"),
    ("no", r"Sendt|Dato|Til|Emne"),
    ("pl", r"Wysłano|Data|Do|Temat"),
    ("ru", r"Отправлено|Дата|Кому|Тема"),
)

# Signatures added by mail apps; the line and everything below it goes.
MOBILE_SIGNATURES: tuple[tuple[str, str], ...] = (
    # A few words at most: "Sent from my desk, which is easier than …" is prose.
    ("en", r"[(<\s]*sent (?:from|via|with|by|using)\b(?:\s+\S+){1,6}\s*$"),
    ("en", r"get \[?outlook for\b"),
    ("en", r"from my (?:iphone|ipad|ipod|android|mobile|phone|galaxy|blackberry)"),
    ("fr", r"envoyé (?:depuis|de) mon\b"),
    ("de", r"von meinem .{1,40} gesendet"),
    ("de", r"gesendet (?:von|mit) meinem\b"),
    ("de", r"diese nachricht wurde von meinem .{1,60} gesendet"),
    ("it", r"inviato da (?:iphone|ipad|android|samsung|galaxy|smartphone|cellulare)"),
    ("it", r"inviato dal mio\b"),
    ("es", r"enviado (?:desde|de) mi\b"),
    ("pt", r"enviado do meu\b"),
    ("nl", r"verzonden (?:met|vanaf|van) (?:mijn )?(?:iphone|ipad|android|blackberry|samsung)"),
    ("nl", r"verstuurd vanaf mijn\b"),
    ("no", r"sendt fra min\b"),
    ("sv", r"skickat från min\b"),
    ("zh", r"從我的 .{1,30}傳送|发自我的"),
)

_MAX_SIGNATURE_LINE = 100  # a long line starting "Sent from" is prose, not a signature
_MAX_ATTRIBUTION_LINES = 5
_MAX_ATTRIBUTION_CHARS = 400  # keeps the regexes linear on pathological long lines

_OPENERS = "|".join(o for _, o, _ in ATTRIBUTIONS if o)
_VERBS = "|".join(v for _, _, v in ATTRIBUTIONS)
# "On <date> … <verb>[:]" or "On <date> … <verb> … :". Its first digit is the one to take
# and a final colon makes any verb do, so neither expression tries the rest of the line again
# from every digit and every verb (cubic: 15 ms for one line of 400 characters).
_OPENED_RE = re.compile(rf"(?:{_OPENERS})\s[^\d\n]*+\d.*(?:{_VERBS})\s*$", re.I)
_OPENED_COLON_RE = re.compile(rf"(?:{_OPENERS})\s[^\d\n]*+\d.*?(?:{_VERBS})", re.I)
_OPENER_RE = re.compile(rf"(?:{_OPENERS})\s", re.I)
_ADDRESS_OR_DIGIT_RE = re.compile(r"[\d@<]")
_MAY_END_RE = re.compile(rf"(?:[:：]|{_VERBS})$", re.I)
_VERB_END_RE = re.compile(rf"(?:{_VERBS})\s*[:：]$", re.I)
# Gmail's "2016-03-03 17:21 GMT+01:00 Name <addr>:" and "2013/7/20 Name <addr>".
_DATE_LED_RE = re.compile(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}\b.*(?:\bGMT[+-]\d|<[^<>\s]*@)")
_MARKER_RE = re.compile(
    r"^[-*_=\s>]*(?:" + "|".join(m for _, m in MARKERS) + r")\b[-*_=\s:]*$", re.I
)
_FROM_RE = re.compile(r"^\*?(?:" + "|".join(f for _, f in FROM_LABELS) + r")\s?:\*?\s*\S")
_FIELD_RE = re.compile(r"^\*?(?:" + "|".join(f for _, f in FIELD_LABELS) + r")\s?:\*?(?:\s|$)")
_SIGNATURE_RE = re.compile("|".join(f"(?:{s})" for _, s in MOBILE_SIGNATURES), re.I)
_DELIMITER_RE = re.compile(r"^\s*(?:[-_*#~=+\u2014\u2013]{2,}|\u1427)\s*$")
_QUOTE_RE = re.compile(r"^\s*(?:>|[A-Z]{1,3}>)")
_UNQUOTE_RE = re.compile(r"^(?:\s*[A-Z]{0,3}>)+\s*")
_FENCE_RE = re.compile(r"^\s*(?:```|~~~)")
_EDGE_CHARS = "-* \t\u00a0"


@dataclass(frozen=True, slots=True)
class _Line:
    raw: str
    kind: str  # t(ext) e(mpty) q(uote) d(elimiter) s(ignature)
    bare: str = ""  # without quote markers and decoration; set for text and quotes
    may_end: bool = False  # could close an attribution: ends with a colon or a verb


def _classify_lines(lines: list[str]) -> list[_Line]:
    out: list[_Line] = []
    in_fence = False
    for raw in lines:
        stripped = raw.strip()
        if _FENCE_RE.match(raw):
            in_fence = not in_fence
            out.append(_Line(raw, "t"))
        elif in_fence:
            out.append(_Line(raw, "t" if stripped else "e"))
        elif not stripped:
            out.append(_Line(raw, "e"))
        elif _QUOTE_RE.match(raw):
            out.append(_content_line(raw, "q"))
        elif _DELIMITER_RE.match(raw):
            out.append(_Line(raw, "d"))
        elif len(stripped) <= _MAX_SIGNATURE_LINE and _SIGNATURE_RE.match(stripped):
            out.append(_Line(raw, "s"))
        else:
            out.append(_content_line(raw, "t"))
    return out


def _content_line(raw: str, kind: str) -> _Line:
    bare = _bare(raw)
    return _Line(raw, kind, bare, _MAY_END_RE.search(bare) is not None)


def _bare(raw: str) -> str:
    """A line without quote markers and decorative dashes/asterisks around it."""
    return _UNQUOTE_RE.sub("", raw, count=1).strip(_EDGE_CHARS)


def _opened_attribution(line: str) -> bool:
    """Whether all of `line` (one line: no line break) is an attribution led by an opener."""
    pattern = _OPENED_COLON_RE if line.endswith((":", "：")) else _OPENED_RE
    return pattern.match(line) is not None


def _starts_attribution(line: str) -> bool:
    return _OPENER_RE.match(line) is not None and any(c.isdigit() for c in line)


def _attribution_end(lines: list[_Line], start: int) -> int | None:
    """End (exclusive) of an attribution starting at `start`, or None."""
    first = lines[start].bare
    if not first or len(first) > _MAX_ATTRIBUTION_CHARS:
        return None
    if _DATE_LED_RE.match(first):
        return start + 1
    window = lines[start : start + _MAX_ATTRIBUTION_LINES]
    if not any(line.may_end for line in window):
        return None
    opened = _starts_attribution(first)
    if not opened and not _ADDRESS_OR_DIGIT_RE.search(first):
        return None
    joined = first
    for end in range(start + 1, min(start + _MAX_ATTRIBUTION_LINES, len(lines)) + 1):
        if opened and _opened_attribution(joined):
            return end
        if _VERB_END_RE.search(joined) and ("@" in joined or any(c.isdigit() for c in joined)):
            return end
        if end >= len(lines):
            break
        nxt = lines[end]
        # Without an opener only unbroken lines belong together, and an opener
        # further down starts its own attribution.
        if not opened and (nxt.kind == "e" or _starts_attribution(nxt.bare)):
            break
        joined = f"{joined} {nxt.bare}".strip()
        if len(joined) > _MAX_ATTRIBUTION_CHARS:
            break
    return None


def _header_end(lines: list[_Line], start: int) -> int | None:
    """End (exclusive) of a header block (marker or From:/Sent:/To:) at `start`."""
    first = lines[start].bare
    if _MARKER_RE.match(lines[start].raw.strip()):
        end = start + 1
    elif _FROM_RE.match(first):
        fields = sum(1 for ln in lines[start + 1 : start + 7] if _FIELD_RE.match(ln.bare))
        if fields < 2:
            return None
        end = start + 1
    else:
        return None
    # The block runs on to the first blank line: field values can wrap.
    while end < len(lines) and lines[end].kind != "e" and _looks_like_field(lines, start, end):
        end += 1
    return end


def _looks_like_field(lines: list[_Line], start: int, index: int) -> bool:
    # A marker line followed directly by prose is not a header block.
    bare = lines[index].bare
    return index > start + 1 or bool(_FIELD_RE.match(bare) or _FROM_RE.match(bare))


def _cited_end(lines: list[_Line], start: int) -> int | None:
    """A verbless attribution ("26.06.2014, 14:41, "Ann" <ann@x.org>:"), known as one
    only because a quote follows it; some clients write no "wrote" in any language."""
    line = lines[start]
    if line.kind != "t" or not line.bare.endswith((":", "：")) or "@" not in line.bare:
        return None
    if len(line.bare) > _MAX_ATTRIBUTION_CHARS or not any(c.isdigit() for c in line.bare):
        return None
    after = _skip(lines, start + 1, "e")
    return start + 1 if after < len(lines) and lines[after].kind == "q" else None


def _block_end(lines: list[_Line], start: int) -> int | None:
    if lines[start].kind not in ("t", "q"):
        return None
    return _header_end(lines, start) or _attribution_end(lines, start) or _cited_end(lines, start)


def _skip(lines: list[_Line], index: int, kinds: str) -> int:
    while index < len(lines) and lines[index].kind in kinds:
        index += 1
    return index


def _drop_leading_history(lines: list[_Line]) -> list[_Line]:
    """A reply written below the quote: drop the attribution and the quote under it."""
    start = _skip(lines, 0, "e")
    if start >= len(lines):
        return lines
    end = _block_end(lines, start)
    if end is None:
        return lines
    after = _skip(lines, end, "e")
    if after < len(lines) and lines[after].kind == "q":
        rest = _skip(lines, after, "qe")
        # Answers interleaved with further quotes need the first quote as context.
        return lines[after:] if _interleaved(lines[rest:]) else lines[rest:]
    return lines[end:]


def _interleaved(lines: list[_Line]) -> bool:
    quoted = _first(lines, "q")
    return any(line.kind == "t" for line in lines[quoted:])


def _cut_embedded(lines: list[_Line]) -> list[_Line]:
    """Cut at the first embedded message; keep inline replies interleaved with quotes."""
    kept: list[_Line] = []
    # Where the quote (and blank lines) starting at each line ends, worked out once: a
    # quote of attribution lines would otherwise be walked again from each of them.
    quote_ends = _run_ends(lines, "qe")
    index = 0
    while index < len(lines):
        end = _block_end(lines, index)
        if end is None:
            kept.append(lines[index])
            index += 1
            continue
        after = _skip(lines, end, "e")
        if after < len(lines) and lines[after].kind == "q":
            reply = _skip(lines, quote_ends[after], "e")
            if reply < len(lines) and lines[reply].kind == "t":
                index = end  # inline answer follows the quote: only the attribution goes
                continue
        break
    return kept


def _run_ends(lines: list[_Line], kinds: str) -> list[int]:
    """For each index, the first index at or after it whose kind is not in kinds."""
    ends = [len(lines)] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        ends[index] = ends[index + 1] if lines[index].kind in kinds else index
    return ends


def _first(lines: list[_Line], kinds: str) -> int:
    for index, line in enumerate(lines):
        if line.kind in kinds:
            return index
    return len(lines)


def trim_reply(text: str) -> str:
    """The new text of a reply: no quoted history, forwarded headers or signature."""
    raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _classify_lines(raw_lines)
    lines = lines[: _first(lines, "ds")]
    lines = _drop_leading_history(lines)
    lines = _cut_embedded(lines)
    # Quoted history trailing the answer goes; a mail that is only a quote keeps it.
    end = len(lines)
    while end > 0 and lines[end - 1].kind in "qe":
        end -= 1
    if any(line.kind == "t" for line in lines[:end]):
        lines = lines[:end]
    return _strip_blank_edges("\n".join(line.raw for line in lines))


def _strip_blank_edges(text: str) -> str:
    lines = text.rstrip().split("\n")
    first = next((index for index, line in enumerate(lines) if line.strip()), len(lines))
    return "\n".join(lines[first:])
