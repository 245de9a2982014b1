"""The IMAP adapter against a real, in-process IMAP server (pymap)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from imapclient import IMAPClient

from mailbridge.adapters.imap import ImapMailbox, ImapSettings
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.errors import PermanentError, TransientError
from tests.conftest import SelfSignedCertificate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def message(n: int) -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.org>\r\nTo: support@example.com\r\n"
        f"Subject: request {n}\r\nMessage-ID: <m{n}@example.org>\r\n\r\nBody {n}\r\n"
    ).encode()


def settings_for(server: EmbeddedImapServer, **changes: object) -> ImapSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": "none",
        "username": server.username,
        "password": server.password,
        "timeout": 5.0,
    }
    values.update(changes)
    return ImapSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def mailbox(imap_server: EmbeddedImapServer) -> Iterator[ImapMailbox]:
    with ImapMailbox(settings_for(imap_server)) as box:
        yield box


def inbox_flags(server: EmbeddedImapServer) -> dict[int, tuple[bytes, ...]]:
    with server.client() as client:
        client.select_folder("INBOX", readonly=True)
        return dict(client.get_flags(client.search("ALL")))


# --- connecting -------------------------------------------------------------------------


def test_connect_returns_uidvalidity(imap_server: EmbeddedImapServer) -> None:
    box = ImapMailbox(settings_for(imap_server))
    try:
        uidvalidity = box.connect()
        assert uidvalidity > 0
        assert box.uidvalidity() == uidvalidity
    finally:
        box.close()


def test_wrong_password_is_permanent_and_never_shows_the_password(
    imap_server: EmbeddedImapServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-pa55word-91x"
    caplog.set_level(logging.DEBUG)
    settings = settings_for(imap_server, password=secret)
    box = ImapMailbox(settings)
    with pytest.raises(PermanentError) as caught:
        box.connect()
    text = str(caught.value)
    assert imap_server.host in text and repr(imap_server.username) in text
    assert "login refused" in text
    chained = [caught.value, caught.value.__cause__, caught.value.__context__]
    assert not any(secret in repr(e) for e in chained if e is not None)
    assert caught.value.__suppress_context__
    # The server logs what it receives at DEBUG; that is pymap's business, not ours.
    client_side = [r.getMessage() for r in caplog.records if not r.name.startswith("pymap")]
    assert client_side and not any(secret in line for line in client_side)
    assert secret not in repr(settings) and secret not in repr(box)


def test_missing_folder_is_permanent(imap_server: EmbeddedImapServer) -> None:
    with pytest.raises(PermanentError, match="Nowhere"):
        ImapMailbox(settings_for(imap_server, folder="Nowhere")).connect()


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket closes
    settings = ImapSettings("127.0.0.1", port, "none", "support", "secret", timeout=2.0)
    with pytest.raises(TransientError):
        ImapMailbox(settings).connect()


def test_silent_server_times_out_as_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts into the backlog, never greets
        host, port = listener.getsockname()
        settings = ImapSettings(host, port, "none", "support", "secret", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            ImapMailbox(settings).connect()
        assert time.monotonic() - started < 3


def test_restarted_server_keeps_its_mail_and_refuses_while_down(
    imap_server: EmbeddedImapServer,
) -> None:
    imap_server.append(message(1))
    port = imap_server.port
    imap_server.stop()
    with pytest.raises(TransientError):
        ImapMailbox(settings_for(imap_server)).connect()
    imap_server.start()
    assert imap_server.port == port
    with ImapMailbox(settings_for(imap_server)) as box:
        assert [m.raw for m in box.fetch(box.uids_after(0))] == [message(1)]


@pytest.fixture(params=["tls", "starttls"])
def tls_server(
    request: pytest.FixtureRequest, self_signed_certificate: SelfSignedCertificate
) -> Iterator[EmbeddedImapServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(self_signed_certificate.cert, self_signed_certificate.key)
    with EmbeddedImapServer(security=request.param, tls_context=context) as server:
        yield server


def test_self_signed_certificate_is_rejected_by_default(tls_server: EmbeddedImapServer) -> None:
    with pytest.raises(PermanentError, match="certificate verification failed"):
        ImapMailbox(settings_for(tls_server, security=tls_server.security)).connect()


def test_a_trusted_certificate_is_accepted(
    tls_server: EmbeddedImapServer, self_signed_certificate: SelfSignedCertificate
) -> None:
    tls_server.append(message(1))
    trusting = ssl.create_default_context(cafile=str(self_signed_certificate.cert))
    settings = settings_for(tls_server, security=tls_server.security, ssl_context=trusting)
    with ImapMailbox(settings) as box:
        assert [m.raw for m in box.fetch(box.uids_after(0))] == [message(1)]


def test_starttls_demanded_but_not_offered_is_permanent(imap_server: EmbeddedImapServer) -> None:
    with pytest.raises(PermanentError, match="STARTTLS"):
        ImapMailbox(settings_for(imap_server, security="starttls")).connect()


# --- reading ----------------------------------------------------------------------------


def test_uids_after(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    assert mailbox.uids_after(0) == []
    imap_server.append_many([message(n) for n in range(3)])
    uids = mailbox.uids_after(0)
    assert len(uids) == 3 and uids == sorted(uids)
    assert mailbox.uids_after(uids[0]) == uids[1:]
    # "n:*" matches the highest UID even beyond it; the adapter must not return it.
    assert mailbox.uids_after(uids[-1]) == []
    assert mailbox.uids_after(uids[-1] + 100) == []


def test_fetch_returns_everything_in_uid_order_without_marking_seen(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    raws = [message(n) for n in range(450)]
    imap_server.append_many(raws)
    uids = mailbox.uids_after(0)
    fetched = list(mailbox.fetch(list(reversed(uids)), batch_size=200))
    assert [m.uid for m in fetched] == uids
    assert [m.raw for m in fetched] == raws
    first_date = fetched[0].internal_date
    assert first_date is not None and first_date.tzinfo == UTC
    assert all(b"\\Seen" not in flags for flags in inbox_flags(imap_server).values())


def test_fetch_skips_vanished_uids(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    imap_server.append_many([message(1), message(2)])
    uids = mailbox.uids_after(0)
    assert [m.uid for m in mailbox.fetch([*uids, uids[-1] + 50])] == uids


def test_sizes_say_what_fetching_each_message_brings(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    raws = [message(1), message(2) + b"x" * 5000]
    imap_server.append_many(raws)
    uids = mailbox.uids_after(0)
    sizes = mailbox.sizes([*uids, uids[-1] + 50])  # a vanished UID is left out
    assert sizes == {uid: len(raw) for uid, raw in zip(uids, raws, strict=True)}
    assert mailbox.sizes([]) == {}


def test_fetch_reads_one_batch_at_a_time_and_a_drop_is_transient(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    imap_server.append_many([message(n) for n in range(450)])
    stream = mailbox.fetch(mailbox.uids_after(0), batch_size=200)
    received = [next(stream)]
    imap_server.drop_connections()
    with pytest.raises(TransientError):
        for item in stream:
            received.append(item)
    # The first batch was already in hand; the second needed the dropped connection.
    assert len(received) == 200
    with pytest.raises(TransientError):
        mailbox.uids_after(0)  # no silent half-dead session afterwards
    mailbox.connect()
    assert len(mailbox.uids_after(0)) == 450


# --- changing ---------------------------------------------------------------------------


def test_mark_seen(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    imap_server.append_many([message(1), message(2)])
    first, second = mailbox.uids_after(0)
    mailbox.mark_seen([first])
    flags = inbox_flags(imap_server)
    assert b"\\Seen" in flags[first]
    assert b"\\Seen" not in flags[second]


def test_move_creates_the_folder_and_leaves_the_inbox(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    imap_server.append_many([message(1), message(2), message(3)])
    first, second, third = mailbox.uids_after(0)
    assert "Processed" not in imap_server.folders()
    mailbox.move([first, third], "Processed")
    assert "Processed" in imap_server.folders()
    assert imap_server.messages("Processed") == [message(1), message(3)]
    assert imap_server.messages("INBOX") == [message(2)]
    assert mailbox.uids_after(0) == [second]
    mailbox.move([second], "Processed")  # the folder exists now
    assert imap_server.messages("INBOX") == []


def test_a_folder_another_connection_creates_meanwhile_is_moved_into(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two mailboxes of one account move to the same new folder at once: the other one's
    # connection creates it between our look and our CREATE, which the server refuses.
    imap_server.append_many([message(1)])
    (uid,) = mailbox.uids_after(0)
    looked = IMAPClient.folder_exists

    def first_there(client: IMAPClient, folder: str) -> bool:
        found = looked(client, folder)
        if not found:
            with imap_server.client() as other:
                other.create_folder(folder)
        return found

    monkeypatch.setattr(IMAPClient, "folder_exists", first_there)
    mailbox.move([uid], "Processed")
    assert imap_server.messages("Processed") == [message(1)]
    assert imap_server.messages("INBOX") == []


def test_delete(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    imap_server.append_many([message(1), message(2)])
    first, second = mailbox.uids_after(0)
    mailbox.delete([first])
    assert imap_server.messages() == [message(2)]
    assert mailbox.uids_after(0) == [second]


def test_empty_uid_lists_do_nothing(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    imap_server.append(message(1))
    mailbox.mark_seen([])
    mailbox.move([], "Processed")
    mailbox.delete([])
    assert list(mailbox.fetch([])) == []
    assert imap_server.folders() == ["INBOX"]
    assert imap_server.messages() == [message(1)]


# --- waiting ----------------------------------------------------------------------------


def test_idle_times_out_without_mail(mailbox: ImapMailbox) -> None:
    assert mailbox.supports_idle()
    started = time.monotonic()
    assert mailbox.idle_wait(0.3) is False
    assert 0.25 <= time.monotonic() - started < 2
    assert mailbox.uids_after(0) == []  # the session is usable after IDLE


@pytest.mark.parametrize("when", ["before the wait", "during its NOOP"])
def test_an_interrupt_that_comes_before_idle_starts_still_ends_it(
    mailbox: ImapMailbox, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A poller told to stop just as it calls idle_wait (the first on this connection)
    must not sit out the whole wait: the daemon's stop would then outlast its grace."""
    if when == "before the wait":
        mailbox.interrupt()
    else:
        client = mailbox._connected()
        noop = client.noop

        def noop_then_interrupt() -> Any:
            answer = noop()
            mailbox.interrupt()
            return answer

        monkeypatch.setattr(client, "noop", noop_then_interrupt)
    started = time.monotonic()
    assert mailbox.idle_wait(20.0) is False
    assert time.monotonic() - started < 5
    assert mailbox.uids_after(0) == []  # the session is usable afterwards


