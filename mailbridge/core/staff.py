"""Staff: who may speak for the helpdesk, and what they asked for. Pure functions.

A message counts as from staff only when its sender is a configured staff address or domain
AND one proof holds (docs/architecture.md, invariant 8): a reply token that names this
sender as one of its users, or an `Authentication-Results` header from the trusted MTA with
a DKIM signature aligned with the From domain or a DMARC pass for it (core.authres).
Anything less is customer mail, whatever its From says.

A reply token rides in the plus part of the support address a staff notification gives as
its Reply-To: `support+t1042-kq3f0-<mac>@example.com`. The MAC binds the ticket number,
the expiry day and the token's audience: the one staff member the notification went to,
or the team (any address listed in `[staff] addresses`). Stateless: checking a token needs
the key and the sender, no database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbridge.core.addresses import parse_address_list
from mailbridge.core.message import Address
from mailbridge.core.sla import PRIORITIES

MAC_LENGTH = 16  # base32 characters: 80 bits
TEAM = "team"  # the audience of a token sent to the team address
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DETAIL = re.compile(r"t(\d{1,12})-([0-9a-z]{1,7})-([a-z2-7]{16})")
_LEGACY_DETAIL = re.compile(r"t(\d{1,12})-([a-z2-7]{8,32})")


# --- reply tokens ------------------------------------------------------------------------


def day_number(moment: datetime) -> int:
    """Whole UTC days since 1970: a token's expiry day."""
    return (moment - _EPOCH) // timedelta(days=1)


