"""Fetch: copy new messages from an IMAP folder into inbound_message, then tidy the server.

The raw bytes are committed before the server copy is flagged, moved or deleted, and
`last_uid` advances in the same transaction, so a crash at any point loses nothing and a
restart fetches nothing twice. A message the database refuses costs only itself: it is
stored without the values read from it, or, refused even so, left on the server and
fetched again at the next pass. Given a `Tenure` (the daemon, with several instances on one
database), that transaction also renews the folder's lease, and stores nothing (LeaseLost)
when another instance owns the folder now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mailbridge.adapters.imap import FetchedMessage, ImapMailbox
from mailbridge.app import App
from mailbridge.config import MailboxConfig
from mailbridge.core.batching import BATCH_BYTES, groups
from mailbridge.core.parse import message_fingerprint
from mailbridge.core.states import InboundState
from mailbridge.db.models import InboundMessage, MailboxState
from mailbridge.db.outage import database_outage
from mailbridge.db.stored_bytes import inbound_message
from mailbridge.errors import describe_error
from mailbridge.faults import crash_point
from mailbridge.inbound.leases import Tenure, hold

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchReport:
    mailbox: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0


def fetch_mailbox(
    app: App,
    mailbox: MailboxConfig,
    conn: ImapMailbox,
    stopping: Callable[[], bool] = lambda: False,
    tenure: Tenure | None = None,
    found: Callable[[int], object] = lambda count: None,
) -> FetchReport:
    """One catch-up pass over the folder `conn` has selected; `stopping()` can end it
    between batches (what is left is fetched next time). With a `tenure`, each batch is
    stored only while this instance holds the folder's lease (else LeaseLost). `found` is
    told how many new messages there are, before the first is fetched, if there are any."""
    uidvalidity = conn.uidvalidity()
    last_uid = _last_uid(app, mailbox, uidvalidity)
    first_connection = last_uid is None
    if first_connection and mailbox.backlog == "skip":
        return _skip_backlog(app, mailbox, conn, uidvalidity, tenure)
    last_uid = last_uid or 0
    _tidy_leftovers(mailbox, conn, last_uid)
    uids = conn.uids_after(last_uid)
    if uids:
        found(len(uids))
    fetched = stored = 0
    held_below: int | None = None  # a message set aside: last_uid stays below it
    for batch in _fetch_batches(conn, uids, mailbox.batch_size):
        if stopping():
            break
        messages = list(conn.fetch(batch, batch_size=len(batch)))
        fetched += len(messages)
        result = store_raw(
            app,
            mailbox,
            uidvalidity,
            messages,
            max(batch) if held_below is None else held_below,
            backlog=first_connection,
            tenure=tenure,
        )
        stored += result.new
        if result.set_aside and held_below is None:
            held_below = min(result.set_aside) - 1
        crash_point("after_store")
        _after_action(mailbox, conn, [m.uid for m in messages if m.uid not in result.set_aside])
        del messages  # not held while the next batch is fetched
    report = FetchReport(mailbox.name, fetched, stored, fetched - stored)
    if fetched:
        log.info(
            "mailbox %s: fetched %d, stored %d, duplicates %d",
            mailbox.name,
            fetched,
            stored,
            report.duplicates,
        )
    return report


def _fetch_batches(conn: ImapMailbox, uids: Sequence[int], count: int) -> Iterator[Sequence[int]]:
    """The UIDs in order, in batches of at most `count` messages and `BATCH_BYTES` of mail
    (core/batching.py), each stored before the next is fetched: a mailbox of large mails
    is held a few at a time. The sizes of each `count` UIDs are asked first, in one
    command, just before they are fetched; not for a single UID, which goes alone anyway
    (what IDLE mostly reports: no round trip added to its latency)."""
    for start in range(0, len(uids), count):
        ahead = uids[start : start + count]
        if len(ahead) == 1:
            yield ahead
            continue
        known = conn.sizes(ahead)
        yield from groups(ahead, [known.get(uid, 0) for uid in ahead], count, BATCH_BYTES)


@dataclass(frozen=True, slots=True)
class Stored:
    new: int  # rows inserted
    # UIDs the database refused to store even in the minimal form: they stay on the server,
    # untouched, and are fetched again at the next pass.
    set_aside: tuple[int, ...] = ()


def store_raw(
    app: App,
    mailbox: MailboxConfig,
    uidvalidity: int,
    messages: Sequence[FetchedMessage],
    up_to_uid: int,
    *,
    backlog: bool = False,
    tenure: Tenure | None = None,
) -> Stored:
    """Insert what is new, advance last_uid (never past a message set aside); one
    transaction. With a `tenure`: only while this instance holds the folder's lease (else
    LeaseLost)."""
    now = app.clock.now()
    rows = [
        inbound_row(
            mailbox.name,
            Origin(mailbox.folder, uidvalidity, fetched.uid),
            fetched.raw,
            received_at=now,
            arrived_at=fetched.internal_date,
            backlog=backlog,
        )
        for fetched in messages
    ]
    with app.transaction() as session:
        if tenure is not None:  # first: on PostgreSQL it locks the lease until the commit
            hold(app, session, tenure, mailbox.source_name)
        new, set_aside = insert_new(session, mailbox, rows)
        if set_aside:
            up_to_uid = min(up_to_uid, min(set_aside) - 1)
        _advance(session, mailbox, uidvalidity, up_to_uid, now)
    return Stored(new, tuple(set_aside))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where in a mailbox a mail came from: an IMAP folder and UID, or the LMTP stand-ins
    of inbound/push.py."""

    folder: str
    uidvalidity: int
    uid: int


