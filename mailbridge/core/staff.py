"""Staff: who may speak for the helpdesk, and what they asked for. Pure functions.

A message counts as from staff only when its sender is a configured staff address or domain
AND one proof holds (invariant 8): a valid reply token in the address it was sent to, or an
`Authentication-Results` header from the trusted MTA saying DKIM, SPF or DMARC passed for
the sender's domain. Anything less is customer mail, whatever its From says.

Reply tokens are an HMAC of the ticket number under a configured secret, carried in the
plus part of the support address: `support+t1042-k3j5x7q2abcd@example.com`. A token for
one ticket is worthless on another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailbridge.core.sla import PRIORITIES

TOKEN_LENGTH = 12

_DETAIL = re.compile(r"t(\d{1,12})-([a-z2-7]{8,32})")


# --- reply tokens ------------------------------------------------------------------------


def reply_token(secret: bytes, ticket_number: int) -> str:
    """A short, case-insensitive token binding an address to one ticket."""
    digest = hmac.new(secret, f"ticket:{ticket_number}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TOKEN_LENGTH]


def reply_address(base_address: str, ticket_number: int, secret: bytes) -> str:
    """`support@example.com` -> `support+t1042-<token>@example.com`."""
    local, _, domain = base_address.rpartition("@")
    return f"{local}+t{ticket_number}-{reply_token(secret, ticket_number)}@{domain}"


@dataclass(frozen=True, slots=True)
class AddressToken:
    """A ticket token found in a recipient address, not yet checked."""

    ticket_number: int
    token: str
    address: str


def find_token(recipients: Iterable[str], own_addresses: Iterable[str]) -> AddressToken | None:
    """The first recipient that is one of our addresses with a `+t<number>-<token>` detail."""
    own = {a.lower() for a in own_addresses}
    for recipient in recipients:
        local, _, domain = recipient.lower().rpartition("@")
        base, plus, detail = local.partition("+")
        if not plus or f"{base}@{domain}" not in own:
            continue
        match = _DETAIL.fullmatch(detail)
        if match:
            return AddressToken(int(match.group(1)), match.group(2), recipient.lower())
    return None


def token_valid(secret: bytes, found: AddressToken) -> bool:
    return hmac.compare_digest(reply_token(secret, found.ticket_number), found.token)


# --- who is staff ------------------------------------------------------------------------


def is_staff_address(address: str, addresses: Iterable[str], domains: Iterable[str]) -> bool:
    """A configured address, or any address at a configured domain (exactly that domain)."""
    address = address.lower()
    if not address or "@" not in address:
        return False
    domain = address.rpartition("@")[2]
    return address in {a.lower() for a in addresses} or domain in {d.lower() for d in domains}


def authentication_proof(
    results: Iterable[str], authserv_id: str, sender_address: str
) -> str | None:
    """Which check of the trusted MTA vouches for the sender's domain, or None.

    Only the first `Authentication-Results` header carrying the trusted authserv-id counts:
    the MTA adds its own on top, and must remove any that arrive claiming its id (RFC 8601
    section 5), so one further down is a forgery or a leftover from another hop. Alignment is
    relaxed: the authenticated domain equals the From domain or one is a subdomain of the
    other.
    """
    sender_domain = sender_address.lower().rpartition("@")[2]
    if not authserv_id or not sender_domain:
        return None
    for header in results:
        parsed = _parse_authentication_results(header)
        if parsed is None or parsed[0] != authserv_id.lower():
            continue
        for method, result, props in parsed[1]:
            if result != "pass":
                continue
            domain = _authenticated_domain(method, props)
            if domain and _aligned(domain, sender_domain):
                return method
        return None
    return None


_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"([a-z0-9-]+\.[a-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")
_RESULT = re.compile(r"([a-z0-9_-]+)\s*=\s*([a-z]+)")

_Method = tuple[str, str, dict[str, str]]


def _parse_authentication_results(header: str) -> tuple[str, list[_Method]] | None:
    text = " ".join(header.split()).lower()
    while _COMMENT.search(text):
        text = _COMMENT.sub(" ", text)
    pieces = [p.strip() for p in text.split(";")]
    if not pieces or not pieces[0]:
        return None
    authserv_id = pieces[0].split()[0]
    methods: list[_Method] = []
    for piece in pieces[1:]:
        match = _RESULT.match(piece)
        if not match:
            continue
        props = {k: v.strip('"') for k, v in _PROPERTY.findall(piece[match.end():])}
        methods.append((match.group(1), match.group(2), props))
    return authserv_id, methods


def _authenticated_domain(method: str, props: dict[str, str]) -> str:
    if method == "dkim":
        value = props.get("header.d") or props.get("header.i", "")
    elif method == "spf":
        value = props.get("smtp.mailfrom") or props.get("smtp.helo", "")
    elif method == "dmarc":
        value = props.get("header.from", "")
    else:
        return ""
    return value.rpartition("@")[2].strip(".")


def _aligned(authenticated: str, sender: str) -> bool:
    return (authenticated == sender or sender.endswith("." + authenticated)
            or authenticated.endswith("." + sender))


# --- commands by mail ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # note | close | resolve | priority | assign | queue | template
    argument: str = ""


@dataclass(frozen=True, slots=True)
class StaffMessage:
    """A staff reply split into the commands on its first lines and the text after them."""

    commands: tuple[Command, ...]
    errors: tuple[str, ...]
    text: str

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.commands)

    def argument(self, name: str) -> str | None:
        """The argument of the last command of that name (a later line wins)."""
        found = [c.argument for c in self.commands if c.name == name]
        return found[-1] if found else None

    def tags(self, name: str) -> tuple[str, ...]:
        """The tags of every `#tag` (or `#untag`) line, in order, each once."""
        found = (tag for c in self.commands if c.name == name
                 for tag in _LIST_SEPARATOR.split(c.argument) if tag)
        return tuple(dict.fromkeys(found))


_COMMAND_LINE = re.compile(r"#([A-Za-z]+)\b[ \t]*(.*)")
# "#note" words at the start of a line: the text after each is read as the next line, so
# "#note #note … x" is that many notes and then "x", found here in one pass.
_NOTES = re.compile(r"(?:#[Nn][Oo][Tt][Ee]\b\s*)+")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# The lookahead fails at once on a character no address has; without it every "." was
# tried as the last dot of the domain, each time to the end of the argument.
_ADDRESS = re.compile(r"[^@\s<>]+@(?=[^@\s<>]*+\Z)[^@\s<>]+\.[^@\s<>]+")
_LIST_SEPARATOR = re.compile(r"[\s,]+")
_NAMES = re.compile(rf"{_NAME.pattern}(?:{_LIST_SEPARATOR.pattern}{_NAME.pattern})*,?")

# name -> (argument required?, validator of the lower-cased argument, what is expected)
_COMMANDS: dict[str, tuple[bool, re.Pattern[str] | tuple[str, ...] | None, str]] = {
    "note": (False, None, ""),
    "close": (False, None, ""),
    "resolve": (False, None, ""),
    "priority": (True, PRIORITIES, "one of " + ", ".join(PRIORITIES)),
    "assign": (True, _ADDRESS, "an e-mail address or 'me'"),
    "queue": (True, _NAME, "a queue name"),
    "template": (True, _NAME, "a template name"),
    "tag": (True, _NAMES, "tag names, separated by spaces or commas"),
    "untag": (True, _NAMES, "tag names, separated by spaces or commas"),
}


def tag_name(value: str) -> str:
    """A tag as `#tag` takes it (lower-cased); ValueError names what is expected."""
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise ValueError(f"a tag is letters, digits, '_', '.' or '-' (at most 64), not "
                         f"{value!r}")
    return name


def parse_commands(text: str) -> StaffMessage:
    """Read `#command [argument]` lines at the top of `text`, before any other text.

    Blank lines between commands are allowed; the first other line ends the block, so a
    `#` further down is just text. `#note` may carry the start of the note on its own line.
    """
    commands: list[Command] = []
    errors: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        if notes := _NOTES.match(line):
            commands.extend(Command("note") for _ in range(notes.group().count("#")))
            rest = line[notes.end() :]
            if rest:
                lines[index] = rest  # the start of the note, or a command after "#note"
            else:
                index += 1
            continue
        match = _COMMAND_LINE.fullmatch(line)
        if not match:
            break
        index += 1
        name, argument = match.group(1).lower(), match.group(2).strip()
        error = _command_error(name, argument)
        if error:
            errors.append(f"{line}: {error}")
        else:
            commands.append(Command(name, _normalise(name, argument)))
    body = "\n".join(lines[index:]).strip("\n")
    return StaffMessage(tuple(commands), tuple(errors), body)


def _command_error(name: str, argument: str) -> str:
    spec = _COMMANDS.get(name)
    if spec is None:
        return "unknown command (known: " + ", ".join(f"#{n}" for n in _COMMANDS) + ")"
    required, valid, expected = spec
    if not required:
        return f"#{name} takes no argument" if argument else ""
    if not argument:
        return f"#{name} needs an argument: {expected}"
    value = argument.lower()
    if name == "assign" and value == "me":
        return ""
    ok = value in valid if isinstance(valid, tuple) else bool(valid and valid.fullmatch(value))
    return "" if ok else f"expected {expected}, got {argument!r}"


def _normalise(name: str, argument: str) -> str:
    return (argument.lower() if name in ("priority", "assign", "queue", "template", "tag", "untag")
            else argument)


# --- signatures ----------------------------------------------------------------------------


def strip_signature(text: str, patterns: Iterable[re.Pattern[str]]) -> str:
    """Cut `text` at the first line that opens a signature: the standard `-- ` delimiter or a
    line matching one of the configured patterns (e.g. `^Alice Rossi$`, `^Sent from my`)."""
    lines = text.splitlines()
    compiled = list(patterns)
    for index, line in enumerate(lines):
        if line.rstrip() == "--" or any(p.search(line) for p in compiled):
            return "\n".join(lines[:index]).rstrip()
    return text.rstrip()
