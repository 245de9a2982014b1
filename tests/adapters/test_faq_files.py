"""The FAQ folder is read whole at load: a bad entry is a configuration error naming its
file, a draft is left out of the index, and the configured number of suggestions and
threshold apply."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from mailbridge.adapters.faq_files import load_index, suggest
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from tests.support.builders import IMAP_PASSWORD_ENV, write_config_file

pytestmark = pytest.mark.unit

CLOSE = """---
title: Closing your account
keywords: [close, account, delete]
language: en
---
Go to Settings, then Close account.
"""
CARD = """---
title: A lost or stolen card
keywords: [card, lost, stolen, block]
language: en
---
Block it at once in the app, under Cards.
"""


class Nowhere:
    host, port, username, password = "127.0.0.1", 1, "support", "secret"


def config_with(tmp_path: Path, faq: str) -> Path:
    path = write_config_file(
        tmp_path, Nowhere(), Nowhere(), f"sqlite:///{tmp_path}/db", password_env=IMAP_PASSWORD_ENV
    )
    path.write_text(path.read_text() + f"\n[faq]\n{faq}\n")
    return path


def entries(folder: Path, **files: str) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.md").write_text(text)
    return folder


def test_a_relative_folder_is_read_from_beside_the_config_file(tmp_path: Path) -> None:
    entries(tmp_path / "faq", close=CLOSE, card=CARD)
    config = load_config(
        config_with(tmp_path, 'dir = "faq"\nsuggestions = 1'), {IMAP_PASSWORD_ENV: "secret"}
    )

    index = load_index(config)

    assert index is not None and config.faq.dir == tmp_path / "faq"
    found = suggest(config, index, "Account", "I want to close my account and delete it", "en")
    assert [m.entry.title for m in found] == ["Closing your account"]


def test_a_higher_threshold_offers_fewer_answers(tmp_path: Path) -> None:
    entries(tmp_path / "faq", close=CLOSE, card=CARD)
    loose = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})
    strict = loose.model_copy(update={"faq": loose.faq.model_copy(update={"threshold": 0.99})})
    index = load_index(loose)
    assert index is not None
    question = "how do I close my account?"

    assert suggest(loose, index, question, "", "en")
    assert suggest(strict, index, question, "", "en") == []


def test_a_broken_entry_is_a_configuration_error_naming_its_file(tmp_path: Path) -> None:
    folder = entries(tmp_path / "faq", close=CLOSE, broken="no front matter here\n")
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    with pytest.raises(ConfigError, match=str(folder / "broken.md")):
        load_index(config)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_folder_that_is_missing_or_empty_is_refused(tmp_path: Path, make: str) -> None:
    if make == "empty":
        (tmp_path / "faq").mkdir()
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    with pytest.raises(ConfigError, match="faq.dir"):
        load_index(config)


def test_no_folder_means_no_suggestions(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, ""), {IMAP_PASSWORD_ENV: "secret"})

    assert load_index(config) is None


def test_a_draft_is_read_but_never_indexed_and_the_skip_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    draft = CARD.replace("language: en\n", "language: en\nstatus: draft\nticket: 1042\n")
    entries(tmp_path / "faq", close=CLOSE, card=draft)
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    with caplog.at_level(logging.WARNING, logger="mailbridge.adapters.faq_files"):
        index = load_index(config)

    assert index is not None and [e.file for e in index.entries] == ["close.md"]
    assert suggest(config, index, "Card", "my card was stolen, please block it", "en") == []
    assert "card.md" in caplog.text and "status: live" in caplog.text


def test_a_folder_of_drafts_only_offers_nothing(tmp_path: Path) -> None:
    draft = CARD.replace("language: en\n", "language: en\nstatus: Draft\n")
    entries(tmp_path / "faq", card=draft)
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    index = load_index(config)

    assert index is not None and index.entries == ()
    assert suggest(config, index, "Card", "my card was stolen, please block it", "en") == []


def test_an_explicitly_live_entry_is_offered(tmp_path: Path) -> None:
    live = CARD.replace("language: en\n", "language: en\nstatus: live\nsaved: 2026-11-23\n")
    entries(tmp_path / "faq", card=live)
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    index = load_index(config)

    assert index is not None
    found = suggest(config, index, "Card", "my card was stolen, please block it", "en")
    assert [m.entry.file for m in found] == ["card.md"]


@pytest.mark.parametrize(
    ("line", "told"),
    [
        ("status: published", "'status' must be live or draft"),
        ("status:", "'status' must be live or draft"),
        ("ticket: #1042", "'ticket' must be a ticket number"),
        ("saved: yesterday", "'saved' must be a day"),
        ("author: alice", "is not 'title:', 'keywords:', 'language:', 'status:'"),
    ],
)
def test_a_mistyped_status_or_provenance_stops_the_load(
    tmp_path: Path, line: str, told: str
) -> None:
    entries(tmp_path / "faq", card=CARD.replace("language: en\n", f"language: en\n{line}\n"))
    config = load_config(config_with(tmp_path, 'dir = "faq"'), {IMAP_PASSWORD_ENV: "secret"})

    with pytest.raises(ConfigError, match=re.escape(told)):
        load_index(config)
