"""The table of a fault run, one row per fault, and the list of what went wrong."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.faults.ledger import Account, Recovery
from tests.faults.traffic import Injected

HEADER = (
    "fault",
    "mails",
    "kills",
    "tickets",
    "lost",
    "duplicated tickets",
    "acks delivered",
    "duplicate acks",
    "recovery s",
)


@dataclass
class Phase:
    """One fault (or the steady flow before them) and what was measured around it."""

    label: str
    started_at: float  # time.monotonic()
    kills: int = 0
    # Kills (and database outages) that fell between the SMTP server accepting a mail and
    # the outbox row being marked sent: each may repeat that one mail, with its Message-ID.
    between_accept_and_mark: int = 0
    recoveries: list[Recovery] = field(default_factory=list)
    takeover: float | None = None  # until another instance owns it and new mail is answered
    notes: list[str] = field(default_factory=list)

    def recovery_text(self) -> str:
        prefix = f"takeover {self.takeover:.1f}; " if self.takeover is not None else ""
        if not self.recoveries:
            return prefix.rstrip("; ") or "-"
        seconds = [r.seconds for r in self.recoveries]
        if any(s is None for s in seconds):
            return prefix + f"NOT RECOVERED ({sum(s is None for s in seconds)})"
        measured = [s for s in seconds if s is not None]
        if len(measured) == 1:
            return prefix + f"{measured[0]:.1f}"
        return prefix + (f"max {max(measured):.1f}, median {statistics.median(measured):.1f}")


@dataclass(frozen=True)
class Row:
    label: str
    mails: int
    kills: int
    tickets: int
    lost: int
    duplicated: int
    acks_delivered: int
    duplicate_acks: int
    recovery: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.label,
            str(self.mails),
            str(self.kills),
            str(self.tickets),
            str(self.lost),
            str(self.duplicated),
            str(self.acks_delivered),
            str(self.duplicate_acks),
            self.recovery,
        )


def _phase_of(phases: Sequence[Phase], when: float) -> int:
    index = 0
    for i, phase in enumerate(phases):
        if phase.started_at <= when:
            index = i
    return index


def rows(phases: Sequence[Phase], injected: Sequence[Injected], account: Account) -> list[Row]:
    """One row per phase (mails counted in the phase they were written in), and a total."""
    groups: list[list[Injected]] = [[] for _ in phases]
    for mail in injected:
        groups[_phase_of(phases, mail.written_at)].append(mail)
    result = [
        _row(phase.label, phase.kills, group, account, phase.recovery_text())
        for phase, group in zip(phases, groups, strict=True)
    ]
    total = _row("total", sum(p.kills for p in phases), list(injected), account, "")
    stray = len(account.stray_tickets)
    result.append(
        Row(
            total.label,
            total.mails,
            total.kills,
            total.tickets + stray,
            total.lost,
            total.duplicated + stray,
            total.acks_delivered,
            total.duplicate_acks,
            total.recovery,
        )
    )
    return result


def _row(label: str, kills: int, mails: list[Injected], account: Account, recovery: str) -> Row:
    lost = {m.message_id for m in account.lost}
    tickets: set[int] = set()
    duplicated = sum(account.extra_articles[m.message_id] for m in mails)
    for mail in mails:
        if mail.is_new:
            found = account.tickets_of_conversation.get(mail.root, set())
            tickets |= found
            duplicated += max(0, len(found) - 1)
    delivered = duplicates = 0
    for ticket in tickets:
        sent = [m for m in account.acks_of_ticket.get(ticket, []) if account.deliveries[m]]
        delivered += bool(sent)
        duplicates += sum(account.deliveries[m] - 1 for m in sent)
    return Row(
        label,
        len(mails),
        kills,
        len(tickets),
        sum(m.message_id in lost for m in mails),
        duplicated,
        delivered,
        duplicates,
        recovery,
    )


def table(result: Sequence[Row]) -> str:
    cells = [HEADER, *(row.cells() for row in result)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        rest = [
            v.rjust(w) if i < len(HEADER) - 2 else v.ljust(w)
            for i, (v, w) in enumerate(zip(values[1:], widths[1:], strict=True))
        ]
        return "| " + " | ".join([first, *rest]) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(HEADER), rule, *(line(c) for c in cells[1:])])


def problems(account: Account, phases: Sequence[Phase], planned_kills: int) -> list[str]:
    """Every broken promise, in words; empty when the run kept them all."""
    found: list[str] = []
    if account.lost:
        found.append(
            f"{len(account.lost)} mail(s) lost (neither ticket nor article), e.g. "
            + ", ".join(f"<{m.message_id}>" for m in account.lost[:5])
        )
    split = {root: t for root, t in account.tickets_of_conversation.items() if len(t) > 1}
    if split:
        found.append(
            f"{len(split)} conversation(s) with more than one ticket, e.g. "
            + ", ".join(f"<{r}>: {sorted(t)}" for r, t in list(split.items())[:5])
        )
    if account.extra_articles:
        found.append(f"mail stored twice on its ticket: {dict(account.extra_articles)}")
    if account.stray_tickets:
        found.append(f"tickets from no injected mail: {sorted(account.stray_tickets)[:10]}")
    found.extend(_ack_problems(account, phases))
    if account.quarantined:
        found.append(f"{account.quarantined} message(s) quarantined")
    if account.failed_outbox:
        found.append(f"{account.failed_outbox} outbox row(s) failed")
    kills = sum(p.kills for p in phases)
    if kills < planned_kills:
        found.append(f"only {kills} kills, {planned_kills} planned")
    for phase in phases:
        if any(r.done_at is None for r in phase.recoveries):
            found.append(f"{phase.label}: did not recover")
        found.extend(f"{phase.label}: {note}" for note in phase.notes if note.startswith("!"))
    return found


def _ack_problems(account: Account, phases: Sequence[Phase]) -> list[str]:
    found: list[str] = []
    tickets = set().union(*account.tickets_of_conversation.values()) | account.stray_tickets
    rows_wrong = {
        t: account.acks_of_ticket.get(t, [])
        for t in tickets
        if len(account.acks_of_ticket.get(t, [])) != 1
    }
    if rows_wrong:
        found.append(
            f"{len(rows_wrong)} ticket(s) without exactly one acknowledgement row, "
            f"e.g. {dict(list(rows_wrong.items())[:5])}"
        )
    undelivered = [
        t
        for t in tickets
        if not any(account.deliveries[m] for m in account.acks_of_ticket.get(t, []))
    ]
    if undelivered:
        found.append(
            f"{len(undelivered)} ticket(s) whose acknowledgement never arrived, "
            f"e.g. {sorted(undelivered)[:10]}"
        )
    if account.unsent_acks:
        found.append(
            f"{len(account.unsent_acks)} acknowledgement row(s) not marked sent at the end"
        )
    duplicates = sum(n - 1 for n in account.deliveries.values() if n > 1)
    allowed = sum(p.between_accept_and_mark for p in phases)
    if duplicates > allowed:
        found.append(
            f"{duplicates} duplicate acknowledgement(s), but only {allowed} kill(s) "
            "or outage(s) landed between SMTP acceptance and marking"
        )
    if account.unknown_deliveries:
        found.append(
            f"{account.unknown_deliveries} mail(s) at the sink match no acknowledgement row"
        )
    return found
