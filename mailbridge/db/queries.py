"""Named queries. No policy here: each answers one question the pipeline asks.

The look-ups made for every processed message are built once, here, with bound
parameters: building and caching a statement costs more than running it. The rows written
for every message go in through `insert_now`, `update_now` and `insert_event`: one Core
statement each instead of the unit of work, whose bookkeeping costs several times the
statement. The objects stay in the session, and a rolled-back savepoint takes them along
as it does for flushed ones. Inside `written_later` (a batch of messages on PostgreSQL, a
sweep's batch), `insert_later`, `update_later`, `insert_event` and the acknowledgement
ledger hold their rows and write each table's together; `batch_reads` reads once what a
batch's messages would each ask (docs/architecture.md, "3. Process").
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Column,
    CompoundSelect,
    Connection,
    Executable,
    Insert,
    Result,
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
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import Select, TableClause
from sqlalchemy.sql.util import find_tables

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
    """Message-ID -> ticket id, for ids we received (first) or sent. The ids are looked up
    in the form their columns store (an over-long one as its digest form) and answered as
    asked. Inside `batch_reads`, an id read once is known for the rest of the batch."""
    asked: dict[str, list[str]] = {}
    for message_id in message_ids:
        asked.setdefault(_stored_message_id(message_id), []).append(message_id)
    if not asked:
        return {}
    if session.autoflush:
        session.flush()
    cache: dict[str, _Where] | None = session.info.get(_BATCH_IDS)
    if cache is None:
        where = _read_ids(session, list(asked))
    else:
        missing = [stored for stored in asked if stored not in cache]
        if missing:
            cache.update(_read_ids(session, missing))
        where = {stored: cache[stored] for stored in asked}
    found: dict[str, int] = {}
    for stored, (received, sent) in where.items():
        ticket_id = received if received is not None else sent
        if ticket_id is not None:
            found.update(dict.fromkeys(asked[stored], ticket_id))
    return found


_Where = tuple["int | None", "int | None"]  # the ticket a Message-ID was received in, sent from


def _read_ids(session: Session, stored: list[str]) -> dict[str, _Where]:
    # Outbox rows `written_later` holds are asked of it, not written for this: a batch's
    # replies would each write the mail queued before them.
    write_pending(session, [cast(Table, Article.__table__)])
    held = _held_outbox(session)
    where: dict[str, _Where] = {message_id: (None, held.get(message_id)) for message_id in stored}
    connection = session.connection()
    for start in range(0, len(stored), IDS_PER_STATEMENT):
        ids = {"ids": stored[start : start + IDS_PER_STATEMENT]}
        for was_sent, message_id, ticket_id in connection.execute(_KNOWN_IDS, ids):
            received, sent = where[message_id]
            if not was_sent:
                where[message_id] = (ticket_id, sent)
            elif sent is None:
                where[message_id] = (received, ticket_id)
    return where


def _held_outbox(session: Session) -> dict[str, int]:
    """Stored Message-ID -> ticket id of the outbox rows `written_later` holds."""
    later: _Later | None = session.info.get(_LATER)
    rows = later.inserts.get(cast(Table, Outbox.__table__), []) if later is not None else []
    return {
        _stored_message_id(row["message_id"]): row["ticket_id"]
        for row in rows
        if row["ticket_id"] is not None
    }


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
    query = _ledger_counts(tuple(limit for limit, _ in keys))
    values = {f"key_{n}": key for n, (_, key) in enumerate(keys)}
    found = _flushed(session, query).execute(
        query, {**values, "withheld_by": withheld_by, "since": since}
    )
    return [int(n or 0) for n in found.one()]


@cache
def _ledger_counts(limits: tuple[str, ...]) -> Select[Any]:
    """The statement counting each key's rows, its keys bound as key_0, key_1, …: one per
    sequence of limits asked (address, domain, mailbox for every new ticket)."""
    return select(
        *(
            select(func.count(Acknowledgement.id))
            .where(
                ACK_LIMIT_KEYS[limit] == bindparam(f"key_{n}"),
                Acknowledgement.withheld_by == bindparam("withheld_by"),
                Acknowledgement.at >= bindparam("since"),
            )
            .scalar_subquery()
            for n, limit in enumerate(limits)
        )
    )


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
    read = _ledger_rows(tuple(by_limit))
    values = {f"{limit}_keys": keys for limit, keys in by_limit.items()}
    rows_read = _flushed(session, read).execute(
        read, {**values, "withheld_by": withheld_by, "since": since}
    )
    for limit, key, at in rows_read:
        found[limit, key].append(at)
    for (limit, key), times in found.items():
        rows[limit, key, withheld_by] = sorted(times)


@cache
def _ledger_rows(limits: tuple[str, ...]) -> CompoundSelect[Any]:
    """The statement reading each limit's rows for a list of its keys (bound as
    address_keys, domain_keys, mailbox_keys), one per set of limits asked."""
    return union_all(
        *(
            select(literal(limit), ACK_LIMIT_KEYS[limit], Acknowledgement.at).where(
                ACK_LIMIT_KEYS[limit].in_(bindparam(f"{limit}_keys", expanding=True)),
                Acknowledgement.withheld_by == bindparam("withheld_by"),
                Acknowledgement.at >= bindparam("since"),
            )
            for limit in limits
        )
    )


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
    row = {
        "ticket_id": ticket.id,
        "mailbox": ticket.mailbox,
        "address": address,
        "domain": domain,
        "withheld_by": withheld_by,
        "at": now,
    }
    later: _Later | None = session.info.get(_LATER)
    if later is not None:
        later.insert(_ACK_TABLE, row)
    else:
        statement = insert(Acknowledgement)
        _flushed(session, statement).execute(statement, row)


def read(
    session: Session, statement: Executable, params: dict[str, Any]
) -> Result[*tuple[Any, ...]]:
    """Run a Core query built once, seeing what the session holds as an ORM query would,
    at a fraction of the ORM's cost per execution (the look-ups made for every message)."""
    return _flushed(session, statement).execute(statement, params)


