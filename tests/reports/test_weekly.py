"""The weekly report by mail on SQLite and PostgreSQL: queued at its moment and not before,
once a week however often and by however many instances it is tried, again the next week;
a multipart/alternative mail in the configured language, naming its week; and sent by the
daemon's ordinary sender to an SMTP server."""

from __future__ import annotations

import email
import email.policy
import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Event, Outbox, WeeklyReport
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.reports.weekly import send_weekly_report
from tests.support.builders import make_config
from tests.support.report_world import POLICIES, ROME_OFFICE, Made, ReportWorld, rome
from tests.support.served_app import app, body, run_pass, to
from tests.support.sla_world import NOWHERE

pytestmark = pytest.mark.db

__all__ = ["app"]  # the fixture the test through the daemon uses (with `clock` below)

LEADS = ["lead@shop.example", "Boss@Shop.Example"]
BEFORE = rome(30, 7, 59)  # Monday 30 November 2026, 07:59 in Rome
AT = rome(30, 8)
HOSTILE = '<b onclick="x()">Rimborso</b> & "altro"'
REPORTS = {"weekly_to": LEADS, "weekly_on": "mon 08:00"}


def desk(
    tmp_path: Path, database_url: str, *, tickets: bool = True, **sections: Any
) -> ReportWorld:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        sla=POLICIES,
        calendar=ROME_OFFICE,
        **{"reports": REPORTS, **sections},
    )
    clock = FrozenClock(BEFORE)
    world = ReportWorld(build_app(config, clock=clock), clock)
    if not tickets:
        return world
    world.add(
        Made(created=rome(24, 10), responded=rome(24, 13), first_due=rome(24, 18)),
        Made(created=rome(26, 9), first_due=rome(26, 17), subject=HOSTILE),  # never answered
        Made(created=rome(2, 10), responded=rome(2, 11)),  # a month before: in the trend
    )
    return world


def move_to(clock: FrozenClock, moment: datetime) -> None:
    clock.advance(moment - clock.now())


def reports(app: App) -> list[Outbox]:
    with app.sessions() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "report")))


def ledger(app: App) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(WeeklyReport.week).order_by(WeeklyReport.week)))


def parsed(row: Outbox) -> EmailMessage:
    message = email.message_from_bytes(row.raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_once_a_week_from_its_moment(tmp_path: Path, database_url: str) -> None:
    world = desk(tmp_path, database_url)
    app, clock = world.app, world.clock
    try:
        assert send_weekly_report(app) == 0 and reports(app) == [], "before the moment"
        move_to(clock, AT)
        assert send_weekly_report(app) == 1
        for later in (timedelta(0), timedelta(hours=9), timedelta(days=6, hours=15, minutes=59)):
            move_to(clock, AT + later)  # up to Sunday 23:59
            assert send_weekly_report(app) == 0
        move_to(clock, AT + timedelta(weeks=1, minutes=-1))
        assert send_weekly_report(app) == 0
        move_to(clock, AT + timedelta(weeks=1))
        assert send_weekly_report(app) == 1
        assert ledger(app) == ["2026-11-23", "2026-11-30"]
        first, second = reports(app)
        assert first.envelope_to == second.envelope_to == ["lead@shop.example", "boss@shop.example"]
        assert first.ticket_id is None and first.state == "pending"
        with app.sessions() as session:
            events = session.scalars(select(Event).where(Event.type == "weekly_report_sent"))
            assert [e.data["outbox_id"] for e in events] == [first.id, second.id]
    finally:
        app.close()


def test_two_instances_at_once_queue_it_once(tmp_path: Path, database_url: str) -> None:
    world = desk(tmp_path, database_url)
    world.app.close()
    apps = [build_app(world.app.config, clock=world.clock) for _ in range(2)]
    try:
        for week in range(3):
            move_to(world.clock, AT + timedelta(weeks=week))
            start = threading.Barrier(len(apps))
            queued: list[int] = []

            def instance(
                other: App, start: threading.Barrier = start, queued: list[int] = queued
            ) -> None:
                start.wait()
                queued.append(send_weekly_report(other))

            threads = [threading.Thread(target=instance, args=(other,)) for other in apps]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert sorted(queued) == [0, 1], week
        assert len(reports(apps[0])) == 3
        assert ledger(apps[0]) == ["2026-11-23", "2026-11-30", "2026-12-07"]
    finally:
        for other in apps:
            other.close()


def test_the_mail_has_text_and_html_in_its_language(tmp_path: Path, database_url: str) -> None:
    world = desk(tmp_path, database_url, templates={"language": "it"})  # no [reports] language
    move_to(world.clock, AT + timedelta(days=2))  # Wednesday: still that week's
    try:
        assert send_weekly_report(world.app) == 1
        (row,) = reports(world.app)
    finally:
        world.app.close()
    message = parsed(row)
    assert message["Subject"] == "Rapporto sull'assistenza: settimana del 23 nov 2026"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["To"] == "lead@shop.example, boss@shop.example"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None
    plain, html = text.get_content(), page.get_content()
    for content in (plain, html):
        assert "settimana del 2 nov 2026" in content  # four weeks: 2, 9, 16 and 23 November
        assert "settimana del 30 nov" not in content
        assert "customer.example" not in content
    assert "(ultima settimana)" in plain and "Senza risposta alla fine: 1" in plain
    assert HOSTILE in plain
    assert "&lt;b onclick=&quot;x()&quot;&gt;Rimborso&lt;/b&gt; &amp; &quot;altro&quot;" in html
    assert "<b onclick" not in html and 'lang="it"' in html


def test_english_when_told_and_nothing_without_recipients(
    tmp_path: Path, database_url: str
) -> None:
    world = desk(tmp_path / "en", database_url, templates={"language": "it"},
                 reports={**REPORTS, "language": "en"})  # fmt: skip
    nobody = desk(tmp_path / "nobody", database_url, tickets=False, reports={"weekly_to": []})
    for each in (world, nobody):
        move_to(each.clock, AT)
    try:
        # one database: the instance without recipients settles nothing for the other
        assert send_weekly_report(nobody.app) == 0 and ledger(nobody.app) == []
        assert send_weekly_report(world.app) == 1
        (row,) = reports(world.app)
        assert parsed(row)["Subject"] == "Support report: week of 23 Nov 2026"
    finally:
        world.app.close()
        nobody.app.close()


@pytest.mark.integration
def test_the_sender_delivers_it(
    app: App, smtp_sink: SmtpSink, imap_server: EmbeddedImapServer
) -> None:
    """Through a daemon pass: the report is queued at its moment and the ordinary sender
    hands it to the SMTP server, to every address at once."""
    del imap_server  # the pass polls it: nothing there
    clock = app.clock
    assert isinstance(clock, FrozenClock)
    move_to(clock, BEFORE)
    assert run_pass(app).weekly_reports == 0
    move_to(clock, AT)
    assert run_pass(app).weekly_reports == 1
    assert run_pass(app).weekly_reports == 0
    (received,) = to(smtp_sink, "lead@shop.example")
    assert sorted(received.recipients) == ["boss@shop.example", "lead@shop.example"]
    assert received.message["Subject"] == "Support report: week of 23 Nov 2026"
    assert "Unanswered at the end: 0" in body(received)
    assert reports(app)[0].state == "sent"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(BEFORE)


@pytest.fixture
def app_sections() -> dict[str, Any]:
    return {"reports": REPORTS, "calendar": {"timezone": "Europe/Rome"}}
