"""core/webhook_formats.py: each format's body, written as a hostile customer would want
it: nothing of theirs without `include_text`, and with it nothing that pings, links or
marks up; and the README shows exactly what the renderer makes."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.webhook_events import WEBHOOK_FORMATS, CustomerText, WebhookFormat, sign
from mailbridge.core.webhook_formats import (
    EXAMPLE,
    body_of,
    document,
    headline,
    readme_examples,
)

README = Path(__file__).resolve().parents[2] / "README.md"
HOSTILE = CustomerText(
    subject=(
        "<!channel> <https://evil.example|Reset your password> @room @here "
        '[click](https://evil.example) <a href="https://evil.example">x</a> '
        "<script>alert(1)</script> &amp; **now**\n\u202eevil"
    ),
    name="Eve <!everyone>",
    address="eve@evil.example",
)
WITH_TEXT = replace(EXAMPLE, customer=HOSTILE)


def strings(node: Any) -> list[str]:
    """Every string value in a JSON document."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


@pytest.mark.parametrize("fmt", WEBHOOK_FORMATS)
def test_no_customer_text_goes_without_include_text(fmt: WebhookFormat) -> None:
    customer = CustomerText("Printer on fire", "Ada Lovelace", "ada@customer.example")
    made = body_of(fmt, replace(EXAMPLE, customer=None))
    for secret in (customer.subject, customer.name, customer.address, "Printer", "ada@"):
        assert secret.encode() not in made
    assert b"[#1042]" in made and b"billing" in made, "the ticket is named"
    with_text = body_of(fmt, replace(EXAMPLE, customer=customer))
    assert b"Printer on fire" in with_text


@pytest.mark.parametrize("fmt", WEBHOOK_FORMATS)
def test_the_body_is_compact_utf8_json_of_the_document(fmt: WebhookFormat) -> None:
    made = body_of(fmt, WITH_TEXT)
    assert json.loads(made.decode("utf-8")) == document(fmt, WITH_TEXT)
    compact = json.dumps(document(fmt, WITH_TEXT), ensure_ascii=False, separators=(",", ":"))
    assert made == compact.encode("utf-8") and b"\n" not in made


def test_slack_escapes_its_markup_and_makes_no_links_or_mentions() -> None:
    doc = document("slack", WITH_TEXT)
    texts = strings(doc)
    assert all("<" not in t and ">" not in t for t in texts), texts
    main = doc["blocks"][0]["text"]["text"]  # type: ignore[index]
    assert "&lt;!channel&gt;" in main and "&lt;https://evil.example|Reset" in main
    assert "&amp;amp;" in main, "an & of the customer's is escaped too"
    mrkdwn = [o for o in _objects(doc) if o.get("type") == "mrkdwn"]
    assert mrkdwn and all(o["verbatim"] is True for o in mrkdwn)
    assert "evil" not in doc["text"] and "Eve" not in doc["text"], "the notification line"  # type: ignore[operator]


def test_teams_keeps_the_customers_words_out_of_markdown() -> None:
    doc = document("teams", WITH_TEXT)
    card = doc["attachments"][0]["content"]  # type: ignore[index]
    for element in card["body"]:
        if element["type"] == "RichTextBlock":
            [run] = element["inlines"]
            assert run["type"] == "TextRun" and "[click](https://evil.example)" in run["text"]
        else:  # TextBlock and FactSet values are read as Markdown: ours only
            assert not any("evil" in s or "Eve" in s for s in strings(element)), element
    assert "msteams" not in json.dumps(doc), "no mention entities"


def test_matrix_escapes_the_html_and_mentions_nobody() -> None:
    doc = document("matrix", WITH_TEXT)
    formatted = doc["formatted_body"]
    assert isinstance(formatted, str)
    assert "<a " not in formatted and "<script" not in formatted
    assert (
        "&lt;script&gt;" in formatted and "&lt;a href=&quot;https://evil.example&quot;" in formatted
    )
    tags = set(re.findall(r"</?(\w+)", formatted))
    assert tags <= {"p", "strong", "br"}, tags
    assert doc["m.mentions"] == {}, "with m.mentions, '@room' in the body notifies nobody"
    assert doc["msgtype"] == "m.notice"


@pytest.mark.parametrize("fmt", WEBHOOK_FORMATS)
def test_customer_text_is_one_clean_line_cut_to_size(fmt: WebhookFormat) -> None:
    long = replace(HOSTILE, subject="x" * 5000 + "\u202e\u200b", name="A\x1b[31mB\r\nC")
    made = body_of(fmt, replace(EXAMPLE, customer=long)).decode("utf-8")
    assert "x" * 199 + "…" in made and "x" * 200 not in made
    assert "\u202e" not in made and "\u200b" not in made and "\\u001b" not in made
    assert "A[31mB C" in made, "the escape character goes, the line break parts words"


def test_each_event_has_its_own_headline() -> None:
    lines = {
        event: headline(replace(EXAMPLE, event=event))
        for event in ("ticket_created", "escalated", "sla_breached", "unhappy", "resolved")
    }
    assert lines == {
        "ticket_created": "New ticket [#1042] in billing",
        "escalated": "Ticket [#1042] escalated to level 1: first response 30 minutes late",
        "sla_breached": "Ticket [#1042] missed its first response deadline (30 minutes late)",
        "unhappy": "Ticket [#1042]: the customer is not satisfied",
        "resolved": "Ticket [#1042] new",  # the example ticket's status, as it stands
    }


def test_the_readme_shows_exactly_what_the_renderer_makes() -> None:
    shown = dict(
        re.findall(
            r"<!-- webhook payload: (\S+) -->\n```json\n(.*?)\n```",
            README.read_text(encoding="utf-8"),
            re.DOTALL,
        )
    )
    expected = readme_examples()
    assert sorted(shown) == sorted(expected), "every example, once"
    for name, text in expected.items():
        assert shown[name] == text, f"README's {name} example: replace it with\n{text}"


def test_the_readmes_receiver_check_accepts_our_signature_and_refuses_a_changed_body() -> None:
    [snippet] = re.findall(
        r"```python\n(def verified.*?|import hashlib.*?)```",
        README.read_text(encoding="utf-8"),
        re.DOTALL,
    )
    scope: dict[str, Any] = {}
    exec(snippet, scope)  # the README's own example, run as a reader would
    key, body = b"0123456789abcdef", body_of("json", EXAMPLE)
    header = sign(key, int(time.time()), body)
    assert scope["verified"](key, header, body)
    assert not scope["verified"](key, header, body.replace(b"1042", b"1043"))
    assert not scope["verified"](key, sign(key, int(time.time()) - 3600, body), body)


def _objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return [node, *(o for value in node.values() for o in _objects(value))]
    if isinstance(node, list):
        return [o for value in node for o in _objects(value)]
    return []