def _flushed(session: Session, statement: Executable) -> Connection:
    """The session's connection, with what the session holds written (autoflush, as an
    ORM query does) and what `written_later` holds of the tables `statement` reads (all of
    it, before a write): a Core statement on it sees what an ORM query would, without the
    ORM's cost per execution."""
    if session.autoflush:
        session.flush()
    if isinstance(statement, Select | CompoundSelect):
        write_pending(session, _read_by(statement))
    else:
        write_pending(session)
        _forget_batch_reads(session, statement)
    return session.connection()


def _read_by(statement: Select[Any] | CompoundSelect[Any]) -> list[Table]:
    """The tables a query reads; remembered for a statement built once and run often (a
    walk of the statement costs more than running it on SQLite)."""
    tables = _READ_BY.get(statement)
    if tables is None:
        found = find_tables(statement, include_joins=True)
        tables = _READ_BY[statement] = [t for t in found if isinstance(t, Table)]
    return tables


_READ_BY: WeakKeyDictionary[Executable, list[Table]] = WeakKeyDictionary()


_Row = TypeVar("_Row", bound=Base)


def insert_now(session: Session, row: _Row) -> _Row:
    """INSERT a new object at once and keep it in the session as a persistent object, as a
    flush would (its id set, later changes tracked). Objects added (or deleted) before it
    are flushed first, so rows are written in the order they were made; changes to rows
    already there wait for the next flush, where the unit of work writes them together
    (a sweep's thousand ticket UPDATEs in one batch)."""
    if session.new or session.deleted:
        session.flush()
    mapper = inspect(row).mapper
    write_pending(session, [cast(Table, mapper.local_table)], writing="insert")
    statement, columns = _insert_for(mapper)
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
    _note_message_id(session, row)
    _ids_taken_again(session, [cast(Table, mapper.local_table)])
    return row


def insert_ticket(session: Session, ticket: Ticket, number_start: int) -> Ticket:
    """INSERT a new ticket and give it its number, `number_start` + id - 1: ids only grow,
    so numbers are unique and in the order tickets were opened (by mail or by a split)."""
    insert_now(session, ticket)
    update_later(session, ticket, number=number_start + ticket.id - 1)
    return ticket


def update_now(session: Session, row: Base, **values: Any) -> None:
    """UPDATE attributes (named as mapped, each a column) of a persistent object at once,
    without the unit of work; the object holds the new values as its committed state."""
    state = inspect(row)
    assert state.identity is not None, "update_now needs a persistent object"
    write_pending(session, [cast(Table, state.mapper.local_table)], writing="update")
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


_LATER = "mailbridge.written_later"  # session.info: the _Later of `written_later`, inside it


