"""Interop with a real Postfix: mail submitted to it on loopback reaches mailbridge over
LMTP (transport_maps), the acknowledgement goes back out through it to a sink, and mail
that arrives while mailbridge is stopped waits in Postfix's queue and is delivered on
restart, nothing lost. Needs Debian's postfix (installed by .ci/run); locally the test
skips without it."""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbridge.app import build_app
from mailbridge.db.models import InboundMessage
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.inbound.push import LMTP_FOLDER
from tests.support.builders import mail, make_config
from tests.support.lmtp import DaemonThread, free_port
from tests.support.postfix import Postfix, private_postfix

pytestmark = pytest.mark.integration


def submit(postfix: Postfix, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", postfix.smtp_port, timeout=15) as client:
        client.sendmail(sender, ["support@shop.example"], raw)


def until_queued(postfix: Postfix, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while postfix.queued() != count:
        assert time.monotonic() < deadline, f"{count} queued expected:\n{postfix.log()[-3000:]}"
        time.sleep(0.1)


def test_postfix_delivers_over_lmtp_and_keeps_mail_while_mailbridge_is_stopped(
    tmp_path: Path,
) -> None:
    lmtp_port = free_port()
    with (
        EmbeddedImapServer() as imap,
        SmtpSink() as sink,
        private_postfix(
            domain="shop.example", lmtp_port=lmtp_port, relay_port=sink.port
        ) as postfix,
    ):
        config = make_config(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'mailbridge.db'}",
            imap=imap,
            # Acknowledgements go out through Postfix, which relays them to the sink.
            smtp=type("Mta", (), {"host": "127.0.0.1", "port": postfix.smtp_port})(),
            lmtp={"listen": f"127.0.0.1:{lmtp_port}"},
        )
        app = build_app(config)
        senders = [f"customer{n}@customer.example" for n in range(3)]
        mails = [
            mail(f"Customer {n} <{s}>", f"Question {n}").replace(b"\n", b"\r\n")
            for n, s in enumerate(senders)
        ]
        try:
            with DaemonThread(app):
                submit(postfix, mails[0], senders[0])
                sink.wait_for(1, 15)
                until_queued(postfix, 0)
            # mailbridge is stopped: Postfix cannot connect and keeps the mail.
            submit(postfix, mails[1], senders[1])
            submit(postfix, mails[2], senders[2])
            until_queued(postfix, 2)
            assert len(sink.received) == 1
            with DaemonThread(app):
                postfix.flush()
                sink.wait_for(3, 20)
                until_queued(postfix, 0)
            with app.sessions() as session:
                stored = list(session.scalars(select(InboundMessage)))
        finally:
            app.close()
    assert sorted(m.recipients[0] for m in sink.received) == senders
    assert [(r.folder, r.mailbox) for r in stored] == [(LMTP_FOLDER, "support")] * 3
    assert all(b"\r\nDelivered-To: support@shop.example\r\n" in r.raw for r in stored)
