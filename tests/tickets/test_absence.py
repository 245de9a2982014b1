"""tickets/absence.py on both databases: away and back as events, the absence that ends by
itself, and escalations meant for an away staff member going to the team."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.adapters.template_context import away_note_sample, sample_context
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.app import Step
from mailbridge.tickets.absence import away_map, away_until, set_away, set_back
from tests.support.builders import mail
from tests.support.sla_world import START, World, make_world, policy, text_of
from tests.support.staff_world import ALICE, STAFF

H = timedelta(hours=1)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """The first-response warning an hour before it is due goes to Alice."""
    made = make_world(
        tmp_path,
        database_url,
        sla=[policy(levels=[{"at": "-1h", "notify": ALICE}, {"at": "0", "notify": ALICE}])],
        staff=STAFF,
        calendar={"timezone": "Europe/Rome"},
    )
    yield made
    made.app.close()


def test_away_and_back_are_events_and_an_absence_ends_by_itself(world: World) -> None:
    with world.session() as session:
        step = Step(session, world.app, world.now)
        assert set_away(step, "Alice@Shop.example", START + 48 * H, source="mail", by=ALICE)
        assert not set_away(step, ALICE, START + 48 * H, source="mail", by=ALICE)  # no change
        assert set_away(step, ALICE, START + 72 * H, source="mail", by=ALICE)
    with world.session() as session:
        assert away_until(session, ALICE, world.now) == START + 72 * H
        assert away_map(session, world.now) == {ALICE: START + 72 * H}
        assert away_map(session, START + 72 * H) == {}
        step = Step(session, world.app, world.now)
        assert set_back(step, ALICE, source="command line", by="command line")
        assert not set_back(step, ALICE, source="command line", by="command line")
    events = world.events("staff_away", "staff_back")
    assert [(e.type, e.ticket_id, e.data["via"]) for e in events] == [
        ("staff_away", None, "mail"),
        ("staff_away", None, "mail"),
        ("staff_back", None, "command line"),
    ]
    assert events[-1].data["was_until"] == (START + 72 * H).isoformat()


def test_warnings_and_escalations_for_an_away_staff_member_go_to_the_team(world: World) -> None:
    world.receive(mail())
    with world.session() as session:
        set_away(
            Step(session, world.app, world.now), ALICE, START + 24 * H, source="mail", by=ALICE
        )
    world.at(7 * H)
    assert world.sweep() == 1
    world.at(8 * H)
    assert world.sweep() == 1
    notices = world.mails("sla_warning") + world.mails("escalation")
    assert [row.envelope_to for row in notices] == [["team@shop.example"]] * 2
    for row in notices:
        subject, _text = text_of(row)
        assert "(Alice is away until 24 Nov)" in subject


@pytest.mark.parametrize(
    ("language", "note"),
    [("en", "(Alice is away until 12 Jan)"), ("it", "(Alice è assente fino al 12 gen)")],
)
@pytest.mark.parametrize("template", ["staff_notification", "escalation", "sla_warning"])
def test_the_away_note_is_in_the_subject_in_both_languages(
    template: str, language: str, note: str
) -> None:
    templates = TemplateSet.load(default_templates_dir(), "en")
    context = dict(sample_context(language), away_note=away_note_sample(language))
    assert templates.render(template, context, language).subject.endswith(note)
    plain = templates.render(template, sample_context(language), language)
    assert "(Alice" not in plain.subject and not plain.subject.endswith(" ")
