"""Participants: who of the addresses a customer copies joins the ticket, and whom staff
may add. Pure functions on plain values.

A customer's To and Cc name the people in the conversation: a colleague copied on the
first mail should get the answers too. But the same headers name our own mailboxes, staff,
the requester, and may name thousands of strangers; only the first few plausible
customers join, and the rest are counted with the reason they did not
(docs/architecture.md, "Participants").
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from mailbridge.core.classify import automated_address
from mailbridge.core.compose import can_write_address
from mailbridge.core.message import Address

MAX_NEW_PER_MAIL = 20  # participants one customer mail may add
MAX_ACTIVE = 50  # active participants a ticket may gain from customer mail
MAX_ADDRESS = 254  # RFC 5321's limit on a path
MAX_SKIPPED_LISTED = 20  # skipped addresses an event lists one by one; the rest are counted

# Why an address did not join; the silent ones are the usual company of a customer's mail.
OWN = "one of our own addresses"
STAFF = "a staff address"
REQUESTER = "the requester"
SENDER = "the sender"
ALREADY = "already a participant"
REMOVED = "removed by staff; only staff add it again"
UNUSABLE = "an address no mail can be written to"
AUTOMATED = "an automated address (no-reply, mailer daemon, postmaster)"
OVER_LIMIT = "over the limit of new participants"
SILENT = frozenset({OWN, REQUESTER, SENDER, ALREADY})


@dataclass(frozen=True, slots=True)
class Skipped:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParticipantChoice:
    """The addresses that join, in the order the mail named them, and those that did not
    (silent reasons left out: our own address in To is no news)."""

    add: tuple[Address, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class Exclusions:
    """Who never becomes a participant: our addresses, staff (addresses and domains)."""

    own_addresses: frozenset[str]
    staff_addresses: frozenset[str]
    staff_domains: frozenset[str]

    @classmethod
    def of(cls, own: Iterable[str], staff: Iterable[str], domains: Iterable[str]) -> Exclusions:
        return cls(
            frozenset(a.lower() for a in own),
            frozenset(a.lower() for a in staff if a),
            frozenset(d.lower() for d in domains),
        )

    def why_not(self, address: str) -> str:
        """Why staff may not add `address` ("" when they may)."""
        local, _, domain = address.lower().rpartition("@")
        if address.lower() in self.own_addresses:
            return OWN
        if f"{local.partition('+')[0]}@{domain}" in self.own_addresses:
            return OWN  # support+t1042-…@: a reply token, still our mailbox
        if address.lower() in self.staff_addresses or domain in self.staff_domains:
            return STAFF
        if "@" not in address or len(address) > MAX_ADDRESS or not can_write_address(address):
            return UNUSABLE
        if automated_address(address.lower()):
            return AUTOMATED
        return ""


def choose_participants(
    candidates: Sequence[Address],
    exclusions: Exclusions,
    *,
    requester: str,
    sender: str,
    active: Collection[str],
    removed: Collection[str],
    limit: int = MAX_NEW_PER_MAIL,
) -> ParticipantChoice:
    """Which of a customer mail's To and Cc addresses join the ticket: not ours, not staff,
    not the requester or sender, not one already on it or removed by staff, not one no mail
    can be written to; at most `limit` of them. Linear in the number of candidates."""
    add: list[Address] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for candidate in candidates:
        address = candidate.address.lower()
        if address in seen:
            continue
        seen.add(address)
        reason = _reason(address, exclusions, requester, sender, active, removed)
        if not reason and len(add) >= limit:
            reason = OVER_LIMIT
        if not reason:
            add.append(Address(candidate.name, address))
        elif reason not in SILENT:
            skipped.append(Skipped(address, reason))
    return ParticipantChoice(tuple(add), tuple(skipped))


def _reason(
    address: str,
    exclusions: Exclusions,
    requester: str,
    sender: str,
    active: Collection[str],
    removed: Collection[str],
) -> str:
    if not address:
        return UNUSABLE
    if address == requester.lower():
        return REQUESTER
    if address == sender.lower():
        return SENDER
    if address in active:
        return ALREADY
    if address in removed:
        return REMOVED
    return exclusions.why_not(address)


def skipped_summary(skipped: Sequence[Skipped]) -> dict[str, object]:
    """What an event records of the skipped addresses: the first few with their reasons,
    and how many there were in all, so 5,000 Cc's make one short event."""
    listed = [{"address": s.address, "reason": s.reason} for s in skipped[:MAX_SKIPPED_LISTED]]
    return {"skipped": listed, "skipped_count": len(skipped)}
