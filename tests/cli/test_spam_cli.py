"""`mailbridge spam block/allow/unblock/list` as operators run them: real processes, SQLite
and PostgreSQL; the table, the configuration and its included file together, and the
allowlist beating the blocklist wherever each pattern comes from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailbridge.config import load_config
from mailbridge.core.spam import judge
from mailbridge.db.engine import make_engine, make_sessionmaker
from mailbridge.tickets.sender_lists import sender_lists
from tests.support.builders import write_config_file
from tests.support.cli_process import SECRET, general_events, mailbridge
from tests.support.sla_world import NOWHERE

pytestmark = pytest.mark.integration

SPAM = """
[spam]
block = ["*@spam.example"]
allow = ["boss@spam.example"]
include = ["senders.toml"]
"""


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    path = write_config_file(
        tmp_path, NOWHERE, NOWHERE, database_url, password_env="MB_CLI_IMAP_PASSWORD"
    )
    (tmp_path / "senders.toml").write_text('block = ["bulk.example"]\n', encoding="utf-8")
    with path.open("a", encoding="utf-8") as file:
        file.write(SPAM)
    return path


def run(config: Path, *args: str) -> str:
    done = mailbridge(config, "spam", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def lists(config: Path, database_url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block) as the pipeline reads them."""
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return sender_lists(session, load_config(config, {"MB_CLI_IMAP_PASSWORD": SECRET}))
    finally:
        engine.dispose()


def test_block_allow_unblock_and_list(config: Path, database_url: str) -> None:
    assert run(config, "block", "Partner.Example", "--note", "phishing wave") == (
        "partner.example: block\n"
    )
    assert run(config, "allow", "ceo@partner.example") == "ceo@partner.example: allow\n"
    blocked = run(config, "block", "boss@spam.example")
    assert blocked == (
        "boss@spam.example: block\n"
        "note: boss@spam.example stays allowed by boss@spam.example; the allowlist wins\n"
    )

    allow, block = lists(config, database_url)
    assert allow == ("boss@spam.example", "ceo@partner.example")
    assert block == ("*@spam.example", "bulk.example", "boss@spam.example", "partner.example")
    for address, spam in (
        ("ceo@partner.example", False),  # allowed in the table, over a blocked domain
        ("sales@mail.partner.example", True),  # a subdomain of the blocked one
        ("boss@spam.example", False),  # allowed in the configuration, over the table's block
        ("x@spam.example", True),
        ("x@bulk.example", True),  # the included file
        ("x@elsewhere.example", False),
    ):
        assert judge(address, allow=allow, block=block).spam is spam, address

    listed = json.loads(run(config, "list", "--json"))
    assert [(e["pattern"], e["kind"], e["source"]) for e in listed] == [
        ("boss@spam.example", "allow", "config"),
        ("*@spam.example", "block", "config"),
        ("bulk.example", "block", "include"),
        ("ceo@partner.example", "allow", "table"),
        ("boss@spam.example", "block", "table"),
        ("partner.example", "block", "table"),
    ]
    assert listed[0]["file"] == str(config) and listed[2]["file"] == str(
        config.parent / "senders.toml"
    )
    assert listed[5]["file"] is None and listed[5]["created_by"] == "command line"
    assert listed[5]["note"] == "phishing wave" and listed[5]["created_at"]
    assert "block  include senders.toml" in run(config, "list")

    assert run(config, "unblock", "partner.example") == "partner.example: removed (was block)\n"
    assert run(config, "allow", "boss@spam.example") == "boss@spam.example: allow (was block)\n"
    assert (
        run(config, "unblock", "ceo@partner.example")
        == "ceo@partner.example: removed (was allow)\n"
    )
    assert lists(config, database_url) == (
        ("boss@spam.example",),
        ("*@spam.example", "bulk.example"),
    )

    rows = general_events(database_url)
    assert [(t, d["pattern"], d["by"]) for t, d in rows] == [
        ("sender_blocked", "partner.example", "command line"),
        ("sender_allowed", "ceo@partner.example", "command line"),
        ("sender_blocked", "boss@spam.example", "command line"),
        ("sender_unlisted", "partner.example", "command line"),
        ("sender_allowed", "boss@spam.example", "command line"),
        ("sender_unlisted", "ceo@partner.example", "command line"),
    ]


def test_what_the_table_does_not_hold_cannot_be_unblocked(config: Path) -> None:
    done = mailbridge(config, "spam", "unblock", "bulk.example")
    assert done.returncode == 1
    assert b"bulk.example is not in the table; remove it there: block in " in done.stderr
    assert b"senders.toml" in done.stderr
    done = mailbridge(config, "spam", "unblock", "nobody.example")
    assert done.returncode == 1 and b"neither blocked nor allowed" in done.stderr


@pytest.mark.parametrize("pattern", ["spam example", "a@b@c.example", "localhost", ""])
def test_a_bad_pattern_is_a_usage_error(config: Path, pattern: str) -> None:
    done = mailbridge(config, "spam", "block", pattern)
    assert done.returncode == 2 and b"expected" in done.stderr
