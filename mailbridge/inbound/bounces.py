"""Bounces: match a delivery report to the mail it is about, record it on the ticket, and
keep automatic mail from an address that bounces until that address writes to us again.

Matching is exact when the report comes back to the per-mail envelope sender (VERP, see
core/bounce; outbound/send builds it); otherwise the bounced mail's Message-ID, quoted in
the report, names it.
Runs inside the caller's transaction, like apply.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbridge.app import Step
from mailbridge.core.bounce import (
    BouncedRecipient,
    BounceReport,
    find_return_path,
    read_bounce,
    return_path_valid,
)
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.states import OutboxState, RecipientState
from mailbridge.db import queries
from mailbridge.db.models import (
    AddressState,
    Event,
    InboundMessage,
    Outbox,
    RecipientResult,
    Ticket,
)
from mailbridge.db.stored_bytes import raw_of
from mailbridge.tickets.events import Applied

log = logging.getLogger(__name__)

# flufl.bounce logs every detector it tries at INFO: noise in the daemon's log.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

# Where the address a mail was delivered to shows, besides To and Cc.
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
_FINAL_STATES = frozenset({OutboxState.SENT, OutboxState.FAILED})


def on_message(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
) -> Applied | None:
    """A bounce for our mail is recorded, and what applying it did is returned. Customer
    mail is a sign of life: its sender is no longer bouncing. Anything else: None, carry on."""
    if verdict.kind == "customer" and parsed.from_ is not None:
        clear_bouncing(step, parsed.from_.address)
        return None
    if verdict.kind != "bounce":
        return None
    return handle_bounce(step, inbound, parsed, verdict)


def handle_bounce(
    step: Step,
    inbound: InboundMessage,
    parsed: ParsedMessage,
    verdict: Verdict,
) -> Applied | None:
    """Record a bounce of one of our mails; None when it is not about one of them."""
    report = read_bounce(raw_of(step.session, inbound))
    match = _match(step.session, parsed, report)
    if match is None:
        return None
    row, matched_by = match
    pairs = list(_recipients_of(row, report))
    bounced = [(address, r) for address, r in pairs if r.failed]
    if bounced:
        _mark_row(row, bounced)
    marked = sorted({address for address, r in bounced if r.permanent})
    for address in marked:
        state = next(r for a, r in bounced if a == address and r.permanent)
        mark_bouncing(step, address, state, row.id)
    ticket = step.session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
    event = "bounced" if bounced else "delivery_report"
    step.session.add(
        Event(
            ticket_id=ticket.id if ticket else None,
            at=step.now,
            type=event,
            data={
                "outbox_id": row.id,
                "message_id": row.message_id,
                "kind": row.kind,
                "matched_by": matched_by,
                "inbound_message_id": inbound.id,
                "reporting_mta": report.reporting_mta,
                "standard": report.standard,
                "recipients": [_describe(address, r) for address, r in pairs],
                "marked_bouncing": marked,
                "rules": list(verdict.rules),
            },
        )
    )
    summary = ", ".join(f"{a} {r.action} {r.status}".rstrip() for a, r in pairs) or "no recipient"
    return Applied.to(
        ticket, "bounce", reason=f"report on outbox {row.id} ({matched_by}): {summary}"
    )


_ABSENT = "mailbridge.address_states_absent"  # session.info: addresses known to have no row


@contextmanager
def states_known(session: Session, addresses: Iterable[str]) -> Iterator[None]:
    """Read the bounce state of a batch's senders in one query: inside, asking about one of
    them costs none (a row is in the session; no row is remembered as such)."""
    wanted = {address.lower() for address in addresses}
    if not wanted or _ABSENT in session.info:
        yield
        return
    found = session.scalars(select(AddressState).where(AddressState.address.in_(wanted))).all()
    session.info[_ABSENT] = wanted.difference(state.address for state in found)
    try:
        yield  # `found` holds the rows in the session (its identity map's references are weak)
    finally:
        session.info.pop(_ABSENT, None)


def _state(session: Session, address: str) -> AddressState | None:
    if address in session.info.get(_ABSENT, ()):
        return None
    return session.get(AddressState, address)


# Whether an address is marked bouncing, asked for every customer mail: a Core look-up
# built once, where most addresses have no row.
_BOUNCING = select(AddressState.address).where(
    AddressState.address == bindparam("address"), AddressState.bouncing_since.is_not(None)
)


def _bouncing_state(session: Session, address: str) -> AddressState | None:
    """The address's row when it is marked bouncing, else None."""
    if address in session.info.get(_ABSENT, ()):
        return None
    in_session = Session.identity_key(AddressState, address) in session.identity_map
    if not in_session and queries.read(session, _BOUNCING, {"address": address}).first() is None:
        return None
    state = session.get(AddressState, address)
    return state if state is not None and state.bouncing_since is not None else None


