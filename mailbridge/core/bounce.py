"""Reading bounces (delivery status notifications) and the return paths that match them.

A bounce names the recipients that failed, how (action, status, the remote server's words)
and, usually, the mail that failed: its headers ride along in a text/rfc822-headers or
message/rfc822 part. RFC 3464 reports are read field by field here; the many non-standard
formats (old Postfix, Exchange, qmail…) are left to flufl.bounce's detectors, which find
the failed addresses, while the status and diagnostic are picked from the text.

Each outgoing mail gets its own envelope sender (VERP): `support+b<outbox id>-<check>@…`.
A bounce comes back to exactly that address, so it names the outbox row without guessing.
The check is an HMAC of the row id keyed by the row's own Message-ID, whose random part
only the mail's recipients ever see: nobody else can forge a bounce for a row, and no
extra secret needs configuring.

Pure functions: bytes and strings in, plain data out; bad input never raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr
from itertools import accumulate

from flufl.bounce import all_failures

from mailbridge.core.message import ParseLimits
from mailbridge.core.mime_tree import read_tree

CHECK_LENGTH = 10
_RETURN_PATH = re.compile(r"(?P<base>.+)\+b(?P<id>\d{1,15})-(?P<check>[a-z2-7]{10,32})")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# The lookahead makes sure a ">" closes the id before any "@" in it is tried as the one.
_MESSAGE_ID_LINE = re.compile(
    r"^[ \t>]*Message-ID:[ \t]*<(?=[^<>\s]*+>)([^<>\s]+@[^<>\s]+)>", re.I | re.M
)
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")
_ORIGINAL_TYPES = ("message/rfc822", "message/global")
_MAX_DIAGNOSTIC = 500
_WORD = re.compile(rf"\S{{1,{_MAX_DIAGNOSTIC + 1}}}")  # a longer word is cut after the limit
# A report in no standard form naming more addresses than this is not about one mail of ours.
_MAX_HEURISTIC_RECIPIENTS = 100


@dataclass(frozen=True, slots=True)
class BouncedRecipient:
    """One recipient a report speaks of."""

    address: str  # the final recipient, lower-cased
    original: str | None  # Original-Recipient, the address the mail was sent to, if given
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # "5.1.1"; "" when the report gives none
    diagnostic: str  # the remote server's words; "" when none

    @property
    def failed(self) -> bool:
        """Not delivered: the reporting server has stopped trying."""
        return self.action == "failed"

    @property
    def permanent(self) -> bool:
        """Failed for a lasting reason: not a 4.x.x status such as a full mailbox that
        outlasted the retries, which may well work next time."""
        return self.failed and not self.status.startswith("4")

    def is_for(self, address: str) -> bool:
        address = address.lower()
        return address in (self.address, self.original)


@dataclass(frozen=True, slots=True)
class BounceReport:
    recipients: tuple[BouncedRecipient, ...]
    # Message-IDs (without brackets) that may be the bounced mail's, most reliable first:
    # from its attached headers, then any quoted in the text.
    original_message_ids: tuple[str, ...]
    reporting_mta: str
    standard: bool  # read from an RFC 3464 delivery-status part; False: by heuristics

    @property
    def failed(self) -> tuple[BouncedRecipient, ...]:
        return tuple(r for r in self.recipients if r.failed)


@dataclass(frozen=True, slots=True)
class ReturnPathToken:
    """An outbox row named by the address a bounce was sent to; not yet checked."""

    outbox_id: int
    check: str
    address: str


# --- return paths ----------------------------------------------------------------------


def return_path_check(outbox_id: int, key: str) -> str:
    digest = hmac.new(key.encode(), f"bounce:{outbox_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:CHECK_LENGTH]


def make_return_path(base_address: str, outbox_id: int, key: str) -> str:
    """`support@example.com` -> `support+b42-<check>@example.com`; key: the row's Message-ID."""
    local, _, domain = base_address.rpartition("@")
    return f"{local}+b{outbox_id}-{return_path_check(outbox_id, key)}@{domain}"


def find_return_path(recipients: Iterable[str]) -> ReturnPathToken | None:
    """The first address of the form `local+b<id>-<check>@domain`."""
    for recipient in recipients:
        address = parseaddr(recipient)[1].lower()
        local, at, _domain = address.rpartition("@")
        match = _RETURN_PATH.fullmatch(local) if at else None
        if match:
            return ReturnPathToken(int(match["id"]), match["check"], address)
    return None


def return_path_valid(token: ReturnPathToken, key: str) -> bool:
    return hmac.compare_digest(return_path_check(token.outbox_id, key), token.check)


# --- reading a bounce --------------------------------------------------------------------


def read_bounce(raw: bytes) -> BounceReport:
    """What a bounce says about which recipients failed, and which mail it was."""
    try:
        msg, _cut = read_tree(raw, ParseLimits())
        parts = list(msg.walk())
    except Exception:  # noqa: BLE001 - the email package on hostile input; report nothing
        return BounceReport((), (), "", standard=False)
    reporting_mta, recipients = "", []
    for part in parts:
        if part.get_content_type() in _DSN_TYPES:
            mta, found = _delivery_status(part)
            reporting_mta = reporting_mta or mta
            recipients.extend(found)
    text = _plain_text(parts)
    standard = bool(recipients)
    if not standard:
        recipients = _heuristic_recipients(msg, text)
    return BounceReport(
        recipients=tuple(recipients),
        original_message_ids=_original_ids(parts, text),
        reporting_mta=reporting_mta,
        standard=standard,
    )


