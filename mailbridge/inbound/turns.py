"""How a processing pass takes its turns (db/turn.py): SQLite's one writer, the single
cluster-wide turn, or on PostgreSQL by default a mailbox's lock and then the keys of the
conversations a batch touches (docs/architecture.md, "Taking turns on PostgreSQL")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.states import InboundState
from mailbridge.db import turn
from mailbridge.db.models import InboundMessage
from mailbridge.inbound import conversation
from mailbridge.inbound.prepare import Prepared

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Turns:
    """How one pass takes its turns (db/turn.py), what it has tried, and how long it has
    waited for locks."""

    app: App
    claim_next: Callable[[set[int], str | None], Sequence[int]]  # counts the attempts
    tried: set[int] = field(default_factory=set)  # failed in this pass: wait for the next
    waited: float = 0.0
    # The last batch was cut short, in mailbox `cut`, for earlier mail of `wait_for`.
    wait_for: str | None = None
    cut: str = ""
    held_back: set[str] = field(default_factory=set)  # wait on another's mailbox: next pass
    kind: str = ""

    def __post_init__(self) -> None:
        if self.app.engine.dialect.name == "sqlite":
            self.kind = "sqlite"
        else:
            self.kind = self.app.config.database.processing_turn

    @property
    def narrow(self) -> bool:
        return self.kind == "narrow"

    def claim(self, session: Session) -> Sequence[int]:
        """Take the turn for the next batch and claim it (counting an attempt on each)."""
        if self.kind == "sqlite":
            return self.claim_next(self.tried, None)
        if not self.narrow:
            self.timed(lambda: turn.share_turn(session, alone=True))
            return self.claim_next(self.tried, None)
        self.timed(lambda: turn.share_turn(session))
        names = [mailbox.name for mailbox in self.app.config.mailbox]
        if self.wait_for is not None:
            # A batch was cut short for an earlier message of this mailbox: queue for it
            # (nothing else is held yet, so waiting is safe), then take what is there.
            awaited, self.wait_for = self.wait_for, None
            if awaited in names:
                self.timed(lambda: turn.lock_mailbox(session, awaited, wait=True))
                claimed = self.claim_next(self.tried, awaited)
                if claimed:
                    return claimed
            else:  # another instance's: the cut mailbox waits, the others go on meanwhile
                self.held_back.add(self.cut)
        names = [name for name in names if name not in self.held_back]
        mailbox = self._take_mailbox(session, names)
        return () if mailbox is None else self.claim_next(self.tried, mailbox)

    def claim_one(self, session: Session, inbound_id: int) -> Sequence[int]:
        """The turn for one message already claimed (a failed batch's, one by one)."""
        self.lock_for(session, inbound_id)
        return (inbound_id,)

    def lock_for(self, session: Session, inbound_id: int) -> None:
        if self.kind == "sqlite":
            return
        self.timed(lambda: turn.share_turn(session, alone=not self.narrow))
        if self.narrow:
            mailbox = session.scalar(
                select(InboundMessage.mailbox).where(InboundMessage.id == inbound_id)
            )
            if mailbox is not None:
                self.timed(lambda: turn.lock_mailbox(session, mailbox, wait=True))

    def _take_mailbox(self, session: Session, names: list[str]) -> str | None:
        """The first mailbox, oldest waiting mail first, whose lock is free; one another
        batch holds is left to it. Only the mailboxes this configuration names: an
        instance cannot apply the settings of one it does not know. A lock taken without
        waiting never waits, so holding one already (see claim) risks no deadlock."""
        waiting = select(InboundMessage.mailbox).where(
            InboundMessage.state == InboundState.NEW, InboundMessage.mailbox.in_(names)
        )
        if self.tried:
            waiting = waiting.where(InboundMessage.id.not_in(self.tried))
        mailboxes = session.scalars(
            waiting.group_by(InboundMessage.mailbox).order_by(func.min(InboundMessage.id))
        ).all()
        for mailbox in mailboxes:
            if self.timed(partial(turn.lock_mailbox, session, mailbox, wait=False)):
                return mailbox
        return None

    def timed(self, locking: Callable[[], bool | None]) -> bool | None:
        start = time.perf_counter()
        try:
            return locking()
        finally:
            self.waited += time.perf_counter() - start


def lock_batch(
    app: App,
    session: Session,
    turns: Turns,
    loaded: Sequence[InboundMessage],
    early: dict[int, Prepared | Exception],
) -> Sequence[InboundMessage]:
    """Lock the batch's conversation keys; the messages to process now. A message that
        refers to an earlier one of another mailbox, still waiting, is put back with all after
        it (its attempt taken back), so a conversation keeps its arrival order; its mailbox waits
    for the next pass, while the pass goes on with the others."""
    prepared = [
        (inbound, *outcome)
        for inbound in loaded
        if not isinstance(outcome := early[inbound.id], Exception)
    ]
    keys = conversation.batch_keys(app, session, prepared)
    turns.timed(lambda: turn.lock_conversations(session, keys.locks))
    turn.skip_limits(session, keys.skipped)
    waiting = conversation.first_waiting(
        session, loaded[0].mailbox, loaded, keys, app.clock.now() - conversation.PARENT_WAIT
    )
    if waiting is None:
        return loaded
    cut, awaited = waiting
    later = [inbound.id for inbound in loaded[cut:]]
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id.in_(later))
        .values(attempts=InboundMessage.attempts - 1)
    )
    turns.tried.difference_update(later)
    turns.wait_for, turns.cut = awaited, loaded[0].mailbox
    log.info("%d messages wait for an earlier one of another mailbox", len(later))
    return loaded[:cut]
