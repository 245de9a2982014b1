"""What a batch must lock on PostgreSQL before it threads: the conversations its messages
belong to (docs/architecture.md, "Taking turns on PostgreSQL").

A message's keys are everything another mailbox's message could meet it on: its own
Message-ID and fingerprint (a second delivery), the Message-IDs it refers to (threading),
the addresses it may be answered at (the per-address acknowledgement limit, a customer's
open tickets) and, unless the trusted MTA vouched for them, their domains (the per-domain
limit), but only while that domain is still below its limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbridge.app import App
from mailbridge.core.ack_policy import authenticated_by, domain_of
from mailbridge.core.correlate import thread_clues
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.states import InboundState
from mailbridge.db.models import Acknowledgement, InboundMessage
from mailbridge.inbound.acknowledge import LIMIT_WINDOW

# Bounded work per message: a reply names its parent first (In-Reply-To, then References
# newest first), and threading takes the first one it knows, so the first few decide.
MAX_REFERENCES = 16
MAX_ADDRESSES = 4
# How long a reply waits for its parent, still unprocessed in another mailbox, from when the
# parent was stored: long enough for a running instance to take it, short enough that a
# mailbox nobody processes any more holds nothing for long.
PARENT_WAIT = timedelta(minutes=10)

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """The keys to lock, the full limit keys left unlocked, and each message's references."""

    locks: frozenset[Key]
    skipped: frozenset[Key]
    references: dict[int, tuple[str, ...]]


def batch_keys(
    app: App,
    session: Session,
    messages: Sequence[tuple[InboundMessage, ParsedMessage, Verdict]],
) -> BatchKeys:
    locks: set[Key] = set()
    domains: set[str] = set()
    references: dict[int, tuple[str, ...]] = {}
    tag_prefix = app.config.tickets.tag_prefix
    for inbound, parsed, verdict in messages:
        refs = thread_clues(parsed, tag_prefix).message_ids[:MAX_REFERENCES]
        references[inbound.id] = refs
        locks.add(("fingerprint", inbound.fingerprint))
        locks.update(
            ("message", message_id) for message_id in (parsed.message_id, *refs) if message_id
        )
        for address in answer_addresses(parsed):
            locks.add(("address", address))
            trusted = app.config.staff.trusted_authserv_id
            # Only mail that may be acknowledged meets the domain limit: a flood of
            # automated mail asks nothing of the ledger.
            acknowledgeable = verdict.kind == "customer" and not verdict.automated
            if acknowledgeable and authenticated_by(parsed.headers, trusted, address) is None:
                domains.add(domain_of(address))
    full = _full_domains(app, session, domains, app.clock.now())
    locks.update(("domain", domain) for domain in domains - full)
    return BatchKeys(frozenset(locks), frozenset(("domain", d) for d in full), references)


def answer_addresses(parsed: ParsedMessage) -> list[str]:
    """From and Reply-To, lower case: where a ticket this mail opens may be answered."""
    found = [parsed.from_.address] if parsed.from_ else []
    found += [address.address for address in parsed.reply_to[:MAX_ADDRESSES]]
    return list(dict.fromkeys(address.lower() for address in found if address))


def _full_domains(app: App, session: Session, domains: set[str], now: datetime) -> set[str]:
    """The domains whose hourly acknowledgement limit is already reached, in one query: no
    lock needed, as nothing another batch commits can open them again within the batch."""
    if not domains:
        return set()
    counted = session.execute(
        select(Acknowledgement.domain)
        .where(
            Acknowledgement.domain.in_(sorted(domains)),
            Acknowledgement.withheld_by == "",
            Acknowledgement.at >= now - LIMIT_WINDOW,
        )
        .group_by(Acknowledgement.domain)
        .having(func.count(Acknowledgement.id) >= app.config.tickets.ack_domain_limit_per_hour)
    )
    return set(counted.scalars())


def first_waiting(
    session: Session,
    mailbox: str,
    batch: Sequence[InboundMessage],
    keys: BatchKeys,
    since: datetime,
) -> tuple[int, str] | None:
    """The index of the first message of the batch that refers to an earlier message of
    another mailbox still waiting to be processed (not failed before, and stored after
    `since`), with that mailbox; None: none does. That message, and the rest of the batch,
    wait until the earlier one is settled, or has waited PARENT_WAIT: a mailbox no
    instance processes any more, or a forged reference, never holds a reply for long."""
    wanted = {ref for refs in keys.references.values() for ref in refs}
    if not wanted or not batch:
        return None
    query = select(InboundMessage.message_id, InboundMessage.id, InboundMessage.mailbox).where(
        InboundMessage.state == InboundState.NEW,
        InboundMessage.mailbox != mailbox,
        InboundMessage.id < batch[-1].id,
        InboundMessage.last_error.is_(None),
        InboundMessage.received_at >= since,
        InboundMessage.message_id.in_(sorted(wanted)),
    )
    waiting: dict[str, tuple[int, str]] = {}
    for message_id, inbound_id, other in session.execute(query):
        if message_id and (message_id not in waiting or inbound_id < waiting[message_id][0]):
            waiting[message_id] = (inbound_id, other)
    for index, inbound in enumerate(batch):
        for ref in keys.references[inbound.id]:
            if ref in waiting and waiting[ref][0] < inbound.id:
                return index, waiting[ref][1]
    return None
