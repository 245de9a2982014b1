"""Address headers (From, To, Cc, Reply-To) read by RFC 5322's grammar, leniently and in
linear time. Pure functions.

The address of a mailbox is its addr-spec: the text in angle brackets, or the bare
`local@domain` when there are none. It is never taken out of the display name, which the
sender writes freely (`"victim@shop.example" <attacker@evil.example>`), and encoded words
are decoded only in the display name, after the addr-spec has been found, so an encoded
display name cannot hide an address either. Quoted strings, comments and escapes are
honoured; an unterminated quoted string is read again as plain words, so that the
addresses after it still count. An addr-spec without a domain (`<MAILER-DAEMON>`, or a
lone `MAILER-DAEMON`) is no address, but it is kept apart as `local`: it still names who
wrote (core.sender).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from mailbridge.core.mime_text import decode_8bit, decode_header_value

MAX_ADDRESSES = 1000  # per header: more is a mass mailing or an attack, not a conversation
MAX_NAME = 1000  # characters of a display name kept here; storing bounds it further
_ATOM = re.compile(r'[^"()<>\[\],;:\\ \t\r\n]*')  # one character class: no backtracking
_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-."
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # atom | quoted | comment | angle | literal | "," | ";" | ":" | space
    text: str


@dataclass(frozen=True, slots=True)
class Mailbox:
    name: str  # display name, decoded and cleaned; "" when none
    address: str  # lower-cased addr-spec; "" when the mailbox had none
    # An addr-spec written without a domain, lower-cased ("mailer-daemon"); "" otherwise.
    local: str = ""


@dataclass(frozen=True, slots=True)
class AddressList:
    mailboxes: tuple[Mailbox, ...]
    defects: tuple[str, ...]


def parse_address_list(value: str, charset: str | None = None) -> AddressList:
    """Every mailbox of an address header's raw value (groups flattened), in order; raw
    8-bit bytes are read as `charset` first (mime_text.decode_8bit)."""
    text = decode_8bit(value, charset)
    defects: list[str] = []
    found = _tokens(text, quotes=True)
    if found is None:
        defects.append("unterminated quoted string")
        found = _tokens(text, quotes=False) or []
    mailboxes: list[Mailbox] = []
    for group in _mailbox_groups(found):
        mailboxes.extend(_mailbox(group, defects))
        if len(mailboxes) > MAX_ADDRESSES:
            defects.append(f"more than {MAX_ADDRESSES} addresses: the rest are not read")
            del mailboxes[MAX_ADDRESSES:]
            break
    return AddressList(tuple(mailboxes), tuple(dict.fromkeys(defects)))


def _tokens(text: str, *, quotes: bool) -> list[_Token] | None:
    """The tokens of `text`; None when `quotes` and a quoted string is not closed."""
    out: list[_Token] = []
    index, end = 0, len(text)
    while index < end:
        char = text[index]
        if char in " \t\r\n":
            index += 1
            if out and out[-1].kind != "space":
                out.append(_Token("space", " "))
        elif char == '"' and quotes:
            closed, content, index = _until(text, index + 1, '"')
            if not closed:
                return None
            out.append(_Token("quoted", content))
        elif char == "(":
            content, index = _comment(text, index)
            out.append(_Token("comment", content))
        elif char in "<[":
            closed, content, index = _until(text, index + 1, ">" if char == "<" else "]")
            out.append(_Token("angle" if char == "<" else "literal", content))
        elif char in ",;:":
            out.append(_Token(char, char))
            index += 1
        else:
            start = index  # a stray ")", ">", "]", "\\" or '"' starts a word of its own
            index = _ATOM.match(text, index + 1).end()  # type: ignore[union-attr]
            out.append(_Token("atom", text[start:index]))
    return out


def _until(text: str, index: int, stop: str) -> tuple[bool, str, int]:
    """(closed, content, index after the stop) of a quoted string, angle or literal."""
    chars: list[str] = []
    end = len(text)
    while index < end:
        char = text[index]
        if char == "\\" and index + 1 < end:
            chars.append(text[index + 1])
            index += 2
        elif char == stop:
            return True, "".join(chars), index + 1
        else:
            chars.append(char)
            index += 1
    return False, "".join(chars), index


def _comment(text: str, index: int) -> tuple[str, int]:
    chars: list[str] = []
    depth, end = 0, len(text)
    while index < end:
        char = text[index]
        if char == "\\" and index + 1 < end:
            chars.append(text[index + 1])
            index += 2
            continue
        if char == "(":
            depth += 1
            if depth == 1:
                index += 1
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                return "".join(chars), index + 1
        chars.append(char)
        index += 1
    return "".join(chars), index


def _mailbox_groups(found: list[_Token]) -> list[list[_Token]]:
    """Split at commas; `name:` opens a group (its name is no address) and `;` closes it."""
    groups: list[list[_Token]] = [[]]
    for token in found:
        if token.kind in (",", ";"):
            groups.append([])
        elif token.kind == ":":
            groups[-1] = []  # what came before was the group's name
        else:
            groups[-1].append(token)
    return [g for g in groups if any(t.kind != "space" for t in g)]


def _mailbox(group: list[_Token], defects: list[str]) -> list[Mailbox]:
    """The mailbox of one comma-separated part; several only when addresses were run
    together without commas (`a@x b@y`)."""
    angles = [t for t in group if t.kind == "angle"]
    if angles:
        if len(angles) > 1:
            defects.append("a mailbox with several <addresses>: the first is the address")
        spec = _angle_spec(angles[0].text)
        name = _phrase(group[: group.index(angles[0])]) or _comments(group)
        return _made(name, spec, defects, local=_local_only(spec))
    words = _words(group)
    specs = [w for w in words if "@" in w]
    if not specs:  # a bare name ("MAILER-DAEMON (Mail Delivery System)") or a comment
        if not words:
            return []
        lone = words[0] if len(words) == 1 else ""
        return _made(_comments(group), "", defects, local=_local_only(lone))
    if len(specs) > 1:
        defects.append("addresses without a comma between them")
    before = words[: words.index(specs[0])]
    name = decode_header_value(" ".join(before)) or _comments(group)
    return [m for spec in specs for m in _made(name if spec == specs[0] else "", spec, defects)]


def _made(name: str, spec: str, defects: list[str], *, local: str = "") -> list[Mailbox]:
    address = _addr_spec(spec)
    if not address and spec.strip():
        defects.append("an address that is no local@domain")
    name = clean_name(name)
    return [Mailbox(name, address, local)] if address or name or local else []


def _local_only(spec: str) -> str:
    """`spec` lower-cased when it is a dot-atom local part with no domain, else ""."""
    if not spec or "@" in spec or len(spec) > 64 or ".." in spec:
        return ""
    return spec.lower() if all(ch in _ATEXT for ch in spec) else ""


def _words(group: list[_Token]) -> list[str]:
    """Whitespace-separated words outside comments; a quoted local part keeps its quotes
    when it needs them."""
    words: list[list[str]] = [[]]
    for token in group:
        if token.kind == "space":
            words.append([])
            continue
        if (
            not words[-1]
            and len(words) > 1
            and words[-2]
            and (words[-2][-1][-1:] in (".", "@") or token.text[:1] in (".", "@"))
        ):
            words.pop()  # obsolete spaces around "." and "@": `jdoe@test . example`
        if token.kind == "quoted":
            words[-1].append(_quoted_local(token.text))
        elif token.kind == "literal":
            words[-1].append(f"[{token.text}]")
        elif token.kind == "atom":
            words[-1].append(token.text)
    return [joined for parts in words if (joined := "".join(parts))]


def _angle_spec(text: str) -> str:
    """The addr-spec inside <...>: comments and spaces out, a source route
    (`<@relay.example:bob@example.com>`) dropped, a `<mailto:...` pasted inside cut off."""
    text = text.partition("<")[0]
    if "(" in text:
        kept = _tokens(text, quotes=False) or []
        text = "".join(t.text for t in kept if t.kind in ("atom",))
    spec = "".join(text.split())
    if spec.startswith("@") and ":" in spec:
        spec = spec.rpartition(":")[2]
    return spec


def _quoted_local(text: str) -> str:
    """A quoted local part as written in an addr-spec: bare when it needs no quotes."""
    if text and all(ch in _ATEXT for ch in text) and ".." not in text:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _addr_spec(spec: str) -> str:
    """`local@domain`, lower-cased, or "" when `spec` is no such thing. UTF-8 is allowed in
    both halves (RFC 6532)."""
    spec = spec.strip().rstrip(".")  # "bob@example.com." is still Bob
    local, at, domain = spec.rpartition("@")
    if not at or not local or not domain:
        return ""
    quoted = len(local) > 1 and local[0] == local[-1] == '"'
    if not quoted and not all(ch in _ATEXT or ord(ch) > 127 for ch in local):
        return ""
    literal = domain[0] == "[" and domain[-1] == "]"
    if not literal and not all(ch.isalnum() or ch in "-._" for ch in domain):
        return ""
    return spec.lower()


def _phrase(tokens: list[_Token]) -> str:
    words = [
        t.text if t.kind != "space" else " "
        for t in tokens
        if t.kind in ("atom", "quoted", "space")
    ]
    return decode_header_value("".join(words))


def _comments(tokens: list[_Token]) -> str:
    return decode_header_value(" ".join(t.text for t in tokens if t.kind == "comment"))


def clean_name(name: str) -> str:
    """A display name fit to show: no control or format characters, nor the U+FFFD of
    bytes no charset could read, one line, bounded."""
    if "\ufffd" in name:
        name = name.replace("\ufffd", " ")
    if not name.isprintable():
        name = "".join(
            " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch for ch in name
        )
    name = " ".join(name.split())
    if len(name) > 1 and name[0] == name[-1] == '"':
        name = name[1:-1].strip()
    return name[:MAX_NAME]
