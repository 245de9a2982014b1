"""Which ticket events reach which webhook, through the real paths (processing, the sweep,
staff commands by mail, ratings, the command line) on SQLite and PostgreSQL: one row per
webhook per event, queued with the event, and nothing for spam or automated mail."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.cli.tickets import tag_ticket
from tests.support.builders import mail
from tests.support.sla_world import START, H, World, make_world, policy
from tests.support.staff_world import ADA, STAFF, staff_answer

pytestmark = pytest.mark.db

NOWHERE = "http://127.0.0.1:9/hook"  # nothing is delivered here: the rows are looked at
LEVELS = [{"at": "0"}, {"at": "+4h"}]


def webhook(name: str, *events: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "url": NOWHERE, "events": list(events), **more}


ALL = webhook("everything", "ticket_created", "escalated", "sla_breached", "unhappy", "resolved")


def build(tmp_path: Path, database_url: str, *hooks: dict[str, Any], **sections: Any) -> World:
    return make_world(
        tmp_path,
        database_url,
        sla=[policy(levels=LEVELS)],
        staff=STAFF,
        webhook=list(hooks or [ALL]),
        **sections,
    )


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = build(tmp_path, database_url)
    yield made
    made.app.close()


def announced(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(webhook, event, payload) of every webhook row, in order."""
    return [
        (row.envelope_to[0], row.envelope_from, json.loads(row.raw))
        for row in world.mails("webhook")
    ]


def events_of(world: World, name: str = "everything") -> list[str]:
    return [event for hook, event, _ in announced(world) if hook == name]


def ada_writes(world: World, subject: str = "Printer on fire", body: str = "Help!\n") -> None:
    world.receive(mail(f"Ada <{ADA}>", subject, body))


def test_each_level_is_told_once_and_level_one_as_the_breach_where_listed(
    tmp_path: Path, database_url: str
) -> None:
    world = build(
        tmp_path,
        database_url,
        webhook("breaches", "sla_breached", "escalated"),
        webhook("levels", "escalated"),
        webhook("new", "ticket_created"),
    )
    try:
        ada_writes(world)
        world.at(8 * H)  # the first response is due
        assert world.sweep() == 1 and world.sweep() == 0
        world.at(12 * H)
        assert world.sweep() == 1
        world.sweep()
        told = [(hook, event) for hook, event, _ in announced(world)]
        assert told == [
            ("new", "ticket_created"),
            ("breaches", "sla_breached"),
            ("levels", "escalated"),
            ("breaches", "escalated"),
            ("levels", "escalated"),
        ]
        breach = announced(world)[1][2]
        assert breach["escalation"] == {
            "deadline": "first_response",
            "level": 1,
            "due_at": (START + 8 * H).isoformat(),
            "overdue_minutes": 0,
        }
        assert (
            breach["ticket"]["escalation_level"] == 1
            and breach["at"] == (START + 8 * H).isoformat()
        )
        level_two = announced(world)[3][2]
        assert (level_two["escalation"]["level"], level_two["escalation"]["overdue_minutes"]) == (
            2,
            240,
        )
        assert level_two["ticket"]["escalation_level"] == 2
    finally:
        world.app.close()


def test_staff_resolve_and_close_are_told_as_resolved_once(world: World) -> None:
    ada_writes(world)
    world.advance(H)
    world.receive(staff_answer(world, 1000, "#resolve\nFixed it for you."))
    world.advance(H)
    world.receive(staff_answer(world, 1000, "#note\n#resolve\nagain, for the record"))
    assert events_of(world) == ["ticket_created", "resolved"], "resolving again is no news"
    payload = announced(world)[-1][2]
    assert (payload["ticket"]["status"], payload["ticket"]["resolved_at"]) == (
        "resolved",
        (START + H).isoformat(),
    )

    ada_writes(world, "Another printer")
    world.receive(staff_answer(world, 1001, "#close"))
    [(_, event, closed)] = [a for a in announced(world) if a[2]["ticket"]["number"] == 1001][1:]
    assert (event, closed["ticket"]["status"]) == ("resolved", "closed")


