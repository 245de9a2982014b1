"""Named queries. No policy here: each answers one question the pipeline asks.

The look-ups made for every processed message are built once, here, with bound
parameters: building and caching a statement costs more than running it. The rows written
for every message go in through `insert_now`, `update_now` and `insert_event`: one Core
statement each instead of the unit of work, whose bookkeeping costs several times the
statement. The objects stay in the session, and a rolled-back savepoint takes them along
as it does for flushed ones.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Column,
    CompoundSelect,
    Connection,
    Insert,
    Table,
    Update,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import (
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    make_transient_to_detached,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import BindParameter

from mailbridge.core.ack_policy import domain_of
from mailbridge.core.states import INACTIVE_STATUSES, AuthorKind
from mailbridge.db.models import (
    Acknowledgement,
    Article,
    Base,
    Escalation,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
    TicketParticipant,
    TicketTag,
)
from mailbridge.db.types import DigestString

# A mail may name more Message-IDs than a statement takes parameters (psycopg sends at
# most 65,535, SQLite takes 32,766): they are looked up this many at a time.
IDS_PER_STATEMENT = 1000

# Ids we received, then ids we sent, in one statement: 0 marks a received one.
_KNOWN_IDS: CompoundSelect[int, str, int] = union_all(
    select(literal(0).label("sent"), Article.message_id, Article.ticket_id).where(
        Article.message_id.in_(bindparam("ids", expanding=True))
    ),
    select(literal(1).label("sent"), Outbox.message_id, Outbox.ticket_id).where(
        Outbox.message_id.in_(bindparam("ids", expanding=True)), Outbox.ticket_id.is_not(None)
    ),
)
_TICKET_BY_NUMBER = select(Ticket).where(Ticket.number == bindparam("number"))
_PARTICIPANTS = (
    select(Article.from_address)
    .where(
        Article.ticket_id == bindparam("ticket_id"),
        Article.direction == "in",
        Article.author_kind != AuthorKind.UNVERIFIED,
    )
    .union_all(
        select(TicketParticipant.address).where(
            TicketParticipant.ticket_id == bindparam("ticket_id"),
            TicketParticipant.removed_at.is_(None),
        )
    )
)


ACK_LIMIT_KEYS = {
    "address": Acknowledgement.address,
    "domain": Acknowledgement.domain,
    "mailbox": Acknowledgement.mailbox,
}
_INSERT_EVENT = insert(Event)


def ticket_ids_for_message_ids(session: Session, message_ids: Sequence[str]) -> dict[str, int]:
    """Message-ID -> ticket id, for ids we received or sent. The ids are looked up in the
    form their columns store (an over-long one as its digest form) and answered as asked."""
    asked: dict[str, list[str]] = {}
    for message_id in message_ids:
        asked.setdefault(_stored_message_id(message_id), []).append(message_id)
    stored = list(asked)
    found: dict[str, int] = {}
    connection = _flushed(session)
    for start in range(0, len(stored), IDS_PER_STATEMENT):
        ids = {"ids": stored[start : start + IDS_PER_STATEMENT]}
        sent: dict[str, int] = {}
        for was_sent, message_id, ticket_id in connection.execute(_KNOWN_IDS, ids):
            for original in asked.get(message_id or "", ()):
                if was_sent:
                    sent.setdefault(original, ticket_id)
                else:
                    found[original] = ticket_id
        for original, ticket_id in sent.items():
            found.setdefault(original, ticket_id)
    return found


def _stored_message_id(message_id: str) -> str:
    """How article.message_id and outbox.message_id (one type) store this id."""
    return cast(DigestString, Article.__table__.c.message_id.type).bound(message_id) or ""


def delivered_twin(session: Session, inbound: InboundMessage) -> InboundMessage | None:
    """The same mail, already made part of a ticket through another of our mailboxes."""
    query = (
        select(InboundMessage)
        .where(
            InboundMessage.fingerprint == inbound.fingerprint,
            InboundMessage.id != inbound.id,
            InboundMessage.ticket_id.is_not(None),
        )
        .order_by(InboundMessage.id)
        .limit(1)
    )
    return session.scalars(query).one_or_none()


# ticket.number is a 32-bit INTEGER; a larger number (a 12-digit tag or `#merge`) names no
# ticket, and PostgreSQL would refuse to compare with it.
MAX_TICKET_NUMBER = 2**31 - 1


def ticket_by_number(session: Session, number: int) -> Ticket | None:
    if not 0 <= number <= MAX_TICKET_NUMBER:
        return None
    return session.scalars(_TICKET_BY_NUMBER, {"number": number}).one_or_none()


def participants(session: Session, ticket: Ticket) -> frozenset[str]:
    """Everyone who wrote on the ticket, its requester and its active participants
    (tickets/participants.py); not those whose mail joined it unverified (an
    unverified_sender event), however often they write."""
    found = session.scalars(_PARTICIPANTS, {"ticket_id": ticket.id})
    return frozenset({ticket.requester_address, *found})


def acknowledgements_since(
    session: Session, limit: str, key: str, since: datetime, *, withheld_by: str = ""
) -> int:
    """Acknowledgements queued (or, with `withheld_by`, withheld by that limit) since a
    time, for one address, domain or mailbox (`limit` says which `key` is)."""
    return acknowledgements_since_each(session, [(limit, key)], since, withheld_by=withheld_by)[0]


def acknowledgements_since_each(
    session: Session,
    keys: Sequence[tuple[str, str]],
    since: datetime,
    *,
    withheld_by: str = "",
) -> list[int]:
    """`acknowledgements_since` for each (limit, key), in one statement: each count is a
    range scan of its own key's index, asked together. Inside `ledger_known`, a key's rows
    are read once and counted in memory after that."""
    if not keys:
        return []
    known: tuple[datetime, dict[tuple[str, str, str], list[datetime]]] | None = session.info.get(
        _LEDGER
    )
    if known is not None and since >= known[0]:
        return _counted(session, keys, since, withheld_by, *known)
    counts = [
        select(func.count(Acknowledgement.id))
        .where(
            ACK_LIMIT_KEYS[limit] == key,
            Acknowledgement.withheld_by == withheld_by,
            Acknowledgement.at >= since,
        )
        .scalar_subquery()
        for limit, key in keys
    ]
    return [int(n or 0) for n in _flushed(session).execute(select(*counts)).one()]


_LEDGER = "mailbridge.ack_ledger"  # session.info: (since, the `at` of each key's rows)


@contextmanager
def ledger_known(
    session: Session, since: datetime, addresses: Iterable[str] = ()
) -> Iterator[None]:
    """Inside, the acknowledgement ledger's rows of a key since `since` are read the first
    time the key is counted and kept, with the rows written meanwhile: a batch asks for
    its mailbox's hourly count once, not once per message, and every count stays exact
    for any later moment (the limits' keys are locked for the batch, db/turn.py). The
    rows of `addresses` (the batch's senders) and of their domains are read at once, in
    one statement, where each new sender's count would cost one of its own."""
    if _LEDGER in session.info:
        yield
        return
    rows: dict[tuple[str, str, str], list[datetime]] = {}
    session.info[_LEDGER] = (since, rows)
    try:
        _read_senders(session, since, addresses, rows)
        yield
    finally:
        session.info.pop(_LEDGER, None)


_IN_CHUNK = 500  # values in one IN list (SQLite's limit on host parameters is far above)


def _read_senders(
    session: Session,
    since: datetime,
    addresses: Iterable[str],
    rows: dict[tuple[str, str, str], list[datetime]],
) -> None:
    """The rows since `since` of each address's `address` and `domain` limits, into
    `rows`: as many as the hourly limits let be written, the mailbox's bounding all."""
    wanted = list(dict.fromkeys(addresses))
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        keys = [("address", a) for a in chunk] + [("domain", d) for d in map(domain_of, chunk)]
        _read_ledger(session, keys, "", since, rows)


def _read_ledger(
    session: Session,
    keys: Sequence[tuple[str, str]],
    withheld_by: str,
    since: datetime,
    rows: dict[tuple[str, str, str], list[datetime]],
) -> None:
    """The `at` of each (limit, key)'s rows since `since`, sorted, into `rows`: one
    statement, one IN list per limit."""
    by_limit: dict[str, list[str]] = {}
    for limit, key in dict.fromkeys(keys):
        by_limit.setdefault(limit, []).append(key)
    found: dict[tuple[str, str], list[datetime]] = {k: [] for k in dict.fromkeys(keys)}
    read = union_all(
        *(
            select(literal(limit), ACK_LIMIT_KEYS[limit], Acknowledgement.at).where(
                ACK_LIMIT_KEYS[limit].in_(values),
                Acknowledgement.withheld_by == withheld_by,
                Acknowledgement.at >= since,
            )
            for limit, values in by_limit.items()
        )
    )
    for limit, key, at in _flushed(session).execute(read):
        found[limit, key].append(at)
    for (limit, key), times in found.items():
        rows[limit, key, withheld_by] = sorted(times)


def _counted(
    session: Session,
    keys: Sequence[tuple[str, str]],
    since: datetime,
    withheld_by: str,
    start: datetime,
    rows: dict[tuple[str, str, str], list[datetime]],
) -> list[int]:
    missing = [k for k in keys if (*k, withheld_by) not in rows]
    if missing:
        _read_ledger(session, missing, withheld_by, start, rows)
    return [
        len(times) - bisect_left(times, since)
        for times in (rows[limit, key, withheld_by] for limit, key in keys)
    ]


def record_acknowledgement(
    session: Session,
    ticket: Ticket,
    address: str,
    domain: str,
    now: datetime,
    withheld_by: str = "",
) -> None:
    """One row in the ledger the limits count: queued, or withheld by a limit."""
    known = session.info.get(_LEDGER)
    if known is not None:
        for limit, key in (("address", address), ("domain", domain), ("mailbox", ticket.mailbox)):
            times = known[1].get((limit, key, withheld_by))
            if times is not None:
                insort(times, now)
    _flushed(session).execute(
        insert(Acknowledgement),
        {
            "ticket_id": ticket.id,
            "mailbox": ticket.mailbox,
            "address": address,
            "domain": domain,
            "withheld_by": withheld_by,
            "at": now,
        },
    )


def _flushed(session: Session) -> Connection:
    """The session's connection, with what the session holds written (autoflush, as an
    ORM query does): a Core statement on it sees what an ORM query would, without the
    ORM's cost per execution."""
    if session.autoflush:
        session.flush()
    return session.connection()


_Row = TypeVar("_Row", bound=Base)


def insert_now(session: Session, row: _Row) -> _Row:
    """INSERT a new object at once and keep it in the session as a persistent object, as a
    flush would (its id set, later changes tracked). Objects added (or deleted) before it
    are flushed first, so rows are written in the order they were made; changes to rows
    already there wait for the next flush, where the unit of work writes them together
    (a sweep's thousand ticket UPDATEs in one batch)."""
    if session.new or session.deleted:
        session.flush()
    statement, columns = _insert_for(inspect(row).mapper)
    given = row.__dict__
    result = session.connection().execute(
        statement, {column.key: given[key] for key, column in columns if key in given}
    )
    written, new_key = result.last_inserted_params(), result.inserted_primary_key
    assert isinstance(written, dict) and new_key is not None  # one row, one key
    for key, column in columns:
        if key in given:
            continue
        if column.key in written:  # a default filled in
            setattr(row, key, written[column.key])
        elif column.primary_key:
            setattr(row, key, new_key[0])
        elif column.server_default is None:
            setattr(row, key, None)  # written as NULL
        # else: left unloaded, read from the database when first used
    make_transient_to_detached(row)  # what it holds now is what the row holds
    session.add(row)
    _remember(session, row, inserted=True)
    return row


def insert_ticket(session: Session, ticket: Ticket, number_start: int) -> Ticket:
    """INSERT a new ticket and give it its number, `number_start` + id - 1: ids only grow,
    so numbers are unique and in the order tickets were opened (by mail or by a split)."""
    insert_now(session, ticket)
    update_now(session, ticket, number=number_start + ticket.id - 1)
    return ticket


def update_now(session: Session, row: Base, **values: Any) -> None:
    """UPDATE attributes (named as mapped, each a column) of a persistent object at once,
    without the unit of work; the object holds the new values as its committed state."""
    state = inspect(row)
    assert state.identity is not None, "update_now needs a persistent object"
    statement, columns = _update_for(state.mapper, tuple(values))
    params = {f"new_{column}": values[name] for name, column in columns}
    session.connection().execute(statement, {**params, "identity": state.identity[0]})
    for name, value in values.items():
        set_committed_value(row, name, value)
    _remember(session, row, inserted=False)


@cache
def _insert_for(mapper: Mapper[Any]) -> tuple[Insert, list[tuple[str, Column[Any]]]]:
    columns = [(attr.key, cast(Column[Any], attr.columns[0])) for attr in mapper.column_attrs]
    return insert(cast(Table, mapper.local_table)), columns


@cache
def _update_for(
    mapper: Mapper[Any], names: tuple[str, ...]
) -> tuple[Update, list[tuple[str, str]]]:
    columns = [(name, mapper.get_property(name).columns[0].key) for name in names]
    (key,) = mapper.primary_key
    statement = (
        update(cast(Table, mapper.local_table))
        .where(key == bindparam("identity"))
        .values({column: bindparam(f"new_{column}") for _, column in columns})
    )
    return statement, columns


_WRITTEN_NOW = "mailbridge.written_now"  # session.info key: what insert_now/update_now wrote


def _remember(session: Session, row: Base, *, inserted: bool) -> None:
    """Note the transactions (innermost first) the row was written in."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    chain = []
    while transaction is not None:
        chain.append(transaction)
        transaction = transaction.parent
    session.info.setdefault(_WRITTEN_NOW, []).append((tuple(chain), row, inserted))


@event.listens_for(Session, "after_soft_rollback")
def _undo_written_now(session: Session, rolled_back: SessionTransaction) -> None:
    """What the unit of work does for the objects it wrote, when a transaction they were
    written in rolls back: an inserted object leaves the session, an updated one is
    expired (read again when next used)."""
    written = session.info.get(_WRITTEN_NOW)
    if not written:
        return
    kept = []
    for chain, row, inserted in written:
        if rolled_back not in chain:
            kept.append((chain, row, inserted))
        elif row in session:
            if inserted:
                session.expunge(row)
            else:
                session.expire(row)
    session.info[_WRITTEN_NOW] = kept


@event.listens_for(Session, "after_transaction_end")
def _forget_written_now(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WRITTEN_NOW, None)


_EVENTS_GATHERED = "mailbridge.events_gathered"  # session.info: events `gathered_events` holds


def insert_event(
    session: Session, ticket_id: int | None, at: datetime, event_type: str, data: dict[str, Any]
) -> None:
    """Write one audit event at once, without the unit of work's cost per object; inside
    `gathered_events`, when it ends, together with the others.

    Events added to the session as objects are flushed first, so events keep the order in
    which they were recorded, whichever way they were written."""
    row = {"ticket_id": ticket_id, "at": at, "type": event_type, "data": data}
    gathering: list[dict[str, Any]] | None = session.info.get(_EVENTS_GATHERED)
    if gathering is None:
        session.flush()
        session.connection().execute(_INSERT_EVENT, row)
        return
    if any(isinstance(pending, Event) for pending in session.new):
        _write_gathered_events(session)
        session.flush()
    gathering.append(row)


@contextmanager
def gathered_events(session: Session) -> Iterator[None]:
    """The events recorded inside are written together (one statement for a batch of
    messages, in place of two or three per message) when it ends, or as soon as anything
    reads or writes the event table through the session; none if it raises, as the
    savepoint around it rolls back what it wrote."""
    if _EVENTS_GATHERED in session.info:
        yield  # an outer one writes them
        return
    session.info[_EVENTS_GATHERED] = []
    try:
        yield
        _write_gathered_events(session)
    finally:
        session.info.pop(_EVENTS_GATHERED, None)


def _write_gathered_events(session: Session) -> None:
    gathering: list[dict[str, Any]] | None = session.info.get(_EVENTS_GATHERED)
    if gathering:
        rows = list(gathering)
        gathering.clear()
        session.connection().execute(_INSERT_EVENT, rows)


@event.listens_for(Session, "before_flush")
def _gathered_events_before_objects(session: Session, *_: object) -> None:
    """Event objects flushed (a bounce's) come after the events recorded before them."""
    if session.info.get(_EVENTS_GATHERED) and any(isinstance(o, Event) for o in session.new):
        _write_gathered_events(session)


@event.listens_for(Session, "do_orm_execute")
def _gathered_events_before_reading(state: ORMExecuteState) -> None:
    """A statement about events sees every event recorded before it."""
    session = state.session
    if session.info.get(_EVENTS_GATHERED) and any(
        mapper.class_ is Event for mapper in state.all_mappers
    ):
        _write_gathered_events(session)


def fire_once(session: Session, escalation: dict[str, Any]) -> bool:
    """INSERT the escalation row unless its (ticket, deadline, level) is there already:
    True when this call wrote it. One statement, no savepoint: the conflict is skipped by
    the database, not raised (an earlier pass, or another instance, fired it)."""
    return bool(fire_all_once(session, [escalation]))


def fire_all_once(
    session: Session, escalations: Sequence[dict[str, Any]]
) -> set[tuple[int, str, int]]:
    """`fire_once` for many rows in one statement: the (ticket, deadline, level) of each row
    this call wrote; those already there are skipped."""
    if not escalations:
        return set()
    table = cast(Table, Escalation.__table__)
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = postgresql_insert(table).on_conflict_do_nothing()
    else:
        statement = sqlite_insert(table).on_conflict_do_nothing()
    # Many parameter sets, one statement compiled once: SQLAlchemy sends them as one
    # multi-row INSERT per thousand ("insertmanyvalues"), with what each returns.
    written = session.connection().execute(
        statement.returning(table.c.ticket_id, table.c.deadline, table.c.level),
        list(escalations),
    )
    return {(ticket_id, deadline, level) for ticket_id, deadline, level in written}


def tickets_due(session: Session, now: datetime, limit: int) -> Sequence[Ticket]:
    """Tickets the sweep must look at, locked; PostgreSQL skips those another sweep holds
    (SQLite has no row locks: the caller takes the write lock first)."""
    query = (
        select(Ticket)
        .where(Ticket.next_escalation_at <= now)
        .order_by(Ticket.next_escalation_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def due_ticket_ids(session: Session, now: datetime, limit: int) -> Sequence[int]:
    """The same range scan, read only: answered from the index alone."""
    query = (
        select(Ticket.id)
        .where(Ticket.next_escalation_at <= now)
        .order_by(Ticket.next_escalation_at)
        .limit(limit)
    )
    return session.scalars(query).all()


def next_escalation_due(session: Session) -> datetime | None:
    """The earliest moment any ticket needs the sweep (one index look-up)."""
    return session.scalar(select(func.min(Ticket.next_escalation_at)))


def fired_steps(session: Session, ticket_ids: Sequence[int]) -> dict[int, set[tuple[str, int]]]:
    """(deadline, level) of every warning and escalation already fired, per ticket."""
    fired: dict[int, set[tuple[str, int]]] = {ticket_id: set() for ticket_id in ticket_ids}
    if ticket_ids:
        query = select(Escalation.ticket_id, Escalation.deadline, Escalation.level).where(
            Escalation.ticket_id.in_(_id_list(ticket_ids))
        )
        for ticket_id, deadline, level in session.execute(query):
            fired[ticket_id].add((deadline, level))
    return fired


def first_customer_text(session: Session, ticket_id: int) -> str:
    query = (
        select(Article.text_body)
        .where(Article.ticket_id == ticket_id, Article.direction == "in")
        .order_by(Article.id)
        .limit(1)
    )
    return session.scalar(query) or ""


def _id_list(ids: Sequence[int]) -> BindParameter[list[int]]:
    """Integer ids written into the statement: a long IN list costs a third as much as one
    parameter per id, and integers cannot inject anything."""
    return bindparam("ids", [int(i) for i in ids], expanding=True, literal_execute=True)


def first_customer_texts(session: Session, ticket_ids: Sequence[int]) -> dict[int, str]:
    """first_customer_text for many tickets in one query ("" for those without)."""
    texts = dict.fromkeys(ticket_ids, "")
    if ticket_ids:
        first = (
            select(func.min(Article.id))
            .where(Article.ticket_id.in_(_id_list(ticket_ids)), Article.direction == "in")
            .group_by(Article.ticket_id)
        )
        query = select(Article.ticket_id, Article.text_body).where(Article.id.in_(first))
        for ticket_id, body in session.execute(query):
            texts[ticket_id] = body or ""
    return texts


def ticket_events(session: Session, ticket_id: int) -> Sequence[Event]:
    return session.scalars(
        select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id)
    ).all()


_ARTICLE_KIND = (
    select(Article.kind)
    .where(Article.inbound_message_id == bindparam("inbound"), Article.direction == "in")
    .limit(1)
)


def article_kind_of(session: Session, inbound_id: int) -> str | None:
    """The classification of the incoming article a message made; None when it made none.
    One this transaction wrote with `insert_now` is known without asking."""
    for _, row, inserted in session.info.get(_WRITTEN_NOW, ()):
        if (
            inserted
            and isinstance(row, Article)
            and row.inbound_message_id == inbound_id
            and row.direction == "in"
        ):
            return row.kind
    return session.execute(_ARTICLE_KIND, {"inbound": inbound_id}).scalar()


def ticket_articles(session: Session, ticket_id: int) -> Sequence[Article]:
    return session.scalars(
        select(Article).where(Article.ticket_id == ticket_id).order_by(Article.id)
    ).all()


def open_tickets_of(session: Session, address: str) -> int:
    """How many tickets of this requester are not resolved, closed or spam."""
    query = select(func.count(Ticket.id)).where(
        Ticket.requester_address == address, Ticket.status.not_in(INACTIVE_STATUSES)
    )
    return _flushed(session).scalar(query) or 0


def customer_mails_since_staff_reply(session: Session, ticket_id: int) -> int:
    """The customer's mails on the ticket since the last staff reply to them (all of them
    when staff never replied); internal notes and automated mail do not count."""
    last_reply = (
        select(func.coalesce(func.max(Article.id), 0))
        .where(
            Article.ticket_id == ticket_id,
            Article.direction == "out",
            Article.author_kind == AuthorKind.STAFF,
            Article.internal.is_(False),
        )
        .scalar_subquery()
    )
    query = select(func.count(Article.id)).where(
        Article.ticket_id == ticket_id,
        Article.direction == "in",
        Article.author_kind == AuthorKind.CUSTOMER,
        Article.id > last_reply,
    )
    return _flushed(session).scalar(query) or 0


def customer_thread(session: Session, ticket_id: int) -> list[str]:
    """Message-IDs of the customer's conversation on a ticket, oldest first: ours and
    theirs, never an internal article's."""
    query = (
        select(Article.message_id)
        .where(
            Article.ticket_id == ticket_id,
            Article.internal.is_(False),
            Article.message_id.is_not(None),
        )
        .order_by(Article.id)
    )
    return [m for m in session.scalars(query) if m]


def ticket_tags(session: Session, ticket_id: int) -> list[str]:
    query = select(TicketTag.tag).where(TicketTag.ticket_id == ticket_id).order_by(TicketTag.tag)
    return list(_flushed(session).scalars(query))


def remove_ticket_tags(session: Session, ticket_id: int, tags: Sequence[str]) -> list[str]:
    """Take these tags (in any case) off the ticket; returns those it had, as they were."""
    wanted = {tag.lower() for tag in tags}
    had = [tag for tag in ticket_tags(session, ticket_id) if tag.lower() in wanted]
    if had:
        _flushed(session).execute(
            delete(TicketTag).where(TicketTag.ticket_id == ticket_id, TicketTag.tag.in_(had))
        )
    return had


def add_ticket_tags(
    session: Session,
    ticket_id: int,
    tags: Sequence[str],
    now: datetime,
) -> list[str]:
    """Tag the ticket; returns the tags it did not have before, in the order given."""
    new = [tag for tag in dict.fromkeys(tags) if tag not in ticket_tags(session, ticket_id)]
    if new:
        _flushed(session).execute(
            insert(TicketTag),
            [{"ticket_id": ticket_id, "tag": tag, "added_at": now} for tag in new],
        )
    return new
