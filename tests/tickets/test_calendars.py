"""Named calendars on SQLite and PostgreSQL: tickets arriving at the same instant in a
mailbox counting Rome's office hours and one counting New York's get different deadlines,
promises in their own zone, and escalations each when its own calendar says; a queue's
calendar wins over the mailbox's, also when a ticket moves to it; a mailbox's own default
policy, and a rule over it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.app import Step
from mailbridge.db.models import Ticket
from mailbridge.tickets.deadlines import on_priority_or_queue_change
from tests.support.builders import IMAP_PASSWORD_ENV, mail
from tests.support.sla_world import NOWHERE, START, H, make_world, policy, text_of

pytestmark = pytest.mark.db

D = timedelta(days=1)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
CALENDARS = [
    {
        "name": "rome",
        "timezone": "Europe/Rome",
        "holidays": "IT",
        "hours": {day: ["09:00-13:00", "14:00-18:00"] for day in WEEKDAYS},
    },
    {
        "name": "new-york",
        "timezone": "America/New_York",
        "holidays": "US",  # Thanksgiving: Thursday 26 November 2026
        "hours": {day: ["09:00-17:00"] for day in WEEKDAYS},
    },
]
LEVEL = [{"at": "0", "notify": "lead@shop.example"}]
# No match keys on any: the first is the default; the others apply only where named.
POLICIES = [
    policy(first="8h", business_hours=True, levels=LEVEL),
    policy("us-hours", first="8h", resolution="3d", business_hours=True, levels=LEVEL),
    policy("vip", first="1h", business_hours=True, levels=LEVEL),
]
VIP_RULE = {
    "name": "vip",
    "when": {"from_domain": "bigclient.example"},
    "then": {"sla_policy": "vip"},
}
NIGHT_RULE = {
    "name": "night",
    "when": {"subject": {"words": ["night"]}},
    "then": {"queue": "night"},
}


def mailbox(name: str, address: str, **keys: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": address,
        "host": NOWHERE.host,
        "port": NOWHERE.port,
        "security": "none",
        "username": NOWHERE.username,
        "password_env": IMAP_PASSWORD_ENV,
        **keys,
    }


def test_two_mailboxes_two_calendars_same_instant(tmp_path: Path, database_url: str) -> None:
    world = make_world(
        tmp_path,
        database_url,
        sla=POLICIES,
        calendar=CALENDARS,
        mailbox=[
            mailbox("support", "support@shop.example", calendar="rome"),
            mailbox("us", "help@shop.example", calendar="new-york", sla="us-hours"),
        ],
        tickets={"queues": {"night": {"calendar": "new-york"}}},
        rule=[VIP_RULE, NIGHT_RULE],
    )
    try:
        world.at(2 * D + 6 * H)  # Wednesday 25 November, 16:00 in Rome, 10:00 in New York
        world.receive(mail(subject="Printer on fire"))
        world.receive(mail(subject="Printer on fire", to="help@shop.example"), mailbox="us")
        world.receive(mail(subject="Night shift please"))  # the night queue: New York's
        world.receive(mail("Bo <bo@bigclient.example>", to="help@shop.example"), mailbox="us")
        rome, new_york, night, vip = world.tickets()

        # Rome: 2 hours on Wednesday, 6 on Thursday, due Thursday 16:00 (15:00 UTC).
        assert rome.first_response_due_at == START + 3 * D + 6 * H
        # New York: 7 hours on Wednesday, Thanksgiving closed, due Friday 10:00 (15:00 UTC).
        assert new_york.first_response_due_at == START + 4 * D + 6 * H
        assert night.first_response_due_at == new_york.first_response_due_at
        assert (rome.sla_policy, new_york.sla_policy, night.sla_policy) == (
            "standard",
            "us-hours",  # the mailbox's own default, in place of the keyless "standard"
            "standard",
        )
        assert vip.sla_policy == "vip"  # a rule's policy wins over the mailbox's default
        assert vip.first_response_due_at == START + 2 * D + 7 * H  # 1 New York hour

        promises = [text_of(row)[1] for row in world.mails("ack")]
        assert "by Thursday 26 November at 16:00" in promises[0]  # Rome's clock
        assert "by Friday 27 November at 10:00" in promises[1]  # New York's clock

        world.at(2 * D + 7 * H)
        assert world.sweep() == 1  # the vip ticket
        world.at(3 * D + 6 * H)
        assert world.sweep() == 1  # Rome's ticket; New York is closed for Thanksgiving
        world.at(4 * D + 6 * H - timedelta(seconds=1))
        assert world.sweep() == 0
        world.at(4 * D + 6 * H)
        assert world.sweep() == 2  # New York's and the night queue's
        escalated = [e.ticket_id for e in world.events("escalated")]
        assert escalated == [vip.id, rome.id, new_york.id, night.id]
        _, text = text_of(world.mails("escalation")[2])
        assert "by Friday 27 November at 10:00" in text  # in the ticket's zone

        with world.session() as session:  # Rome's ticket moves to the night queue
            moved = session.get_one(Ticket, rome.id)
            moved.queue = "night"
            on_priority_or_queue_change(Step(session, world.app, world.now), moved)
        assert world.ticket(rome.number).first_response_due_at == START + 4 * D + 6 * H
    finally:
        world.app.close()