def base36(number: int) -> str:
    """`number` in digits and lower-case letters: a short expiry in an address."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def token_mac(secret: bytes, ticket_number: int, expiry: str, audience: str) -> str:
    """The MAC a token carries: it binds the ticket, the expiry day and the audience (a
    staff address, the team, or a rating's verdict, core/rating.py)."""
    message = f"ticket:{ticket_number}:{expiry}:{audience.lower()}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]


def reply_address(
    base_address: str, ticket_number: int, secret: bytes, *, audience: str, expires: datetime
) -> str:
    """`support@example.com` -> `support+t1042-<expiry day>-<mac>@example.com`.

    `audience` is the staff address the mail goes to, or TEAM; the token is good until the
    end of the UTC day of `expires`.
    """
    local, _, domain = base_address.rpartition("@")
    expiry = base36(day_number(expires))
    mac = token_mac(secret, ticket_number, expiry, audience)
    return f"{local}+t{ticket_number}-{expiry}-{mac}@{domain}"


@dataclass(frozen=True, slots=True)
class AddressToken:
    """A ticket token found in a recipient address, not yet checked; `expiry` is "" for a
    token of the older form, which named no audience and no expiry."""

    ticket_number: int
    expiry: str
    mac: str
    address: str


def plus_details(
    recipients: Iterable[str], own_addresses: Iterable[str]
) -> Iterator[tuple[str, str]]:
    """(detail, recipient) of each recipient, lower-cased, that is one of our addresses
    with a `+detail`: where reply and rating tokens ride."""
    own = {a.lower() for a in own_addresses}
    for recipient in recipients:
        local, _, domain = recipient.lower().rpartition("@")
        base, plus, detail = local.partition("+")
        if plus and f"{base}@{domain}" in own:
            yield detail, recipient.lower()


def find_token(recipients: Iterable[str], own_addresses: Iterable[str]) -> AddressToken | None:
    """The first recipient that is one of our addresses with a `+t<number>-…` detail."""
    for detail, recipient in plus_details(recipients, own_addresses):
        match = _DETAIL.fullmatch(detail)
        if match:
            return AddressToken(int(match.group(1)), match.group(2), match.group(3), recipient)
        legacy = _LEGACY_DETAIL.fullmatch(detail)
        if legacy:
            return AddressToken(int(legacy.group(1)), "", legacy.group(2), recipient)
    return None


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a token proves for one sender: `audience` when it holds, else `refusal`."""

    audience: str | None  # the sender's address or TEAM
    refusal: str | None


def check_token(
    secret: bytes, found: AddressToken, sender: str, team_members: Iterable[str], now: datetime
) -> TokenCheck:
    """Does `found` let `sender` answer its ticket? The MAC is checked before the expiry,
    so a guessed token learns nothing from the answer."""
    sender = sender.lower()
    if not found.expiry:
        return TokenCheck(
            None,
            "this reply address is of an older form that no longer "
            "proves who may use it; answer a newer notification",
        )
    if hmac.compare_digest(token_mac(secret, found.ticket_number, found.expiry, sender), found.mac):
        audience = sender
    elif hmac.compare_digest(token_mac(secret, found.ticket_number, found.expiry, TEAM), found.mac):
        if sender not in {m.lower() for m in team_members}:
            return TokenCheck(
                None,
                f"{sender} is not one of the staff addresses this team "
                "notification may be answered from",
            )
        audience = TEAM
    else:
        return TokenCheck(None, f"this reply address was not issued to {sender}")
    if day_number(now) > int(found.expiry, 36):
        return TokenCheck(None, "this reply address has expired; answer a newer notification")
    return TokenCheck(audience, None)


# --- who is staff ------------------------------------------------------------------------


def is_staff_address(address: str, addresses: Iterable[str], domains: Iterable[str]) -> bool:
    """A configured address, or any address at a configured domain (exactly that domain)."""
    address = address.lower()
    if not address or "@" not in address:
        return False
    domain = address.rpartition("@")[2]
    return address in {a.lower() for a in addresses} or domain in {d.lower() for d in domains}


def staff_member(argument: str, addresses: Iterable[str]) -> str | None:
    """The configured staff address `#assign` names: the address itself, or its local part
    when exactly one staff address has it ("alice"); None for anything else."""
    wanted = argument.strip().lower()
    known = [a.lower() for a in addresses]
    if wanted in known:
        return wanted
    named = [a for a in known if a.partition("@")[0] == wanted]
    return named[0] if len(named) == 1 else None


# --- commands by mail ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # note | close | resolve | priority | assign | queue | template | tag | untag
    argument: str = ""  # | requester | cc | merge | split | noack | send | drop | pending
    # | away | digest | mine | overdue | unassigned | waiting | show | search | spam | notspam
    # | faq


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
        found = (
            tag
            for c in self.commands
            if c.name == name
            for tag in _LIST_SEPARATOR.split(c.argument)
            if tag
        )
        return tuple(dict.fromkeys(found))


_COMMAND_LINE = re.compile(r"#([A-Za-z]+)\b[ \t]*(.*)")
# "#note" words at the start of a line: the text after each is read as the next line, so
# "#note #note … x" is that many notes and then "x", found here in one pass.
_NOTES = re.compile(r"(?:#[Nn][Oo][Tt][Ee]\b\s*)+")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Bounded repeats: a long argument fails after at most 64 + 255 steps, wherever it stops.
_MEMBER = re.compile(r"[^@\s<>]{1,64}(?:@[^@\s<>]{1,255})?")
_LIST_SEPARATOR = re.compile(r"[\s,]+")
_NAMES = re.compile(rf"{_NAME.pattern}(?:{_LIST_SEPARATOR.pattern}{_NAME.pattern})*,?")
MAX_REQUESTER = 512  # characters of a #requester argument: a name and an address fit
_MAX_ADDRESS = 254  # RFC 5321's limit on a path, brackets aside


def requester_address(argument: str) -> Address | None:
    """The mailbox `#requester` names (`ann@example.com`, `Ann Example <ann@example.com>`),
    read by core.addresses; None unless it is exactly one address and nothing else."""
    text = argument.strip()
    if not text or len(text) > MAX_REQUESTER:
        return None
    angled = "<" in text
    if (angled and not text.endswith(">")) or (not angled and len(text.split()) != 1):
        return None  # words after the address, or several words without one in <>
    found = parse_address_list(text)
    if found.defects or len(found.mailboxes) != 1:
        return None
    mailbox = found.mailboxes[0]
    if not mailbox.address or len(mailbox.address) > _MAX_ADDRESS:
        return None
    return Address(mailbox.name, mailbox.address)


def _one_address(argument: str) -> bool:
    return requester_address(argument) is not None


MAX_CC = 20  # addresses one #cc line may name


@dataclass(frozen=True, slots=True)
class CcChange:
    """What a `#cc` line asks: `add` or `remove` these addresses, or `none` (remove all)."""

    verb: str  # add | remove | none
    addresses: tuple[Address, ...]


def cc_change(argument: str) -> CcChange | None:
    """`add a@x, B <b@y>` | `remove a@x` | `none`, read by core.addresses; None unless it
    is one of these with 1..MAX_CC well-formed addresses (none with `none`)."""
    verb, _, rest = argument.strip().partition(" ")
    verb = verb.lower()
    if verb == "none":
        return CcChange("none", ()) if not rest.strip() else None
    if verb not in ("add", "remove") or not rest.strip() or len(rest) > MAX_CC * MAX_REQUESTER:
        return None
    found = parse_address_list(rest)
    mailboxes = found.mailboxes
    if found.defects or not 0 < len(mailboxes) <= MAX_CC:
        return None
    if any(not m.address or len(m.address) > _MAX_ADDRESS for m in mailboxes):
        return None
    return CcChange(verb, tuple(Address(m.name, m.address) for m in mailboxes))


def _cc_argument(argument: str) -> bool:
    return cc_change(argument) is not None


def _read_when_applied(argument: str) -> bool:
    """`#faq`'s argument is read when the reply is applied (core.faq_drafts): a mistake in
    it is reported to the staff member and never holds back the answer."""
    return True


_TICKET_NUMBER = re.compile(r"#?\d{1,12}")


def ticket_number_argument(argument: str) -> int | None:
    """The ticket `#merge` names: `1041` or `#1041`."""
    text = argument.strip()
    return int(text.lstrip("#")) if _TICKET_NUMBER.fullmatch(text) else None


_DURATION = re.compile(r"\d{1,4}[smhdw]")
# "until 12/01", "until 12 jan", "until 2027-01-12", "12/01", …: read by whoever acts on it.
_AWAY = re.compile(r"(?:until\s+)?[\w./ -]{1,40}")
_SEARCH = re.compile(r"[^\x00-\x1f]{1,200}")

_Validator = re.Pattern[str] | tuple[str, ...] | Callable[[str], bool] | None
# name -> (argument required? None: optional, validator of the argument, what is expected);
# a pattern or tuple checks the lower-cased argument, a function the argument as written.
_COMMANDS: dict[str, tuple[bool | None, _Validator, str]] = {
    "note": (False, None, ""),
    "close": (False, None, ""),
    "resolve": (False, None, ""),
    "priority": (True, PRIORITIES, "one of " + ", ".join(PRIORITIES)),
    "assign": (True, _MEMBER, "a staff address or name, or 'me'"),
    "queue": (True, _NAME, "a queue name"),
    "template": (True, _NAME, "a template name"),
    "tag": (True, _NAMES, "tag names, separated by spaces or commas"),
    "untag": (True, _NAMES, "tag names, separated by spaces or commas"),
    "requester": (
        True,
        _one_address,
        "one address, like someone@example.com or Ann Example <ann@example.com>",
    ),
    "cc": (
        True,
        _cc_argument,
        f"add ADDRESSES, remove ADDRESSES (at most {MAX_CC}, separated by commas) or none",
    ),
    "merge": (True, _TICKET_NUMBER, "the number of the ticket to merge this one into"),
    "split": (False, None, ""),
    "noack": (False, None, ""),
    "send": (False, None, ""),
    "drop": (False, None, ""),
    "pending": (None, _DURATION, "nothing, or how long to wait before a reminder, like 5d"),
    "away": (None, _AWAY, "nothing, or until when, like: until 12/01"),
    "digest": (True, ("on", "off"), "on or off"),
    "mine": (False, None, ""),
    "overdue": (False, None, ""),
    "unassigned": (False, None, ""),
    "waiting": (False, None, ""),
    "show": (True, _TICKET_NUMBER, "a ticket number, like 1042"),
    "search": (True, _SEARCH, "the words to look for"),
    "spam": (None, ("block",), "nothing, or block (to block the sender too)"),
    "notspam": (False, None, ""),
    "faq": (None, _read_when_applied, 'save "Title"'),
}


def tag_name(value: str) -> str:
    """A tag as `#tag` takes it (lower-cased); ValueError names what is expected."""
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise ValueError(f"a tag is letters, digits, '_', '.' or '-' (at most 64), not {value!r}")
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
    if required is False:
        return f"#{name} takes no argument" if argument else ""
    if not argument:
        if required is None:
            return ""
        return f"#{name} needs an argument: {expected}"
    value = argument.lower()
    if name == "assign" and value == "me":
        return ""
    if isinstance(valid, tuple):
        ok = value in valid
    elif isinstance(valid, re.Pattern):
        ok = bool(valid.fullmatch(value))
    else:
        ok = valid is not None and valid(argument)
    return "" if ok else f"expected {expected}, got {argument!r}"


def _normalise(name: str, argument: str) -> str:
    return (
        argument.lower()
        if name
        in ("priority", "assign", "queue", "template", "tag", "untag", "pending", "digest", "spam")
        else argument
    )


def argument_problems(
    message: StaffMessage, staff: Sequence[str], canned: Collection[str]
) -> list[str]:
    """What the configuration refuses: an `#assign` that names no one of the `staff`
    addresses, a `#template` that names none of the `canned` replies."""
    assignee = message.argument("assign")
    if assignee not in (None, "me") and staff_member(assignee, staff) is None:
        return [f"#assign {assignee}: not a staff member (known: {', '.join(staff) or 'none'})"]
    name = message.argument("template")
    if name is not None and name not in canned:
        known = sorted(canned)
        return [f"#template {name}: no such canned reply (known: {', '.join(known) or 'none'})"]
    return []


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
