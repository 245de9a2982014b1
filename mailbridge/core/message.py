"""Plain data passed between the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    # Lower-cased addr-spec, "" when the header held none. Only a sender may be
    # domain-less, and only a mailer daemon's ("mailer-daemon", core.sender).
    address: str

    def __post_init__(self) -> None:
        # An internationalised address (RFC 6532: josé@exämple.de) arrives as raw UTF-8 in
        # the header, which the email package keeps as surrogate escapes: text from here on.
        if not self.address.isascii() and _has_raw_bytes(self.address):
            object.__setattr__(self, "address", _utf8(self.address).lower())


def _has_raw_bytes(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _utf8(value: str) -> str:
    """Surrogate-escaped bytes decoded as UTF-8; bytes that are not UTF-8 become U+FFFD,
    which no valid address contains."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Limits on what parse_message reads and keeps.

    Sizes are decoded bytes for attachments and raw bytes for the whole message; None
    means unlimited. Counts always apply: what lies beyond them is not read (the raw
    message keeps it) and a defect says what was cut. Real mail stays far below them.
    """

    max_attachment_bytes: int | None = None
    max_message_bytes: int | None = None
    max_parts: int = 1000  # MIME parts below the message
    max_depth: int = 50  # levels of multipart and attached messages
    max_tnef_attributes: int = 2000  # in a winmail.dat, with the messages embedded in it
    max_tnef_attachments: int = 250
    max_tnef_properties: int = 20_000  # MAPI property values
    max_tnef_depth: int = 4  # messages embedded in messages in a winmail.dat


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment. A part over a size limit is still listed, with its true decoded
    size, an empty payload and `skipped_reason` saying why: the ticket gets a note for
    each such part instead of losing it silently.

    Every attachment parse_message returns has a name (core.attachment_names): the one
    its part gives, else one built from its type, never "".
    """

    filename: str
    content_type: str
    size: int
    inline: bool
    content_id: str | None = None
    payload: bytes = field(default=b"", repr=False, compare=False)
    skipped_reason: str | None = None
    # Filename of the attachment this one was unpacked from (a forwarded .eml or a
    # winmail.dat), or None for a part of the message itself.
    container: str | None = None

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What parse_message makes of one raw email. Never partial: defects say what was odd."""

    message_id: str | None  # without angle brackets
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    date: datetime | None  # aware
    in_reply_to: str | None  # without angle brackets
    references: tuple[str, ...]  # without angle brackets, oldest first
    text: str
    reply_text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    language: str | None
    defects: tuple[str, ...]
    # Lower-cased header name -> decoded values, for classification rules and the record.
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    # The lower-cased names of the header fields read, top to bottom (at most parse's
    # MAX_HEADER_FIELDS): the n-th "received" here is headers["received"][n], when kept.
    # Trust needs it: a filter's verdict counts only above our own MTA's Received line.
    header_order: tuple[str, ...] = field(default=(), compare=False)
    # What of the message was not read (parts past a cap, attachments past the size limit),
    # also in `defects`; staff are told, since the raw mail is the only whole copy.
    unread: tuple[str, ...] = ()
    # Where `from_` came from: "from", else "sender", "reply-to" or "return-path" when From
    # named no address (core.sender); "" when no header named one.
    sender_header: str = ""

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What classify decided, and which named rules made it so."""

    kind: str  # customer | auto_reply | bulk | bounce | loop
    rules: tuple[str, ...] = ()
    # Rules that keep a customer's mail a customer's (ticket, deadlines, staff told) but
    # withhold the acknowledgement; empty for automated mail, which gets none anyway.
    ack_withheld_by: tuple[str, ...] = ()

    @property
    def automated(self) -> bool:
        return self.kind != "customer"

    @property
    def acknowledgeable(self) -> bool:
        return not self.automated and not self.ack_withheld_by
