"""What routing rules see of a real mail: the customer's own words, recipients including
Delivered-To (plus-address details), attachments that are not inline images."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailbridge.core.parse import parse_message
from mailbridge.inbound.routing import RULE_SUBJECT_CHARS, RULE_TEXT_CHARS, facts_for

pytestmark = pytest.mark.unit


def raw(*, attachment: bool, inline_image: bool, body: str = "Hello, my card is blocked.") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ada <ada@customer.example>"
    msg["To"] = "Support <support@shop.example>"
    msg["Cc"] = "ada.office@customer.example"
    msg["Delivered-To"] = "support+billing@shop.example"
    msg["Subject"] = "Card blocked"
    msg.set_content(body + "\n\nOn Monday you wrote:\n> an older message we sent\n")
    if inline_image:
        msg.add_related(
            b"\x89PNG fake", maintype="image", subtype="png", cid="<logo>", disposition="inline"
        )
    if attachment:
        msg.add_attachment(
            b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="statement.pdf"
        )
    return msg.as_bytes()


def test_facts_of_a_mail_with_an_attachment_written_to_a_plus_address() -> None:
    facts = facts_for(
        parse_message(raw(attachment=True, inline_image=False)),
        "support",
        followup=True,
        unanswered=3,
    )

    assert facts.sender == "ada@customer.example" and facts.sender_domain == "customer.example"
    assert facts.recipients == (
        "support@shop.example",
        "ada.office@customer.example",
        "support+billing@shop.example",
    )
    assert facts.to_details == ("billing",)
    assert facts.has_attachments
    assert facts.body.startswith("Hello, my card is blocked.")
    assert "an older message we sent" not in facts.body  # quoted history trimmed
    assert (facts.is_followup, facts.customer_mails_unanswered, facts.mailbox) == (
        True,
        3,
        "support",
    )


def test_an_inline_image_is_not_an_attachment_and_long_bodies_are_cut() -> None:
    facts = facts_for(
        parse_message(raw(attachment=False, inline_image=True, body="word " * 2000)), "support"
    )
    assert not facts.has_attachments
    assert len(facts.body) == RULE_TEXT_CHARS


def test_the_rules_see_a_bounded_subject() -> None:
    parsed = parse_message(b"From: a@b.example\r\nSubject: " + b"word " * 20_000 + b"\r\n\r\nx")
    assert len(parsed.subject) > 90_000
    assert facts_for(parsed, "support").subject == parsed.subject[:RULE_SUBJECT_CHARS]
    assert len(facts_for(parsed, "support").subject) == RULE_SUBJECT_CHARS