def test_a_customer_who_says_it_is_solved_resolves_it_and_is_told(world: World) -> None:
    ada_writes(world)
    world.advance(H)
    world.receive(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", "Solved, thanks!\n"))
    assert world.ticket().status == "resolved"
    assert events_of(world) == ["ticket_created", "resolved"]


def test_not_solved_makes_the_customer_unhappy_once(world: World) -> None:
    ada_writes(world)
    world.advance(H)
    world.receive(staff_answer(world, 1000, "#resolve\nFixed."))
    world.advance(H)
    world.receive(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", "No, it is not solved.\n"))
    assert world.ticket().status == "open"
    world.receive(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", "Still burning.\n"))
    assert events_of(world) == ["ticket_created", "resolved", "unhappy"]
    unhappy = announced(world)[-1][2]
    assert (unhappy["ticket"]["priority"], unhappy["ticket"]["status"]) == ("high", "open")


def test_the_unhappy_tag_by_staff_or_the_command_line_is_told(world: World) -> None:
    ada_writes(world)
    world.receive(staff_answer(world, 1000, "#note\n#tag unhappy\nangry on the phone"))
    ada_writes(world, "Another printer")
    tag_ticket(world.app, 1001, ["unhappy"], [], io.StringIO())
    tag_ticket(world.app, 1001, ["unhappy", "vip"], [], io.StringIO())  # unhappy already
    unhappy = [(a[2]["ticket"]["number"]) for a in announced(world) if a[1] == "unhappy"]
    assert unhappy == [1000, 1001]


def test_a_ticket_closed_for_want_of_an_answer_is_told_resolved(
    tmp_path: Path, database_url: str
) -> None:
    world = build(tmp_path, database_url, tickets={"remind_after": "1d", "close_after": "2d"})
    try:
        ada_writes(world)
        world.advance(H)
        world.receive(staff_answer(world, 1000, "Could you send the serial number?"))
        world.advance(timedelta(days=1, hours=1))
        world.sweep()
        assert events_of(world) == ["ticket_created"], "a reminder is no news"
        world.advance(timedelta(days=2, hours=1))
        world.sweep()
        assert world.ticket().status == "resolved"
        assert events_of(world) == ["ticket_created", "resolved"]
    finally:
        world.app.close()


def test_spam_and_automated_mail_are_not_announced(tmp_path: Path, database_url: str) -> None:
    world = build(tmp_path, database_url, spam={"block": ["spam.example"]})
    try:
        world.receive(mail("Spammer <win@spam.example>", "You won"))
        world.receive(
            mail(
                "Bot <bot@vendor.example>",
                "Out of office",
                headers={"Auto-Submitted": "auto-replied"},
            )
        )
        assert [t.status for t in world.tickets()] == ["spam", "new"]
        assert announced(world) == []
        ada_writes(world)
        assert events_of(world) == ["ticket_created"]
    finally:
        world.app.close()


def test_a_ticket_opened_as_spam_is_announced_once_when_it_is_not(
    tmp_path: Path, database_url: str
) -> None:
    world = build(tmp_path, database_url, spam={"block": ["bulk.example"]})
    try:
        world.receive(mail("Bea <bea@bulk.example>", "A real question"))
        ada_writes(world)
        assert [t.status for t in world.tickets()] == ["spam", "new"]
        assert events_of(world) == ["ticket_created"]  # Ada's only

        world.receive(staff_answer(world, 1000, "#notspam"))
        created = [p["ticket"]["number"] for _, e, p in announced(world) if e == "ticket_created"]
        assert created == [1001, 1000]

        # Ada's was announced when it opened: spam and back again tells nobody twice.
        world.receive(staff_answer(world, 1001, "#spam"))
        world.receive(staff_answer(world, 1001, "#notspam"))
        assert events_of(world) == ["ticket_created", "ticket_created"]
    finally:
        world.app.close()


def test_a_webhook_hears_only_the_events_it_lists(tmp_path: Path, database_url: str) -> None:
    world = build(tmp_path, database_url, webhook("closing", "resolved"))
    try:
        ada_writes(world)
        world.at(13 * H)
        world.sweep()
        assert announced(world) == []
        world.receive(staff_answer(world, 1000, "#resolve\nDone."))
        assert [(hook, event) for hook, event, _ in announced(world)] == [("closing", "resolved")]
    finally:
        world.app.close()
