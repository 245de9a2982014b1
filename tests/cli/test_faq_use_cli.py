"""`mailbridge faq drafts`, `faq stats` and `faq gaps` on real rows, on SQLite and
PostgreSQL: tickets opened, acknowledged with FAQ answers or without, solved by the
customer, answered by staff or left quiet, through the real processing path; then the
commands' tables and JSON (cli/faq.py, cli/faq_use.py, reports/faq_use.py)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.cli.faq import list_drafts
from mailbridge.cli.faq_use import print_gaps, print_stats
from mailbridge.cli.main import main
from mailbridge.core.report import Period, period_since
from tests.support.builders import IMAP_PASSWORD_ENV, mail, write_config_file
from tests.support.sla_world import NOWHERE, START, World, make_world
from tests.support.staff_world import STAFF, staff_answer

pytestmark = pytest.mark.db

D = timedelta(days=1)
ENTRIES = {
    "reset-password-en.md": """---
title: I forgot my password
keywords: [password, reset, forgot, sign in, log in]
language: en
---
On the sign-in page choose Forgot password and follow the link we send you.
""",
    "delivery-en.md": """---
title: When will my order arrive?
keywords: [delivery, shipping, tracking, arrive]
language: en
---
Orders ship within two working days; the tracking number is under Orders.
""",
    "iban-en.md": """---
