"""The lists one sender's mail is judged by, on SQLite and PostgreSQL: the configuration's,
its included file's, and only the table rows that could name the sender; the table holds
only patterns of the shapes that look-up finds (tickets/sender_lists.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.app import App, build_app
from mailbridge.core.spam import judge
from mailbridge.tickets.sender_lists import (
    allow_sender,
    block_sender,
    sender_lists,
    table_pattern,
    unblock_sender,
)
from tests.support.builders import make_config
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.db

ROWS = {
    "bob@partner.example": "block",
    "partner.example": "allow",
    "*@*.mailer.example": "block",
    "*.bulk.example": "block",
    "noreply@*": "block",
    "unrelated.example": "block",
}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    (tmp_path / "senders.toml").write_text('block = ["*spam*@*"]\n', encoding="utf-8")
    spam = {
        "block": ["*@spam.example"],
        "allow": ["friend@spam.example"],
        "include": ["senders.toml"],  # next to the configuration, as tmp_path/test.toml
    }
    config = make_config(tmp_path, database_url=database_url, imap=NOWHERE, smtp=NOWHERE, spam=spam)
    application = build_app(config)
    with application.transaction() as session:
        for pattern, kind in ROWS.items():
            change = block_sender if kind == "block" else allow_sender
            change(session, pattern, "test", None, START)
    yield application
    application.close()


CONFIGURED_ALLOW = ("friend@spam.example",)
CONFIGURED_BLOCK = ("*@spam.example", "*spam*@*")


@pytest.mark.parametrize(
    ("address", "allow", "block", "spam"),
    [
        ("bob@partner.example", ["partner.example"], ["bob@partner.example"], False),
        ("Ann@Sales.Partner.Example", ["partner.example"], [], False),
        ("x@eu.mailer.example", [], ["*@*.mailer.example"], True),
        ("x@mailer.example", [], [], False),  # *@*.mailer.example names subdomains only
        ("x@a.b.bulk.example", [], ["*.bulk.example"], True),
        ("noreply@shop.example", [], ["noreply@*"], True),
        ("friend@spam.example", [], [], False),
        ("myspambot@elsewhere.example", [], [], True),  # the included file's glob
        ("ann@elsewhere.example", [], [], False),
        ("", [], [], False),
    ],
)
def test_one_sender_gets_the_lists_and_the_rows_that_could_name_it(
    app: App, address: str, allow: list[str], block: list[str], spam: bool
) -> None:
    with app.sessions() as session:
        got_allow, got_block = sender_lists(session, app.config, address)
        every_allow, every_block = sender_lists(session, app.config)
    assert got_allow == (*CONFIGURED_ALLOW, *allow)
    assert got_block == (*CONFIGURED_BLOCK, *sorted(block))
    assert judge(address, allow=got_allow, block=got_block).spam is spam
    # Asking for the sender's rows judges as asking for all of them.
    assert judge(address, allow=every_allow, block=every_block).spam is spam


def test_a_changed_row_counts_from_the_next_look_up(app: App) -> None:
    with app.transaction() as session:
        change = unblock_sender(session, "Bob@Partner.Example", "test", None, START)
        assert (change.previous, change.kind) == ("block", None)
        block_sender(session, "partner.example", "test", "phishing", START)
    with app.sessions() as session:
        allow, block = sender_lists(session, app.config, "bob@partner.example")
    assert allow == CONFIGURED_ALLOW and "partner.example" in block


@pytest.mark.parametrize(
    "pattern",
    ["ann@x.example", "x.example", "*@x.example", "*@*.x.example", "*.x.example", "noreply@*"],
)
def test_the_table_takes_the_shapes_it_looks_up(pattern: str) -> None:
    assert table_pattern(pattern.upper()) == pattern


@pytest.mark.parametrize(
    "pattern", ["*spam*@x.example", "a?@x.example", "*@*", "*.*.x.example", "ann@x.*", "[ab]@x.ex"]
)
def test_other_globs_belong_in_the_configuration(app: App, pattern: str) -> None:
    with pytest.raises(ValueError, match=r"other patterns belong in \[spam\] block or allow"):
        table_pattern(pattern)
    with app.transaction() as session, pytest.raises(ValueError):
        block_sender(session, pattern, "test", None, START)
