"""Authentication-Results (RFC 8601): read by its grammar, and what it proves. Pure functions.

The header is structured. A `;` separates results only outside quoted strings and
comments (a quoted string inside a comment included), and a property value may be a whole
address with a quoted local part, such as
`smtp.mailfrom="x;dkim=pass header.d=shop.example"@evil.example`, which the receiving MTA
copies from the attacker's envelope. So the value is split into tokens first (quoted
strings, comments and escapes honoured, nothing RFC 2047-decoded), and only then into
results. A part that does not follow the grammar is dropped, never guessed at: a mistake
here can only withhold proof, not grant it.

Only the trusted MTA's topmost header counts (`trusted_results`): the MTA adds its own on
top and must remove any arriving with its authserv-id (RFC 8601 section 5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

# Bounds per header: real ones carry a handful of results with a few properties each.
MAX_RESULTS = 64
MAX_PROPERTIES = 16
MAX_VALUE = 4096  # characters of one header considered; the rest cannot add proof

_SPECIALS = frozenset(";=/@")
_ATOM = re.compile(r'[^;=/@"()\\ \t\r\n]*')  # one character class: no backtracking


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "atom" | "quoted" | one of the specials ";", "=", "/", "@"
    text: str


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One `method=result` with its properties, keys as `ptype.property`, lower-cased."""

    method: str
    result: str
    properties: Mapping[str, str] = field(default_factory=dict)

    def domain(self, key: str) -> str:
        """The domain named by a property: `header.d=x.org`, `header.i=@x.org`,
        `smtp.mailfrom=a@x.org` all give "x.org"; "" when the property is absent."""
        value = self.properties.get(key, "")
        return value.rpartition("@")[2].strip().strip(".").lower()


@dataclass(frozen=True, slots=True)
class AuthResults:
    authserv_id: str
    results: tuple[MethodResult, ...]


def tokens(value: str) -> Iterator[Token]:
    """RFC 8601 lexical tokens; comments (nested, with escapes) and whitespace are dropped.

    An unterminated quoted string or comment runs to the end of the value. Linear in the
    length of the value.
    """
    index, end = 0, len(value)
    while index < end:
        char = value[index]
        if char in " \t\r\n":
            index += 1
        elif char == "(":
            index = _skip_comment(value, index)
        elif char == '"':
            text, index = _quoted(value, index)
            yield Token("quoted", text)
        elif char in _SPECIALS:
            index += 1
            yield Token(char, char)
        else:
            start, index = index, _ATOM.match(value, index).end()  # type: ignore[union-attr]
            if index == start:  # a lone backslash or ")": not part of any grammar rule
                index += 1
                continue
            yield Token("atom", value[start:index])


