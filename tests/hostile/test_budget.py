"""Mail built to stall the parser: a winmail.dat claiming four billion properties, 50,000 MIME
parts, 5,000 nested multiparts, text under 10,000 nested <div>s, and HTML that takes the
converter many seconds. Each becomes a ticket with a defect saying what was cut, or is
quarantined naming the budget it overran; the ordinary mail beside it gets its ticket and
acknowledgement in the same pass, within seconds; the log stays small."""

from __future__ import annotations

import base64
import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.service.daemon import PassReport
from tests.hostile.conftest import World, make_world
from tests.hostile.rawmail import HEAD, slow_html
from tests.support.builders import mail
from tests.support.dovecot import DovecotServer

pytestmark = pytest.mark.integration

CUSTOMER = "carla@customers.example"
PASS_WITHIN = 30.0  # seconds: a few on an idle machine; the bound leaves room for load
LOG_WITHIN = 20_000  # characters of log for the whole pass


def tnef_bomb() -> bytes:
    """The 44-byte winmail.dat: an attMAPIProps claiming 2^32-1 properties."""
    props = (
        struct.pack("<I", 0xFFFFFFFF)
        + struct.pack("<HHI", 0x0003, 0x3FDE, 65001) * 2
        + struct.pack("<HHH", 0x0002, 0x0017, 1)
        + b"\0"
    )
    attribute = (
        struct.pack("<BHHI", 1, 0x9003, 0x0006, len(props))
        + props
        + struct.pack("<H", sum(props) & 0xFFFF)
    )
    return struct.pack("<IH", 0x223E9F78, 0x0001) + attribute


def tnef_mail() -> bytes:
    return (
        HEAD % (b"tnef", b"tnef") + b"Content-Type: multipart/mixed; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--X\r\n"
        b"Content-Type: application/ms-tnef; name=winmail.dat\r\n"
        b"Content-Disposition: attachment; filename=winmail.dat\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(tnef_bomb())
        + b"--X--\r\n"
    )


def part_bomb() -> bytes:
    parts = b"".join(
        b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(50_000)
    )
    return (
        HEAD % (b"parts", b"parts")
        + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        + parts
        + b"--B--\r\n"
    )


