"""Push delivery over LMTP against the daemon's own listener: an answer per recipient,
550 for a stranger, the mail stored before 250 and processed at once, stored once however
often and however it arrives, 451 while the database is away, and bounded work for a
hostile client."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from mailbridge.app import App, build_app
from mailbridge.core.bounce import make_return_path
from mailbridge.core.envelope import mailbox_for
from mailbridge.db.models import InboundMessage
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound.push import LMTP_FOLDER
from mailbridge.service.lmtp_server import routes_of
from tests.support.builders import mail, make_config
from tests.support.lmtp import DaemonThread, deliver, free_port
from tests.support.sla_world import NOWHERE
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def rows(app: App, message_id: str) -> list[InboundMessage]:
    with app.sessions() as session:
        query = select(InboundMessage).where(InboundMessage.message_id == message_id)
        return list(session.scalars(query))


@dataclass
class World:
    app: App
    socket: str
    imap: EmbeddedImapServer
    sink: SmtpSink


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("lmtp")
    path = str(tmp / "lmtp.sock")
    with EmbeddedImapServer() as imap, SmtpSink() as sink:
        config = make_config(
            tmp,
            database_url=f"sqlite:///{tmp / 'mailbridge.db'}",
            imap=imap,
            smtp=sink,
            lmtp={"listen": f"unix:{path}", "max_recipients": 5, "max_connections": 3},
            tickets={"max_message_size": "200KB"},
        )
        app = build_app(config)
        try:
            with DaemonThread(app) as running:
                yield World(app, path, imap, sink)
            assert running.error is None
        finally:
            app.close()


def test_each_recipient_is_answered_and_the_mail_is_stored_then_acknowledged(
    world: World,
) -> None:
    acks = len(world.sink.received)
    raw = crlf(mail(message_id="<first@customer.example>"))
    result = deliver(
        world.socket,
        raw,
        ["support@shop.example", "nobody@shop.example", "Support+extra@Shop.Example"],
    )
    assert result.rcpt == [250, 550, 250]
    assert result.data == [250, 250]  # one answer per accepted recipient, after DATA
    (row,) = rows(world.app, "first@customer.example")  # committed before the 250
    assert (row.mailbox, row.folder, row.uidvalidity) == ("support", LMTP_FOLDER, 0)
    assert row.raw == (
        b"Return-Path: <a@c.example>\r\n"
        b"Delivered-To: support@shop.example\r\n"
        b"Delivered-To: Support+extra@Shop.Example\r\n" + raw
    )
    received = world.sink.wait_for(acks + 1, 15)  # processed at once: no poll interval
    assert received[-1].recipients == ("ada@customer.example",)


def test_the_same_mail_is_stored_once_over_lmtp_and_imap(world: World) -> None:
    acks = len(world.sink.received)
    raw = crlf(mail(message_id="<twice@customer.example>", subject="Twice"))
    assert deliver(world.socket, raw, ["support@shop.example"]).data == [250]
    again = deliver(world.socket, raw, ["support@shop.example"])  # the MTA retried
    assert again.data == [250]
    assert "already" in again.texts[0]
    world.imap.append(raw)  # and the same mail reaches the IMAP folder as well
    until(lambda: not world.imap.messages(), 15, "the IMAP copy to be moved away")
    assert len(rows(world.app, "twice@customer.example")) == 1
    world.sink.wait_for(acks + 1, 15)
    time.sleep(0.5)  # a second acknowledgement would be on its way by now
    assert len(world.sink.received) == acks + 1


def test_hostile_bare_lf_and_nul_are_stored_byte_for_byte(world: World) -> None:
    # Bare LF, NUL, CR alone, 8-bit bytes, a dot-stuffed line and a long line.
    raw = (
        b"From: Odd <odd@c.example>\nSubject: bytes\r\nMessage-ID: <odd@c.example>\n\n"
        b"nul\x00here\rcr alone\n\xff\xfe 8-bit\r\n.starts with a dot\r\n" + b"x" * 5000 + b"\r\n"
    )
    assert deliver(world.socket, raw, ["support@shop.example"]).data == [250]
    (row,) = rows(world.app, "odd@c.example")
    assert row.raw.endswith(b"\r\nDelivered-To: support@shop.example\r\n" + raw)


def test_hostile_sizes_recipients_addresses_and_connections_are_bounded(
    world: World,
) -> None:
    huge = crlf(mail(message_id="<huge@c.example>", body="y" * 300_000))
    result = deliver(world.socket, huge, ["support@shop.example"])
    assert result.rcpt == [250]
    assert result.data == [552]  # over [tickets] max_message_size
    assert rows(world.app, "huge@c.example") == []

    many = [f"support+{n}@shop.example" for n in range(7)]
    result = deliver(world.socket, crlf(mail(message_id="<many@c.example>")), many)
    assert result.rcpt == [250] * 5 + [452] * 2  # max_recipients
    assert result.data == [250] * 5
    (row,) = rows(world.app, "many@c.example")
    assert row.raw.count(b"Delivered-To:") == 5

    with smtplib.LMTP(world.socket, timeout=10) as client:
        client.ehlo()
        # No header can be smuggled in through an envelope address.
        assert client.docmd("MAIL FROM:<a@c.example>")[0] == 250
        client.send(b"RCPT TO:<support+\x00x@shop.example>\r\n")
        assert client.getreply()[0] == 550
        client.send(b"RCPT TO:<support+\rX-Evil:1@shop.example>\r\n")
        assert client.getreply()[0] >= 500
        assert client.docmd("RSET")[0] == 250
        client.send("MAIL FROM:<a\x85b@c.example>\r\n".encode())  # a C1 control: NEL
        assert client.getreply()[0] == 553

    held = [socket.socket(socket.AF_UNIX) for _ in range(4)]
    try:
        for sock in held:
            sock.connect(world.socket)
            sock.settimeout(10)
        greetings = [sock.recv(100)[:3] for sock in held]
    finally:
        for sock in held:
            sock.close()
    assert greetings == [b"220"] * 3 + [b"421"]  # max_connections


@pytest.mark.postgres
def test_the_database_away_answers_451_and_the_retry_is_stored(
    tmp_path: Path, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    port = free_port()
    with (
        TcpProxy(url.host or "127.0.0.1", url.port or 5432) as line,
        EmbeddedImapServer() as imap,
        SmtpSink() as sink,
    ):
        config = make_config(
            tmp_path,
            database_url=url.set(host=line.host, port=line.port).render_as_string(False),
            imap=imap,
            smtp=sink,
            lmtp={"listen": f"127.0.0.1:{port}"},
        )
        app = build_app(config)
        raw = crlf(mail(message_id="<outage@c.example>"))
        try:
            with DaemonThread(app):
                line.cut()
                result = deliver(("127.0.0.1", port), raw, ["support@shop.example"])
                assert result.data == [451]
                line.restore()
                until(
                    lambda: (
                        deliver(("127.0.0.1", port), raw, ["support@shop.example"]).data == [250]
                    ),
                    15,
                    "the retry to be taken",
                )
                sink.wait_for(1, 15)
            assert len(rows(app, "outage@c.example")) == 1
        finally:
            app.close()


def test_each_brand_gets_its_bounces_back(tmp_path: Path) -> None:
    """A mailbox answering under its own brand sends with its own envelope sender; the
    bounces to it (VERP included) reach that mailbox, the house's reach the first."""
    house = make_config(tmp_path, database_url="sqlite://", imap=NOWHERE, smtp=NOWHERE).mailbox[0]
    served = house.model_dump(include={"host", "port", "security", "username", "password_env"})
    config = make_config(
        tmp_path,
        database_url="sqlite://",
        imap=NOWHERE,
        smtp=NOWHERE,
        mailbox=[
            {**served, "name": "support", "address": "support@shop.example"},
            {
                **served,
                "name": "beta",
                "address": "inbox@beta.example",
                "from": "Beta Help <help@beta.example>",
                "bounce_address": "bounces@beta.example",
            },
        ],
    )
    smtp = config.smtp.model_copy(update={"bounce_address": "bounces@shop.example"})
    routes = routes_of(config.model_copy(update={"smtp": smtp}))
    assert mailbox_for(make_return_path("bounces@beta.example", 7, "<m@beta.example>"), routes) == (
        "beta"
    )
    assert mailbox_for("bounces+b8-x@shop.example", routes) == "support"
    assert mailbox_for("inbox+t1-a-b@beta.example", routes) == "beta"