def _delivery_status(part: Message) -> tuple[str, list[BouncedRecipient]]:
    blocks = _field_blocks(part)
    reporting = _field_value(blocks[0].get("reporting-mta", "")) if blocks else ""
    found = []
    for block in blocks:
        final = _address_field(block.get("final-recipient"))
        original = _address_field(block.get("original-recipient"))
        if not final and not original:
            continue
        action = _unfold(block.get("action", "")).lower().split(" ")[0].rstrip(";")
        status = _STATUS.search(_unfold(block.get("status", "")))
        diagnostic = _field_value(block.get("diagnostic-code", ""))
        found.append(
            BouncedRecipient(
                address=final or original or "",
                original=original,
                action="failed" if action in ("failed", "error") else action,
                status=status.group(0) if status else "",
                diagnostic=diagnostic[:_MAX_DIAGNOSTIC],
            )
        )
    return reporting, found


def _field_blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part (per message, then per recipient)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser().parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _unfold(value: object) -> str:
    return " ".join(str(value or "").split())


def _field_value(value: object) -> str:
    """`smtp; 550 5.1.1 no such user` -> `550 5.1.1 no such user`."""
    text = _unfold(value)
    kind, semicolon, rest = text.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else text


def _address_field(value: object) -> str | None:
    """`rfc822; ada@example.com` (or `<ada@…>`) -> `ada@example.com`."""
    text = _field_value(value).strip().strip("<>").lower()
    return text if "@" in text and " " not in text else None


def _plain_text(parts: list[Message]) -> str:
    """The text/plain parts written by the reporting server, not the bounced mail's."""
    texts = []
    skip: set[int] = set()
    for part in parts:
        if id(part) in skip:
            continue
        if part.get_content_type() in _ORIGINAL_TYPES:
            skip.update(id(inner) for inner in part.walk())
        elif part.get_content_type() == "text/plain" and not part.is_multipart():
            texts.append(_decoded(part))
    return "\n".join(texts)


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return str(part.get_payload())
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown, or a name codecs refuses (a NUL in it)
        return data.decode("utf-8", "replace")


def _heuristic_recipients(msg: Message, text: str) -> list[BouncedRecipient]:
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector tripping over odd mail means "none found"
        return []
    named = [("failed", address) for address in sorted(permanent)]
    named += [("delayed", address) for address in sorted(temporary - permanent)]
    report = _ReportText(text)
    found = []
    for action, raw_address in named[:_MAX_HEURISTIC_RECIPIENTS]:
        address = raw_address.decode("ascii", "replace").strip("<>").lower()
        status, diagnostic = report.about(address)
        found.append(BouncedRecipient(address, None, action, status, diagnostic))
    return found


class _ReportText:
    """A report's text, indexed once: what it says about each address then costs no pass
    over all of it (a report naming thousands of addresses was quadratic)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        lowered = [line.lower() for line in self.lines]
        self.lowered = "\n".join(lowered)
        self.offsets = list(accumulate((len(line) + 1 for line in lowered), initial=0))
        count = len(self.lines)
        # For each line: where the indented lines from it end, and the first line at or
        # after it with a status code.
        self.block_end = [count] * (count + 1)
        self.status_at = [count] * (count + 1)
        for index in range(count - 1, -1, -1):
            line = self.lines[index]
            indented = bool(line.strip()) and line[:1].isspace()
            self.block_end[index] = self.block_end[index + 1] if indented else index
            self.status_at[index] = index if _STATUS.search(line) else self.status_at[index + 1]
        first_status = _STATUS.search(text)
        self.first_status = first_status.group(0) if first_status else ""

    def about(self, address: str) -> tuple[str, str]:
        """(status, diagnostic) from the first line naming address and the indented lines
        after it, where servers put the reason (`<ada@…>: host … said: 550 5.1.1 …`); the
        report's first status when they have none."""
        found = self.lowered.find(address) if self.lines and "\n" not in address else -1
        if found < 0:
            return self.first_status, ""
        start = bisect_right(self.offsets, found) - 1
        end = self.block_end[start + 1]
        status = self.first_status
        if self.status_at[start] < end:
            match = _STATUS.search(self.lines[self.status_at[start]])
            status = match.group(0) if match else status
        return status, self._words(start, end)

    def _words(self, start: int, end: int) -> str:
        """The first _MAX_DIAGNOSTIC characters of lines start..end, spaces collapsed."""
        words: list[str] = []
        size = -1  # of " ".join(words)
        for index in range(start, end):
            for word in _WORD.finditer(self.lines[index]):
                words.append(word.group())
                size += len(words[-1]) + 1
                if size >= _MAX_DIAGNOSTIC:
                    return " ".join(words)[:_MAX_DIAGNOSTIC]
        return " ".join(words)


def _original_ids(parts: list[Message], text: str) -> tuple[str, ...]:
    found = list(_attached_ids(parts))
    found += [m.group(1) for m in _MESSAGE_ID_LINE.finditer(text)]
    return tuple(dict.fromkeys(found))


def _attached_ids(parts: list[Message]) -> Iterator[str]:
    for part in parts:
        content_type = part.get_content_type()
        headers: Message | None = None
        if content_type in _HEADER_TYPES:
            headers = HeaderParser().parsestr(_decoded(part))
        elif content_type in _ORIGINAL_TYPES:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                headers = inner[0]
        if headers is not None:
            value = _unfold(headers.get("message-id", "")).strip()
            if value.startswith("<") and value.endswith(">") and "@" in value:
                yield value[1:-1]
