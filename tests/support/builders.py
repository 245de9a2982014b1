"""Small builders for test mail and test configuration."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from mailbridge.app import App
from mailbridge.config import Config, config_from_dict
from mailbridge.db.models import InboundMessage
from mailbridge.service.daemon import Daemon

IMAP_PASSWORD_ENV = "MB_TEST_IMAP_PASSWORD"


def mail(
    sender: str = "Ada Customer <ada@customer.example>",
    subject: str = "Printer on fire",
    body: str = "Hello,\nmy printer is on fire. What now?\n\nAda\n",
    *,
    to: str = "support@shop.example",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def dsn(
    to: str,
    recipient: str,
    *,
    original: Message | None = None,
    action: str = "failed",
    status: str = "5.1.1",
) -> bytes:
    """A bounce as an MTA writes it, delivered to the return path `to`, about `recipient`;
    with the headers of `original`, the mail that bounced, when given."""
    headers = "".join(
        f"{name}: {original[name]}\r\n"
        for name in ("From", "To", "Subject", "Message-ID")
        if original is not None
    )
    return (
        "Return-Path: <>\r\n"
        f"Delivered-To: {to}\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.corp.example>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <dsn.{hashlib.sha256((to + recipient + action).encode()).hexdigest()[:16]}"
        "@mx.corp.example>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.corp.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"{headers}"
        "--B--\r\n"
    ).encode()


def stored(
    raw: bytes,
    *,
    uid: int,
    at: datetime,
    state: str = "new",
    attempts: int = 0,
    mailbox: str = "support",
) -> InboundMessage:
    """The row fetch stores for a message of a mailbox's INBOX (state "new": not
    processed yet), for tests that put mail straight into the database."""
    return InboundMessage(
        mailbox=mailbox,
        folder="INBOX",
        uidvalidity=1,
        uid=uid,
        message_id=None,
        fingerprint=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        size=len(raw),
        received_at=at,
        arrived_at=at,
        backlog=False,
        state=state,
        attempts=attempts,
    )


def make_config(
    tmp_path: Path,
    *,
    database_url: str,
    imap: Any,
    smtp: Any,
    **sections: Any,
) -> Config:
    """A complete configuration pointing at the embedded servers; sections override."""
    data: dict[str, Any] = {
        "database": {"url": database_url, "auto_migrate": True},
        "mailbox": [
            {
                "name": "support",
                "address": "support@shop.example",
                "host": imap.host,
                "port": imap.port,
                "security": "none",
                "username": imap.username,
                "password_env": IMAP_PASSWORD_ENV,
                "after": "move",
            }
        ],
        "smtp": {
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "from": "Shop Support <support@shop.example>",
        },
        "sla": [{"name": "standard", "first_response": "8h", "resolution": "5d"}],
        "staff": {"escalation_address": "lead@shop.example"},
        "service": {"data_dir": str(tmp_path)},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return config_from_dict(data, tmp_path / "test.toml", {IMAP_PASSWORD_ENV: imap.password})


def write_config_file(
    tmp_path: Path,
    imap: Any,
    smtp: Any,
    db_url: str,
    *,
    password_env: str,
    templates: Path | None = None,
    listen: int | None = None,
    smtp_extra: str = "",
    extra_mailbox: str = "",
    tickets: str = "",
) -> Path:
    """The same configuration as make_config, as a TOML file for a `mailbridge` subprocess."""
    text = f"""
[database]
url = "{db_url}"
auto_migrate = true

[[mailbox]]
name = "support"
address = "support@shop.example"
host = "{imap.host}"
port = {imap.port}
security = "none"
username = "{imap.username}"
password_env = "{password_env}"
poll_interval = "1s"
{extra_mailbox}
[smtp]
host = "{smtp.host}"
port = {smtp.port}
security = "none"
from = "Shop Support <support@shop.example>"
{smtp_extra}
[templates]
{f'dir = "{templates}"' if templates else ""}
language = "en"

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"

[staff]
escalation_address = "lead@shop.example"

{f"[tickets]{chr(10)}{tickets}{chr(10)}" if tickets else ""}
[service]
data_dir = "{tmp_path}"
outbox_interval = "1s"
{f'listen = "127.0.0.1:{listen}"' if listen else ""}
"""
    path = tmp_path / "mailbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def drive_daemon(
    app: App, scenario: Callable[[Daemon], Awaitable[None]], *, ready: bool = False
) -> None:
    """Run `app`'s daemon in this process while `scenario(daemon)` runs (once it is ready,
    with `ready`), then stop it and wait for it to finish."""

    async def main() -> None:
        daemon = Daemon(app)
        running = asyncio.create_task(daemon.run_forever())
        try:
            if ready:
                await asyncio.wait_for(daemon.ready.wait(), 15)
            await scenario(daemon)
        finally:
            daemon.stop()
            await asyncio.wait_for(running, 30)

    asyncio.run(main())
