"""Webhook deliveries through the outbox, on SQLite and PostgreSQL, against a real local
HTTP server: once each, signed, without the customer's words by default, retried after a
5xx or no answer, failed for good after a 4xx or the retry limit, and visible in `outbox
list` by the webhook's name, never its URL or key; two instances deliver each once."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.cli.outbox import list_outbox
from mailbridge.core.webhook_events import WEBHOOK_EVENTS, verify
from mailbridge.db.models import Outbox
from mailbridge.outbound.send import retry
from mailbridge.outbound.webhook_send import HookReport, deliver_webhooks
from tests.support.builders import mail
from tests.support.sla_world import START, World, make_world
from tests.support.webhook_server import HookServer, Received, module_server, server

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]

__all__ = ["module_server", "server"]  # the fixtures these tests use

KEY = "c2f0a1e9d8b7c6a5f4e3d2c1b0a9f8e7"
TOKEN_PATH = "/services/T0/B0/tok3n-in-the-path"


def hook(server: HookServer, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """The `team-chat` webhook, json, every event, signed with KEY (from a file)."""
    key_file = tmp_path / "hook.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    os.chmod(key_file, 0o600)
    table = {
        "name": "team-chat",
        "url": server.url(TOKEN_PATH),
        "events": list(WEBHOOK_EVENTS),
        "secret_file": "hook.key",
    }
    return {**table, **changes}


@pytest.fixture
def world(tmp_path: Path, database_url: str, server: HookServer) -> Iterator[World]:
    made = make_world(tmp_path, database_url, webhook=[hook(server, tmp_path)])
    yield made
    made.app.close()


def deliver(world: World) -> HookReport:
    return asyncio.run(deliver_webhooks(world.app, draw=lambda: 0.0))


def rows(world: World) -> list[Outbox]:
    return world.mails("webhook")


def customer_mail(n: int = 1) -> bytes:
    return mail(
        "Ada Lovelace <ada@customer.example>",
        f"Printer on fire {n}",
        "Hello,\nmy printer is on fire.\n",
        message_id=f"<m{n}@customer.example>",
    )


def test_a_new_ticket_is_delivered_once_signed_and_without_the_customers_words(
    world: World, server: HookServer
) -> None:
    world.receive(customer_mail())
    [row] = rows(world)
    assert (row.kind, row.state, row.envelope_to, row.envelope_from) == (
        "webhook",
        "pending",
        ["team-chat"],
        "ticket_created",
    )

    assert deliver(world) == HookReport(delivered=1)
    assert deliver(world) == HookReport(), "nothing is sent twice"
    [got] = server.received
    assert (got.method, got.path) == ("POST", TOKEN_PATH)
    assert got.headers["x-mailbridge-event"] == "ticket_created"
    assert got.headers["x-mailbridge-delivery"] == row.message_id
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    signature = got.headers["x-mailbridge-signature"]
    assert verify(KEY.encode(), signature, got.body, now=int(START.timestamp()))
    assert not verify(
        b"another key of sixteen bytes", signature, got.body, now=int(START.timestamp())
    )
    assert got.body == row.raw
    payload = json.loads(got.body)
    assert (payload["event"], payload["id"], payload["ticket"]["number"]) == (
        "ticket_created",
        row.message_id,
        1000,
    )
    assert payload["ticket"]["status"] == "new" and "customer" not in payload
    for private in (b"Printer", b"fire", b"Ada", b"ada@customer.example", b"Lovelace"):
        assert private not in got.body

    [sent] = rows(world)
    assert (sent.state, sent.attempts, sent.sent_at, sent.last_error) == ("sent", 1, START, None)
    assert sent.recipients == [
        {"address": "team-chat", "state": "accepted", "code": 200, "reply": "200 OK"}
    ]
    assert len(world.mails()) > 1, "the acknowledgement is queued as before, as mail"


def test_a_5xx_is_tried_again_after_a_pause_with_the_same_body_and_id(
    world: World, server: HookServer
) -> None:
    server.script(500)
    world.receive(customer_mail())
    assert deliver(world) == HookReport(deferred=1)
    [row] = rows(world)
    assert (row.state, row.attempts, row.next_attempt_at) == (
        "pending",
        1,
        START + timedelta(seconds=15),  # 30 s scaled by the jitter's lowest draw
    )
    assert row.last_error == "HTTP 500 Internal Server Error: error 500"
    assert deliver(world) == HookReport(), "not before its time"

    world.advance(timedelta(seconds=15))
    assert deliver(world) == HookReport(delivered=1)
    first, second = server.received
    assert first.body == second.body == row.raw
    assert first.headers["x-mailbridge-delivery"] == second.headers["x-mailbridge-delivery"]
    later = int((START + timedelta(seconds=15)).timestamp())
    assert verify(KEY.encode(), second.headers["x-mailbridge-signature"], second.body, now=later)
    assert first.headers["x-mailbridge-signature"] != second.headers["x-mailbridge-signature"]
    assert (rows(world)[0].state, rows(world)[0].attempts) == ("sent", 2)


def test_it_fails_after_the_retry_limit_says_why_and_can_be_retried(
    tmp_path: Path, database_url: str, server: HookServer
) -> None:
    world = make_world(tmp_path, database_url, webhook=[hook(server, tmp_path, max_attempts=3)])
    try:
        server.script(503, 503, (429, {"Retry-After": "120"}))
        world.receive(customer_mail())
        reports = []
        for _ in range(3):
            reports.append(deliver(world))
            world.advance(timedelta(minutes=5))
        assert reports == [HookReport(deferred=1), HookReport(deferred=1), HookReport(failed=1)]
        [row] = rows(world)
        assert (row.state, row.attempts) == ("failed", 3)
        assert row.last_error == "gave up after 3 attempts: HTTP 429 Too Many Requests: error 429"
        assert row.recipients is not None and row.recipients[0]["state"] == "failed"
        [failed] = world.events("webhook_failed")
        assert failed.ticket_id == row.ticket_id
        assert failed.data == {
            "outbox_id": row.id,
            "webhook": "team-chat",
            "event": "ticket_created",
            "reason": row.last_error,
        }
        out = io.StringIO()
        list_outbox(world.app, "failed", False, out)
        assert "webhook" in out.getvalue() and "team-chat" in out.getvalue()

        retry(world.app, row.id)  # `mailbridge outbox retry ID`
        assert deliver(world) == HookReport(delivered=1)
        assert rows(world)[0].state == "sent" and len(server.received) == 4
    finally:
        world.app.close()


def test_a_429_waits_as_long_as_the_server_asks(world: World, server: HookServer) -> None:
    server.script((429, {"Retry-After": "600"}))
    world.receive(customer_mail())
    assert deliver(world) == HookReport(deferred=1)
    assert rows(world)[0].next_attempt_at == START + timedelta(minutes=10)


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_4xx_fails_at_once(world: World, server: HookServer, status: int) -> None:
    server.script(status)
    world.receive(customer_mail())
    assert deliver(world) == HookReport(failed=1)
    [row] = rows(world)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.recipients == [
        {"address": "team-chat", "state": "refused", "code": status, "reply": row.last_error}
    ]


def test_no_answer_costs_one_timeout_and_is_tried_again(
    tmp_path: Path, database_url: str, server: HookServer
) -> None:
    world = make_world(tmp_path, database_url, webhook=[hook(server, tmp_path, timeout="1s")])
    try:
        server.script("hang", "drop")
        world.receive(customer_mail())
        started = time.monotonic()
        assert deliver(world) == HookReport(deferred=1)
        assert time.monotonic() - started < 3, "bounded by the timeout"
        assert rows(world)[0].last_error == "no answer within 1 s"
        world.advance(timedelta(minutes=1))
        assert deliver(world) == HookReport(deferred=1)
        assert (rows(world)[0].last_error or "").startswith("connection failed")
        world.advance(timedelta(minutes=2))
        assert deliver(world) == HookReport(delivered=1)
        assert (rows(world)[0].state, rows(world)[0].attempts) == ("sent", 3)
    finally:
        world.app.close()


def test_the_list_and_the_log_name_the_webhook_never_its_url_or_key(
    world: World, server: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(500)
    with caplog.at_level(logging.DEBUG):
        world.receive(customer_mail())
        deliver(world)
    table, as_json = io.StringIO(), io.StringIO()
    list_outbox(world.app, None, False, table)
    list_outbox(world.app, None, True, as_json)
    [entry] = [e for e in json.loads(as_json.getvalue()) if e["kind"] == "webhook"]
    assert (entry["to"], entry["state"], entry["attempts"]) == (["team-chat"], "pending", 1)
    shown = table.getvalue() + as_json.getvalue() + caplog.text
    assert "team-chat" in table.getvalue() and "webhook" in table.getvalue()
    assert "webhook team-chat" in caplog.text
    for secret in ("tok3n", KEY, str(server.port)):
        assert secret not in shown


def test_include_text_sends_the_subject_and_sender(
    tmp_path: Path, database_url: str, server: HookServer
) -> None:
    world = make_world(tmp_path, database_url, webhook=[hook(server, tmp_path, include_text=True)])
    try:
        world.receive(customer_mail())
        deliver(world)
        payload = json.loads(server.received[0].body)
        assert payload["customer"] == {
            "subject": "Printer on fire 1",
            "name": "Ada Lovelace",
            "address": "ada@customer.example",
        }
    finally:
        world.app.close()


def test_two_instances_deliver_each_event_exactly_once(
    tmp_path: Path, database_url: str, server: HookServer
) -> None:
    count = 24
    table = hook(server, tmp_path)
    worlds = [make_world(tmp_path, database_url, webhook=[table]) for _ in range(2)]
    try:
        for n in range(count):
            worlds[0].receive(customer_mail(n))
        assert len(rows(worlds[0])) == count
        server.delay = 0.03  # each answer takes a moment: the two senders overlap
        reports: list[HookReport] = []
        barrier = threading.Barrier(2)

        def sender(world: World) -> None:
            barrier.wait()
            reports.append(deliver(world))

        threads = [threading.Thread(target=sender, args=(w,)) for w in worlds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        sent = rows(worlds[0])
    finally:
        for world in worlds:
            world.app.close()

    assert len(reports) == 2 and all(r.delivered > 0 for r in reports), reports
    assert sum(r.delivered for r in reports) == count
    ids = Counter(r.headers["x-mailbridge-delivery"] for r in server.received)
    assert len(server.received) == count and set(ids.values()) == {1}, "none twice"
    assert set(ids) == {row.message_id for row in sent}
    assert {(row.state, row.attempts) for row in sent} == {("sent", 1)}


def delivered_events(received: list[Received]) -> list[str]:
    return [json.loads(r.body)["event"] for r in received]


def test_a_pass_with_nothing_due_asks_the_database_once(world: World) -> None:
    """Every mail sent wakes a webhook pass; with nothing due, it costs one look, not one
    per worker."""
    from sqlalchemy import event

    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(world.app.engine, "before_cursor_execute", seen)
    try:
        assert deliver(world) == HookReport()
    finally:
        event.remove(world.app.engine, "before_cursor_execute", seen)
    assert sum("outbox" in s.lower() for s in statements) == 1, statements
