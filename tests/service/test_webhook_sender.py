"""The send loop delivers webhooks beside the mail (service/sender.py,
service/webhook_sender.py): an endpoint that does not answer holds up no mail in the same
pass, and the running loop delivers what is queued when woken."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.core.states import WEBHOOK_KIND
from mailbridge.db.models import Outbox
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.sender import Sender
from tests.support.builders import make_config
from tests.support.outbox import NO_IMAP, START, queue, row
from tests.support.webhook_server import HookServer, module_server, server

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

__all__ = ["module_server", "server"]  # the fixtures these tests use


@pytest.fixture
def app(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, server: HookServer
) -> Iterator[App]:
    hook = {"name": "chat", "url": server.url(), "events": ["escalated"], "timeout": "3s"}
    config = make_config(
        tmp_path, database_url=database_url, imap=NO_IMAP, smtp=smtp_sink, webhook=[hook]
    )
    made = build_app(config, clock=FrozenClock(START))
    yield made
    made.close()


def sender_of(app: App) -> Sender:
    health = Health(app.clock)
    tokens = TokenProviders(app.config, app.clock)
    failures: list[str] = []
    return Sender(
        app,
        health=health,
        metrics=Metrics(app, health, tokens),
        tokens=tokens,
        failed=lambda exc, part, what: failures.append(f"{what}: {exc}"),
    )


def queue_delivery(app: App, n: int = 1) -> int:
    """A webhook row as outbound/webhooks.py writes one (about no ticket, to keep it short)."""
    with app.transaction() as session:
        hook_row = Outbox(
            kind=WEBHOOK_KIND,
            envelope_from="escalated",
            envelope_to=["chat"],
            message_id=f"wh.test{n}",
            raw=b'{"version":1,"event":"escalated"}',
            state="pending",
            attempts=0,
            next_attempt_at=app.clock.now(),
            created_at=app.clock.now(),
        )
        session.add(hook_row)
        session.flush()
        return hook_row.id


def test_a_webhook_that_does_not_answer_holds_up_no_mail_in_the_same_pass(
    app: App, smtp_sink: SmtpSink, server: HookServer
) -> None:
    server.script("hang")
    hook_id = queue_delivery(app)
    mail_id = queue(app, "a@corp.example", n=1)
    sender = sender_of(app)

    async def one_pass() -> tuple[float, bool, float]:
        started = time.monotonic()
        running = asyncio.create_task(sender.send_once())
        await asyncio.to_thread(server.wait_for, 1)
        await asyncio.to_thread(smtp_sink.wait_for, 1)
        mail_after = time.monotonic() - started
        still_waiting = not running.done()
        report = await running
        assert report.sent == 1
        return mail_after, still_waiting, time.monotonic() - started

    mail_after, still_waiting, pass_took = asyncio.run(one_pass())
    assert still_waiting, "the webhook was still unanswered when the mail had gone"
    assert mail_after < 2.5 and pass_took < 3 + 2 + 1
    assert row(app, mail_id).state == "sent"
    hook_row = row(app, hook_id)
    assert (hook_row.state, hook_row.attempts, hook_row.last_error) == (
        "pending",
        1,
        "no answer within 3 s",
    )


def test_the_running_loop_delivers_when_woken_and_on_stop(
    app: App, smtp_sink: SmtpSink, server: HookServer
) -> None:
    sender = sender_of(app)

    async def run() -> None:
        sender.start()
        try:
            assert sender.running
            await asyncio.sleep(0.2)  # the first passes find nothing
            queue_delivery(app, 1)
            sender.wake()
            await asyncio.to_thread(server.wait_for, 1, 10.0)
            queue_delivery(app, 2)
        finally:
            await sender.finish(10)  # the last pass takes the second
        assert not sender.running

    asyncio.run(run())
    assert [r.headers["x-mailbridge-delivery"] for r in server.received] == [
        "wh.test1",
        "wh.test2",
    ]