@dataclass(slots=True)
class _Later:
    """What `written_later` holds: rows to INSERT, by table, and UPDATE parameters, by
    table and statement, in the order first held; ids taken ahead, not yet given out."""

    reserve: int  # ids to take ahead at a time
    sequences: bool  # PostgreSQL's; SQLite's ids follow the largest one written
    inserts: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    updates: dict[Table, dict[Update, list[dict[str, Any]]]] = field(default_factory=dict)
    ids: dict[Table, list[int]] = field(default_factory=dict)

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        self.inserts.setdefault(table, []).append(row)

    def update(self, table: Table, statement: Update, params: dict[str, Any]) -> None:
        self.updates.setdefault(table, {}).setdefault(statement, []).append(params)

    def needed(self, tables: Iterable[Table] | None, writing: str) -> set[Table]:
        """The tables whose held rows a statement on `tables` must come after: for a read
        or an UPDATE (`writing` "update"), the rows held of that table; for an INSERT
        (`writing` "insert"), those inserted into it; for either write, also the rows
        inserted that its rows may point at; and, in turn, those their rows point at."""
        held = {*self.inserts, *self.updates}
        if tables is None:
            return held
        found: set[Table] = set()
        for table in tables:
            if table in (self.inserts if writing == "insert" else held):
                found.add(table)
            if writing:
                found.update(
                    t for fk in table.foreign_keys if (t := fk.column.table) in self.inserts
                )
        todo = list(found)
        while todo:
            for fk in todo.pop().foreign_keys:
                target = fk.column.table
                if target in self.inserts and target not in found:
                    found.add(target)
                    todo.append(target)
        return found & held


@contextmanager
def written_later(session: Session, expected: int = 1) -> Iterator[None]:
    """The events, acknowledgements, outbox rows and message states written inside go in
    together when it ends: one statement per table for a batch of messages (or a sweep's
    tickets), where each cost a round trip of its own. A statement that reads or writes
    one of those tables, or a row that points at one, writes them first, so nothing
    reads around them. An outbox row's or an article's id is taken ahead, `expected` at a
    time (a batch's size), so it is known before the row is written: on PostgreSQL from
    its sequence; on SQLite, whose transaction holds the database's write lock, after the
    largest id written (an INSERT elsewhere in the transaction takes them again). If it
    raises, nothing is written: the savepoint around it takes its rows along."""
    if _LATER in session.info:
        yield  # an outer one writes them
        return
    sequences = session.get_bind().dialect.name == "postgresql"
    later = _Later(reserve=max(expected, 8), sequences=sequences)
    session.info[_LATER] = later
    try:
        yield
        write_pending(session)
    finally:
        session.info.pop(_LATER, None)


def write_pending(
    session: Session,
    tables: Iterable[Table] | None = None,
    *,
    writing: str = "",
    connection: Connection | None = None,
) -> None:
    """Write what `written_later` holds: all of it, or what a statement on one of `tables`
    must come after (_Later.needed). Inserts first, in the order of the tables' foreign
    keys, then updates, each statement's rows together."""
    later: _Later | None = session.info.get(_LATER)
    if later is None or not (later.inserts or later.updates):
        return
    needed = later.needed(tables, writing)
    if not needed:
        return
    connection = connection or session.connection()
    for table in Base.metadata.sorted_tables:
        if table in needed and table in later.inserts:
            connection.execute(insert(table), later.inserts.pop(table))
    for table in needed:
        for statement, rows in later.updates.pop(table, {}).items():
            connection.execute(statement, rows)


def _drop_pending(later: _Later) -> None:
    later.inserts, later.updates = {}, {}


def insert_later(session: Session, row: _Row) -> _Row:
    """`insert_now`, or inside `written_later` the row kept to be written with the others
    of its table, its id taken ahead; one with a column the database fills in is written
    at once."""
    later: _Later | None = session.info.get(_LATER)
    if later is None:
        return insert_now(session, row)
    mapper = inspect(row).mapper
    values = _filled(mapper, row.__dict__)
    if values is None:
        return insert_now(session, row)
    _held_with_id(session, later, mapper, values)
    for name, column in _insert_for(mapper)[1]:
        if name not in row.__dict__:
            setattr(row, name, values[column.key])
    make_transient_to_detached(row)
    session.add(row)
    _remember(session, row, inserted=True)
    _note_message_id(session, row)
    return row


