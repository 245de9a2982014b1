"""Mail rendered when it is sent (outbound/render.py), on SQLite and PostgreSQL: the same
bytes as at queue time when nothing changed, an edited template applying to mail not yet
sent, a row that no longer renders failing with its reason rather than being lost, and
hostile values staying data."""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.app import App, build_app
from mailbridge.cli.outbox import list_outbox
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, Outbox
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.render import compose, outbox_bytes
from mailbridge.outbound.send import SendReport, send_pending
from tests.support.builders import mail, make_config
from tests.support.sla_world import NOWHERE, START, World, policy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def build(tmp_path: Path, database_url: str, sink: SmtpSink, clock: FrozenClock) -> App:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=sink,
        sla=[policy()],
        templates={"dir": str(tmp_path / "templates")},
    )
    return build_app(config, clock=clock)


@pytest.fixture
def world(tmp_path: Path, database_url: str, smtp_sink: SmtpSink) -> Iterator[World]:
    shutil.copytree(default_templates_dir(), tmp_path / "templates")
    clock = FrozenClock(START)
    made = World(build(tmp_path, database_url, smtp_sink, clock), clock)
    yield made
    made.app.close()


def send(app: App) -> SendReport:
    return asyncio.run(send_pending(app, draw=lambda: 0.5))


def text(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=email_policy.default)
    body = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


def ack(app: App) -> Outbox:
    with app.sessions() as session:
        return session.scalars(select(Outbox).where(Outbox.kind == "ack")).one()


def test_an_unchanged_template_sends_the_bytes_of_queue_time(
    world: World, smtp_sink: SmtpSink
) -> None:
    world.receive(mail())
    queued = ack(world.app)
    assert queued.raw == b"" and queued.recipe is not None  # only the row was written
    at_queue_time = outbox_bytes(world.app, queued)
    world.advance(timedelta(hours=3))  # Date and Message-ID stay those of queue time
    assert send(world.app).sent == 1
    (received,) = smtp_sink.wait_for(1)
    assert received.raw == at_queue_time
    assert f"Message-ID: <{queued.message_id}>".encode() in received.raw
    sent = ack(world.app)
    assert (sent.raw, sent.recipe) == (at_queue_time, None)  # kept as sent, for retries


def test_an_edited_template_applies_to_mail_not_yet_sent(
    tmp_path: Path, database_url: str, world: World, smtp_sink: SmtpSink
) -> None:
    world.receive(mail())
    before = outbox_bytes(world.app, ack(world.app))
    path = tmp_path / "templates" / "en" / "acknowledgement.txt.j2"
    path.write_text(path.read_text().replace("Hello", "Good morning"))
    edited = build(tmp_path, database_url, smtp_sink, world.clock)  # as a reload would
    try:
        assert send(edited).sent == 1
    finally:
        edited.close()
    (received,) = smtp_sink.wait_for(1)
    assert text(received.raw).startswith("Good morning,") and text(before).startswith("Hello,")


def test_a_server_out_of_reach_leaves_the_mail_to_be_rendered_later(
    tmp_path: Path, database_url: str, world: World
) -> None:
    world.receive(mail())
    away = build(tmp_path, database_url, NOWHERE, world.clock)  # nothing listens there
    try:
        report = send(away)
    finally:
        away.close()
    assert report.sent == 0
    waiting = ack(world.app)
    # Nothing reached a server: a template edited before the next attempt still applies.
    assert (waiting.raw, waiting.state, waiting.attempts) == (b"", "pending", 1)
    assert waiting.recipe is not None


def test_a_row_that_no_longer_renders_fails_with_its_reason(
    world: World, smtp_sink: SmtpSink
) -> None:
    world.receive(mail())
    queued = ack(world.app)
    assert queued.recipe is not None
    values = {k: v for k, v in queued.recipe["context"].items() if k != "ticket_tag"}
    with world.session() as session:  # as if queued by a release whose values differed
        session.execute(
            update(Outbox)
            .where(Outbox.id == queued.id)
            .values(recipe={**queued.recipe, "context": values})
        )
    report = send(world.app)
    assert (report.sent, report.failed) == (0, 1) and smtp_sink.received == []
    failed = ack(world.app)
    assert failed.state == "failed" and failed.recipe is not None  # kept for `outbox retry`
    assert failed.last_error is not None
    assert "RecipeError" in failed.last_error and "'acknowledgement'" in failed.last_error
    assert "ticket_tag" in failed.last_error
    listed = io.StringIO()
    list_outbox(world.app, "failed", False, listed)
    assert "RecipeError: cannot render template" in listed.getvalue()
    with world.app.sessions() as session:
        told = session.scalars(select(Event).where(Event.type == "mail_failed")).one()
    assert told.data["outbox_id"] == failed.id and "ticket_tag" in told.data["reason"]


def test_hostile_values_stay_data_and_headers_stay_safe(world: World, smtp_sink: SmtpSink) -> None:
    subject = "Help {{ 7 * 7 }} {% raw %}x"
    world.receive(mail(subject=subject, body="Hi\r\nBcc: thief@evil.example\r\n{{ config }}\n"))
    queued = ack(world.app)
    assert queued.recipe is not None
    # A stored header value that tries to add a header goes through the same header code.
    tampered = {**queued.recipe, "in_reply_to": "x@y\r\nBcc: thief@evil.example"}
    composed = compose(world.app, tampered, queued.message_id)
    assert b"\r\nBcc:" not in composed.split(b"\r\n\r\n", 1)[0]
    assert send(world.app).sent == 1
    (received,) = smtp_sink.wait_for(1)
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and list(received.recipients) == ["ada@customer.example"]
    # Values are data: template syntax in the customer's subject is shown, never run.
    values = {**queued.recipe["context"], "minimal": False, "subject": subject}
    full = {**queued.recipe, "context": values}
    shown = message_from_bytes(compose(world.app, full, queued.message_id))
    assert "Help {{ 7 * 7 }} {% raw %}x" in str(shown["Subject"])


def test_old_rows_with_bytes_still_send_as_they_are(world: World, smtp_sink: SmtpSink) -> None:
    world.receive(mail())
    queued = ack(world.app)
    raw = outbox_bytes(world.app, queued)
    with world.session() as session:  # a row written before recipes existed
        session.execute(update(Outbox).where(Outbox.id == queued.id).values(raw=raw, recipe=None))
    assert send(world.app).sent == 1
    assert smtp_sink.wait_for(1)[0].raw == raw
