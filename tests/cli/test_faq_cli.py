"""`mailbridge faq test`: how the FAQ folder ranks for a question, as operators check it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.core.faq import THRESHOLD
from tests.support.builders import write_config_file

pytestmark = pytest.mark.integration

PASSWORD_ENV = "MB_FAQ_CLI_IMAP_PASSWORD"

ENTRIES = {
    "close-account.md": """---
title: How do I close my account?
keywords: [close account, cancel, delete account]
language: en
---
Go to Settings, then Account, then Close account. Your balance is transferred first.
""",
    "account-statement.md": """---
title: Where do I find my account statement?
keywords: [statement, account statement]
language: en
---
Statements are under Documents in the app, one per month.
""",
    "lost-card.md": """---
title: I lost my card
keywords: [lost card, stolen card, block card]
language: en
---
Block the card from the app under Cards, then order a new one.
""",
    "chiudere-conto.md": """---
title: Come chiudo il mio conto?
keywords: [chiudere conto, estinzione]
language: it
---
Vai su Impostazioni, poi Conto, poi Chiudi conto. Il saldo viene trasferito prima.
""",
    # The same answer in both languages: "IBAN" matches either unless the language decides.
    "iban.md": """---
title: Where do I find my IBAN?
language: en
---
Your IBAN is on the home screen of the app, under Details.
""",
    "iban-it.md": """---
