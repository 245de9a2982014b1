"""trim_reply: the table-driven cut of quoted history, headers and signatures."""

from __future__ import annotations

import json
import re
import time

import pytest

from mailbridge.core.reply_trim import trim_reply
from tests.support.required import shared_corpus

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Thanks!\n\nOn Mon, Mar 2, 2026 at 9:00 AM Ann <ann@x.org> wrote:\n> old", "Thanks!"),
        ("Grazie!\n\nIl giorno lun 2 mar 2026 alle ore 09:00 Ann <ann@x.org> ha scritto:\n> v",
         "Grazie!"),
        ("Danke!\n\nAm 02.03.2026 um 09:00 schrieb Ann <ann@x.org>:\n> alt", "Danke!"),
        ("Merci !\n\nLe lun. 2 mars 2026 à 09:00, Ann <ann@x.org> a écrit :\n> ancien", "Merci !"),
        ("¡Gracias!\n\nEl lun, 2 mar 2026 a las 9:00, Ann (<ann@x.org>) escribió:\n> v",
         "¡Gracias!"),
        ("Bedankt!\n\nOp ma 2 mrt. 2026 om 09:00 schreef Ann <ann@x.org>:\n> oud", "Bedankt!"),
        ("Obrigado!\n\nEm seg., 2 de mar. de 2026 às 09:00, Ann <ann@x.org> escreveu:\n> v",
         "Obrigado!"),
        ("Ok.\n\n-----Original Message-----\nFrom: Ann\nSent: Monday\n\nold", "Ok."),
        ("Va bene.\n\nDa: Ann <ann@x.org>\nInviato: lunedì 2 marzo 2026 09:00\nA: support\n"
         "Oggetto: ordine\n\nvecchio testo", "Va bene."),
        ("Gut.\n\nVon: Ann <ann@x.org>\nGesendet: Montag, 2. März 2026\nAn: support\n"
         "Betreff: x\n\nalt", "Gut."),
        ("Bien.\n\nDe : Ann <ann@x.org>\nEnvoyé : lundi 2 mars 2026\nÀ : support\n"
         "Objet : x\n\nancien", "Bien."),
        ("Short answer.\n\n-- \nJane Doe\nACME Corp", "Short answer."),
        ("Short answer.\n\nSent from my iPhone", "Short answer."),
        ("Risposta breve.\n\nInviato da iPhone", "Risposta breve."),
        ("Antwort.\n\nVon meinem iPhone gesendet", "Antwort."),
        ("> quoted question\n\nmy answer", "> quoted question\n\nmy answer"),
        ("> only a quote", "> only a quote"),
        ("no history at all\nsecond line", "no history at all\nsecond line"),
        ("", ""),
    ],
)  # fmt: skip
def test_trim(body: str, expected: str) -> None:
    assert trim_reply(body) == expected


def test_inline_answers_between_quotes_are_kept() -> None:
    body = (
        "Hi,\n\nOn Mon, Mar 2, 2026 at 9:00 AM Ann <ann@x.org> wrote:\n"
        "> Which version do you use?\n\n3.2\n\n> And which browser?\n\nFirefox\n"
    )
    assert trim_reply(body) == (
        "Hi,\n\n> Which version do you use?\n\n3.2\n\n> And which browser?\n\nFirefox"
    )


def test_reply_below_a_leading_quote_drops_attribution_and_quote() -> None:
    body = "On Mon, Mar 2, 2026 at 9:00 AM Ann <ann@x.org> wrote:\n> question?\n\nanswer\n"
    assert trim_reply(body) == "answer"


def test_interleaved_answers_keep_the_leading_quote_as_context() -> None:
    body = (
        "On Mon, Mar 2, 2026 at 9:00 AM Ann <ann@x.org> wrote:\n\n> first question?\n\n"
        "first answer\n\n> second question?\n\nsecond answer\n"
    )
    assert trim_reply(body) == (
        "> first question?\n\nfirst answer\n\n> second question?\n\nsecond answer"
    )


@pytest.mark.parametrize(
    "attribution",
    [
        '26.06.2014, 14:41, "Ann" <ann@x.org>:',
        "Thu, 26 Jun 2014 14:00:51 +0400 от Ann <ann@x.org>:",
    ],
)
def test_verbless_attribution_before_a_quote(attribution: str) -> None:
    assert trim_reply(f"Fine, thanks.\n\n{attribution}\n\n> How are you?") == "Fine, thanks."


def test_line_ending_in_colon_without_a_quote_after_it_stays() -> None:
    body = "Please call me on 2 March at ann@x.org:\nany time after nine."
    assert trim_reply(body) == body


def test_long_sentence_starting_sent_from_is_prose() -> None:
    body = "Here it is.\n\nSent from my desk, which is much easier than from my phone."
    assert trim_reply(body) == body
    assert trim_reply("Here it is.\n\nSent from my iPhone, excuse typos") == "Here it is."


def test_text_mentioning_wrote_is_not_an_attribution() -> None:
    body = "On Monday I wrote to you about the refund.\nStill nothing."
    assert trim_reply(body) == body


def test_crlf_line_endings() -> None:
    assert trim_reply("Yes.\r\n\r\nOn Mon, 2 Mar 2026, Ann <a@x.org> wrote:\r\n> q") == "Yes."


def test_code_fence_keeps_hash_lines() -> None:
    body = "Config:\n```\n####\n```\nDone."
    assert trim_reply(body) == body


def test_long_lines_stay_fast() -> None:
    body = ("word " * 50_000 + "\n") * 4 + ("-" * 10_000 + " x\n") + (" " * 20_000 + "y\n")
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    trim_reply(body)
    assert time.thread_time() - started < 2.0


def _normalize(text: str) -> str:
    lines = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", lines).strip()


def test_trimmer_corpus_at_least_90_percent() -> None:
    trimmer = shared_corpus("email_reply_trimmer")
    emails = sorted(trimmer.glob("*.txt"))
    exact = sum(
        _normalize(trim_reply(p.read_text()))
        == _normalize((trimmer / "_expected" / "trimmed" / p.name).read_text())
        for p in emails
    )
    assert len(emails) == 64
    assert exact >= 58, f"{exact}/64"


def test_github_reply_parser_reply_texts() -> None:
    folder = shared_corpus("email_reply_parser_github")
    facts = json.loads((folder / "EXPECTED.json").read_text())
    cases = [
        (name, entry["facts"]["reply_text"])
        for name, entries in facts.items()
        for entry in entries
        if "reply_text" in entry["facts"]
    ]
    held = [
        name for name, expected in cases
        if _normalize(trim_reply((folder / name).read_text())) == _normalize(expected)
    ]  # fmt: skip
    assert len(held) == len(cases)