def inbound_row(
    mailbox: str,
    origin: Origin,
    raw: bytes,
    *,
    received_at: datetime,
    arrived_at: datetime | None,
    backlog: bool = False,
) -> dict[str, Any]:
    """The inbound_message row of one mail as received, whichever way it came (IMAP
    fetch, LMTP delivery in inbound/push.py): how its bytes are kept is decided here."""
    message_id, fingerprint = message_fingerprint(raw)
    return dict(
        mailbox=mailbox,
        folder=origin.folder,
        uidvalidity=origin.uidvalidity,
        uid=origin.uid,
        message_id=message_id,
        fingerprint=fingerprint,
        raw=raw,
        size=len(raw),
        received_at=received_at,
        arrived_at=arrived_at,
        backlog=backlog,
        state=InboundState.NEW,
        attempts=0,
    )


def insert_new(
    session: Session, mailbox: MailboxConfig, rows: list[dict[str, Any]]
) -> tuple[int, list[int]]:
    """Insert the rows whose mail the mailbox does not hold yet (by fingerprint, however
    it arrived), in the caller's transaction. Returns how many were inserted and the UIDs
    the database refused to store."""
    known = _known_fingerprints(session, mailbox.name, {r["fingerprint"] for r in rows})
    fresh = _unique_by_fingerprint(r for r in rows if r["fingerprint"] not in known)
    return _insert(session, mailbox, fresh)


def _insert(
    session: Session, mailbox: MailboxConfig, rows: list[dict[str, Any]]
) -> tuple[int, list[int]]:
    """Insert the rows in one go. Should the database refuse that (another writer stored
    one meanwhile, or a row is one it cannot take), one at a time, so that a row costs
    only itself. Returns how many were inserted and the UIDs set aside."""
    try:
        with session.begin_nested():
            session.add_all([inbound_message(session, row) for row in rows])
        return len(rows), []
    except Exception as exc:  # whatever a row did, the others must be stored
        if database_outage(exc) is not None:
            raise
        log.info(
            "mailbox %s: storing %d messages one by one (%s)",
            mailbox.name,
            len(rows),
            describe_error(exc),
        )
    new, set_aside = 0, []
    for row in rows:
        outcome = _insert_one(session, mailbox, row)
        new += outcome == "stored"
        if outcome == "set aside":
            set_aside.append(row["uid"])
    return new, set_aside


def _insert_one(session: Session, mailbox: MailboxConfig, row: dict[str, Any]) -> str:
    """stored, duplicate (already stored, by another writer meanwhile), or set aside. A
    row the database refuses as fetched is stored in a minimal form: the raw bytes and
    where they came from, none of the values read from the mail."""
    try:
        _try_insert(session, row)
        return "stored"
    except Exception as exc:  # judged below, outages re-raised
        if database_outage(exc) is not None:
            raise
        if _already_stored(session, row):
            return "duplicate"
        refusal = describe_error(exc)
    minimal = {
        **row,
        "message_id": None,
        "arrived_at": None,
        "last_error": f"stored without the values read from the mail: {refusal}",
    }
    try:
        _try_insert(session, minimal)
    except Exception as exc:  # the database takes no form of it: set aside
        if database_outage(exc) is not None:
            raise
        log.error(
            "mailbox %s: UID %d cannot be stored (%s); it stays on the server and is "
            "tried again at the next pass",
            mailbox.name,
            row["uid"],
            describe_error(exc),
        )
        return "set aside"
    log.warning(
        "mailbox %s: UID %d stored without the values read from the mail, which the "
        "database refused (%s)",
        mailbox.name,
        row["uid"],
        refusal,
    )
    return "stored"


