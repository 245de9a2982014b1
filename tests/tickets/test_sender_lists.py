"""The allow and block lists a spam decision reads: the configuration's, then the
`sender_rule` table's rows that could name the sender (both databases); and `rules test`
judging with the table."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.app import App, build_app
from mailbridge.cli.rules import Supposed, explain_files
from mailbridge.db.models import SenderRule
from mailbridge.tickets.sender_lists import sender_lists
from tests.support.builders import mail, make_config
from tests.support.sla_world import NOWHERE, START

pytestmark = pytest.mark.db

ROWS = {
    "bob@partner.example": "block",
    "partner.example": "allow",
    "*@*.mailer.example": "block",
    "noreply@*": "block",
    "unrelated.example": "block",
}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[App]:
    config = make_config(
        tmp_path,
        database_url=database_url,
        imap=NOWHERE,
        smtp=NOWHERE,
        spam={"block": ["*@spam.example"], "allow": ["friend@spam.example"]},
    )
    application = build_app(config)
    with application.transaction() as session:
        for pattern, kind in ROWS.items():
            session.add(SenderRule(pattern=pattern, kind=kind, created_at=START, created_by="t"))
    yield application
    application.close()


@pytest.mark.parametrize(
    ("address", "allow", "block"),
    [
        ("bob@partner.example", ["partner.example"], ["bob@partner.example"]),
        ("Ann@Sales.Partner.Example", ["partner.example"], []),
        ("x@eu.mailer.example", [], ["*@*.mailer.example"]),
        ("noreply@shop.example", [], ["noreply@*"]),
        ("ann@elsewhere.example", [], []),
        ("", [], []),
    ],
)
def test_one_sender_gets_the_configuration_and_the_rows_that_could_name_it(
    app: App, address: str, allow: list[str], block: list[str]
) -> None:
    with app.sessions() as session:
        found = sender_lists(session, app.config, address)
    assert found == (("friend@spam.example", *allow), ("*@spam.example", *block))


def test_without_a_sender_every_row(app: App) -> None:
    with app.sessions() as session:
        allow, block = sender_lists(session, app.config)
    assert allow == ("friend@spam.example", "partner.example")
    assert sorted(block) == sorted(
        ["*@spam.example", *(p for p, k in ROWS.items() if k == "block")]
    )


def test_rules_test_judges_with_the_table(app: App, tmp_path: Path) -> None:
    path = tmp_path / "bob.eml"
    path.write_bytes(mail("Bob <bob@partner.example>", "Hi"))
    other = tmp_path / "x.eml"
    other.write_bytes(mail("X <x@eu.mailer.example>", "Hi"))
    out = io.StringIO()

    assert explain_files(app.config, [str(path), str(other)], out, Supposed(), as_json=True) == 0
    reports = [
        json.loads(chunk) for chunk in out.getvalue().replace("}\n{", "}\n\n{").split("\n\n")
    ]
    assert [r["judgement"] for r in reports] == [
        {"spam": False, "reason": "allowlist: partner.example"},
        {"spam": True, "reason": "blocklist: *@*.mailer.example"},
    ]