def test_mail_reported_with_another_commands_answer_wakes_the_next_idle(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    """Mail that arrives while a SEARCH or FETCH runs is announced in that command's answer;
    the pass that sent it may not include the message, so the next IDLE must not wait."""
    assert mailbox.uids_after(0) == []
    imap_server.append(message(1))
    # A command other than NOOP/IDLE hears of it first (pymap announces EXISTS with it).
    mailbox._connected().search(["UID", "1:*"])
    started = time.monotonic()
    assert mailbox.idle_wait(5.0) is True
    assert time.monotonic() - started < 1
    assert len(mailbox.uids_after(0)) == 1


def test_idle_wakes_when_another_connection_appends(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    timer = threading.Timer(0.2, imap_server.append, args=(message(1),))
    started = time.monotonic()
    timer.start()
    try:
        assert mailbox.idle_wait(5.0) is True
    finally:
        timer.join()
    assert time.monotonic() - started < 3
    assert len(mailbox.uids_after(0)) == 1


def test_mail_that_lands_between_the_noop_and_idle_wakes_idle_at_once(
    imap_server: EmbeddedImapServer,
    mailbox: ImapMailbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Servers such as Dovecot and Cyrus report, as IDLE starts, mail that arrived since
    the last command; the embedded server does too, and the adapter hears it at once."""
    client = mailbox._connected()
    noop = client.noop

    def noop_then_mail_arrives() -> Any:
        answer = noop()
        imap_server.append(message(1))
        return answer

    monkeypatch.setattr(client, "noop", noop_then_mail_arrives)
    started = time.monotonic()
    assert mailbox.idle_wait(5.0) is True
    assert time.monotonic() - started < 2
    assert len(mailbox.uids_after(0)) == 1


class ScriptedImapServer:
    """Just enough IMAP for one session, answering IDLE with the continuation and news in
    one packet, which a real server does only when timing allows."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n")
            idle_tag = ""
            for line in lines:
                tag, command, *_ = line.decode().split() + [""]
                answers = {
                    "CAPABILITY": f"* CAPABILITY IMAP4rev1 IDLE\r\n{tag} OK done\r\n",
                    "SELECT": "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n"
                    f"{tag} OK [READ-WRITE] selected\r\n",
                    "IDLE": "+ idling\r\n* 1 EXISTS\r\n",
                    "LOGOUT": f"* BYE\r\n{tag} OK bye\r\n",
                }
                if tag == "DONE":
                    answer = f"{idle_tag} OK idle done\r\n"
                else:
                    idle_tag = tag
                    answer = answers.get(command.upper(), f"{tag} OK done\r\n")
                connection.sendall(answer.encode())
                if command.upper() == "LOGOUT":
                    return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


def test_news_in_the_same_packet_as_the_idle_continuation_is_heard_at_once() -> None:
    server = ScriptedImapServer()
    settings = ImapSettings(
        host="127.0.0.1",
        port=server.port,
        security="none",
        username="support",
        password="secret",
        timeout=5.0,
    )
    try:
        with ImapMailbox(settings) as box:
            started = time.monotonic()
            assert box.idle_wait(5.0) is True
            assert time.monotonic() - started < 2, "the news waited in imaplib's buffer"
    finally:
        server.close()


def test_idle_on_a_dropped_connection_is_transient(
    imap_server: EmbeddedImapServer, mailbox: ImapMailbox
) -> None:
    timer = threading.Timer(0.2, imap_server.drop_connections)
    timer.start()
    try:
        with pytest.raises(TransientError):
            mailbox.idle_wait(3.0)
    finally:
        timer.join()


def test_close_never_raises(imap_server: EmbeddedImapServer, mailbox: ImapMailbox) -> None:
    imap_server.drop_connections()
    mailbox.close()
    mailbox.close()