title: Dove trovo il mio IBAN?
language: it
---
Il tuo IBAN è nella schermata principale dell'app, sotto Dettagli.
""",
}


def write_config(tmp_path: Path, faq: str | None) -> Path:
    """A configuration file whose servers are never contacted: `faq test` needs none."""
    server = SimpleNamespace(host="127.0.0.1", port=1, username="support")
    path = write_config_file(
        tmp_path, server, server, f"sqlite:///{tmp_path / 'mb.db'}", password_env=PASSWORD_ENV
    )
    if faq is not None:
        with path.open("a", encoding="utf-8") as file:
            file.write(f"\n[faq]\n{faq}\n")
    return path


@pytest.fixture
def faq_config(tmp_path: Path) -> Path:
    folder = tmp_path / "faq"
    folder.mkdir()
    for name, text in ENTRIES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return write_config(tmp_path, 'dir = "faq"')


def faq_test(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, PASSWORD_ENV: "not-used"}
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(config), "faq", "test", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def ranking(config: Path, *args: str) -> list[dict[str, Any]]:
    result = faq_test(config, *args, "--json")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert isinstance(parsed, list)
    return parsed


def test_json_lists_entries_above_the_threshold_best_first(faq_config: Path) -> None:
    found = ranking(faq_config, "how do I close my account")

    assert [item["file"] for item in found] == ["close-account.md", "account-statement.md"]
    assert all(set(item) == {"file", "title", "score", "how", "shared", "cutoff"} for item in found)
    assert found[0]["how"] == "words" and found[0]["cutoff"] == THRESHOLD
    assert {"close", "account"} <= set(found[0]["shared"])
    assert found[0]["title"] == "How do I close my account?"
    scores = [item["score"] for item in found]
    assert all(isinstance(score, float) and THRESHOLD < score <= 1 for score in scores)
    assert scores == sorted(scores, reverse=True)


def test_table_shows_score_cutoff_file_title_and_why_best_first(faq_config: Path) -> None:
    result = faq_test(faq_config, "how do I close my account")

    assert result.returncode == 0, result.stderr
    said, header, *lines = result.stdout.splitlines()
    assert said == "question language: en; semantic: lexicon"
    assert header.split() == ["score", "cut-off", "by", "file", "title"]
    rows = [line for line in lines if not line.lstrip().startswith("shared:")]
    assert [row.split()[3] for row in rows] == ["close-account.md", "account-statement.md"]
    assert rows[0].endswith("How do I close my account?")
    assert float(rows[0].split()[0]) > float(rows[1].split()[0]) > THRESHOLD
    assert float(rows[0].split()[1]) == THRESHOLD and rows[0].split()[2] == "words"
    assert lines[1].split() == ["shared:", "close,", "account"]


def test_a_question_the_faq_does_not_cover_gets_nothing(faq_config: Path) -> None:
    question = "what is the weather like in Rome tomorrow"

    assert ranking(faq_config, question) == []
    result = faq_test(faq_config, question)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "no entry answers this closely enough"


def files(found: list[dict[str, Any]]) -> set[str]:
    return {item["file"] for item in found}


def test_the_detected_language_keeps_to_entries_in_it(faq_config: Path) -> None:
    italian = "Buongiorno, dove trovo il mio IBAN?"
    english = "Hello, could you tell me my IBAN please?"

    assert files(ranking(faq_config, italian)) == {"iban-it.md"}
    assert files(ranking(faq_config, english)) == {"iban.md"}


def test_the_language_given_replaces_detection(faq_config: Path) -> None:
    assert files(ranking(faq_config, "IBAN")) == {"iban.md", "iban-it.md"}  # too short to tell
    assert files(ranking(faq_config, "IBAN", "--language", "it")) == {"iban-it.md"}
    assert files(ranking(faq_config, "IBAN", "--language", "en")) == {"iban.md"}


def test_the_configured_threshold_replaces_the_default(tmp_path: Path, faq_config: Path) -> None:
    config = write_config(tmp_path, 'dir = "faq"\nthreshold = 0.6')

    found = ranking(config, "how do I close my account")

    assert [item["file"] for item in found] == ["close-account.md"]


def test_without_a_faq_dir_it_says_to_set_one(tmp_path: Path) -> None:
    result = faq_test(write_config(tmp_path, None), "how do I close my account")

    assert result.returncode == 2
    assert "[faq] dir" in result.stderr
    assert result.stdout == ""


def test_a_broken_entry_is_a_configuration_error_naming_the_file(faq_config: Path) -> None:
    (faq_config.parent / "faq" / "broken.md").write_text("no front matter\n", encoding="utf-8")

    result = faq_test(faq_config, "how do I close my account")

    assert result.returncode == 2
    assert "broken.md" in result.stderr
    assert "---" in result.stderr


PARAPHRASE = "Someone pinched my Visa on the bus, please freeze it"


def test_a_question_sharing_no_word_is_matched_on_concepts_and_says_which(
    faq_config: Path,
) -> None:
    (best, *_) = ranking(faq_config, PARAPHRASE)

    assert best["file"] == "lost-card.md"
    assert best["how"] == "concepts"
    assert {"steal (concept)", "card (concept)"} <= set(best["shared"])
    assert best["score"] > best["cutoff"]


def test_with_semantic_off_only_words_match(tmp_path: Path, faq_config: Path) -> None:
    config = write_config(tmp_path, 'dir = "faq"\nsemantic = "off"')

    assert ranking(config, PARAPHRASE) == []
    assert files(ranking(config, "I lost my card")) == {"lost-card.md"}


def test_an_english_question_reaches_an_italian_entry_when_none_is_in_english(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "faq"
    folder.mkdir()
    (folder / "chiudere-conto.md").write_text(ENTRIES["chiudere-conto.md"], encoding="utf-8")
    config = write_config(tmp_path, 'dir = "faq"')

    found = ranking(config, "I want to terminate my account, how?", "--language", "en")

    assert [(item["file"], item["how"]) for item in found] == [("chiudere-conto.md", "concepts")]


def test_semantic_model_without_a_model_folder_is_refused_naming_the_key(
    tmp_path: Path, faq_config: Path
) -> None:
    result = faq_test(write_config(tmp_path, 'dir = "faq"\nsemantic = "model"'), "close")

    assert result.returncode == 2
    assert "faq.model" in result.stderr
