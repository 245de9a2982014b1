"""Tickets with known timestamps for the report's tests, written straight into a real
database (no mail path: the figures must follow from the rows alone), and the report of
them under a frozen clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.report import Grouping, Period, Report, period_of_dates
from mailbridge.core.states import OutboxState, TicketStatus
from mailbridge.db.models import Escalation, Event, Outbox, Ticket, TicketTag
from mailbridge.reports import make_report
from tests.support.builders import make_config
from tests.support.sla_world import NOWHERE

ROME = ZoneInfo("Europe/Rome")
ROME_OFFICE = {
    "timezone": "Europe/Rome",
    "holidays": "IT",
    "hours": {day: ["09:00-13:00", "14:00-18:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}
POLICIES = [
    {"name": "office", "first_response": "8h", "resolution": "40h", "business_hours": True,
     "queues": ["billing"]},
    {"name": "standard", "first_response": "8h", "resolution": "5d"},
]  # fmt: skip


def rome(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A moment of 2026 on Rome's wall clock, in UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=ROME).astimezone(UTC)


@dataclass
class Made:
    """One ticket to write, with what happened to it."""

    created: datetime
    policy: str = "standard"
    queue: str = "default"
    assignee: str | None = None
    language: str | None = "en"
    mailbox: str = "support"
    status: TicketStatus = TicketStatus.WAITING
    first_due: datetime | None = None
    responded: datetime | None = None
    resolution_due: datetime | None = None
    resolved: datetime | None = None
    waiting_since: datetime | None = None
    ack_sent: datetime | None = None
    ack_pending: bool = False
    tags: tuple[str, ...] = ()
    escalations: tuple[tuple[int, datetime], ...] = ()  # (level, fired at)
    events: tuple[tuple[str, datetime, dict[str, Any]], ...] = ()
    subject: str = "Where is my order?"
    number: int = field(default=0)


class ReportWorld:
    def __init__(self, app: App, clock: FrozenClock) -> None:
        self.app, self.clock = app, clock
        self.count = 0

    def add(self, *made: Made) -> None:
        with self.app.transaction() as session:
            for m in made:
                self.count += 1
                ticket = Ticket(
                    number=1000 + self.count,
                    subject=m.subject,
                    requester_address=f"c{self.count}@customer.example",
                    mailbox=m.mailbox,
                    queue=m.queue,
                    status=m.status,
                    language=m.language,
                    assignee=m.assignee,
                    sla_policy=m.policy,
                    created_at=m.created,
                    updated_at=m.created,
                    first_response_due_at=m.first_due,
                    first_responded_at=m.responded,
                    resolution_due_at=m.resolution_due,
                    resolved_at=m.resolved,
                    waiting_since=m.waiting_since,
                )
                session.add(ticket)
                session.flush()
                m.number = ticket.number or 0
                self._around(session, ticket.id, m)

    def _around(self, session: Any, ticket_id: int, m: Made) -> None:
        for tag in m.tags:
            session.add(TicketTag(ticket_id=ticket_id, tag=tag, added_at=m.created))
        if m.ack_sent is not None or m.ack_pending:
            session.add(
                Outbox(
                    ticket_id=ticket_id,
                    kind="ack",
                    envelope_from="support@shop.example",
                    envelope_to=["c@customer.example"],
                    message_id=f"<ack.{ticket_id}@shop.example>",
                    raw=b"Subject: ack\r\n\r\nhello\r\n",
                    state=OutboxState.PENDING if m.ack_pending else OutboxState.SENT,
                    next_attempt_at=m.created,
                    created_at=m.created,
                    sent_at=m.ack_sent,
                )
            )
        for level, fired in m.escalations:
            deadline = "first_response"
            session.add(
                Escalation(
                    ticket_id=ticket_id,
                    policy=m.policy,
                    deadline=deadline,
                    level=level,
                    due_at=fired,
                    fired_at=fired,
                )  # fmt: skip
            )
        for kind, at, data in m.events:
            session.add(Event(ticket_id=ticket_id, at=at, type=kind, data=data))

    def report(self, period: Period, by: Grouping) -> Report:
        return make_report(self.app, period, by)


def make_report_world(tmp_path: Path, database_url: str, now: datetime) -> ReportWorld:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        sla=POLICIES,
        calendar=ROME_OFFICE,
    )
    clock = FrozenClock(now)
    return ReportWorld(build_app(config, clock=clock), clock)


THREE_WEEKS = period_of_dates(datetime(2026, 11, 23).date(), datetime(2026, 12, 13).date(), ROME)
H = timedelta(hours=1)
