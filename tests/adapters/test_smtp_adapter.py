"""The SMTP adapter against a real, in-process SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from mailbridge.adapters.smtp import (
    PartialDeliveryError,
    SmtpConnection,
    SmtpSettings,
    send_message,
)
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.errors import PermanentError, TransientError
from tests.conftest import SelfSignedCertificate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SENDER = "support@example.com"
CUSTOMER = "customer@example.org"


def message(n: int = 1) -> bytes:
    return (
        f"From: Support <{SENDER}>\r\nTo: {CUSTOMER}\r\nSubject: [#{n}] received\r\n"
        f"Message-ID: <ack{n}@example.com>\r\n\r\nWe have your message.\r\n"
        ".A line that starts with a dot.\r\n"
    ).encode()


def settings_for(sink: SmtpSink, **changes: object) -> SmtpSettings:
    values: dict[str, object] = {
        "host": sink.host,
        "port": sink.port,
        "security": "none",
        "timeout": 5.0,
        "local_hostname": "mailbridge.test",
    }
    values.update(changes)
    return SmtpSettings(**values)  # type: ignore[arg-type]


def send(settings: SmtpSettings, raw: bytes, recipients: tuple[str, ...] = (CUSTOMER,)) -> str:
    return asyncio.run(send_message(settings, raw, SENDER, recipients))


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- delivery ---------------------------------------------------------------------------


def test_delivers_the_bytes_unchanged(smtp_sink: SmtpSink) -> None:
    reply = send(settings_for(smtp_sink), message())
    assert "queued" in reply
    (mail,) = smtp_sink.wait_for(1)
    assert mail.raw == message()
    assert mail.sender == SENDER and mail.recipients == (CUSTOMER,)
    assert mail.message["Subject"] == "[#1] received"


def test_one_connection_carries_a_batch(smtp_sink: SmtpSink) -> None:
    async def send_batch() -> list[str]:
        async with SmtpConnection(settings_for(smtp_sink)) as connection:
            return [await connection.send(message(n), SENDER, [CUSTOMER]) for n in range(3)]

    replies = asyncio.run(send_batch())
    assert len(replies) == 3
    assert [m.raw for m in smtp_sink.wait_for(3)] == [message(n) for n in range(3)]
    assert smtp_sink.connections == 1


def test_a_refused_message_leaves_the_connection_usable(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1)

    async def send_two() -> str:
        async with SmtpConnection(settings_for(smtp_sink)) as connection:
            with pytest.raises(TransientError):
                await connection.send(message(1), SENDER, [CUSTOMER])
            return await connection.send(message(2), SENDER, [CUSTOMER])

    assert "queued" in asyncio.run(send_two())
    assert [m.raw for m in smtp_sink.received] == [message(2)]


def test_login_succeeds_with_the_right_password() -> None:
    with SmtpSink(username="support", password="s3cret") as sink:
        send(settings_for(sink, username="support", password="s3cret"), message())
        assert len(sink.wait_for(1)) == 1


# --- failures ---------------------------------------------------------------------------


def test_451_is_transient_with_its_code(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, 451, "4.3.0 try again later")
    with pytest.raises(TransientError, match="try again later") as caught:
        send(settings_for(smtp_sink), message())
    assert caught.value.code == 451
    assert smtp_sink.received == []
    send(settings_for(smtp_sink), message())  # only the next one failed
    assert len(smtp_sink.wait_for(1)) == 1


def test_550_is_permanent_with_its_code(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_always(550, "5.7.1 message rejected")
    for _ in range(2):
        with pytest.raises(PermanentError, match="rejected") as caught:
            send(settings_for(smtp_sink), message())
        assert caught.value.code == 550
    smtp_sink.recover()
    send(settings_for(smtp_sink), message())
    assert len(smtp_sink.received) == 1


def test_dropped_connection_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_next(1)
    with pytest.raises(TransientError) as caught:
        send(settings_for(smtp_sink), message())
    assert caught.value.code is None
    assert smtp_sink.received == []
    send(settings_for(smtp_sink), message())
    assert len(smtp_sink.received) == 1


def test_connection_refused_is_transient() -> None:
    settings = SmtpSettings("127.0.0.1", unused_port(), "none", timeout=2.0)
    with pytest.raises(TransientError):
        send(settings, message())


def test_stopped_sink_refuses_and_restarts_on_the_same_port(smtp_sink: SmtpSink) -> None:
    port = smtp_sink.port
    smtp_sink.stop()
    with pytest.raises(TransientError):
        send(settings_for(smtp_sink), message())
    smtp_sink.start()
    assert smtp_sink.port == port
    send(settings_for(smtp_sink), message())
    assert len(smtp_sink.received) == 1


def test_silent_server_times_out_as_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts into the backlog, never greets
        host, port = listener.getsockname()
        started = time.monotonic()
        with pytest.raises(TransientError):
            send(SmtpSettings(host, port, "none", timeout=0.3), message())
        assert time.monotonic() - started < 3


def test_wrong_password_is_permanent_and_never_shown() -> None:
    secret = "Wr0ng-pa55word-77q"
    with SmtpSink(username="support", password="s3cret") as sink:
        settings = settings_for(sink, username="support", password=secret)
        with pytest.raises(PermanentError, match="login refused for user 'support'") as caught:
            send(settings, message())
        assert caught.value.code == 535
        assert secret not in str(caught.value) and secret not in repr(settings)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
        assert sink.received == []


def test_some_recipients_refused_names_them(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipient("nobody@example.org", 550, "5.1.1 no such user")
    with pytest.raises(PartialDeliveryError, match="nobody@example.org") as caught:
        send(settings_for(smtp_sink), message(), (CUSTOMER, "nobody@example.org"))
    assert caught.value.code == 550
    assert set(caught.value.refused) == {"nobody@example.org"}
    assert "queued" in caught.value.reply
    assert smtp_sink.wait_for(1)[0].recipients == (CUSTOMER,)


def test_all_recipients_refused(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipient(CUSTOMER, 550, "5.1.1 no such user")
    with pytest.raises(PermanentError, match="no such user") as caught:
        send(settings_for(smtp_sink), message())
    assert caught.value.code == 550
    smtp_sink.refuse_recipient(CUSTOMER, 452, "4.2.2 mailbox full")
    with pytest.raises(TransientError, match="mailbox full"):
        send(settings_for(smtp_sink), message())


def test_starttls_demanded_but_not_offered_is_permanent(smtp_sink: SmtpSink) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        send(settings_for(smtp_sink, security="starttls"), message())


# --- internationalised addresses (RFC 6531) ------------------------------------------------

INTERNATIONAL = "josé@exämple.de"


def utf8_message() -> bytes:
    return (
        f"From: Support <{SENDER}>\r\nTo: José <{INTERNATIONAL}>\r\nSubject: [#1] "
        "received\r\nMessage-ID: <ack1@example.com>\r\n\r\nWe have it.\r\n"
    ).encode()


def test_smtputf8_is_asked_for_when_an_address_or_a_header_needs_it() -> None:
    with SmtpSink(smtputf8=True) as sink:
        send(settings_for(sink), utf8_message(), (INTERNATIONAL,))
        send(settings_for(sink), utf8_message(), (CUSTOMER,))  # the To header alone
        send(settings_for(sink), message(), (CUSTOMER,))
        international, header_only, plain = sink.wait_for(3)
    assert international.recipients == (INTERNATIONAL,)
    assert international.raw == utf8_message()

    def asked(mail: ReceivedMail) -> set[str]:
        return {option for option in mail.mail_options if not option.startswith("SIZE=")}

    assert asked(international) == asked(header_only) == {"SMTPUTF8", "BODY=8BITMIME"}
    assert asked(plain) == set()


def test_a_server_without_smtputf8_fails_such_a_mail_for_good_and_takes_the_next(
    smtp_sink: SmtpSink,
) -> None:
    async def send_two() -> str:
        async with SmtpConnection(settings_for(smtp_sink)) as connection:
            with pytest.raises(PermanentError) as caught:
                await connection.send(utf8_message(), SENDER, [INTERNATIONAL])
            assert str(caught.value) == (
                f"SMTP send via {smtp_sink.host}:{smtp_sink.port}: the mail needs SMTPUTF8 "
                f"(RFC 6531) for {INTERNATIONAL}, and the server does not offer it"
            )
            return await connection.send(message(2), SENDER, [CUSTOMER])

    assert "queued" in asyncio.run(send_two())
    assert [m.raw for m in smtp_sink.received] == [message(2)]


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture
def server_tls(self_signed_certificate: SelfSignedCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed_certificate.cert, self_signed_certificate.key)
    return context


@pytest.fixture(params=["tls", "starttls"])
def tls_sink(request: pytest.FixtureRequest, server_tls: ssl.SSLContext) -> Iterator[SmtpSink]:
    with SmtpSink(security=request.param, tls_context=server_tls) as sink:
        yield sink


def test_self_signed_certificate_is_rejected_by_default(tls_sink: SmtpSink) -> None:
    with pytest.raises(PermanentError, match="certificate verification failed"):
        send(settings_for(tls_sink, security=tls_sink.security), message())
    assert tls_sink.received == []


def test_a_trusted_certificate_is_accepted(
    tls_sink: SmtpSink, self_signed_certificate: SelfSignedCertificate
) -> None:
    trusting = ssl.create_default_context(cafile=str(self_signed_certificate.cert))
    settings = settings_for(tls_sink, security=tls_sink.security, ssl_context=trusting)
    send(settings, message())
    assert [m.raw for m in tls_sink.wait_for(1)] == [message()]
    assert tls_sink.connections == 1
