"""Plain data passed between the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    address: str  # lower-cased addr-spec, "" when the header held none


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int
    inline: bool
    content_id: str | None = None
    payload: bytes = field(default=b"", repr=False, compare=False)


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

    def header(self, name: str) -> str | None:
        """The first value of a header, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What classify decided, and which named rules made it so."""

    kind: str  # customer | auto_reply | bulk | bounce | loop
    rules: tuple[str, ...] = ()

    @property
    def automated(self) -> bool:
        return self.kind != "customer"
