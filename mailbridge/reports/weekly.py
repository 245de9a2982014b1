"""The weekly report by mail: at `[reports] weekly_on` each week, the pictures of the last
four full weeks (the last one set apart) go to `weekly_to` through the outbox, as HTML with a
plain-text alternative, in the report's language (when, and which weeks: core/weekly_report.py).

Once per week, whichever instance runs it: the week is claimed by inserting its row into the
`weekly_report` ledger, whose key is the week, in the transaction that queues the mail
(docs/architecture.md, invariant 3). A second instance's insert finds the row (on
PostgreSQL it waits for the first transaction and then does nothing; SQLite's write lock is
taken first, so it reads what the first committed) and queues nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.app import App, Step
from mailbridge.core.message import Address
from mailbridge.core.report_html import render_html
from mailbridge.core.report_pictures import Pictures, render_text, subject_line
from mailbridge.core.weekly_report import due_week, shown_period
from mailbridge.db import queries
from mailbridge.db.models import WeeklyReport
from mailbridge.outbound.personal import ComposedMail, queue_composed_mail
from mailbridge.outbound.queue import Queued
from mailbridge.reports.pictures import make_pictures

__all__ = ["send_weekly_report"]

log = logging.getLogger(__name__)


def send_weekly_report(app: App) -> int:
    """Queue the weekly report when it is due and not yet queued; 1 when this call did.

    Cheap when there is nothing to do: without recipients, before the moment, or once the
    week is settled, it reads the clock and at most one row, and writes nothing. The
    pictures are made before the claim, outside its transaction, so the write lock is held
    only for the insert and the queueing."""
    settings = app.config.reports
    if not settings.weekly_to:
        return 0
    now = app.clock.now()
    zone = app.config.calendar.zone
    week = due_week(now, settings.weekly_moment, zone)
    if week is None:
        return 0
    key = week.isoformat()
    with app.sessions() as session:
        if session.get(WeeklyReport, key) is not None:
            return 0
    pictures = make_pictures(app, shown_period(week, zone), highlight=key)
    with app.transaction() as session:
        step = Step(session, app, now)
        if not _claim(step, key):
            return 0
        row = _queue(step, pictures, key)
        session.execute(
            update(WeeklyReport).where(WeeklyReport.week == key).values(outbox_id=row.id)
        )
        queries.insert_event(
            session,
            None,
            now,
            "weekly_report_sent",
            {"week": key, "to": list(settings.weekly_to), "outbox_id": row.id},
        )
    log.info(
        "weekly report of the week of %s queued for %d address(es)", key, len(settings.weekly_to)
    )
    return 1


def _claim(step: Step, key: str) -> bool:
    """Insert the week's ledger row in this transaction; False when another run did."""
    session = step.session
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Any = insert(WeeklyReport).values(week=key, queued_at=step.now)
    # The row comes back only when this insert made it (the ORM's rowcount is -1 here).
    statement = statement.on_conflict_do_nothing(index_elements=["week"])
    return session.execute(statement.returning(WeeklyReport.week)).first() is not None


def _queue(step: Step, pictures: Pictures, key: str) -> Queued:
    """The mail: to every `weekly_to` address at once, its answers to the support address."""
    app = step.app
    language = app.config.report_language
    return queue_composed_mail(
        step,
        ComposedMail(
            kind="report",
            to=tuple(Address("", address) for address in app.config.reports.weekly_to),
            subject=subject_line(pictures, language),
            text=render_text(pictures, language),
            html=render_html(pictures, language),
            unique=f"report.{key.replace('-', '')}",
            reply_to=Address(app.sender.name, app.config.mailbox[0].address),
        ),
    )
