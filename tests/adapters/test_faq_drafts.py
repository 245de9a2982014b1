"""Draft FAQ entries on disk: the folder made for the service's user and group, each draft
written whole under a name no other file has, the same draft written again found instead
of copied, and the folder read back for review (adapters/faq_drafts.py)."""

from __future__ import annotations

import stat
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from mailbridge.adapters.faq_drafts import DraftNotSaved, read_drafts, save_draft
from mailbridge.core.faq_drafts import draft_text
from tests.support.faq_drafts import DRAFT

pytestmark = pytest.mark.unit


def test_a_draft_is_written_whole_into_a_new_folder(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "faq-drafts"

    name = save_draft(folder, DRAFT, "i-forgot-my-password")

    assert name == "i-forgot-my-password-en.md"
    assert [p.name for p in folder.iterdir()] == [name]  # no temporary file left
    assert (folder / name).read_text(encoding="utf-8") == draft_text(DRAFT)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert stat.S_IMODE((folder / name).stat().st_mode) == 0o640


def test_the_same_draft_again_is_found_even_on_a_later_day(tmp_path: Path) -> None:
    first = save_draft(tmp_path, DRAFT, "reset")
    again = save_draft(tmp_path, replace(DRAFT, saved=date(2026, 11, 30)), "reset")

    assert again == first == "reset-en.md"
    assert [p.name for p in tmp_path.iterdir()] == ["reset-en.md"]
    assert "saved: 2026-11-23" in (tmp_path / first).read_text()


def test_another_draft_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / "reset-en.md").write_text("an operator's own file\n")
    other_ticket = replace(DRAFT, ticket=1043)

    names = [
        save_draft(tmp_path, DRAFT, "reset"),
        save_draft(tmp_path, other_ticket, "reset"),
        save_draft(tmp_path, replace(DRAFT, language="it"), "reset"),
    ]

    assert names == ["reset-2-en.md", "reset-3-en.md", "reset-it.md"]
    assert (tmp_path / "reset-en.md").read_text() == "an operator's own file\n"
    assert "ticket: 1043" in (tmp_path / "reset-3-en.md").read_text()


def test_a_folder_that_cannot_be_made_is_said(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(DraftNotSaved, match="could not be written into") as refused:
        save_draft(tmp_path / "file" / "drafts", DRAFT, "reset")
    # the reason goes into the ticket's events, which a customer's data export holds
    assert str(tmp_path) not in str(refused.value)


def test_a_name_that_is_no_draft_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DraftNotSaved, match="not a draft file name"):
        save_draft(tmp_path, DRAFT, "../escape")
    assert list(tmp_path.parent.glob("escape*")) == []


def test_too_many_waiting_drafts_of_one_title_are_said(tmp_path: Path) -> None:
    for n in range(1, 101):
        (tmp_path / ("reset-en.md" if n == 1 else f"reset-{n}-en.md")).write_text("x")

    with pytest.raises(DraftNotSaved, match="100 drafts named reset-"):
        save_draft(tmp_path, DRAFT, "reset")


def test_the_folder_read_back_with_the_files_it_cannot_read(tmp_path: Path) -> None:
    assert read_drafts(tmp_path / "none-yet") == []
    save_draft(tmp_path, DRAFT, "reset")
    (tmp_path / "broken-en.md").write_text("no front matter\n")
    (tmp_path / "notes.txt").write_text("not an entry")

    found = read_drafts(tmp_path)

    assert [d.file for d in found] == ["broken-en.md", "reset-en.md"]
    assert found[0].entry is None and "start the file with a '---' line" in found[0].problem
    entry = found[1].entry
    assert entry is not None and (entry.status, entry.ticket) == ("draft", 1042)