def _try_insert(session: Session, row: dict[str, Any]) -> None:
    with session.begin_nested():
        session.add(inbound_message(session, row))


def _already_stored(session: Session, row: dict[str, Any]) -> bool:
    query = (
        select(InboundMessage.id)
        .where(
            InboundMessage.mailbox == row["mailbox"],
            or_(
                InboundMessage.fingerprint == row["fingerprint"],
                (InboundMessage.folder == row["folder"])
                & (InboundMessage.uidvalidity == row["uidvalidity"])
                & (InboundMessage.uid == row["uid"]),
            ),
        )
        .limit(1)
    )
    return session.scalar(query) is not None


def _unique_by_fingerprint(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["fingerprint"], row)
    return list(seen.values())


def _known_fingerprints(session: Session, mailbox: str, fingerprints: set[str]) -> set[str]:
    if not fingerprints:
        return set()
    query = select(InboundMessage.fingerprint).where(
        InboundMessage.mailbox == mailbox, InboundMessage.fingerprint.in_(fingerprints)
    )
    return set(session.scalars(query))


def _skip_backlog(
    app: App,
    mailbox: MailboxConfig,
    conn: ImapMailbox,
    uidvalidity: int,
    tenure: Tenure | None,
) -> FetchReport:
    """backlog = "skip": remember the newest UID and leave older mail alone."""
    newest = max(conn.uids_after(0), default=0)
    with app.transaction() as session:
        if tenure is not None:
            hold(app, session, tenure, mailbox.source_name)
        _advance(session, mailbox, uidvalidity, newest, app.clock.now())
    log.warning(
        "mailbox %s: first connection with backlog = skip: mail up to UID %d is left alone",
        mailbox.name,
        newest,
    )
    return FetchReport(mailbox.name)


def _last_uid(app: App, mailbox: MailboxConfig, uidvalidity: int) -> int | None:
    """The last UID stored from this folder; None at the very first connection."""
    with app.transaction() as session:
        state = _state(session, mailbox)
        if state is None:
            return None
        if state.uidvalidity != uidvalidity:
            # The server renumbered the folder: read it all again; fingerprints stop repeats.
            log.warning(
                "mailbox %s: UIDVALIDITY changed from %d to %d, resynchronising",
                mailbox.name,
                state.uidvalidity,
                uidvalidity,
            )
            return 0
        return state.last_uid


def _state(session: Session, mailbox: MailboxConfig) -> MailboxState | None:
    query = select(MailboxState).where(
        MailboxState.mailbox == mailbox.name, MailboxState.folder == mailbox.folder
    )
    return session.scalars(query).one_or_none()


def _advance(
    session: Session, mailbox: MailboxConfig, uidvalidity: int, uid: int, now: datetime
) -> None:
    state = _state(session, mailbox)
    if state is None:
        session.add(
            MailboxState(
                mailbox=mailbox.name,
                folder=mailbox.folder,
                uidvalidity=uidvalidity,
                last_uid=uid,
                updated_at=now,
            )
        )
        return
    if state.uidvalidity != uidvalidity:
        state.uidvalidity, state.last_uid = uidvalidity, uid
    else:
        state.last_uid = max(state.last_uid, uid)
    state.updated_at = now


def _tidy_leftovers(mailbox: MailboxConfig, conn: ImapMailbox, last_uid: int) -> None:
    """Finish a move or delete that a crash interrupted after the bytes were committed."""
    if mailbox.after not in ("move", "delete") or last_uid == 0:
        return
    leftovers = [uid for uid in conn.uids_after(0) if uid <= last_uid]
    if leftovers:
        log.info(
            "mailbox %s: finishing after-action on %d stored messages", mailbox.name, len(leftovers)
        )
        _after_action(mailbox, conn, leftovers)


def _after_action(mailbox: MailboxConfig, conn: ImapMailbox, uids: list[int]) -> None:
    if not uids:
        return
    if mailbox.after == "move":
        conn.move(uids, mailbox.processed_folder)
    elif mailbox.after == "flag":
        conn.mark_seen(uids)
    elif mailbox.after == "delete":
        conn.delete(uids)
