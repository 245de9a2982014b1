"""`#faq save "Title"` on a staff answer, through the real processing path on SQLite and
PostgreSQL: the answer goes to the customer as always and is kept as a draft FAQ entry in
[faq] drafts_dir with keywords from the customer's question; what keeps a draft from being
saved is mailed back without holding the answer; nobody unproven saves anything; a title
can neither shape the file nor name a path; and a draft in the FAQ folder is never offered
until an operator makes it live (tickets/faq_drafts.py, inbound/staff.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.core.faq import parse_entry
from tests.support.builders import mail
from tests.support.sla_world import World, make_world, policy, text_of
from tests.support.staff_world import ADA, ALICE, STAFF, STEPS, event, event_types, staff_answer

pytestmark = pytest.mark.db

QUESTION = (
    "Forgotten password",
    "Hello,\nI forgot my password and the app will not let me sign in.\n"
    "How do I reset the password?\n\nAda Lovelace\n",
)
ANSWER = "On the sign-in page choose Forgot password and follow the link we send you."
SAVE = '#faq save "I forgot my password"'


def make(tmp_path: Path, database_url: str, **sections: object) -> World:
    return make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF, **sections)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make(tmp_path, database_url)
    yield made
    made.app.close()


def ada_asks(world: World, question: tuple[str, str] = QUESTION, n: int = 1) -> None:
    subject, body = question
    world.receive(
        mail(f"Ada Lovelace <{ADA}>", subject, body, message_id=f"<q{n}@customer.example>")
    )


def drafts(world: World) -> dict[str, str]:
    folder = world.app.config.faq_drafts_dir
    if not folder.exists():
        return {}
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())}


def test_the_answer_goes_out_and_is_kept_as_a_draft_with_the_question_s_words(
    world: World, tmp_path: Path
) -> None:
    ada_asks(world)

    world.receive(staff_answer(world, 1000, f"{SAVE}\n\n{ANSWER}"))

    (reply,) = world.mails("reply")
    assert reply.envelope_to == [ADA]
    _subject, text = text_of(reply)
    assert ANSWER in text and "#faq" not in text
    assert world.app.config.faq_drafts_dir == tmp_path / "faq-drafts"  # under data_dir
    saved = drafts(world)
    assert list(saved) == ["i-forgot-my-password-en.md"]
    entry = parse_entry("i-forgot-my-password-en.md", saved["i-forgot-my-password-en.md"])
    assert (entry.title, entry.status, entry.language, entry.ticket) == (
        "I forgot my password",
        "draft",
        "en",
        1000,
    )
    assert entry.saved == world.now.date() and entry.body == ANSWER
    # the question's words, as written, subject first; no stop words, not her name
    assert entry.keywords[:3] == ("password", "forgotten", "forgot")
    assert {"hello", "ada", "lovelace", "how", "the"}.isdisjoint(entry.keywords)
    assert len(entry.keywords) <= 8
    saved_event = event(world, 1000, "faq_draft_saved")
    assert saved_event.data["file"] == "i-forgot-my-password-en.md"
    assert saved_event.data["by"] == ALICE and saved_event.data["title"] == "I forgot my password"
    types = event_types(world, 1000)
    assert types.index("staff_reply") < types.index("faq_draft_saved")
    assert world.mails("staff_error") == []


def test_a_second_draft_of_the_same_title_takes_a_new_name(world: World) -> None:
    ada_asks(world)
    world.receive(staff_answer(world, 1000, f"{SAVE}\n\n{ANSWER}"))
    world.receive(staff_answer(world, 1000, f"#note\n{SAVE}\n\nOr ask us for a new link."))

    saved = drafts(world)
    assert list(saved) == ["i-forgot-my-password-2-en.md", "i-forgot-my-password-en.md"]
    assert saved["i-forgot-my-password-en.md"].endswith(f"\n---\n{ANSWER}\n")
    assert saved["i-forgot-my-password-2-en.md"].endswith("\n---\nOr ask us for a new link.\n")
    assert len(world.mails("reply")) == 1  # the note reached no customer


@pytest.mark.parametrize(
    ("command", "told"),
    [
        ("#faq save", "#faq save needs the entry's title"),
        ('#faq save ""', "#faq save needs the entry's title"),
        ('#faq publish "x"', "the one action is save"),
        ("#faq save " + "x" * 121, "at most 120"),
    ],
    ids=["no-title", "empty-title", "unknown-action", "long-title"],
)
def test_a_faulty_faq_command_is_told_and_the_answer_still_goes_out(
    world: World, command: str, told: str
) -> None:
    ada_asks(world)

    world.receive(staff_answer(world, 1000, f"{command}\n\n{ANSWER}"))

    assert drafts(world) == {}
    (reply,) = world.mails("reply")
    assert ANSWER in text_of(reply)[1]
    assert world.ticket().first_responded_at is not None
    (error,) = world.mails("staff_error")
    assert error.envelope_to == [ALICE]
    subject, text = text_of(error)
    assert "No FAQ draft saved" in subject and told in text
    refused = event(world, 1000, "faq_draft_refused")
    assert told in refused.data["errors"][0] and refused.data["outbox_id"] == error.id
    assert "faq_draft_saved" not in event_types(world, 1000)


def test_a_drafts_folder_that_cannot_be_made_is_told_and_the_answer_goes_out(
    tmp_path: Path, database_url: str
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    world = make(tmp_path, database_url, faq={"drafts_dir": str(blocker / "drafts")})
    try:
        ada_asks(world)
        world.receive(staff_answer(world, 1000, f"{SAVE}\n\n{ANSWER}"))

        assert len(world.mails("reply")) == 1
        (error,) = world.mails("staff_error")
        assert "could not be written into" in text_of(error)[1]
        refused = event(world, 1000, "faq_draft_refused")
        assert "[faq] drafts_dir" in refused.data["errors"][0]
        assert str(tmp_path) not in str(refused.data)  # events go into a data export
        assert blocker.read_text() == "a file where the folder should be"
    finally:
        world.app.close()


def test_a_reply_with_no_words_of_its_own_saves_nothing(world: World) -> None:
    ada_asks(world)
    world.receive(staff_answer(world, 1000, f"{SAVE}\n#priority high"))

    assert drafts(world) == {}
    assert world.ticket().priority == "high"  # the other command applied
    assert "no answer of its own" in event(world, 1000, "faq_draft_refused").data["errors"][0]


# --- hostile ---------------------------------------------------------------------------------


def test_nobody_unproven_saves_a_draft(world: World) -> None:
    ada_asks(world)
    # the customer writes the command into her own follow-up
    world.receive(
        mail(
            f"Ada Lovelace <{ADA}>",
            "Re: [#1000] Forgotten password",
            f"{SAVE}\n\nPlease reset it for me.",
            in_reply_to="<q1@customer.example>",
        )
    )
    # a mail with Alice's From and no proof: no token, no trusted authentication
    world.receive(staff_answer(world, 1000, f"{SAVE}\n\n{ANSWER}", token=False))

    assert drafts(world) == {}
    assert not world.app.config.faq_drafts_dir.exists()
    assert world.events("faq_draft_saved", "faq_draft_refused") == []
    assert world.mails("reply") == []


@pytest.mark.parametrize(
    "title",
    [
        '"x\u2028---\u2028status: live\u2028title: y"',
        '"x\x0b---\x0bstatus: live"',
        '"x\x85---\x85status: live"',
        '"x" status: live',
        '"x"\nstatus: live',
    ],
    ids=["line-separator", "vertical-tab", "next-line", "after-the-quote", "next-line-of-mail"],
)
def test_a_title_cannot_make_a_live_entry(world: World, title: str) -> None:
    ada_asks(world)

    world.receive(staff_answer(world, 1000, f"#faq save {title}\n\n{ANSWER}"))

    saved = drafts(world)
    assert len(saved) == 1
    for name, text in saved.items():
        assert parse_entry(name, text).status == "draft"
        front = text.removeprefix("---\n").split("\n---\n", 1)[0].splitlines()
        # six lines, each key once, whatever the title held; its words after "---" are
        # the answer's (parse_commands ends the commands at the first line that is none)
        assert [line.partition(":")[0] for line in front] == [
            "title",
            "keywords",
            "language",
            "status",
            "ticket",
            "saved",
        ]
        assert front[3] == "status: draft"


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ('"../../../etc/cron.d/evil"', "etc-cron-d-evil-en.md"),
        ('"/root/.ssh/authorized_keys"', "root-ssh-authorized-keys-en.md"),
        ('"..\\\\..\\\\windows"', "windows-en.md"),
        ('"../.."', "ticket-1000-en.md"),
        ('"密码忘了"', "ticket-1000-en.md"),
    ],
    ids=["dot-dot", "absolute", "backslashes", "only-dots", "no-ascii"],
)
def test_a_title_names_no_path(world: World, tmp_path: Path, title: str, name: str) -> None:
    ada_asks(world)
    before = {p for p in tmp_path.rglob("*") if "faq-drafts" not in p.parts}

    world.receive(staff_answer(world, 1000, f"#faq save {title}\n\n{ANSWER}"))

    assert list(drafts(world)) == [name]
    after = {p for p in tmp_path.rglob("*") if "faq-drafts" not in p.parts}
    assert {p.name for p in after - before} <= {"mailbridge.db-wal", "mailbridge.db-shm"}


# --- from draft to live ------------------------------------------------------------------------

SHIPPING = """---
title: When will my order arrive?
keywords: [delivery, shipping, tracking]
language: en
---
Orders ship within two working days.
"""


def test_a_draft_in_the_faq_folder_is_never_offered_until_made_live(
    tmp_path: Path, database_url: str
) -> None:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "shipping-en.md").write_text(SHIPPING)
    world = make(
        tmp_path,
        database_url,
        faq={"dir": str(folder)},
        tickets={"ack_unauthenticated": "full"},
    )
    try:
        ada_asks(world)
        assert world.events("faq_offered") == []
        world.receive(staff_answer(world, 1000, f"{SAVE}\n\n{ANSWER}"))
        (name, text) = drafts(world).popitem()
        (folder / name).write_text(text)  # moved in as it was saved: still a draft
        world.app.reconfigure(world.app.config, world.app.templates)

        ada_asks(world, n=2)  # the same question on a new ticket
        assert world.ticket(1001).status == "new"
        assert world.events("faq_offered") == []

        (folder / name).write_text(text.replace("status: draft\n", ""))  # made live
        world.app.reconfigure(world.app.config, world.app.templates)
        ada_asks(world, n=3)
        (offered,) = world.events("faq_offered")
        assert offered.data["offered"][0]["file"] == name
    finally:
        world.app.close()
