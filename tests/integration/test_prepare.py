"""Parsing in a second process (jobs.prepare): the same outcomes as parsing here, and a
message that kills that process is named, retried and quarantined without holding back
the others."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App, build_app
from mailbridge.core.classify import Identity
from mailbridge.core.message import ParsedMessage, ParseLimits, Verdict
from mailbridge.daemon import Daemon
from mailbridge.db.models import InboundMessage, Ticket
from mailbridge.embedded import EmbeddedImapServer, SmtpSink
from mailbridge.jobs import process
from mailbridge.jobs.prepare import ParserCrashed, Preparer, prepare
from tests.builders import mail, make_config

EML = Path(__file__).resolve().parents[1] / "data" / "eml"
IDENTITY = Identity(own_addresses=frozenset({"support@shop.example"}),
                    own_domains=frozenset({"shop.example"}), loop_token="mailbridge@shop.example")
LIMITS = ParseLimits(max_attachment_bytes=10_000)
CRASH = b"X-Test-Crash-Parser: yes"
RAISE = b"X-Test-Raise: yes"


class Unpicklable(Exception):
    def __init__(self, code: int, text: str) -> None:  # pickle calls it with one argument
        super().__init__(f"{code}: {text}")


def crashing(raw: bytes, limits: ParseLimits, identity: Identity) -> tuple[ParsedMessage, Verdict]:
    """prepare, except that a marked message kills the process or raises; runs in the
    second process, so it lives at module level."""
    if CRASH in raw:
        os._exit(3)
    if RAISE in raw:
        raise Unpicklable(7, "cannot parse this")
    return prepare(raw, limits, identity)


def corpus() -> list[tuple[int, bytes]]:
    files = sorted(EML.glob("*.eml"))
    return [(number, path.read_bytes()) for number, path in enumerate(files, start=1)]


def outcomes(preparer: Preparer, messages: list[tuple[int, bytes]]) -> dict[int, Any]:
    found: dict[int, Any] = {}
    for inbound_id, raw in messages:
        try:
            found[inbound_id] = preparer.result(inbound_id, raw)
        except Exception as exc:  # noqa: BLE001 - what each message gave is the point
            found[inbound_id] = exc
    return found


def test_the_second_process_gives_what_parsing_here_gives() -> None:
    messages = corpus()
    with Preparer(LIMITS, IDENTITY) as here:
        expected = outcomes(here, messages)
    with Preparer(LIMITS, IDENTITY, chunk=3) as there:
        there.start_parallel()
        assert there.parallel
        there.plan(messages[:5])
        there.plan(messages)  # read ahead: the rest join, nothing is sent twice
        # Asked in another order than planned, and one never planned.
        got = outcomes(there, messages[::-1] + [(99, mail(subject="Not planned"))])
    assert got.pop(99)[0].subject == "Not planned"
    assert got == expected
    assert {verdict.kind for _, verdict in got.values()} >= {"customer", "bounce"}


@pytest.mark.slow
def test_a_message_that_kills_the_process_is_named_and_the_others_are_not() -> None:
    messages = [(i, mail(subject=f"Question {i}")) for i in range(1, 13)]
    messages[4] = (5, mail(subject="Crash", headers={"X-Test-Crash-Parser": "yes"}))
    messages[9] = (10, mail(subject="Crash again", headers={"X-Test-Crash-Parser": "yes"}))
    messages[6] = (7, mail(subject="Raises", headers={"X-Test-Raise": "yes"}))
    with Preparer(LIMITS, IDENTITY, function=crashing, chunk=4) as preparer:
        preparer.start_parallel()
        preparer.plan(messages)
        got = outcomes(preparer, messages)
        assert preparer.parallel, "a crash restarts the process, it does not end parallel work"
    assert isinstance(got.pop(5), ParserCrashed)
    assert isinstance(got.pop(10), ParserCrashed)
    raised = got.pop(7)
    assert isinstance(raised, RuntimeError)
    assert str(raised) == "Unpicklable: 7: cannot parse this"
    assert [parsed.subject for parsed, _ in got.values()] == [
        f"Question {i}" for i in (1, 2, 3, 4, 6, 8, 9, 11, 12)
    ]


# --- in a pass -------------------------------------------------------------------------


class EagerPreparer(Preparer):
    """Parallel from the first message, with the crashing prepare function."""

    def __init__(self, limits: ParseLimits, identity: Identity, **_: object) -> None:
        super().__init__(limits, identity, parallel_from=1, function=crashing, chunk=2)


@pytest.fixture
def app(tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer,
        smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setattr(process, "Preparer", EagerPreparer)
    app = build_app(make_config(tmp_path, database_url=database_url, imap=imap_server,
                                smtp=smtp_sink, tickets={"max_attempts": 2}))
    yield app
    app.close()


def count(app: App, query: Any) -> int:
    with app.sessions() as session:
        return int(session.scalar(query) or 0)


@pytest.mark.slow
def test_a_parser_crash_in_a_pass_is_retried_then_quarantined(
    app: App, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    for i in range(1, 8):
        headers = {"X-Test-Crash-Parser": "yes"} if i == 3 else None
        imap_server.append(mail(f"C{i} <c{i}@customers.example>", f"Question {i}",
                                headers=headers))

    first = asyncio.run(Daemon(app).run_once())
    assert (first.processed.created, first.processed.failed) == (6, 1)
    assert len(smtp_sink.wait_for(6)) == 6
    with app.sessions() as session:
        crashed = session.scalars(select(InboundMessage).where(
            InboundMessage.state == "new")).one()
        assert (crashed.attempts, crashed.last_error) == (
            1, "ParserCrashed: the parsing process ended unexpectedly while preparing this "
               "message")

    second = asyncio.run(Daemon(app).run_once())
    assert (second.processed.failed, second.processed.quarantined) == (1, 1)
    assert count(app, select(func.count(Ticket.id))) == 6
    assert count(app, select(func.count(InboundMessage.id))
                 .where(InboundMessage.state == "quarantined")) == 1
