"""`mailbridge customer erase`: everything held about one address removed or put under a
pseudonym (GDPR Art. 17), keeping ticket numbers, states and times, so the statistics stay.

The tickets the address took part in (tickets/customer_data.py) lose their content whole
(tickets/erasure.py): a conversation cannot be cut between its people, whose mail quotes
and copies each other. Rows outside them that name the address are changed one by one
(tickets/customer_elsewhere.py). The address becomes `erased-<id>@invalid`, a keyed
pseudonym (core/erasure.py).

The work goes in batches of BATCH tickets, each its own transaction, which takes the
processing turn (db/turn.py): no mail is threaded onto a ticket while it is being erased,
and two erasures running at once (several instances, or a command run twice) take turns;
each batch finds its tickets again under the turn, so the second finds nothing left to do.
Each transaction that changed something leaves one `customer_erased` event without a
ticket, with its counts per table and the pseudonym's id, naming nobody. A second erasure
of the same address finds nothing and changes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.correlate import format_tag
from mailbridge.core.erasure import erasure_key, pseudonym, pseudonym_id
from mailbridge.db import queries, scrub
from mailbridge.db.models import Ticket
from mailbridge.db.turn import take_turn
from mailbridge.tickets.customer_data import conversations
from mailbridge.tickets.customer_elsewhere import scrub_elsewhere
from mailbridge.tickets.erasure import Scrub, Tally, erase_content

__all__ = ["BATCH", "ERASED_EVENT", "Erasure", "customer_scrub", "erase_customer"]

BATCH = 200
ERASED_EVENT = "customer_erased"


@dataclass(frozen=True)
class Erasure:
    """What an erasure changed (or, in a dry run, would change): rows per table."""

    pseudonym_id: str
    tickets: int = 0
    rows: Mapping[str, int] = field(default_factory=dict)
    batches: int = 0  # transactions that changed something

    @property
    def anything(self) -> bool:
        return any(self.rows.values())

    def summary(self) -> str:
        counted = ", ".join(f"{table} {n}" for table, n in sorted(self.rows.items()) if n)
        return f"{self.tickets} ticket(s) erased whole; rows per table: {counted or 'none'}"


def customer_scrub(app: App, address: str) -> Scrub:
    key = erasure_key(app.reply_secret)
    return Scrub("customer erasure", address, pseudonym(key, address), key)


def erase_customer(app: App, address: str, *, dry_run: bool = False) -> Erasure:
    """Erase what is held about `address` (lower-case, as stored), or count what would
    change."""
    how = customer_scrub(app, address)
    ident = pseudonym_id(erasure_key(app.reply_secret), address)
    with app.sessions() as session:
        found = conversations(session, address)
        tags = _tags(app, session, found)
    batches = [found[i : i + BATCH] for i in range(0, len(found), BATCH)] or [[]]
    total: Tally = Counter()
    tickets = done = 0
    for number, batch in enumerate(batches):
        with app.transaction() as session:
            take_turn(session)
            scrub.overwrite_deleted(session)
            mine = conversations(session, address, batch, lock=True) if batch else []
            tally: Tally = Counter()
            if number == 0:
                tally += scrub_elsewhere(session, how, frozenset(found), tags, dry_run=dry_run)
            tally += erase_content(session, mine, how, app.clock.now(), dry_run=dry_run)
            if tally and not dry_run:
                _audit(app, session, ident, len(mine), tally)
        total += tally
        tickets += len(mine)
        done += 1 if tally else 0
    if total and not dry_run:
        scrub.compact(app.engine)
    return Erasure(ident, tickets, dict(total), done)


def _tags(app: App, session: Session, ticket_ids: Sequence[int]) -> list[str]:
    """The tags the tickets' subjects carry ([#1042]), by which staff digests list them."""
    prefix = app.config.tickets.tag_prefix
    numbers: list[int | None] = []
    for start in range(0, len(ticket_ids), 1000):
        chunk = ticket_ids[start : start + 1000]
        numbers += session.scalars(select(Ticket.number).where(Ticket.id.in_(chunk))).all()
    return [format_tag(prefix, n) for n in numbers if n is not None]


def _audit(app: App, session: Session, ident: str, tickets: int, tally: Tally) -> None:
    """The event that says an erasure happened, and how much it changed; it names nobody
    (the pseudonym's id is what the erased tickets now hold)."""
    data = {"pseudonym_id": ident, "tickets": tickets, "rows": dict(tally)}
    queries.insert_event(session, None, app.clock.now(), ERASED_EVENT, data)
