"""FAQ entries: parsing the operator's files and ranking them for a customer's question."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.core.faq import FaqEntry, FaqIndex, Match, parse_entry, terms

pytestmark = pytest.mark.unit

FAQ_DIR = Path(__file__).resolve().parents[2] / "templates" / "faq"


def entry(name: str, title: str, keywords: str, language: str | None, body: str) -> FaqEntry:
    lang = f"language: {language}\n" if language else ""
    return parse_entry(name, f"---\ntitle: {title}\nkeywords: [{keywords}]\n{lang}---\n{body}\n")


FIXTURE = [
    entry("close-it", "Chiudere il conto", "recesso, estinzione", "it",
          "Dall'app apri Profilo e conferma la chiusura con il codice SMS."),
    entry("close-en", "How to close your account", "terminate", "en",
          "Open Profile in the app and confirm with the code we text you."),
    entry("password-en", "Forgotten password", "reset, sign in", "en",
          "Tap 'Forgot password?' on the sign-in page and follow the link in the email."),
    entry("delivery-it", "Tempi di consegna", "spedizione, corriere, pacco", "it",
          "Gli ordini arrivano in 2–4 giorni lavorativi; ti inviamo il tracciamento."),
    entry("opening-hours", "Opening hours", "orari, apertura, hours", None,
          "Lunedì–venerdì 9–18. Monday to Friday, 9am to 6pm."),
]  # fmt: skip


def files(matches: list[Match]) -> list[str]:
    return [m.entry.file for m in matches]


def test_parse_entry_with_inline_keywords() -> None:
    text = (
        "---\ntitle: Come chiudere il conto\nkeywords: [chiusura, 'recesso', conto]\n"
        "language: it\n---\n\nPuoi chiudere il conto **dall'app**.\n"
    )
    assert parse_entry("close.md", text) == FaqEntry(
        "close.md", "Come chiudere il conto", ("chiusura", "recesso", "conto"), "it",
        "Puoi chiudere il conto **dall'app**.",
    )  # fmt: skip


def test_parse_entry_with_keyword_lines_and_no_language() -> None:
    text = '---\ntitle: "Reset your password"\nkeywords:\n  - password\n  - sign in\n---\nTap it.'
    parsed = parse_entry("pw.md", text)
    assert (parsed.title, parsed.keywords, parsed.language) == (
        "Reset your password", ("password", "sign in"), None,
    )  # fmt: skip
    assert parsed.body == "Tap it."


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\nkeywords: [a]\n---\nBody", "add a 'title:' line"),
        ("---\ntitle:\n---\nBody", "add a 'title:' line"),
        ("title: Close\n---\nBody", "start the file with a '---' line"),
        ("---\ntitle: Close\nBody", "close the front matter"),
        ("---\ntitle: Close\nauthor: me\n---\nBody", "line 3 of the front matter"),
        ("---\ntitle: Close\nkeywords: a, b\n---\nBody", "write keywords as [a, b]"),
        ("---\ntitle: Close\nlanguage: italian\n---\nBody", "two-letter code"),
        ("---\ntitle: Close\ntitle: Again\n---\nBody", "'title' appears twice"),
        ("---\ntitle: Close\n---\n\n", "write the answer"),
    ],
)
def test_malformed_entry_names_file_and_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="^broken.md: ") as raised:
        parse_entry("broken.md", text)
    assert problem in str(raised.value)


def test_italian_question_finds_entry_through_stem() -> None:
    question = "Buongiorno, come chiudo il mio conto?"
    assert "chiudo" not in FIXTURE[0].title.lower()
    matches = FaqIndex.build(FIXTURE).rank(question, "it")
    assert files(matches)[:1] == ["close-it"]


def test_english_question_finds_entry_through_stem() -> None:
    question = "I am closing my account next week, what do I do?"
    matches = FaqIndex.build(FIXTURE).rank(question, "en")
    assert files(matches)[:1] == ["close-en"]
    assert 0 < matches[0].score <= 1


def test_accents_are_folded() -> None:
    assert terms("Perché LUNEDÌ", "it") == terms("perche lunedi", "it")


def test_ranking_is_best_first() -> None:
    matches = FaqIndex.build(FIXTURE).rank("forgot my password, cannot sign in", "en")
    assert files(matches)[0] == "password-en"
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Do you offer mortgages for first-time buyers?", "en"),
        ("Vendete anche biciclette elettriche?", "it"),
        ("Buongiorno, grazie mille e cordiali saluti", "it"),
        ("", None),
    ],
)
def test_unrelated_question_gets_nothing(question: str, language: str | None) -> None:
    assert FaqIndex.build(FIXTURE).rank(question, language) == []


def test_threshold_is_what_separates() -> None:
    index = FaqIndex.build(FIXTURE)
    question = "How do I close my account and also get a new debit card and a loan?"
    assert index.rank(question, "en", threshold=0.0)
    assert index.rank(question, "en", threshold=0.99) == []


def test_entries_in_another_language_are_skipped() -> None:
    index = FaqIndex.build(FIXTURE)
    # "conto" only appears in Italian entries: an English question must not reach them.
    assert index.rank("conto chiudere", "en", threshold=0.0) == []
    assert files(index.rank("conto chiudere", None))[:1] == ["close-it"]


def test_entry_without_language_serves_every_language() -> None:
    index = FaqIndex.build(FIXTURE)
    assert files(index.rank("orari di apertura", "it"))[:1] == ["opening-hours"]
    assert files(index.rank("what are your opening hours", "en"))[:1] == ["opening-hours"]


def test_empty_index_ranks_nothing() -> None:
    assert FaqIndex.build([]).rank("close my account", "en") == []


def test_example_faq_folder_parses() -> None:
    paths = sorted(FAQ_DIR.glob("*.md"))
    entries = [parse_entry(p.name, p.read_text(encoding="utf-8")) for p in paths]
    assert len(entries) >= 12
    assert {e.language for e in entries} == {"it", "en"}
    assert len({e.title for e in entries}) == len(entries)
    assert all(e.keywords and e.body for e in entries)


def test_example_faq_answers_closing_an_account() -> None:
    entries = [parse_entry(p.name, p.read_text(encoding="utf-8")) for p in FAQ_DIR.glob("*.md")]
    index = FaqIndex.build(entries)
    assert files(index.rank("how do I close my account", "en"))[:1] == ["close-account-en.md"]
    assert files(index.rank("come chiudo il conto?", "it"))[:1] == ["close-account-it.md"]


def test_an_answer_in_markdown_reads_as_plain_mail_text() -> None:
    from mailbridge.core.faq import plain_text

    markdown = (
        "## Closing\n\nIn **Settings** tap *Close account*, see "
        "[the guide](https://bank.example/close).\n\n* no fees\n> keep `IBAN`\n"
    )

    assert plain_text(markdown) == (
        "Closing\n\nIn Settings tap Close account, see "
        "the guide (https://bank.example/close).\n\n- no fees\n"
        "keep IBAN"
    )