def _skip_comment(value: str, index: int) -> int:
    """The index after the comment opening at `index`. A quoted string inside it is opaque,
    as in a local part an MTA copies into its comment (`(domain of "a);x"@evil.example)`):
    its parentheses neither open nor close anything."""
    depth, index = 0, index
    while index < len(value):
        char = value[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            index = _quoted(value, index)[1]
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return index


def _quoted(value: str, index: int) -> tuple[str, int]:
    chars: list[str] = []
    index += 1
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            chars.append(value[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    return "".join(chars), index


def parse_authentication_results(value: str) -> AuthResults | None:
    """The authserv-id and the results of one header value; None when it has no id."""
    groups = _split_results(list(tokens(value[:MAX_VALUE])))
    head = groups[0]
    if not head or head[0].kind not in ("atom", "quoted") or not head[0].text:
        return None
    results: list[MethodResult] = []
    for group in groups[1 : MAX_RESULTS + 1]:
        parsed = _result(group)
        if parsed is not None:
            results.append(parsed)
    return AuthResults(head[0].text.lower(), tuple(results))


def _split_results(found: list[Token]) -> list[list[Token]]:
    groups: list[list[Token]] = [[]]
    for token in found:
        if token.kind == ";":
            groups.append([])
        else:
            groups[-1].append(token)
    return groups


def _result(group: list[Token]) -> MethodResult | None:
    """`method[/version] = result [reason = value] [ptype.property = pvalue]...`."""
    if len(group) < 3 or group[0].kind != "atom":
        return None
    position = 1
    if group[position].kind == "/":  # a method version: dkim/1=pass
        if len(group) < 5 or group[2].kind != "atom":
            return None
        position = 3
    if group[position].kind != "=" or group[position + 1].kind != "atom":
        return None
    method, result = group[0].text.lower(), group[position + 1].text.lower()
    properties: dict[str, str] = {}
    rest = group[position + 2 :]
    while len(rest) >= 3 and len(properties) < MAX_PROPERTIES:
        key, sign = rest[0], rest[1]
        if key.kind != "atom" or sign.kind != "=":
            return MethodResult(method, result, properties)  # not a property: stop here
        taken, text = _pvalue(rest[2:])
        if not taken:
            break
        name = key.text.lower()
        if name != "reason" and "." in name:
            properties.setdefault(name, text)
        rest = rest[2 + taken :]
    return MethodResult(method, result, properties)


def _pvalue(rest: list[Token]) -> tuple[int, str]:
    """(tokens taken, text) of a property value: a value, or `[local-part] @ domain`."""
    first = rest[0]
    if first.kind == "@":
        if len(rest) > 1 and rest[1].kind == "atom":
            return 2, "@" + rest[1].text
        return 0, ""
    if first.kind not in ("atom", "quoted"):
        return 0, ""
    if len(rest) > 2 and rest[1].kind == "@" and rest[2].kind == "atom":
        return 3, f"{first.text}@{rest[2].text}"
    return 1, first.text


def trusted_results(values: Iterable[str], authserv_id: str | None) -> AuthResults | None:
    """The topmost header that names the trusted authserv-id; others prove nothing."""
    trusted = (authserv_id or "").strip().lower()
    if not trusted:
        return None
    for value in values:
        parsed = parse_authentication_results(value)
        if parsed is not None and parsed.authserv_id == trusted:
            return parsed
    return None


# --- what the results prove ---------------------------------------------------------------


def aligned(authenticated: str, domain: str) -> bool:
    """Relaxed alignment: the same domain, or one a subdomain of the other."""
    if not authenticated or not domain:
        return False
    return (
        authenticated == domain
        or domain.endswith("." + authenticated)
        or authenticated.endswith("." + domain)
    )


def proves_author(results: AuthResults | None, from_domain: str) -> str | None:
    """What proves that the From domain wrote the mail: "dkim" for a passing signature
    aligned with it (`header.d`, else `header.i`), "dmarc" for a DMARC pass naming it in
    `header.from`; else None. SPF alone never proves a From address: it vouches for the
    envelope sender, which anyone may choose."""
    domain = from_domain.strip().lower()
    if results is None or not domain:
        return None
    for item in results.results:
        if item.result != "pass":
            continue
        if item.method == "dkim" and aligned(
            item.domain("header.d") or item.domain("header.i"), domain
        ):
            return "dkim"
        if item.method == "dmarc" and item.domain("header.from") == domain:
            return "dmarc"
    return None


def authenticates(results: AuthResults | None, domain: str) -> str | None:
    """Whether mail from `domain` came through authenticated: DKIM or DMARC as in
    proves_author, or an SPF pass for an envelope sender aligned with it."""
    proof = proves_author(results, domain)
    if proof is not None or results is None:
        return proof
    for item in results.results:
        if (
            item.method == "spf"
            and item.result == "pass"
            and aligned(item.domain("smtp.mailfrom") or item.domain("smtp.helo"), domain)
        ):
            return "spf"
    return None


def contradicts(results: AuthResults | None, from_domain: str) -> bool:
    """The trusted MTA says the From domain did not send this: DMARC failed for it, or
    what passed belongs to another domain and nothing aligned with From passed."""
    domain = from_domain.strip().lower()
    if results is None or not domain or authenticates(results, domain) is not None:
        return False
    for item in results.results:
        if item.method == "dmarc" and item.result == "fail":
            return True
        if item.result == "pass" and item.method in ("dkim", "spf"):
            return True
    return False