title: Where do I find my IBAN?
keywords: [iban, bank details]
language: en
---
Your IBAN is on the home screen of the app, under Details.
""",
}
PASSWORD = ("Forgotten password", "Hello,\nI forgot my password. How do I reset it?\n")
DELIVERY = ("Where is my order?", "Hello,\nwhen will my order arrive? I need the tracking.\n")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    folder = tmp_path / "faq"
    folder.mkdir()
    for name, text in ENTRIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    made = make_world(
        tmp_path,
        database_url,
        staff=STAFF,
        faq={"dir": str(folder)},
        tickets={"ack_unauthenticated": "full", "close_after": "2d"},
        spam={"block": ["*@spam.example"]},
    )
    yield made
    made.app.close()


def asks(world: World, who: str, question: tuple[str, str], n: int) -> None:
    subject, body = question
    world.receive(mail(f"{who} <{who}@customer.example>", subject, body, message_id=f"<q{n}@c>"))


def writes_again(world: World, who: str, text: str, n: int, answering: int) -> None:
    world.receive(
        mail(
            f"{who} <{who}@customer.example>",
            "Re: question",
            text,
            message_id=f"<r{n}@c>",
            in_reply_to=f"<q{answering}@c>",
        )
    )


def stats(world: World, period: Period | None = None) -> dict[str, Any]:
    out = io.StringIO()
    period = period or period_since(world.now, 30 * D)
    assert print_stats(world.app, period, out, True) == 0
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def outcomes(document: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    keys = ("offered", "solved", "staff", "quiet", "open")
    return {e["file"]: tuple(e[k] for k in keys) for e in document["entries"]}


# --- stats ------------------------------------------------------------------------------------


def test_stats_count_each_offer_by_how_it_ended(world: World) -> None:
    asks(world, "old", PASSWORD, 0)  # offered before the period: not counted
    world.advance(40 * D)
    asks(world, "ada", PASSWORD, 1)  # #1001: solved by her "solved"
    asks(world, "bea", PASSWORD, 2)  # #1002: staff still answer
    asks(world, "cea", PASSWORD, 3)  # #1003: quiet for the 2 days of close_after
    asks(world, "dan", PASSWORD, 4)  # #1004: writes again within them: open
    world.advance(D / 2)
    writes_again(world, "ada", "Solved, thanks!", 1, answering=1)
    world.receive(staff_answer(world, 1002, "Use the Forgot password link."))
    writes_again(world, "dan", "The link does not arrive.", 4, answering=4)
    world.advance(2 * D)
    asks(world, "eve", DELIVERY, 5)  # #1005: offered just now: open
    asks(world, "fay", ("Printer on fire", "My printer is on fire, what now?\n"), 6)  # none

    document = stats(world)

    assert outcomes(document) == {
        "reset-password-en.md": (4, 1, 1, 1, 1),
        "delivery-en.md": (1, 0, 0, 0, 1),
        "iban-en.md": (0, 0, 0, 0, 0),  # in the folder, never offered
    }
    assert [e["in_folder"] for e in document["entries"]] == [True, True, True]
    assert document["entries"][0]["title"] == "I forgot my password"
    assert document["to"] == world.now.isoformat()

    world.advance(2 * D)  # Eve's window passes in silence
    assert outcomes(stats(world))["delivery-en.md"] == (1, 0, 0, 1, 0)


def test_stats_quiet_window_is_rating_lifetime_where_tickets_never_close(
    tmp_path: Path, database_url: str
) -> None:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "reset-password-en.md").write_text(ENTRIES["reset-password-en.md"])
    world = make_world(
        tmp_path,
        database_url,
        staff=STAFF,
        faq={"dir": str(folder)},
        tickets={"ack_unauthenticated": "full", "rating_lifetime": "5d"},
    )
    try:
        asks(world, "ada", PASSWORD, 1)
        world.advance(4 * D)
        assert outcomes(stats(world))["reset-password-en.md"] == (1, 0, 0, 0, 1)
        world.advance(D)
        assert outcomes(stats(world))["reset-password-en.md"] == (1, 0, 0, 1, 0)
    finally:
        world.app.close()


def test_stats_table_names_entries_no_longer_in_the_folder(world: World) -> None:
    asks(world, "ada", PASSWORD, 1)
    (world.app.config.faq.dir / "reset-password-en.md").unlink()  # type: ignore[operator]
    world.app.reconfigure(world.app.config, world.app.templates)

    out = io.StringIO()
    print_stats(world.app, period_since(world.now, 30 * D), out, False)

    lines = out.getvalue().splitlines()
    assert lines[2].split() == ["file", "offered", "solved", "staff", "quiet", "open", "title"]
    rows = {line.split()[0]: line for line in lines[3:6]}
    assert rows["reset-password-en.md"].split()[1:6] == ["1", "0", "0", "0", "1"]
    assert rows["reset-password-en.md"].endswith("(not in the FAQ folder now)")
    assert rows["delivery-en.md"].endswith("When will my order arrive?")


# --- gaps -------------------------------------------------------------------------------------

INVOICE = [
    ("Invoice copy", "Can you send me a copy of the invoice for my last order?"),
    ("Invoice", "I need the invoice for my order, please send a copy."),
    ("Copy of invoice needed", "Please send me a copy of my invoice."),
]
ADDRESS = [
    ("Change of address", "I moved, please change the delivery address on my account."),
    ("New delivery address", "Please change my delivery address, I moved last week."),
]
GIFT = ("Gift wrapping", "Can you wrap the present for my sister as a gift?")


def gaps(world: World, limit: int = 1000, top: int = 20) -> dict[str, Any]:
    out = io.StringIO()
    print_gaps(world.app, period_since(world.now, 30 * D), out, True, limit=limit, top=top)
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def test_gaps_group_the_questions_no_answer_was_offered_for(world: World) -> None:
    asks(world, "old", INVOICE[0], 0)  # before the period
    world.advance(40 * D)
    n = 1
    for question in [*INVOICE, *ADDRESS, GIFT]:
        asks(world, f"c{n}", question, n)
        n += 1
    asks(world, "pw", PASSWORD, 90)  # offered an answer: no gap
    world.receive(mail("X <x@spam.example>", *INVOICE[1], message_id="<s@c>"))  # spam
    world.advance(D)

    document = gaps(world)

    assert (document["questions"], document["read"], document["answered_now"]) == (6, 6, 0)
    groups = [(g["count"], g["tickets"]) for g in document["groups"]]
    assert groups == [(3, [1003, 1002, 1001]), (2, [1005, 1004])]
    assert document["alone"] == 1  # the gift wrapping
    assert document["groups"][0]["examples"][0] == {
        "ticket": 1003,
        "subject": "Copy of invoice needed",
    }

    # An entry written for the gift wrapping: the FAQ answers it now.
    gift = "---\ntitle: Gift wrapping\nkeywords: [gift, wrap]\nlanguage: en\n---\nAsk us.\n"
    (world.app.config.faq.dir / "gift-en.md").write_text(gift)  # type: ignore[operator]
    world.app.reconfigure(world.app.config, world.app.templates)
    document = gaps(world)
    assert (document["read"], document["answered_now"], document["alone"]) == (6, 1, 0)

    # The most recent first, within the limit; the groups shown, within --top.
    limited = gaps(world, limit=3, top=1)
    assert (limited["questions"], limited["read"], limited["answered_now"]) == (6, 3, 1)
    assert [(g["count"], g["tickets"]) for g in limited["groups"]] == [(2, [1005, 1004])]


def test_gaps_table_shows_counts_tickets_and_subjects_safely(world: World) -> None:
    hostile = ("Invoice \x1b[31mcopy\u202e", "Can you send me a copy of the invoice for my order?")
    for n, question in enumerate([*INVOICE, hostile], start=1):
        asks(world, f"c{n}", question, n)

    out = io.StringIO()
    print_gaps(world.app, period_since(world.now, D), out, False, limit=100)

    text = out.getvalue()
    assert "offered no FAQ answer: 4; the 4 most recent read, 0 of them answered" in text
    first = text.splitlines()[2]
    assert first.split() == ["4", "#1001", "Invoice"]  # alike to all three others
    assert text.splitlines()[3].split()[:2] == ["#1003", "Invoice"]  # then the most recent
    assert "\x1b" not in text and "\u202e" not in text
    assert "… and 1 more" in text


# --- drafts, and the commands as run ----------------------------------------------------------


def test_drafts_list_newest_first_with_unreadable_files(world: World) -> None:
    asks(world, "ada", PASSWORD, 1)
    world.receive(staff_answer(world, 1000, '#faq save "Reset"\n\nUse the link.'))
    world.advance(3 * D)
    asks(world, "bea", DELIVERY, 2)
    world.receive(staff_answer(world, 1001, '#faq save "Tracking"\n\nSee Orders.'))
    (world.app.config.faq_drafts_dir / "edited-en.md").write_text("title: no fences\n")

    out = io.StringIO()
    list_drafts(world.app.config, out, as_json=True)
    rows = json.loads(out.getvalue())

    assert [(r["file"], r["ticket"], r["status"]) for r in rows] == [
        ("tracking-en.md", 1001, "draft"),
        ("reset-en.md", 1000, "draft"),
        ("edited-en.md", None, None),
    ]
    assert rows[0]["saved"] == world.now.date().isoformat() and rows[0]["title"] == "Tracking"
    assert rows[0]["language"] == "en" and rows[0]["problem"] == ""
    assert "start the file with a '---' line" in rows[2]["problem"]

    table = io.StringIO()
    list_drafts(world.app.config, table, as_json=False)
    lines = table.getvalue().splitlines()
    assert lines[2].split() == ["file", "saved", "ticket", "lang", "status", "title"]
    assert lines[3].split()[:5] == ["tracking-en.md", rows[0]["saved"], "#1001", "en", "draft"]
    assert "(cannot be read:" in lines[5]


def test_the_commands_run_from_the_command_line(
    world: World, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asks(world, "ada", PASSWORD, 1)
    world.receive(staff_answer(world, 1000, '#faq save "Reset"\n\nUse the link.'))
    config = write_config_file(
        tmp_path, NOWHERE, NOWHERE, database_url, password_env=IMAP_PASSWORD_ENV
    )
    with config.open("a") as file:
        file.write('\n[faq]\ndir = "faq"\n')
    os.environ.setdefault(IMAP_PASSWORD_ENV, "unused")
    # The command's clock is the real one, after START: a period long enough holds it.
    since = f"{(world.now - START).days + 3650}d"

    assert main(["--config", str(config), "faq", "drafts", "--json"]) == 0
    assert [d["file"] for d in json.loads(capsys.readouterr().out)] == ["reset-en.md"]
    assert main(["--config", str(config), "faq", "stats", "--since", since, "--json"]) == 0
    offered = {e["file"]: e["offered"] for e in json.loads(capsys.readouterr().out)["entries"]}
    assert offered["reset-password-en.md"] == 1
    assert main(["--config", str(config), "faq", "gaps", "--since", since, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["questions"] == 0
    with pytest.raises(SystemExit):
        main(["--config", str(config), "faq", "gaps", "--limit", "2001"])
    assert "invalid question_limit value" in capsys.readouterr().err
