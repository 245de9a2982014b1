"""Routing rules on the real processing path: at ticket creation they choose queue, priority,
SLA policy, assignee, tags and the acknowledgement; on follow-ups they raise priority and
bring the deadline nearer; each match is on the ticket's record. Both databases."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.app import Step, build_app
from mailbridge.cli.tickets import list_tickets, show_ticket
from mailbridge.db import queries
from mailbridge.db.models import Article
from mailbridge.errors import ConfigError
from mailbridge.tickets.deadlines import on_staff_reply
from tests.support.builders import mail
from tests.support.sla_world import NOWHERE, STAFF, START, H, World, make_world, policy, text_of

pytestmark = pytest.mark.db

UNHAPPY = str(default_templates_dir() / "rules" / "unhappy-customers.toml")
VIP_RULE = {
    "name": "vip customers",
    "when": {"from_domain": "*bigclient.example"},
    "then": {
        "queue": "vip",
        "priority": "high",
        "sla_policy": "vip",
        "tags": ["vip"],
        "assignee": "anna@shop.example",
    },
}
POLICIES = [policy(), policy("vip", first="1h", resolution="1d")]


class Worlds:
    """Makes worlds with rules, and closes them after the test."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.tmp_path, self.database_url = tmp_path, database_url
        self.made: list[World] = []

    def __call__(
        self, rules: list[dict[str, Any]], include: list[str] | None = None, **sections: Any
    ) -> World:
        world = make_world(
            self.tmp_path,
            self.database_url,
            sla=POLICIES,
            rule=rules,
            rules={"include": include or []},
            **sections,
        )
        self.made.append(world)
        return world


@pytest.fixture
def world_with(tmp_path: Path, database_url: str) -> Iterator[Worlds]:
    worlds = Worlds(tmp_path, database_url)
    yield worlds
    for world in worlds.made:
        world.app.close()


def events(world: World, *types: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for e in world.events(*types)]


def tags(world: World) -> list[str]:
    with world.session() as session:
        return queries.ticket_tags(session, world.ticket().id)


def staff_answers(world: World) -> None:
    with world.session() as session:
        ticket = session.get_one(type(world.ticket()), world.ticket().id)
        session.add(
            Article(
                ticket_id=ticket.id,
                direction="out",
                author_kind="staff",
                kind="reply",
                from_name="",
                from_address="anna@shop.example",
                to=[ticket.requester_address],
                cc=[],
                subject="Re",
                text_body="Hi",
                internal=False,
                defects=[],
                created_at=world.now,
            )
        )
        on_staff_reply(Step(session, world.app, world.now), ticket)


def test_a_matching_rule_routes_the_new_ticket(world_with: Worlds) -> None:
    world = world_with([VIP_RULE])
    world.receive(mail("Boss <boss@bigclient.example>", "Invoice", "Where is my invoice?"))

    ticket = world.ticket()
    assert (ticket.queue, ticket.priority, ticket.sla_policy, ticket.assignee) == (
        "vip",
        "high",
        "vip",
        "anna@shop.example",
    )
    assert ticket.first_response_due_at == START + H  # the vip policy's hour, not 8
    assert tags(world) == ["vip"]
    shown = io.StringIO()
    show_ticket(world.app, 1000, False, shown)
    assert "  assignee: anna@shop.example\n  sla_policy: vip\n" in shown.getvalue()
    assert "  tags: vip\n" in shown.getvalue()
    assert events(world, "rule_matched") == [
        (
            "rule_matched",
            {
                "rule": "vip customers",
                "actions": {
                    "queue": "vip",
                    "priority": "high",
                    "sla_policy": "vip",
                    "assignee": "anna@shop.example",
                    "tags": ["vip"],
                },
            },
        )
    ]

    world.receive(mail("Ada <ada@customer.example>", "Invoice", "Where is my invoice?"))
    other = world.ticket(1001)
    assert (other.queue, other.priority, other.sla_policy, other.assignee) == (
        "support",
        "normal",
        "standard",
        None,
    )


