"""`mailbridge staff list/away/back` as operators run them: real processes, SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.cli_process import general_events, imap_server, mailbridge, write_config

pytestmark = pytest.mark.integration

__all__ = ["imap_server"]  # the fixtures these tests use

ALICE = "alice@shop.example"


@pytest.fixture
def config(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, database_url: str
) -> Path:
    path = write_config(tmp_path, imap_server, smtp_sink, database_url)
    text = path.read_text(encoding="utf-8").replace(
        '[staff]\nescalation_address = "lead@shop.example"\n',
        '[staff]\nescalation_address = "lead@shop.example"\n'
        f'addresses = ["{ALICE}", "bob@shop.example"]\nteam_address = "team@shop.example"\n'
        '\n[calendar]\ntimezone = "Europe/Rome"\n',
    )
    path.write_text(text, encoding="utf-8")
    return path


def listed(config: Path) -> list[dict[str, object]]:
    done = mailbridge(config, "staff", "list", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_away_list_and_back_from_the_command_line(config: Path, database_url: str) -> None:
    assert listed(config) == [
        {"address": ALICE, "role": "staff", "away_until": None, "digest": True},
        {"address": "bob@shop.example", "role": "staff", "away_until": None, "digest": True},
        {"address": "team@shop.example", "role": "team", "away_until": None, "digest": True},
    ]
    away = mailbridge(config, "staff", "away", ALICE, "--until", "2030-01-12")
    assert away.returncode == 0, away.stderr
    assert away.stdout == f"{ALICE} is away until the end of 2030-01-12\n".encode()
    alice = listed(config)[0]
    assert alice["away_until"] == "2030-01-12T23:00:00+00:00"  # midnight in Rome
    table = mailbridge(config, "staff", "list").stdout.decode()
    assert "2030-01-13T00:00+01:00" in table and "team@shop.example" in table

    back = mailbridge(config, "staff", "back", ALICE)
    assert back.stdout == f"{ALICE} is back\n".encode()
    assert listed(config)[0]["away_until"] is None
    again = mailbridge(config, "staff", "back", ALICE)
    assert again.returncode == 0 and again.stdout == f"{ALICE} was not away\n".encode()

    rows = general_events(database_url)
    assert [(t, d["source"], d["by"], d["address"]) for t, d in rows] == [
        ("staff_away", "command line", "command line", ALICE),
        ("staff_back", "command line", "command line", ALICE),
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("away", "ada@customer.example", "--until", "2030-01-12"),
        ("away", "team@shop.example", "--until", "2030-01-12"),
        ("back", "mallory@evil.example"),
    ],
)
def test_addresses_that_are_not_staff_are_refused(config: Path, args: tuple[str, ...]) -> None:
    done = mailbridge(config, "staff", *args)
    assert done.returncode == 1
    assert b"is not a staff address" in done.stderr


def test_a_past_return_date_is_refused(config: Path) -> None:
    done = mailbridge(config, "staff", "away", ALICE, "--until", "2020-01-12")
    assert done.returncode == 1 and b"has passed" in done.stderr
    bad = mailbridge(config, "staff", "away", ALICE, "--until", "12/01")
    assert bad.returncode == 2