def nesting_bomb() -> bytes:
    out = [HEAD % (b"nested", b"nested"), b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    out += [
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
        for i in range(1, 5000)
    ]
    out.append(b"--b4999\r\nContent-Type: text/plain\r\n\r\nthe bottom\r\n")
    out += [b"--b%d--\r\n" % i for i in range(4999, -1, -1)]
    return b"".join(out)


def deep_html() -> bytes:
    html = (
        b"<html><body><p>Dear support,</p>"
        + b"<div>" * 10_000
        + b"my order 4711 never arrived"
        + b"</div>" * 10_000
        + b"</body></html>"
    )
    return (
        HEAD % (b"deep html", b"deep-html")
        + b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        + html
        + b"\r\n"
    )


def ordinary() -> bytes:
    return mail(f"Carla <{CUSTOMER}>", "Where is my parcel?", "Hello, it has not come yet.\n")


def run_beside(world: World, hostile: bytes) -> tuple[PassReport, float]:
    """The hostile mail, then an ordinary one, in one daemon pass: (report, seconds)."""
    world.deliver(hostile, ordinary())
    started = time.monotonic()
    report = world.run()
    return report, time.monotonic() - started


def assert_ordinary_mail_answered(world: World) -> None:
    """Its ticket, and its acknowledgement sent in the pass."""
    (ticket,) = [t for t in world.tickets() if t.subject == "Where is my parcel?"]
    assert world.event_types(ticket.number)[:1] == ["created"]
    assert len(world.sent_to(CUSTOMER)) == 1


def defects_of(world: World, subject: str) -> list[str]:
    (ticket,) = [t for t in world.tickets() if t.subject == subject]
    (article,) = world.articles(ticket.number)
    return list(article.defects)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert len(caplog.text) < LOG_WITHIN, f"{len(caplog.text)} characters of log"


def test_a_winmail_dat_claiming_four_billion_properties(
    world: World, log: pytest.LogCaptureFixture
) -> None:
    _, seconds = run_beside(world, tnef_mail())

    defects = defects_of(world, "tnef")
    assert (
        "TNEF property list claims 4294967295 properties, holds 3: the rest were not read"
        in defects
    )
    assert_ordinary_mail_answered(world)
    assert seconds < PASS_WITHIN


class Dovecot(DovecotServer):
    """A private Dovecot that delivers as the embedded server does. The embedded server
    parses what it stores itself, and cannot store the next two mails: 5,000 levels end its
    connection in RecursionError, 50,000 parts outlast the client's timeout."""

    def append_many(self, raws: tuple[bytes, ...], folder: str = "INBOX") -> None:
        with self.client() as client:
            for raw in raws:
                client.append(folder, raw)


@pytest.fixture
def dovecot_world(tmp_path: Path, database_url: str, smtp_sink: SmtpSink) -> Iterator[World]:
    with Dovecot() as dovecot:
        made = make_world(tmp_path, database_url, dovecot, smtp_sink)  # type: ignore[arg-type]
        yield made
        made.app.close()


def test_fifty_thousand_mime_parts(dovecot_world: World, log: pytest.LogCaptureFixture) -> None:
    _, seconds = run_beside(dovecot_world, part_bomb())

    assert "more than 1000 MIME parts: the parts after the 1000th were not read" in defects_of(
        dovecot_world, "parts"
    )
    assert_ordinary_mail_answered(dovecot_world)
    assert seconds < PASS_WITHIN


def test_five_thousand_nested_multiparts(
    dovecot_world: World, log: pytest.LogCaptureFixture
) -> None:
    _, seconds = run_beside(dovecot_world, nesting_bomb())

    (ticket,) = [t for t in dovecot_world.tickets() if t.subject == "nested"]
    (article,) = dovecot_world.articles(ticket.number)
    assert article.from_address == "mallory@evil.example"  # the headers were read
    assert (
        "MIME parts nested deeper than 50 levels: what lies below was not read" in article.defects
    )
    assert_ordinary_mail_answered(dovecot_world)
    assert seconds < PASS_WITHIN


def test_text_under_ten_thousand_nested_divs(world: World, log: pytest.LogCaptureFixture) -> None:
    _, seconds = run_beside(world, deep_html())

    (ticket,) = [t for t in world.tickets() if t.subject == "deep html"]
    (article,) = world.articles(ticket.number)
    assert "my order 4711 never arrived" in article.text_body
    assert any(d.startswith("HTML converted to ") for d in article.defects)
    assert_ordinary_mail_answered(world)
    assert seconds < PASS_WITHIN


@pytest.fixture
def tight_world(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[World]:
    """The hostile world with a one-second parse budget."""
    made = make_world(
        tmp_path, database_url, imap_server, smtp_sink, tickets={"parse_timeout": "1s"}
    )
    yield made
    made.app.close()


def test_mail_that_keeps_the_parser_busy_is_stopped_at_its_budget(
    tight_world: World, log: pytest.LogCaptureFixture
) -> None:
    report, seconds = run_beside(tight_world, slow_html())

    assert (report.processed.created, report.processed.quarantined) == (1, 1)
    stopped, answered = tight_world.inbound()
    assert (stopped.state, stopped.attempts) == ("quarantined", 1)
    assert stopped.last_error == (
        "OverBudget: parsing took longer than 1 s ([tickets] parse_timeout): the parser was stopped"
    )
    assert stopped.raw.startswith(HEAD % (b"slow html", b"slow-html"))  # kept for a person
    assert answered.state == "processed"
    assert_ordinary_mail_answered(tight_world)
    assert tight_world.sent_to("mallory@evil.example") == []
    assert seconds < PASS_WITHIN
