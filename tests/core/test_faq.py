"""FAQ entries: parsing the operator's files and ranking them for a customer's question."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from mailbridge.core.faq import (
    CONCEPT_THRESHOLD,
    MODEL_THRESHOLD,
    FaqEntry,
    FaqIndex,
    Match,
    parse_entry,
    rank_mail,
    terms,
)
from mailbridge.core.faq_concepts import Lexicon, shipped

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


# --- meaning: the concept lexicon and a model ------------------------------------------


def test_a_paraphrase_sharing_no_word_is_matched_on_concepts_only_with_the_lexicon() -> None:
    question = "I'm done with your bank, please shut down my profile for good"
    assert rank_mail(FaqIndex.build(FIXTURE), "", question, "en") == []
    (best, *_) = rank_mail(FaqIndex.build(FIXTURE, "lexicon"), "", question, "en")
    assert (best.entry.file, best.how) == ("close-en", "concepts")
    assert {"~close", "~account"} <= set(best.shared)
    assert best.cutoff == CONCEPT_THRESHOLD < best.score


def test_words_come_first_and_meaning_only_when_no_entry_shares_words() -> None:
    index = FaqIndex.build(FIXTURE, "lexicon")
    (best, *_) = rank_mail(index, "", "I forgot my password", "en")
    assert (best.entry.file, best.how) == ("password-en", "words")


def test_an_entry_in_another_language_answers_only_when_none_is_in_the_question_s() -> None:
    italian_only = [e for e in FIXTURE if e.language != "en"]
    question = "How long does the courier take to bring my parcel?"
    assert files(rank_mail(FaqIndex.build(FIXTURE, "lexicon"), "", question, "en")) == []
    found = rank_mail(FaqIndex.build(italian_only, "lexicon"), "", question, "en")
    assert files(found)[:1] == ["delivery-it"]


def test_a_concept_most_entries_speak_of_names_no_topic() -> None:
    # "days" (waiting time) is in every entry here: alone, it suggests none of them.
    many = [
        entry(f"e{n}", f"Topic {n} days", "days", "en", f"It takes days, topic {n}.")
        for n in range(6)
    ]
    index = FaqIndex.build(many, "lexicon")
    assert index.rank_concepts("how many weeks", "en") == []


def test_phrases_win_over_their_words_and_a_shared_stem_of_two_concepts_is_read_as_words() -> None:
    lexicon = shipped()
    assert lexicon.question_terms("bank details", "en") == ["~iban", "~iban"]
    assert "~bank" in lexicon.entry_terms("bank details", "en")  # entries keep both
    # "domicilio" (an address) and "domiciliazione" (a direct debit) share the stem
    # "domicil": each word keeps its own concept.
    assert lexicon.question_terms("domicilio", "it") == ["~address"]
    assert lexicon.question_terms("domiciliazione", "it") == ["~direct_debit"]


def test_a_lexicon_phrase_that_is_one_word_without_its_stop_words_is_left_out() -> None:
    lexicon = Lexicon.build({"access": ("let+me+in", "login")})
    assert lexicon.question_terms("let me in", "en") == ["let"]
    assert lexicon.question_terms("login", "en") == ["~access"]


def bag_of_concepts(texts: Sequence[str]) -> list[list[float]]:
    """A small embedding for tests: one dimension per concept of the shipped lexicon."""
    names = sorted({name for found in shipped().by_stems.values() for name in found})
    vectors = []
    for text in texts:
        said = set(shipped().question_terms(text, None))
        vectors.append([1.0 if name in said else 0.0 for name in names])
    return vectors


def test_with_a_model_meaning_is_its_cosine_similarity_above_the_cut_off() -> None:
    index = FaqIndex.build(FIXTURE, "model", bag_of_concepts)
    (best, *_) = rank_mail(index, "", "thieves took my profile, shut it down", "en")
    assert (best.entry.file, best.how, best.cutoff) == ("close-en", "model", MODEL_THRESHOLD)
    assert rank_mail(index, "", "the weather in Rome", "en") == []
    with pytest.raises(ValueError, match="model"):
        FaqIndex.build(FIXTURE, "model")
    with pytest.raises(ValueError, match="semantic"):
        FaqIndex.build(FIXTURE, "fuzzy")


def test_the_paraphrase_sets_keep_their_rules() -> None:
    """bench/faq_eval.py's paraphrase questions share no word stem with their entry, in
    the sizes the benchmark reports: an edit to an entry or a set that breaks this fails."""
    from bench import faq_paraphrase, faq_tuning2

    faq_paraphrase.check()
    faq_tuning2.check()


def test_a_hostile_sender_s_long_words_are_stemmed_but_never_kept() -> None:
    from mailbridge.core import faq_terms

    kept = faq_terms._cached_stem.cache_info().currsize
    long_words = [letter * 5000 for letter in "abcdefghij"]
    assert terms(" ".join(long_words), "en") == long_words
    assert faq_terms._cached_stem.cache_info().currsize == kept  # none kept
    terms("zqxwvu", "en")
    assert faq_terms._cached_stem.cache_info().currsize == kept + 1  # a word is kept
