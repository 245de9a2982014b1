"""The outbox sender against a real SMTP sink (aiosmtpd), on SQLite and PostgreSQL: retries
with jittered backoff, giving up by age or attempts, permanent refusals with the server's
words, dropped connections, and per-recipient results."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mailbridge.app import App
from mailbridge.cli.outbox import list_outbox
from mailbridge.clock import FrozenClock
from mailbridge.core.bounce import find_return_path, return_path_valid
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.outbound.send import SendReport, retry, retry_delay, send_pending
from tests.support.outbox import START, make_app, queue, row

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def app(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, clock: FrozenClock
) -> Iterator[App]:
    application = make_app(tmp_path, database_url, smtp_sink, clock)
    yield application
    application.close()


def send(app: App, draw: float = 0.0) -> SendReport:
    return asyncio.run(send_pending(app, draw=lambda: draw))


def listed(app: App, state: str | None = None) -> list[dict[str, Any]]:
    out = io.StringIO()
    list_outbox(app, state, True, out)
    return list(json.loads(out.getvalue()))


# --- backoff ------------------------------------------------------------------------------


def test_backoff_doubles_from_30_seconds_to_an_hour_with_jitter() -> None:
    def ceiling(attempts: int) -> timedelta:
        return retry_delay(attempts, lambda: 0.999999999)

    assert [round(ceiling(n).total_seconds()) for n in range(1, 9)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
    ]
    assert ceiling(10_000) == ceiling(9)
    assert timedelta(minutes=59, seconds=59) < ceiling(9) <= timedelta(hours=1)
    # The jitter keeps each pause between half and all of its ceiling.
    assert retry_delay(1, lambda: 0.0) == timedelta(seconds=15)
    assert retry_delay(3, lambda: 0.5) == timedelta(seconds=90)
    assert retry_delay(0, lambda: 0.0) == timedelta(seconds=15)


# --- temporary failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"), [(421, "4.3.2 shutting down"), (451, "4.3.0 try again later")]
)
def test_temporary_refusal_then_success(
    app: App, smtp_sink: SmtpSink, clock: FrozenClock, code: int, text: str
) -> None:
    row_id = queue(app, "ada@corp.example")
    smtp_sink.fail_next(2, code, text)

    assert send(app, draw=0.0) == SendReport(deferred=1, refused=True)
    first = row(app, row_id)
    assert (first.state, first.attempts) == ("pending", 1)
    assert first.next_attempt_at == START + timedelta(seconds=15)
    assert first.last_error and f"{code} {text}" in first.last_error

    clock.advance(timedelta(seconds=14))
    assert send(app) == SendReport(), "the retry waits for its pause"
    clock.advance(timedelta(seconds=1))
    assert send(app, draw=0.5) == SendReport(deferred=1, refused=True)
    assert row(app, row_id).next_attempt_at == clock.now() + timedelta(seconds=45)

    clock.advance(timedelta(seconds=45))
    assert send(app) == SendReport(sent=1)
    done = row(app, row_id)
    assert (done.state, done.attempts, done.last_error) == ("sent", 3, None)
    assert done.sent_at == clock.now()
    (mail,) = smtp_sink.wait_for(1)
    assert mail.raw == done.raw and mail.message["Message-ID"] == f"<{done.message_id}>"


def test_connection_dropped_mid_data_is_retried_with_the_same_message(
    app: App, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    row_id = queue(app, "ada@corp.example")
    smtp_sink.drop_mid_data_next(1)

    assert send(app) == SendReport(deferred=1, refused=True)
    assert smtp_sink.received == []
    assert row(app, row_id).state == "pending"

    clock.advance(timedelta(minutes=1))
    assert send(app) == SendReport(sent=1)
    (mail,) = smtp_sink.wait_for(1)
    assert mail.raw == row(app, row_id).raw
    assert smtp_sink.connections == 2


def test_one_pass_stops_at_a_refusing_server_and_leaves_the_rest_untouched(
    app: App, smtp_sink: SmtpSink
) -> None:
    first, second = queue(app, "a@corp.example", n=1), queue(app, "b@corp.example", n=2)
    smtp_sink.fail_next(1, 421, "4.7.0 too many connections")

    assert send(app) == SendReport(deferred=1, refused=True)
    assert row(app, first).attempts == 1
    assert row(app, second).attempts == 0


def test_gives_up_when_the_mail_is_older_than_give_up_after(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(tmp_path, database_url, smtp_sink, clock, give_up_after=timedelta(hours=2))
    try:
        row_id = queue(app, "ada@corp.example")
        smtp_sink.fail_always(451, "4.3.0 try again later")
        attempts_at = []
        while row(app, row_id).state == "pending":
            attempts_at.append(clock.now())
            send(app, draw=0.999)
            clock.advance(row(app, row_id).next_attempt_at - clock.now())
        gave_up = row(app, row_id)
    finally:
        app.close()

    assert gave_up.state == "failed"
    assert attempts_at[-1] == START + timedelta(hours=2), "the last try is at the deadline"
    # 0 s, 30 s, 1.5 min, 3.5 min, … 63.5 min, then the deadline instead of 2 h 3.5 min.
    assert len(attempts_at) == gave_up.attempts == 9
    assert gave_up.last_error is not None
    assert gave_up.last_error.startswith("gave up after 2 hours and 9 attempt(s): ")
    assert "451 4.3.0 try again later" in gave_up.last_error
    assert smtp_sink.received == []


def test_gives_up_after_max_attempts_when_set(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(tmp_path, database_url, smtp_sink, clock, max_attempts=3)
    try:
        row_id = queue(app, "ada@corp.example")
        smtp_sink.fail_always(452, "4.3.1 insufficient system storage")
        for _ in range(5):
            send(app)
            clock.advance(timedelta(hours=1))
        failed = row(app, row_id)
    finally:
        app.close()
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.last_error and failed.last_error.startswith("gave up after 3 attempts: ")


# --- permanent failures -------------------------------------------------------------------


def test_550_fails_at_once_with_the_server_answer(
    app: App, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    row_id = queue(app, "ada@corp.example")
    smtp_sink.fail_next(1, 550, "5.7.1 message content rejected")

    assert send(app) == SendReport(failed=1)
    clock.advance(timedelta(days=1))
    assert send(app) == SendReport(), "a failed row is not tried again by itself"

    (shown,) = listed(app, "failed")
    assert (shown["id"], shown["state"], shown["attempts"]) == (row_id, "failed", 1)
    assert "550 5.7.1 message content rejected" in shown["last_error"]
    assert shown["recipients"] == [
        {
            "address": "ada@corp.example",
            "state": "refused",
            "code": 550,
            "reply": shown["last_error"],
        }
    ]
    assert listed(app, "pending") == [] and smtp_sink.received == []


def test_a_refused_login_defers_instead_of_failing_every_mail(
    tmp_path: Path, database_url: str, clock: FrozenClock
) -> None:
    with SmtpSink(username="support", password="right") as sink:
        app = make_app(
            tmp_path, database_url, sink, clock, username="support", password=SecretStr("wrong")
        )
        try:
            first, second = queue(app, "a@corp.example", n=1), queue(app, "b@corp.example", n=2)
            assert send(app) == SendReport(deferred=1, refused=True)
            waiting = row(app, first)
            assert waiting.state == "pending" and "login refused" in (waiting.last_error or "")
            assert row(app, second).attempts == 0
        finally:
            app.close()


# --- several recipients -------------------------------------------------------------------


def test_each_recipient_result_is_recorded_and_only_the_missing_ones_are_retried(
    app: App, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    row_id = queue(app, "a@corp.example", "b@corp.example", "c@corp.example")
    smtp_sink.refuse_recipient("b@corp.example", 550, "5.1.1 no such user")
    smtp_sink.refuse_recipient("c@corp.example", 452, "4.2.2 mailbox full")

    assert send(app) == SendReport(deferred=1, refused=False)
    states = {r["address"]: (r["state"], r["code"]) for r in listed(app)[0]["recipients"]}
    assert states == {
        "a@corp.example": ("accepted", None),
        "b@corp.example": ("refused", 550),
        "c@corp.example": ("pending", 452),
    }
    assert smtp_sink.wait_for(1)[0].recipients == ("a@corp.example",)

    smtp_sink.recover()
    clock.advance(timedelta(minutes=1))
    assert send(app) == SendReport(failed=1)
    assert [m.recipients for m in smtp_sink.received] == [("a@corp.example",), ("c@corp.example",)]
    (shown,) = listed(app, "failed")
    assert "b@corp.example: 550 5.1.1 no such user" in shown["last_error"]
    assert [r["state"] for r in shown["recipients"]] == ["accepted", "refused", "accepted"]

    # An operator's retry goes to the refused recipient only: the others have the mail.
    retry(app, row_id)
    assert send(app) == SendReport(sent=1)
    assert smtp_sink.wait_for(3)[2].recipients == ("b@corp.example",)
    assert row(app, row_id).state == "sent"
    with pytest.raises(ValueError, match="already sent"):
        retry(app, row_id)


# --- return path --------------------------------------------------------------------------


def test_each_row_goes_out_with_its_own_checkable_return_path(
    app: App, smtp_sink: SmtpSink
) -> None:
    ids = [queue(app, "a@corp.example", n=1), queue(app, "b@corp.example", n=2)]
    send(app)
    senders = [m.sender for m in smtp_sink.wait_for(2)]
    assert len(set(senders)) == 2
    for row_id, sender in zip(ids, senders, strict=True):
        token = find_return_path([sender])
        assert token is not None and token.outbox_id == row_id
        assert sender.startswith("support+b") and sender.endswith("@shop.example")
        assert return_path_valid(token, row(app, row_id).message_id)


def test_without_verp_the_bounce_address_is_the_envelope_sender(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, clock: FrozenClock
) -> None:
    app = make_app(
        tmp_path, database_url, smtp_sink, clock, verp=False, bounce_address="bounces@shop.example"
    )
    try:
        queue(app, "a@corp.example")
        send(app)
    finally:
        app.close()
    assert smtp_sink.wait_for(1)[0].sender == "bounces@shop.example"
