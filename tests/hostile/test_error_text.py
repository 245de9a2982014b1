"""Error text never carries the mail: a message the database refuses while it is processed
(a real refusal, from a trigger) has its marker in its body and headers, and the marker is
in no health output, listing or log line; the ordinary mail beside it is still served."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.cli.quarantine import list_quarantined
from mailbridge.cli.status import print_status
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from mailbridge.logs import JsonFormatter, TextFormatter
from mailbridge.service.daemon import Daemon
from mailbridge.service.systemd import Service
from tests.hostile.conftest import World, make_world
from tests.hostile.rawmail import LONG_ID, ORDINARY, ORDINARY_SENDER, raw_mail
from tests.hostile.triggers import REFUSAL, refuse_rows
from tests.support.daemon_process import eventually, free_port

pytestmark = pytest.mark.integration

MARK = "zq7-leak-marker-58e1"
# Its marker in the body (which the refusing trigger looks for) and in headers the failing
# INSERT carries; not in From or Subject, which `quarantine list` shows on purpose.
MARKED = raw_mail(
    [("In-Reply-To", f"<{MARK}@customer.example>"), ("X-Order", MARK)],
    f"My order {MARK} is late.\r\n",
    sender="Ada <ada@customer.example>",
    subject="Late order",
)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of mailbridge, as the text and the JSON formats write it."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    handlers[0].setFormatter(TextFormatter())
    handlers[1].setFormatter(JsonFormatter())
    logger = logging.getLogger("mailbridge")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    for handler in handlers:
        logger.addHandler(handler)
    yield stream
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def refusing(
    tmp_path: Path, database_url: str, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[World]:
    """mailbridge whose database refuses any article holding the marker."""
    made = make_world(
        tmp_path,
        database_url,
        imap_server,
        smtp_sink,
        tickets={"max_attempts": 2},
        service={"listen": f"127.0.0.1:{free_port()}"},
    )
    refuse_rows(made.app.engine, "article", "text_body", MARK)
    yield made
    made.app.close()


def test_a_database_refusal_in_processing_leaves_no_mail_in_listings_or_logs(
    refusing: World, captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    refusing.deliver(MARKED, ORDINARY)
    refusing.run()
    refusing.run()

    assert len(refusing.sent_to(ORDINARY_SENDER)) == 1
    (quarantined,) = [m for m in refusing.inbound() if m.raw == MARKED]
    assert quarantined.state == "quarantined"
    assert quarantined.last_error is not None and REFUSAL in quarantined.last_error
    listing, status = io.StringIO(), io.StringIO()
    list_quarantined(refusing.app, True, listing)
    print_status(refusing.app, True, status)
    assert json.loads(listing.getvalue())[0]["last_error"] == quarantined.last_error
    assert REFUSAL in captured.getvalue()
    for output in (
        listing.getvalue(),
        status.getvalue(),
        captured.getvalue(),
        *(record.getMessage() for record in caplog.records),
    ):
        assert MARK not in output


def test_healthz_and_status_show_no_mail_while_the_database_refuses_it(refusing: World) -> None:
    # Refused as fetched, before the fix, on PostgreSQL: the error would name its bytes.
    overlong = raw_mail([], message_id=LONG_ID.replace("aaaa", MARK, 1), subject="Long")
    service = Service(Daemon(refusing.app))
    documents: list[str] = []

    def served_or_failing() -> bool:
        health = _healthz(refusing)
        return bool(refusing.sent_to(ORDINARY_SENDER)) or '"failing": {"mailbox' in health

    async def scenario() -> None:
        running = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.daemon.ready.wait(), 30)
            await asyncio.to_thread(refusing.deliver, MARKED, overlong, ORDINARY)
            await asyncio.to_thread(eventually, served_or_failing, "the ordinary mail")
            documents.append(await asyncio.to_thread(_healthz, refusing))
            status = io.StringIO()
            await asyncio.to_thread(print_status, refusing.app, True, status)
            documents.append(status.getvalue())
        finally:
            service.daemon.stop()
            await asyncio.wait_for(running, 60)

    asyncio.run(scenario())

    assert documents and all(MARK not in document for document in documents)
    assert len(refusing.sent_to(ORDINARY_SENDER)) == 1


def _healthz(world: World) -> str:
    address = world.app.config.service.listen_address
    assert address is not None
    try:
        with urllib.request.urlopen(
            f"http://{address[0]}:{address[1]}/healthz", timeout=5
        ) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:  # 503: unhealthy, with the failing parts
        return str(exc.read().decode())