def test_no_ack_and_ack_template(tmp_path: Path, world_with: Worlds) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), templates)
    (templates / "en" / "ack_partner.txt.j2").write_text(
        "Subject: Re: {{ ticket_tag }} received\n\nPartner desk: we have ticket {{ ticket_tag }}.\n"
    )
    rules = [
        {"name": "internal", "when": {"to_detail": "internal"}, "then": {"no_ack": True}},
        {
            "name": "partners",
            "when": {"from_domain": "partner.example"},
            "then": {"ack_template": "ack_partner"},
        },
    ]
    world = world_with(rules, templates={"dir": str(templates)})
    world.receive(
        mail(
            "Ugo <ugo@shop.example>",
            "Report",
            "Daily numbers attached.",
            to="support+internal@shop.example",
        )
    )
    world.receive(mail("Bea <bea@partner.example>", "Stock", "Can we order 40 more?"))

    acks = world.mails("ack")
    assert len(acks) == 1
    subject, text = text_of(acks[0])
    assert "Partner desk: we have ticket [#1001]" in text and subject.endswith("received")
    suppressed = events(world, "ack_suppressed")
    assert suppressed == [
        ("ack_suppressed", {"check": "rule", "reason": 'no_ack: rule "internal"'})
    ]


def test_an_unhappy_customer_is_followed_closer(world_with: Worlds) -> None:
    world = world_with([], include=[UNHAPPY])
    world.receive(
        mail(
            "Carla <carla@cliente.example>",
            "Addebito doppio",
            "È inaccettabile: mi avete addebitato due volte. Voglio il rimborso.",
        )
    )

    ticket = world.ticket()
    assert ticket.priority == "high"
    assert ticket.first_response_due_at == START + 4 * H  # not the policy's 8 hours
    assert tags(world) == ["complaint", "refund", "unhappy"]
    matched = [data["rule"] for _, data in events(world, "rule_matched")]
    assert matched == ["unhappy: complaint", "unhappy: refund demand"]
    (shortened,) = [data for _, data in events(world, "deadline_shortened")]
    assert shortened["reason"] == 'rule "unhappy: complaint", "unhappy: refund demand"'


def test_tickets_list_narrows_to_a_tag(world_with: Worlds) -> None:
    world = world_with([], include=[UNHAPPY])
    world.receive(mail("Carla <carla@cliente.example>", "Reclamo", "Servizio pessimo."))
    world.receive(mail("Ada <ada@customer.example>", "Hours", "When do you open?"))
    world.receive(mail("Dan <dan@customer.example>", "Refund", "Please refund order 12."))

    def listed(**narrowing: Any) -> list[int]:
        out = io.StringIO()
        list_tickets(world.app, None, True, out, **narrowing)
        return [t["number"] for t in json.loads(out.getvalue())]

    assert listed() == [1000, 1001, 1002]
    assert listed(tag="unhappy") == [1000, 1002]
    assert listed(tag="refund") == [1002]
    assert listed(tag="unhappy", due_within=5 * H) == [1000, 1002]  # 4 h, not the policy's 8
    assert listed(tag="vip") == []


def test_the_third_unanswered_mail_raises_priority_and_a_staff_reply_resets_the_count(
    world_with: Worlds,
) -> None:
    world = world_with([], include=[UNHAPPY])
    first = mail(
        "Dan <dan@customer.example>",
        "Card",
        "My card does not work.",
        message_id="<c1@customer.example>",
    )
    world.receive(first)

    def again(n: int, body: str = "Any news?") -> None:
        world.advance(H)
        world.receive(
            mail(
                "Dan <dan@customer.example>",
                "Re: Card",
                body,
                message_id=f"<c{n}@customer.example>",
                in_reply_to="<c1@customer.example>",
            )
        )

    again(2)
    assert world.ticket().priority == "normal" and events(world, "rule_matched") == []
    again(3)
    ticket = world.ticket()
    assert ticket.priority == "high"
    assert ticket.first_response_due_at == world.now + 2 * H
    (raised,) = [data for _, data in events(world, "priority_raised")]
    assert raised["reason"] == 'rule "unhappy: repeated chaser"'

    staff_answers(world)
    again(4)  # the first mail since our answer: not a chaser
    assert len(events(world, "rule_matched")) == 1


