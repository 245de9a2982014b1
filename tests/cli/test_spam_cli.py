"""`mailbridge spam block/allow/unblock/list` on SQLite and PostgreSQL: the table, the
configuration and its included file together, and the allowlist beating the blocklist
wherever each pattern comes from. The commands are parsed and run in this process; the JSON
contract of `spam list` and the exit codes are read from real processes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailbridge.app import App, build_app
from mailbridge.cli.main import build_parser
from mailbridge.cli.spam import run_spam
from mailbridge.config import load_config
from mailbridge.core.spam import judge
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


@pytest.fixture
def app(config: Path) -> Iterator[App]:
    made = build_app(load_config(config, {"MB_CLI_IMAP_PASSWORD": SECRET}))
    yield made
    made.close()


@pytest.fixture
def run(app: App) -> Callable[..., str]:
    """`mailbridge spam ARGS…` as the command line reads them; what it printed."""
    parser = build_parser(only=("spam",))

    def spam(*args: str) -> str:
        out = io.StringIO()
        assert run_spam(parser.parse_args(["spam", *args]), app, out) == 0
        return out.getvalue()

    return spam


def lists(app: App) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block) as the pipeline reads them."""
    with app.sessions() as session:
        return sender_lists(session, app.config)


def test_block_allow_unblock_and_list(
    config: Path, database_url: str, app: App, run: Callable[..., str]
) -> None:
    assert run("block", "Partner.Example", "--note", "phishing wave") == (
        "partner.example: block\n"
    )
    assert run("allow", "ceo@partner.example") == "ceo@partner.example: allow\n"
    blocked = run("block", "boss@spam.example")
    assert blocked == (
        "boss@spam.example: block\n"
        "note: boss@spam.example stays allowed by boss@spam.example; the allowlist wins\n"
    )

    allow, block = lists(app)
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

    done = mailbridge(config, "spam", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
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
    assert "block  include senders.toml" in run("list")

    assert run("unblock", "partner.example") == "partner.example: removed (was block)\n"
    assert run("allow", "boss@spam.example") == "boss@spam.example: allow (was block)\n"
    assert run("unblock", "ceo@partner.example") == "ceo@partner.example: removed (was allow)\n"
    assert lists(app) == (
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


@pytest.mark.parametrize(
    "pattern", ["spam example", "a@b@c.example", "localhost", "", "*spam*@x.example", "a?@*"]
)
def test_a_bad_pattern_is_a_usage_error(
    pattern: str, run: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run("block", pattern)
    assert exited.value.code == 2 and "ADDR|DOMAIN: expected" in capsys.readouterr().err
