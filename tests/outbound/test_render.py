"""Mail rendered when it is sent (outbound/render.py), on SQLite and PostgreSQL: the same
bytes as at queue time when nothing changed, an edited template applying to mail not yet
sent, a row that no longer renders failing with its reason rather than being lost, and
hostile values staying data."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.app import App, build_app
from mailbridge.cli.outbox import list_outbox
from mailbridge.clock import FrozenClock
from mailbridge.core.message import Attachment
from mailbridge.db.models import AttachmentRecord, Event, Outbox
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.render import compose, outbox_bytes
from mailbridge.outbound.send import SendReport, send_pending
from tests.support.builders import mail, make_config
from tests.support.sla_world import NOWHERE, START, World, policy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def build(
    tmp_path: Path, database_url: str, sink: SmtpSink, clock: FrozenClock, **sections: Any
) -> App:
    """An app with the templates copied to tmp_path, unless `sections` say otherwise."""
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=sink,
        sla=[policy()],
        **({"templates": {"dir": str(tmp_path / "templates")}} | sections),
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


# --- a notification carrying the customer's files -------------------------------------------

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64  # binary: every byte value
TEAM = "team@shop.example"


def with_photo(sender: str = "Ada <ada@customer.example>", payload: bytes = PHOTO) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = sender, "support@shop.example"
    message["Subject"], message["Message-ID"] = "Broken on arrival", make_msgid()
    message.set_content("It arrived broken, photo attached.\n")
    message.add_attachment(payload, "image", "jpeg", filename="broken.jpg")
    # Hostile: a name that decodes to a line break and a header of its own (RFC 2231).
    hostile = "filename*=utf-8''broken%22%0D%0ABcc%3A%20x%40evil.example.jpg"
    return message.as_bytes().replace(b'filename="broken.jpg"', hostile.encode())


def team_world(tmp_path: Path, database_url: str, sink: SmtpSink, place: str) -> World:
    """Notifications to the team address, the shipped templates; attachments in `place`."""
    clock = FrozenClock(START)
    team = {"team_address": TEAM, "escalation_address": "lead@shop.example"}
    storage = {"attachments": place}
    return World(
        build(tmp_path, database_url, sink, clock, templates={}, staff=team, storage=storage), clock
    )


@pytest.fixture(params=["database", "files"])
def team(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> Iterator[World]:
    made = team_world(tmp_path, database_url, smtp_sink, request.param)
    yield made
    made.app.close()


def notification(world: World) -> Outbox:
    with world.app.sessions() as session:
        return session.scalars(select(Outbox).where(Outbox.kind == "notification")).one()


def sent_to_team(sink: SmtpSink) -> EmailMessage:
    (received,) = [r for r in sink.received if TEAM in r.recipients]
    message = message_from_bytes(received.raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_notification_names_the_customers_file_and_sends_its_bytes(
    team: World, smtp_sink: SmtpSink
) -> None:
    team.receive(with_photo())
    queued = notification(team)
    # Only a row was written: the recipe names the file by its hash, it holds no bytes of it.
    assert queued.raw == b"" and queued.recipe is not None
    (named,) = queued.recipe["attachments"]
    assert named["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    assert len(json.dumps(queued.recipe)) < len(PHOTO) / 4
    # The bytes queue time would have given, had it composed with the parsed file.
    parsed = Attachment(
        filename=named["filename"],
        content_type="image/jpeg",
        size=len(PHOTO),
        inline=False,
        payload=PHOTO,
    )
    expected = compose(team.app, queued.recipe, queued.message_id, (parsed,))
    assert outbox_bytes(team.app, queued) == expected
    team.advance(timedelta(hours=1))
    assert send(team.app).sent == 2  # the acknowledgement and the notification
    message = sent_to_team(smtp_sink)
    (part,) = message.iter_attachments()
    assert part.get_content() == PHOTO
    head = expected.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and b"\r\nBcc:" not in expected
    assert notification(team).raw == expected  # kept as sent


def test_a_file_purged_before_sending_is_left_out_and_the_notification_still_goes(
    team: World, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    team.receive(with_photo())
    with team.session() as session:  # as a retention purge leaves it
        session.execute(update(AttachmentRecord).values(data=None, storage="purged"))
    assert send(team.app).sent == 2
    message = sent_to_team(smtp_sink)
    assert list(message.iter_attachments()) == []
    assert "It arrived broken" in text(message.as_bytes())
    assert "no longer stored" in caplog.text and "the mail goes without it" in caplog.text


def test_the_same_bytes_kept_by_another_ticket_still_go(team: World, smtp_sink: SmtpSink) -> None:
    team.receive(with_photo())
    team.receive(with_photo(sender="Bea <bea@customer.example>"))
    with team.session() as session:  # the first ticket's copy went; the second keeps one
        session.execute(
            update(AttachmentRecord)
            .where(AttachmentRecord.id == select(func.min(AttachmentRecord.id)).scalar_subquery())
            .values(data=None, storage="purged")
        )
    assert send(team.app).sent == 4
    for received in (r for r in smtp_sink.received if TEAM in r.recipients):
        message = message_from_bytes(received.raw, policy=email_policy.default)
        assert isinstance(message, EmailMessage)
        assert [p.get_content() for p in message.iter_attachments()] == [PHOTO]


def test_a_damaged_file_fails_the_notification_naming_it_never_sends_it_empty(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    world = team_world(tmp_path, database_url, smtp_sink, "files")
    try:
        world.receive(with_photo())
        sha = hashlib.sha256(PHOTO).hexdigest()
        (stored,) = [p for p in (tmp_path / "blobs").rglob(sha)]
        stored.chmod(0o600)
        stored.write_bytes(b"not the photo")
        report = send(world.app)
        assert (report.sent, report.failed) == (1, 1)  # the acknowledgement went
        assert [r for r in smtp_sink.received if TEAM in r.recipients] == []
        failed = notification(world)
        assert failed.state == "failed" and failed.recipe is not None  # for `outbox retry`
        assert failed.last_error is not None and "RecipeError" in failed.last_error
        assert f"outbox row {failed.id}" in failed.last_error
    finally:
        world.app.close()


def test_a_file_sent_many_times_is_read_from_one_row(team: World) -> None:
    # Hostile: the same bytes in many mails; rendering one notification loads one row.
    for n in range(6):
        team.receive(with_photo(sender=f"C{n} <c{n}@customer.example>"))
    loaded: list[object] = []

    def count(session: Session, instance: object) -> None:
        if isinstance(instance, AttachmentRecord):
            loaded.append(instance)

    queued = team.mails("notification")[-1]
    event.listen(team.app.sessions, "loaded_as_persistent", count)
    try:
        raw = outbox_bytes(team.app, queued)
    finally:
        event.remove(team.app.sessions, "loaded_as_persistent", count)
    assert len(loaded) == 1
    message = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    assert [p.get_content() for p in message.iter_attachments()] == [PHOTO]
