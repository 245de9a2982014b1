"""Setting who a ticket answers: a proven staff member's `#requester ADDRESS`, or
`mailbridge tickets requester N ADDRESS`. Runs inside the caller's transaction.

A ticket whose mail named no sender has no requester until someone sets one; the
staff notification and `tickets show` say so, and answers to it wait for it.
"""

from __future__ import annotations

from mailbridge.app import App, Step
from mailbridge.core.clip import clip_text
from mailbridge.core.compose import can_write_address
from mailbridge.core.message import Address
from mailbridge.core.sender import NO_SENDER, answerable
from mailbridge.core.staff import StaffMessage, requester_address
from mailbridge.db.models import Ticket
from mailbridge.tickets.events import add_event

# Display names are stored in columns of 255 characters: a longer one (no name is) is kept
# shortened, marker included, instead of failing the message on PostgreSQL.
STORED_NAME = 200
HOW_TO_SET = (
    "a staff member can set one with #requester ADDRESS on the first line of a "
    "reply, or mailbridge tickets requester {number} ADDRESS"
)


def missing_requester(ticket: Ticket) -> str:
    """Why the ticket has nobody to answer, and how to fix it; "" when it has someone."""
    address = ticket.requester_address
    if answerable(address):
        return ""
    why = NO_SENDER if not address else f"{address!r} is no address mail can be sent to"
    return f"no requester: {why}; {HOW_TO_SET.format(number=ticket.number)}"


def unusable_requester(app: App, address: Address) -> str:
    """Why `address` cannot be a requester ("" when it can): our own addresses would mail
    ourselves, and an address no header can carry could never be answered."""
    own = {a.lower() for a in app.identity.own_addresses}
    local, _, domain = address.address.rpartition("@")
    if address.address in own or f"{local.partition('+')[0]}@{domain}" in own:
        return f"{address.address} is one of our own addresses"
    if not can_write_address(address.address):
        return f"{address.address!r} is no address mail can be sent to"
    return ""


def set_requester(step: Step, ticket: Ticket, address: Address, by: str) -> list[str] | None:
    """Make `address` the ticket's requester and record `requester_changed`; returns
    [old address, new address], or None when it already was the requester."""
    name = clip_text(address.name, STORED_NAME)
    old = ticket.requester_address
    if old == address.address and (not name or name == ticket.requester_name):
        return None
    ticket.requester_address = address.address
    ticket.requester_name = name
    ticket.updated_at = step.now
    add_event(step, ticket, "requester_changed", by=by, old=old, new=address.address, name=name)
    return [old, address.address]


# --- #requester in a staff reply ----------------------------------------------------------


def command_problems(app: App, ticket: Ticket, message: StaffMessage) -> list[str]:
    """What keeps a staff reply from running, as far as the requester goes: a #requester
    that names one of our own addresses, or text for a customer on a ticket that has no
    address to answer and gets none (nothing is sent then, and nothing changes)."""
    argument = message.argument("requester")
    if argument is not None:
        address = requester_address(argument)  # parse_commands let only an address through
        why = unusable_requester(app, address) if address else "not one address"
        return [f"#requester {argument}: {why}"] if why else []
    if answerable(ticket.requester_address) or message.has("note"):
        return []
    if message.text or message.argument("template"):
        return [
            "this ticket has no requester, so your text has nobody to go to: put "
            "#requester ADDRESS on the first line of your reply, above the text"
        ]
    return []


def apply_command(step: Step, ticket: Ticket, message: StaffMessage, by: str) -> dict[str, object]:
    """The change a checked #requester makes, for the staff reply's event: {} or
    {"requester": [old, new]}."""
    argument = message.argument("requester")
    address = requester_address(argument) if argument is not None else None
    if address is None:
        return {}
    changed = set_requester(step, ticket, address, by)
    return {"requester": changed} if changed else {}
