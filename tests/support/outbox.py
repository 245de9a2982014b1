"""An application that sends to a test's SMTP sink and reaches no IMAP server, and outbox
rows written directly, as queue_mail would write them."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.compose import Outgoing, build_message
from mailbridge.core.message import Address
from mailbridge.db.models import Outbox
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.render import RecipeError, outbox_bytes
from tests.support.builders import make_config

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NO_IMAP = SimpleNamespace(host="127.0.0.1", port=1, username="support", password="unused")


def make_app(
    tmp_path: Path, database_url: str, sink: SmtpSink, clock: FrozenClock, **smtp: Any
) -> App:
    config = make_config(tmp_path, database_url=database_url, imap=NO_IMAP, smtp=sink)
    if smtp:
        config = config.model_copy(update={"smtp": config.smtp.model_copy(update=smtp)})
    return build_app(config, clock=clock)


def queue(app: App, *to: str, n: int = 1) -> int:
    """One outbox row, as queue_mail would write it; its id."""
    message_id = f"mb.test.{n}.0a1b2c3d4e5f@shop.example"
    raw = build_message(
        Outgoing(
            from_=Address("Shop Support", "support@shop.example"),
            to=tuple(Address("", a) for a in to),
            subject=f"[#100{n}] We have your message",
            text="We have your message.\n",
            html=None,
            message_id=message_id,
            auto_submitted="auto-replied",
            date=app.clock.now(),
        )
    )
    with app.transaction() as session:
        row = Outbox(
            kind="ack",
            envelope_from="support@shop.example",
            envelope_to=list(to),
            message_id=message_id,
            raw=raw,
            state="pending",
            attempts=0,
            next_attempt_at=app.clock.now(),
            created_at=app.clock.now(),
        )
        session.add(row)
        session.flush()
        return row.id


def row(app: App, row_id: int) -> Outbox:
    with app.sessions() as session:
        return session.get_one(Outbox, row_id)


def with_bytes(app: App, rows: list[Outbox]) -> list[Outbox]:
    """The rows (loaded, detached) with `raw` as each will be sent: a row still to be
    rendered is rendered through outbound/render.py, as the sender would; one that no
    longer renders keeps its empty `raw`, as the sender leaves it."""
    for row in rows:
        if row.recipe is not None:
            with suppress(RecipeError):
                row.raw = outbox_bytes(app, row)
    return rows