def hold_later(session: Session, model: type[Base], given: dict[str, Any]) -> int | None:
    """Inside `written_later`, a new row of `model` held as its values alone (by attribute
    name), for a row nothing reads back as an object in this transaction (a sweep's
    notifications): making and tracking the mapped object cost more than the rest of
    holding it. Its values are bounded as they are written, as any row's are. Its id
    (taken ahead); None, holding nothing, outside `written_later` or when the database
    fills in a column: the caller makes the object then."""
    later: _Later | None = session.info.get(_LATER)
    if later is None:
        return None
    mapper = inspect(model)
    values = _filled(mapper, given)
    if values is None:
        return None
    new_id = _held_with_id(session, later, mapper, values)
    if _BATCH_IDS in session.info:
        _note_message_id(session, model(**given))  # a reply's look-up finds it (batch_reads)
    return new_id


def insert_values(session: Session, model: type[Base], given: dict[str, Any]) -> int:
    """`insert_later` for a row nothing reads back as an object in this transaction (an
    outbox row, which events name by its id), given as its values (by attribute name):
    held inside `written_later` (`hold_later`), else written at once, never as a mapped
    object, whose making and tracking cost more than the INSERT on SQLite. Its values are
    bounded as they are written, as any row's are. Its id."""
    held = hold_later(session, model, given)
    if held is not None:
        return held
    if session.new or session.deleted:
        session.flush()  # rows are written in the order they were made
    mapper = inspect(model)
    table = cast(Table, mapper.local_table)
    write_pending(session, [table], writing="insert")
    statement, columns = _insert_for(mapper)
    result = session.connection().execute(
        statement, {column.key: given[name] for name, column in columns if name in given}
    )
    new_key = result.inserted_primary_key
    assert new_key is not None  # one row, one key
    _ids_taken_again(session, [table])
    if _BATCH_IDS in session.info:
        _note_message_id(session, model(**given))  # a reply's look-up finds it (batch_reads)
    return int(new_key[0])


def _held_with_id(
    session: Session, later: _Later, mapper: Mapper[Any], values: dict[str, Any]
) -> int:
    """Hold the row's `values` to be written with its table's others, its id taken ahead;
    that id."""
    table = cast(Table, mapper.local_table)
    (key,) = mapper.primary_key
    ids = later.ids.get(table)
    if not ids:
        ids = later.ids[table] = _ids_ahead(session, later, table, cast(Column[Any], key))
    new_id: int = ids.pop()
    values[str(key.key)] = new_id
    later.insert(table, values)
    return new_id


def _filled(mapper: Mapper[Any], given: dict[str, Any]) -> dict[str, Any] | None:
    """Every column's value, as an INSERT would write it: given (by attribute name), else
    its default, else NULL; None if a column not given is filled in by the database."""
    values: dict[str, Any] = {}
    for name, column in _insert_for(mapper)[1]:
        if name in given:
            values[column.key] = given[name]
        elif column.primary_key:
            continue
        elif column.server_default is not None:
            return None
        elif column.default is None:
            values[column.key] = None
        elif column.default.is_scalar:
            values[column.key] = column.default.arg  # type: ignore[attr-defined]
        elif column.default.is_callable:
            values[column.key] = column.default.arg(None)  # type: ignore[attr-defined]
        else:
            return None
    return values


def _ids_ahead(session: Session, later: _Later, table: Table, key: Column[Any]) -> list[int]:
    """`later.reserve` ids for new rows of `table`, the smallest last (given out first)."""
    n = later.reserve
    if later.sequences:
        sequence = func.pg_get_serial_sequence(table.name, key.name)
        query = select(func.nextval(sequence)).select_from(func.generate_series(1, n))
        return sorted(session.connection().scalars(query), reverse=True)
    write_pending(session, [table], writing="insert")  # the ids given out so far
    largest = session.connection().scalar(select(func.coalesce(func.max(key), 0))) or 0
    return list(range(largest + n, largest, -1))


def _ids_taken_again(session: Session, tables: Iterable[Table]) -> None:
    """Rows of these tables were inserted otherwise: on SQLite, the ids taken ahead may be
    theirs now."""
    later: _Later | None = session.info.get(_LATER)
    if later is not None and not later.sequences:
        for table in tables:
            later.ids.pop(table, None)