def bounce_refusal(session: Session, address: str) -> str:
    """Why no automatic mail may go to address, or "" when it may."""
    state = _bouncing_state(session, address.lower())
    if state is None or state.bouncing_since is None:
        return ""
    status = f" ({state.last_status})" if state.last_status else ""
    return (
        f"address bouncing since {state.bouncing_since.isoformat(timespec='minutes')}"
        f"{status}; it has not written to us since"
    )


def mark_bouncing(
    step: Step, address: str, recipient: BouncedRecipient, outbox_id: int
) -> AddressState:
    address = address.lower()
    state = _state(step.session, address)
    if state is None:
        state = AddressState(address=address, bounce_count=0)
        step.session.info.get(_ABSENT, set()).discard(address)
        step.session.add(state)
    state.bouncing_since = state.bouncing_since or step.now
    state.last_bounce_at = step.now
    state.bounce_count = (state.bounce_count or 0) + 1
    state.last_status = recipient.status or None
    state.last_diagnostic = recipient.diagnostic or None
    state.last_outbox_id = outbox_id
    state.updated_at = step.now
    step.session.flush()
    log.info("address %s marked bouncing (%s %s)", address, recipient.status, recipient.diagnostic)
    return state


def clear_bouncing(step: Step, address: str) -> bool:
    """The address wrote to us: it works again. True when it was marked bouncing."""
    state = _bouncing_state(step.session, address.lower())
    if state is None or state.bouncing_since is None:
        return False
    state.bouncing_since = None
    state.cleared_at = state.updated_at = step.now
    log.info("address %s wrote to us: no longer marked bouncing", state.address)
    return True


def _match(
    session: Session, parsed: ParsedMessage, report: BounceReport
) -> tuple[Outbox, str] | None:
    token = find_return_path(_delivered_to(parsed))
    if token is not None:
        row = session.get(Outbox, token.outbox_id)
        if row is not None and return_path_valid(token, row.message_id):
            return row, "return_path"
        log.warning("bounce to %s: the return path names no mail of ours", token.address)
    ids = list(report.original_message_ids)
    if ids:
        rows = {
            r.message_id: r
            for r in session.scalars(select(Outbox).where(Outbox.message_id.in_(ids)))
        }
        for message_id in ids:
            if message_id in rows:
                return rows[message_id], "message_id"
    return None


def _delivered_to(parsed: ParsedMessage) -> Iterator[str]:
    for name in _ENVELOPE_HEADERS:
        yield from parsed.headers.get(name, ())
    for address in (*parsed.to, *parsed.cc):
        yield address.address


def _recipients_of(row: Outbox, report: BounceReport) -> Iterator[tuple[str, BouncedRecipient]]:
    """Each reported recipient with the row's envelope address it stands for.

    A forwarded mail bounces at an address we never wrote to; when the row has one
    recipient, that recipient is the one to stop writing to.
    """
    for recipient in report.recipients:
        ours = next((a for a in row.envelope_to if recipient.is_for(a)), None)
        if ours is None and len(row.envelope_to) == 1:
            ours = row.envelope_to[0]
        if ours is not None:
            yield ours.lower(), recipient


def _mark_row(row: Outbox, bounced: list[tuple[str, BouncedRecipient]]) -> None:
    by_address = dict(bounced)
    results = [entry.copy() for entry in row.recipients or []] or [
        RecipientResult(address=a, state=RecipientState.ACCEPTED, code=None, reply="")
        for a in row.envelope_to
    ]
    for entry in results:
        recipient = by_address.get(entry["address"].lower())
        if recipient is not None:
            entry["state"] = RecipientState.BOUNCED
            entry["code"], entry["reply"] = (
                None,
                f"{recipient.status} {recipient.diagnostic}".strip(),
            )
    row.recipients = results
    if row.state in _FINAL_STATES:
        row.state = OutboxState.BOUNCED


def _describe(address: str, recipient: BouncedRecipient) -> dict[str, object]:
    return {
        "address": address,
        "reported": recipient.address,
        "action": recipient.action,
        "status": recipient.status,
        "diagnostic": recipient.diagnostic,
    }
