"""Template values are shortened before a render, with a mark where something was cut."""

from __future__ import annotations

from typing import Any

import pytest

from mailbridge.adapters.template_context import SAMPLE_CONTEXT, sample_context
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.core.clip import TEXT_LIMITS, clip_context, clip_text

pytestmark = pytest.mark.unit

SANDBOX_LIMIT = 1_000_000  # adapters.template_sandbox: characters of any value or output


def test_short_text_is_left_alone_and_long_text_is_cut_at_a_word_with_a_mark() -> None:
    assert clip_text("Printer on fire", 15) == "Printer on fire"
    assert clip_text("Printer on fire now", 17) == "Printer on fire [… shortened]"
    assert clip_text("Printer on fire", 14) == "Printer on fir [… shortened]"  # no space near
    assert clip_text("x" * 50, 10) == "x" * 10 + " [… shortened]"
    assert clip_text("Stampante in fiamme", 14, "it") == "Stampante in [… testo abbreviato]"
    assert clip_text("Drucker brennt", 10, "de-AT").endswith("[… shortened]")


def test_every_value_of_a_context_is_within_its_limit() -> None:
    context: dict[str, Any] = {
        "subject": "word " * 1_000_000,
        "excerpt": "line\n" * 1_000_000,
        "reply_text": "a" * 3_000_000,
        "requester_name": "N" * 5000,
        "queue": "q" * 5000,
        "ticket_number": 1042,
        "links": {f"l{i}": "https://x.example/" + "p" * 5000 for i in range(100)},
        "errors": ["#bad " * 1000] * 50,
        "attachments": [{"filename": "f" * 1000, "size": "1 B", "attached": True}] * 50_000,
    }
    clipped = clip_context(context, "en")
    assert len(clipped["subject"]) <= TEXT_LIMITS["subject"] + len(" [… shortened]")
    assert clipped["subject"].endswith(" [… shortened]")
    assert 20_000 - 10 < len(clipped["excerpt"]) <= 20_000 + 14
    assert len(clipped["reply_text"]) == 100_000 + 14
    assert len(clipped["requester_name"]) == 114 and len(clipped["queue"]) == 1014
    assert clipped["ticket_number"] == 1042
    assert len(clipped["links"]) == 20
    assert all(len(url) == 1014 for url in clipped["links"].values())
    assert len(clipped["errors"]) == 21
    assert clipped["errors"][-1] == "… and 30 more (list shortened)"
    attachments = clipped["attachments"]
    assert len(attachments) == 101
    assert len(attachments[0]["filename"]) == 214
    assert attachments[-1] == {
        "filename": "… and 49,900 more",
        "size": "list shortened",
        "attached": True,
    }
    assert len(context["attachments"]) == 50_000  # the caller's context is not changed


def test_a_shortened_list_says_how_many_more_in_the_language_of_the_mail() -> None:
    clipped = clip_context(
        {"attachments": [{"filename": "a", "size": "1 B", "attached": True}] * 1234}, "it"
    )
    assert clipped["attachments"][-1]["filename"] == "… e altri 1.134"
    assert clipped["attachments"][-1]["size"] == "elenco abbreviato"


def huge(language: str) -> dict[str, object]:
    """Every value of the sample context as large as a hostile mail could make it."""
    context = sample_context(language)
    for key, value in SAMPLE_CONTEXT.items():
        if isinstance(value, str):
            context[key] = "word " * 400_000
    entry = {"author": "A" * 10**6, "at": "x" * 10**6, "direction": "in", "text": "t " * 10**6}
    context["digest"] = [entry] * 1000
    context["attachments"] = [
        {"filename": "f" * 10**6, "size": "s" * 10**6, "attached": False}
    ] * 100_000
    context["faq"] = [
        {"title": "T" * 10**6, "answer": "a " * 10**6, "file": "f", "score": 0.5}
    ] * 50
    context["errors"] = ["e" * 10**6] * 1000
    context["links"] = {"ticket": "https://x.example/" + "p" * 10**6}
    return context


@pytest.mark.parametrize("language", ["en", "it"])
def test_every_shipped_template_renders_the_largest_values_far_below_the_sandbox_limit(
    language: str,
) -> None:
    templates = TemplateSet.load(default_templates_dir(), "en")
    values = clip_context(huge(language), language)
    for name in sorted(templates.names()):
        rendered = templates.render(name, values, language)
        size = len(rendered.text) + len(rendered.html or "")
        assert size < SANDBOX_LIMIT // 3, (name, size)