def update_later(session: Session, row: Base, **values: Any) -> None:
    """`update_now`, or inside `written_later` the new values kept (the object holds them
    at once) and written with the other rows' of the same columns in one statement."""
    later: _Later | None = session.info.get(_LATER)
    if later is None:
        update_now(session, row, **values)
        return
    state = inspect(row)
    assert state.identity is not None, "update_later needs a persistent object"
    statement, columns = _update_for(state.mapper, tuple(values))
    params = {f"new_{column}": values[name] for name, column in columns}
    table = cast(Table, state.mapper.local_table)
    later.update(table, statement, {**params, "identity": state.identity[0]})
    for name, value in values.items():
        set_committed_value(row, name, value)
    _remember(session, row, inserted=False)


_EVENT_TABLE = cast(Table, Event.__table__)
_ACK_TABLE = cast(Table, Acknowledgement.__table__)


def insert_event(
    session: Session, ticket_id: int | None, at: datetime, event_type: str, data: dict[str, Any]
) -> None:
    """Write one audit event at once, without the unit of work's cost per object; inside
    `written_later`, when it ends, together with the others.

    Events added to the session as objects are flushed after the ones recorded before
    them, so events keep the order in which they were recorded, whichever way written."""
    row = {"ticket_id": ticket_id, "at": at, "type": event_type, "data": data}
    later: _Later | None = session.info.get(_LATER)
    if later is None:
        session.flush()
        session.connection().execute(_INSERT_EVENT, row)
        return
    if any(isinstance(pending, Event) for pending in session.new):
        session.flush()  # writes what is held first (_pending_before_flush)
    later.insert(_EVENT_TABLE, row)


@event.listens_for(Session, "before_flush")
def _pending_before_flush(session: Session, *_: object) -> None:
    """Objects flushed that are, or point at, rows held come after those rows (a bounce's
    Event object after the events recorded before it, an address's last outbox row)."""
    if any(
        isinstance(o, Article | Outbox) for o in (*session.new, *session.dirty, *session.deleted)
    ):
        _forget_batch_reads(session)
    later: _Later | None = session.info.get(_LATER)
    if later is None:
        return
    if session.new and not later.sequences:
        _ids_taken_again(session, {cast(Table, inspect(o).mapper.local_table) for o in session.new})
    if not (later.inserts or later.updates):
        return
    if session.deleted:
        write_pending(session)  # a row held may point at one deleted
        return
    flushed = {cast(Table, inspect(o).mapper.local_table) for o in (*session.new, *session.dirty)}
    write_pending(session, flushed, writing="update")


@event.listens_for(Session, "do_orm_execute")
def _pending_before_statement(state: ORMExecuteState) -> None:
    """A statement sees every row held before it: those of the tables it reads, or all of
    them before it writes."""
    statement = state.statement
    if not isinstance(statement, Select | CompoundSelect):
        _forget_batch_reads(state.session, statement)  # what was read may have changed
    later: _Later | None = state.session.info.get(_LATER)
    if later is None or not (later.inserts or later.updates):
        return
    if not isinstance(statement, Select | CompoundSelect):
        write_pending(state.session)  # a write, or text: anything may depend on them
        return
    write_pending(state.session, _read_by(statement))


@event.listens_for(Session, "after_transaction_create")
def _pending_before_savepoint(session: Session, transaction: SessionTransaction) -> None:
    """A savepoint begun inside `written_later` starts with nothing held: what was held
    before it is written before its SAVEPOINT (on the connection of the transaction
    around it), so one that rolls back takes along exactly what was held since."""
    parent = transaction.parent
    if transaction.nested and parent is not None and session.info.get(_LATER) is not None:
        write_pending(session, connection=parent.connection(None))


@event.listens_for(Session, "after_soft_rollback")
def _pending_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    session.info.pop(_LOCKED, None)  # PostgreSQL may have let go of row locks taken inside
    _forget_batch_reads(session)
    ledger = session.info.get(_LEDGER)
    if ledger is not None:
        ledger[1].clear()  # it may hold rows rolled back: each key is read again
    later: _Later | None = session.info.get(_LATER)
    if later is not None:
        _drop_pending(later)


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
    session.info.pop(_BATCH_FIRED, None)
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
    cache: dict[int, set[tuple[str, int]]] | None = session.info.get(_BATCH_FIRED)
    if cache is not None and all(ticket_id in cache for ticket_id in ticket_ids):
        return {ticket_id: set(cache[ticket_id]) for ticket_id in ticket_ids}
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
    return _flushed(session, query).scalar(query) or 0


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
    return _flushed(session, query).scalar(query) or 0


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
    return list(_flushed(session, query).scalars(query))