def test_a_customer_with_many_open_tickets_is_routed_by_that_count(world_with: Worlds) -> None:
    rules = [
        {
            "name": "many open",
            "when": {"open_tickets_at_least": 3},
            "then": {"priority": "high", "tags": ["many-open"]},
        }
    ]
    world = world_with(rules)
    for n, subject in enumerate(["Card", "Loan", "App"], 1):
        world.receive(
            mail(
                "Dan <dan@customer.example>",
                subject,
                "Help, please.",
                message_id=f"<o{n}@customer.example>",
            )
        )
        world.receive(mail(f"Other {n} <o{n}@customer.example>", subject, "Help."))
    dan = [world.ticket(number) for number in (1000, 1002, 1004)]
    assert [t.priority for t in dan] == ["normal", "normal", "high"]  # the third open one
    assert [t.priority for t in map(world.ticket, (1001, 1003, 1005))] == ["normal"] * 3

    with world.session() as session:  # two of Dan's are done with
        for ticket in dan[:2]:
            session.get_one(type(ticket), ticket.id).status = "resolved"
    world.receive(mail("Dan <dan@customer.example>", "Fees", "And another thing."))
    assert world.ticket(1006).priority == "normal"  # 1004 and this one: two open
    world.receive(
        mail(
            "Dan <dan@customer.example>",
            "Re: App",
            "Any news?",
            in_reply_to="<o3@customer.example>",
        )
    )
    assert world.ticket(1004).priority == "high"
    assert [d["rule"] for _, d in events(world, "rule_matched")] == ["many open"]


def test_a_follow_up_rule_never_lowers_priority(world_with: Worlds) -> None:
    rules = [{"name": "calm", "when": {"followup": True}, "then": {"priority": "low"}}]
    world = world_with([VIP_RULE, *rules])
    world.receive(
        mail(
            "Boss <boss@bigclient.example>",
            "Invoice",
            "Where is it?",
            message_id="<v1@bigclient.example>",
        )
    )
    world.receive(
        mail(
            "Boss <boss@bigclient.example>",
            "Re: Invoice",
            "Thanks",
            message_id="<v2@bigclient.example>",
            in_reply_to="<v1@bigclient.example>",
        )
    )
    assert world.ticket().priority == "high"
    matched = [d["rule"] for _, d in events(world, "rule_matched")]
    assert matched == ["vip customers", "vip customers", "calm"]
    assert len(events(world, "tagged")) == 1  # "vip" once, though matched twice


@pytest.mark.parametrize(
    ("rules", "include", "expected"),
    [
        (
            [{"name": "x", "then": {"sla_policy": "gold"}}],
            None,
            'rule "x": then.sla_policy: expected one of the [[sla]] policy names (standard, vip)',
        ),
        (
            [{"name": "x", "when": {"subject": {"regex": "(("}}}],
            None,
            'test.toml: rule "x": when.subject.regex: expected a regular expression',
        ),
        ([], ["missing.toml"], "rules.include: expected a readable rule file at"),
        (
            [{"name": "unhappy: complaint"}],
            [UNHAPPY],
            'rule "unhappy: complaint": name: expected a name no other rule has',
        ),
    ],
)
def test_bad_rules_are_configuration_errors(
    world_with: Worlds,
    rules: list[dict[str, Any]],
    include: list[str] | None,
    expected: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        world_with(rules, include)
    assert expected in str(caught.value)


def test_a_bad_rule_file_names_the_file(tmp_path: Path, world_with: Worlds) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[[rule]]\nname = "r"\nwhen.body.regex = "[a-"\n')
    with pytest.raises(ConfigError) as caught:
        world_with([], [str(broken)])
    assert str(caught.value).startswith(f'{broken}: rule "r": when.body.regex: expected')


def test_a_rule_choosing_a_missing_template_stops_the_start(
    tmp_path: Path,
    database_url: str,
) -> None:
    from tests.support.builders import make_config

    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        sla=POLICIES,
        staff=STAFF,
        rule=[{"name": "p", "then": {"ack_template": "ack_nowhere"}}],
    )
    with pytest.raises(ConfigError) as caught:
        build_app(config)
    assert 'rule "p": then.ack_template: expected the name of a template' in str(caught.value)
