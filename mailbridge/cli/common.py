"""What the command modules share: exit codes, argument types, the configuration and the
app a command works on, and the table and timestamp format of their output."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TextIO

from mailbridge import heap
from mailbridge.config import Config, config_path, load_config
from mailbridge.core.message import Address
from mailbridge.core.sla import parse_duration
from mailbridge.core.staff import requester_address
from mailbridge.errors import MailbridgeError
from mailbridge.logs import config_secrets, hide_secrets, setup_logging

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mailbridge.app import App
    from mailbridge.db.models import Ticket

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def command_config(args: argparse.Namespace) -> Config:
    with heap.loading():  # what is read lives as long as the command (mailbridge/heap.py)
        config = load_config(config_path(args.config))
    hide_secrets(config_secrets(config))
    if args.log_format is None and config.service.log_format != "text":
        setup_logging(config.service.log_format, verbose=args.verbose)
    return config


def duration(text: str) -> timedelta:
    """An argument like 30m, 2h or 1d (argparse names this function in its error)."""
    return parse_duration(text)


def address(text: str) -> Address:
    """One address, as #requester takes it (argparse names this function in its error)."""
    found = requester_address(text)
    if found is None:
        raise ValueError(text)
    return found


def language_code(text: str) -> str:
    """A two-letter language code such as it or en (argparse names this function)."""
    if not re.fullmatch(r"[a-z]{2}", text):
        raise ValueError(text)
    return text


@contextmanager
def open_app(config: Config) -> Iterator[App]:
    from mailbridge.app import build_app  # the database and templates: not for every command

    with heap.loading():  # the database's mappings, the templates (mailbridge/heap.py)
        app = build_app(config)
    try:
        yield app
    finally:
        app.close()


def ticket_numbered(session: Session, number: int) -> Ticket:
    """The ticket numbered `number`; a runtime error naming the number when there is none."""
    from mailbridge.db import queries  # here: `mailbridge --help` loads no database code

    ticket = queries.ticket_by_number(session, number)
    if ticket is None:
        raise MailbridgeError(f"no ticket #{number}")
    return ticket


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def print_json(value: object, out: TextIO) -> None:
    out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    right: Collection[int] = (),
) -> None:
    """Aligned columns, each at most 48 characters; the columns numbered in `right`
    (numbers) aligned to the right."""
    if not rows:
        out.write("(none)\n")
        return
    widths = [min(max(len(h), *(len(r[i]) for r in rows)), 48) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        cells = [
            cell[:48].rjust(width) if n in right else cell[:48].ljust(width)
            for n, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
