"""Who sent a mail when From does not say: Sender, then Reply-To, then the topmost
Return-Path. Pure functions on the mailboxes core.addresses read.

A mail from a mailer daemon that names itself without a domain (`From: Mail Delivery
Subsystem <MAILER-DAEMON>`) keeps that name as its sender, so the classification rules
for mailer daemons still see it and nothing answers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mailbridge.core.addresses import Mailbox
from mailbridge.core.compose import can_write_address
from mailbridge.core.message import Address

# The headers a sender may come from, in the order they are asked, by their field names.
FALLBACKS = (("sender", "Sender"), ("reply-to", "Reply-To"), ("return-path", "Return-Path"))
# What a ticket without a requester says about its mail (tickets show, the ack record).
NO_SENDER = "the mail named no sender in From, Sender, Reply-To or Return-Path"
_DAEMON_LOCALS = frozenset({"mailer-daemon", "mailerdaemon", "mailer_daemon", "mailer.daemon"})


@dataclass(frozen=True, slots=True)
class SenderChoice:
    """The sender, the header it came from ("" when none named one) and what was odd."""

    sender: Address | None
    header: str  # "from" | "sender" | "reply-to" | "return-path" | ""
    defects: tuple[str, ...]


def choose_sender(
    from_: Sequence[Mailbox] | None, fallbacks: Mapping[str, Sequence[Mailbox]]
) -> SenderChoice:
    """The sender of a mail from the mailboxes of its From header (None: no such header)
    and of the FALLBACKS headers (by lower-cased name; only the topmost Return-Path's).

    The first From mailbox with an address is the sender; a domain-less mailer daemon in
    From is kept as it is; otherwise the first address of the first fallback that has
    one, with From's display name when it brings none of its own.
    """
    mailboxes = tuple(from_ or ())
    defects: list[str] = []
    if len(mailboxes) > 1:
        defects.append(
            f"From names {len(mailboxes)} mailboxes: the first with an address is the sender"
        )
    for mailbox in mailboxes:
        if mailbox.address:
            return SenderChoice(Address(mailbox.name, mailbox.address), "from", tuple(defects))
    named = mailboxes[0].name if mailboxes else ""
    daemon = next((m for m in mailboxes if m.local in _DAEMON_LOCALS), None)
    if daemon is not None:
        return SenderChoice(Address(daemon.name, daemon.local), "from", tuple(defects))
    why = "missing From" if from_ is None else "From has no address"
    for key, title in FALLBACKS:
        found = next((m for m in fallbacks.get(key, ()) if m.address), None)
        if found is not None:
            defects.append(f"{why}: sender taken from {title}")
            return SenderChoice(Address(found.name or named, found.address), key, tuple(defects))
    defects.append(why if from_ is None else f"{why}, nor do Sender, Reply-To or Return-Path")
    return SenderChoice(Address(named, "") if named else None, "", tuple(defects))


def answerable(address: str) -> bool:
    """Can mail go to this requester? Not to "" (no sender was named), nor to a mailer
    daemon's bare name, nor to anything a header cannot carry."""
    return "@" in address and can_write_address(address)
