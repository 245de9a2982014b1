"""The schema, as typed SQLAlchemy models. Alembic in migrations/ owns its history.

Times are stored in UTC (`UTCDateTime`); the calendar's time zone is applied only when a
deadline is computed or shown.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, TypedDict

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from mailbridge.core.message import Attachment
from mailbridge.core.states import (
    AuthorKind,
    InboundState,
    OutboxKind,
    OutboxState,
    RecipientState,
    TicketStatus,
)
from mailbridge.db.types import (
    ClippedString,
    DigestString,
    StateString,
    StorableJSON,
    StorableText,
    bound_in_memory,
)

# Longer than any subject a mail client writes (a header line's limit), and short enough
# for every list, template and outgoing header that shows it.
SUBJECT_CHARS = 998

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps no offset; storing naive UTC keeps string order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class MailboxState(Base):
    """Where fetching stopped, per configured mailbox and folder."""

    __tablename__ = "mailbox_state"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class InboundMessage(Base):
    """The raw bytes of every fetched message, stored before the server copy is touched."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        # Fingerprint first: it also serves the cross-mailbox duplicate look-up.
        UniqueConstraint("fingerprint", "mailbox"),
        UniqueConstraint("mailbox", "folder", "uidvalidity", "uid"),
        Index("ix_inbound_message_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(DigestString(998), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # Set when the raw bytes are a file of the files store (db/blobs.py), raw then empty;
    # indexed for the question "does any row still name this file?".
    raw_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]  # when we stored it
    arrived_at: Mapped[datetime | None]  # the server's INTERNALDATE: when it reached the mailbox
    # Found already waiting at the first connection to the mailbox.
    backlog: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    state: Mapped[InboundState] = mapped_column(
        StateString(InboundState, 16), default=InboundState.NEW
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(StorableText())
    processed_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    # Why processing settled it as it did, when that needs saying: the rule or automated
    # kind an ignored mail was ignored for (`ignored list`).
    reason: Mapped[str | None] = mapped_column(ClippedString(255))
    # When a person released it from `ignored` (`mailbridge ignored release`): processing
    # makes it a ticket whatever the rules or the spam lists say (inbound/spam.py).
    released_at: Mapped[datetime | None]


class Ticket(Base):
    __tablename__ = "ticket"
    __table_args__ = (
        # The report's range scans: the tickets of a period, and those still unresolved at
        # a moment (resolved_at NULL or later), the latter without reading the rows.
        Index("ix_ticket_created_at", "created_at"),
        Index("ix_ticket_resolved_at_created_at_status", "resolved_at", "created_at", "status"),
        # The spam purge walks spam by when it was marked (tickets/spam_purge.py): one
        # range scan, in keyset order, however many tickets there are.
        Index("ix_ticket_spam_at_id", "spam_at", "id"),
        # /metrics, from the indexes alone: the tickets in play by status and queue, and
        # those still waiting for a first answer (not the answered ones, which pile up).
        Index("ix_ticket_status_queue", "status", "queue"),
        Index(
            "ix_ticket_unanswered",
            "first_responded_at",
            "first_response_due_at",
            "status",
            "created_at",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    subject: Mapped[str] = mapped_column(StorableText(SUBJECT_CHARS))
    requester_name: Mapped[str] = mapped_column(ClippedString(255), default="")
    requester_address: Mapped[str] = mapped_column(DigestString(320), index=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    status: Mapped[TicketStatus] = mapped_column(
        StateString(TicketStatus, 16), default=TicketStatus.NEW
    )
    language: Mapped[str | None] = mapped_column(String(8))
    assignee: Mapped[str | None] = mapped_column(DigestString(320))
    sla_policy: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_due_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # The next moment the sweep must look at this ticket; NULL when nothing is pending, so
    # the sweep is one range scan whose cost does not grow with closed tickets.
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    # The resolution clock stops while the ticket waits on the customer: since when it is
    # waiting, and how long it has waited before (seconds on the policy's clock).
    waiting_since: Mapped[datetime | None]
    resolution_paused_seconds: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    # The waiting cycle (core/waiting.py): when the latest staff answer or #pending left
    # the ticket waiting on the customer, the #pending duration that replaces
    # tickets.remind_after (seconds), and when this cycle's reminder went.
    pending_since: Mapped[datetime | None]
    pending_remind_seconds: Mapped[int | None] = mapped_column(Integer)
    reminded_at: Mapped[datetime | None]
    # Set when the ticket was merged (status "merged"): the ticket its mail now goes to.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    merged_at: Mapped[datetime | None]
    # When the ticket became spam (status "spam"): [spam] purge_after counts from here.
    spam_at: Mapped[datetime | None]
    # When its content was erased (tickets/erasure.py): a customer's erasure, or retention's
    # erase_content_after. The record stays; retention erases again only what came later.
    content_erased_at: Mapped[datetime | None]

    articles: Mapped[list[Article]] = relationship(
        back_populates="ticket", order_by="Article.id", lazy="raise_on_sql"
    )


class TicketTag(Base):
    """A label on a ticket, set by a routing rule or a staff #tag; one row per ticket and
    tag."""

    __tablename__ = "ticket_tag"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    added_at: Mapped[datetime]


class TicketParticipant(Base):
    """Someone besides the requester who is in the conversation: copied on the customer's
    mail, or added by staff (`#cc add`, `tickets cc`). Staff answers go to them in Cc.

    A removed participant keeps the row with `removed_at` set, so that a later customer
    mail that still copies them does not bring them back; only staff add them again.
    """

    __tablename__ = "ticket_participant"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), primary_key=True)
    address: Mapped[str] = mapped_column(DigestString(320), primary_key=True, index=True)
    name: Mapped[str] = mapped_column(ClippedString(255), default="")
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(ClippedString(320))  # an address, or "command line"
    removed_at: Mapped[datetime | None]


class Article(Base):
    """One message on a ticket, in or out."""

    __tablename__ = "article"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    author_kind: Mapped[AuthorKind] = mapped_column(StateString(AuthorKind, 16))
    kind: Mapped[str] = mapped_column(String(16), default="customer")  # classify's verdict
    from_name: Mapped[str] = mapped_column(ClippedString(255), default="")
    from_address: Mapped[str] = mapped_column(DigestString(320), default="")
    to: Mapped[list[str]] = mapped_column(StorableJSON, default=list)
    cc: Mapped[list[str]] = mapped_column(StorableJSON, default=list)
    message_id: Mapped[str | None] = mapped_column(DigestString(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(DigestString(998))
    subject: Mapped[str] = mapped_column(StorableText(SUBJECT_CHARS), default="")
    text_body: Mapped[str] = mapped_column(StorableText(), default="")
    html_body: Mapped[str | None] = mapped_column(StorableText())
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    defects: Mapped[list[str]] = mapped_column(StorableJSON, default=list)
    created_at: Mapped[datetime]
    inbound_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_message.id"), index=True
    )

    ticket: Mapped[Ticket] = relationship(back_populates="articles", lazy="raise_on_sql")


class AttachmentRecord(Base):
    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("article.id"), index=True)
    filename: Mapped[str | None] = mapped_column(ClippedString(255, tail=16))
    content_type: Mapped[str] = mapped_column(ClippedString(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(DigestString(998))
    # Where the bytes are: db (in `data`), file (the files store, by sha256), or none of
    # them: skipped (by the parser), purged (retention), erased.
    storage: Mapped[str] = mapped_column(String(16), default="db")
    data: Mapped[bytes | None] = mapped_column(LargeBinary)

    @classmethod
    def of(cls, article_id: int, attachment: Attachment) -> AttachmentRecord:
        """The record of one attachment of a mail; one the parser skipped (too large, too
        many) keeps its name, type, size and digest, and no bytes."""
        skipped = bool(attachment.skipped_reason)
        return cls(
            article_id=article_id,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=hashlib.sha256(attachment.payload).hexdigest(),
            inline=attachment.inline,
            content_id=attachment.content_id,
            storage="skipped" if skipped else "db",
            data=None if skipped else attachment.payload,
        )


class RecipientResult(TypedDict):
    """What became of one envelope recipient of an outbox row, as stored in its JSON."""

    address: str
    state: RecipientState
    code: int | None  # the SMTP reply code of a refusal; None when accepted or not tried
    reply: str  # the server's answer (or why retrying stopped); "" before any


class Outbox(Base):
    """Every mail mailbridge sends, and every webhook delivery (kind `webhook`), written in
    the transaction that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
        # The report's acknowledgements of a period, read from the index alone (the rows
        # carry the raw mail).
        Index(
            "ix_outbox_kind_created_at_ticket_id_sent_at",
            "kind",
            "created_at",
            "ticket_id",
            "sent_at",
        ),
        # /metrics: how long the oldest mail still to send has waited, from the index.
        Index("ix_outbox_state_created_at", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    # Indexed for the spam purge, which deletes a ticket's articles and so the mail that
    # points at them, one batch at a time.
    article_id: Mapped[int | None] = mapped_column(ForeignKey("article.id"), index=True)
    kind: Mapped[OutboxKind] = mapped_column(String(16))
    envelope_from: Mapped[str] = mapped_column(String(320))
    envelope_to: Mapped[list[str]] = mapped_column(StorableJSON)
    message_id: Mapped[str] = mapped_column(DigestString(998), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[OutboxState] = mapped_column(
        StateString(OutboxState, 16), default=OutboxState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(StorableText())
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # What became of each envelope recipient; NULL until the first attempt.
    recipients: Mapped[list[RecipientResult] | None] = mapped_column(StorableJSON)
    # A mail rendered when it is sent (outbound/render.py): its template, language,
    # mailbox, values and headers; `raw` is empty until then. NULL: `raw` is the mail.
    recipe: Mapped[dict[str, Any] | None] = mapped_column(StorableJSON(none_as_null=True))


class Acknowledgement(Base):
    """Every acknowledgement the rate limits count: queued (`withheld_by` ""), or withheld
    by the limit it names (address | domain | mailbox). Each limit's count, and the look-up
    that logs a limit once an hour, is one range scan of its own index."""

    __tablename__ = "acknowledgement"
    __table_args__ = (
        Index("ix_acknowledgement_address_withheld_by_at", "address", "withheld_by", "at"),
        Index("ix_acknowledgement_domain_withheld_by_at", "domain", "withheld_by", "at"),
        Index("ix_acknowledgement_mailbox_withheld_by_at", "mailbox", "withheld_by", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed for the spam purge, which deletes a spam ticket's rows by it.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))
    withheld_by: Mapped[str] = mapped_column(String(16), default="")
    at: Mapped[datetime]


class Escalation(Base):
    """One fired escalation level; the unique key makes each fire at most once."""

    __tablename__ = "escalation"
    __table_args__ = (
        UniqueConstraint("ticket_id", "deadline", "level"),
        Index("ix_escalation_fired_at_ticket_id_level", "fired_at", "ticket_id", "level"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id"))
    policy: Mapped[str] = mapped_column(String(64))
    deadline: Mapped[str] = mapped_column(String(32))  # first_response | resolution
    # 1, 2, … escalation levels; -1, -2, … warnings before the deadline (core.sla.Step)
    level: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime]


class Event(Base):
    """The audit trail: every state change of a ticket, with why."""

    __tablename__ = "event"
    # The report's events of one type since a moment (reopens, ratings, FAQ answers).
    __table_args__ = (Index("ix_event_type_at_ticket_id", "type", "at", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"), index=True)
    at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(StorableJSON, default=dict)


class AddressState(Base):
    """What we know about a correspondent's address: bouncing since when, and why.

    A permanent bounce sets bouncing_since; mail written from the address clears it.
    """

    __tablename__ = "address_state"

    address: Mapped[str] = mapped_column(DigestString(320), primary_key=True)
    bouncing_since: Mapped[datetime | None]
    last_bounce_at: Mapped[datetime | None]
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[str | None] = mapped_column(ClippedString(32))  # e.g. "5.1.1"
    last_diagnostic: Mapped[str | None] = mapped_column(StorableText())
    # Indexed so that deleting outbox rows (the spam purge) need not read the whole table
    # for each: PostgreSQL checks this key on every delete.
    last_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
    cleared_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class StaffState(Base):
    """What mailbridge knows of one staff address (or the team address) beyond the
    configuration: away from when until when, and how that was learnt (their auto-reply,
    their `#away`, the command line); whether they get the daily digest, and the day the
    last one was sent (so each day's is sent once, whichever instance sends it).
    """

    __tablename__ = "staff_state"

    address: Mapped[str] = mapped_column(DigestString(320), primary_key=True)
    away_since: Mapped[datetime | None]
    away_until: Mapped[datetime | None]
    away_source: Mapped[str | None] = mapped_column(String(16))  # auto_reply | mail | command line
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    digest_sent_on: Mapped[str | None] = mapped_column(String(10))  # ISO date, local calendar
    updated_at: Mapped[datetime]


class WeeklyReport(Base):
    """Each weekly report by mail that was queued (reports/weekly.py), keyed by the week it
    reports: written in the transaction that queues the mail, so that each week's goes once
    whichever instance sends it."""

    __tablename__ = "weekly_report"

    week: Mapped[str] = mapped_column(String(10), primary_key=True)  # its Monday, YYYY-MM-DD
    queued_at: Mapped[datetime]
    # No foreign key: the outbox row may be purged long before this row goes.
    outbox_id: Mapped[int | None] = mapped_column(Integer)


class SenderRule(Base):
    """An address or domain pattern blocked or allowed by `mailbridge spam block|allow`
    or a staff `#spam block`, next to the configuration's [spam] block and allow lists
    (core/spam.py decides which holds)."""

    __tablename__ = "sender_rule"

    pattern: Mapped[str] = mapped_column(DigestString(320), primary_key=True)  # lower-case
    kind: Mapped[str] = mapped_column(String(8))  # block | allow
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(DigestString(320))  # a staff address or "command line"
    note: Mapped[str | None] = mapped_column(ClippedString(255))


class Instance(Base):
    """A running `mailbridge run`: who it is, and when it last showed a sign of life.

    The id is "host:pid:token"; the row goes when the process stops cleanly.
    """

    __tablename__ = "instance"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class MailboxLease(Base):
    """Which instance polls a watched folder (named by its source name), and until when.

    The owner column is the truth: a lease past expires_at, or one whose owner stopped
    showing signs of life, may be taken by another instance; until then only the owner
    may store what it fetches from that folder.
    """

    __tablename__ = "mailbox_lease"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(100))  # an instance id; NULL: free
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Tally(Base):
    """Counters /metrics reads, written as things happen (db/tally.py, core/tallies.py):
    a row per count, in the transaction that did the thing, until the rows of one counter
    and label set are folded into one. Nothing else deletes a row, so no counter goes
    back, whatever is purged."""

    __tablename__ = "tally"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # The label set as JSON, [["mailbox", "support"], …] sorted by name: values the
    # configuration names (core.tallies.bounded). Unbounded in length, so that no name in
    # a configuration can make counting, and with it the step that counts, fail.
    labels: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Float)


# Every mail-derived value above is bounded by its column type (db.types); the objects
# hold the bounded value too.
bound_in_memory(Base)