def remove_ticket_tags(session: Session, ticket_id: int, tags: Sequence[str]) -> list[str]:
    """Take these tags (in any case) off the ticket; returns those it had, as they were."""
    wanted = {tag.lower() for tag in tags}
    had = [tag for tag in ticket_tags(session, ticket_id) if tag.lower() in wanted]
    if had:
        statement = delete(TicketTag).where(
            TicketTag.ticket_id == ticket_id, TicketTag.tag.in_(had)
        )
        _flushed(session, statement).execute(statement)
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
        statement = insert(TicketTag)
        rows = [{"ticket_id": ticket_id, "tag": tag, "added_at": now} for tag in new]
        _flushed(session, statement).execute(statement, rows)
    return new


_BATCH_IDS = "mailbridge.batch_ids"  # session.info: stored Message-ID -> _Where, `batch_reads`
_BATCH_FIRED = "mailbridge.batch_fired"  # session.info: ticket id -> steps fired, `batch_reads`
_LOCKED = "mailbridge.locked_tickets"  # session.info: tickets locked in the transaction, by id


@contextmanager
def batch_reads(session: Session, message_ids: Iterable[str]) -> Iterator[None]:
    """Inside, what a batch's messages would each ask is asked once, in three statements:
    the tickets the Message-IDs they refer to belong to, those tickets locked (in the
    order of their ids), and the warnings and escalations fired on them. Rows this
    transaction writes are added to what was read; a statement that changes articles,
    outbox rows or escalations otherwise, or a rolled-back savepoint, makes the batch ask
    again, as it would without this."""
    stored = [m for m in dict.fromkeys(map(_stored_message_id, message_ids)) if m]
    ids = _read_ids(session, stored) if stored else {}
    session.info[_BATCH_IDS] = ids
    tickets = sorted({t for pair in ids.values() for t in pair if t is not None})
    if tickets:
        query = (
            select(Ticket)
            .where(Ticket.id.in_(_id_list(tickets)))
            .order_by(Ticket.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        session.info.setdefault(_LOCKED, {}).update((t.id, t) for t in session.scalars(query))
        session.info[_BATCH_FIRED] = fired_steps(session, tickets)
    try:
        yield
    finally:
        _forget_batch_reads(session)


# What `batch_reads` read, by the table a write to which makes it be read again.
_READ_ONCE = {"article": _BATCH_IDS, "outbox": _BATCH_IDS, "escalation": _BATCH_FIRED}


def _forget_batch_reads(session: Session, statement: Executable | None = None) -> None:
    """Forget what `batch_reads` read: all of it, or what a write `statement` may change
    (a statement with no table of its own, raw SQL, may change anything)."""
    table = getattr(statement, "table", None)
    if isinstance(statement, UpdateBase) and isinstance(table, TableClause):
        key = _READ_ONCE.get(table.name)
        if key is not None:
            session.info.pop(key, None)
        return
    session.info.pop(_BATCH_IDS, None)
    session.info.pop(_BATCH_FIRED, None)


def _note_message_id(session: Session, row: Base) -> None:
    """A row written inside `batch_reads` with a Message-ID the batch has read: known."""
    cache: dict[str, _Where] | None = session.info.get(_BATCH_IDS)
    if cache is None or not isinstance(row, Article | Outbox) or not row.message_id:
        return
    stored = _stored_message_id(row.message_id)
    if stored not in cache:
        return  # not read: asked of the database (where the row is) when it is
    received, sent = cache[stored]
    if isinstance(row, Article):
        cache[stored] = (row.ticket_id, sent)
    elif sent is None and row.ticket_id is not None:
        cache[stored] = (received, row.ticket_id)


def locked_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, locked FOR UPDATE until the transaction ends and read as it is now;
    one already locked in this transaction costs no query."""
    locked: dict[int, Ticket] = session.info.setdefault(_LOCKED, {})
    held = locked.get(ticket_id)
    if held is not None and held in session:
        return held
    found = session.get(Ticket, ticket_id, with_for_update=True, populate_existing=True)
    if found is not None:
        locked[ticket_id] = found  # held here: the session keeps objects only while used
    return found


@event.listens_for(Session, "after_transaction_end")
def _locks_let_go(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_LOCKED, None)


def locked_ids(session: Session) -> list[int]:
    """The tickets locked in this transaction (`locked_ticket`, `batch_reads`)."""
    return sorted(session.info.get(_LOCKED, ()))
