"""Mail as clients really send it: odd headers, forwarded mail, HTML-only replies, TNEF."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbridge.core.message import Address, ParsedMessage, ParseLimits
from mailbridge.core.mime_text import html_to_texts
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit

EML = Path(__file__).resolve().parent.parent / "data" / "eml"


def parse_fixture(name: str, limits: ParseLimits | None = None) -> ParsedMessage:
    return parse_message((EML / name).read_bytes(), limits)


# --- headers --------------------------------------------------------------------------


def test_encoded_word_inside_a_quoted_display_name() -> None:
    msg = parse_fixture("odd_headers.eml")
    assert msg.from_ == Address("Jörg Müller", "joerg.mueller@example.de")


def test_mislabelled_and_unknown_charsets_in_encoded_words() -> None:
    msg = parse_fixture("odd_headers.eml")
    # UTF-8 bytes labelled latin-1, a label that names no charset, and cp1252 quotes.
    assert msg.subject == "Grüße aus Köln und “Zitat”"


def test_raw_latin1_header_bytes_are_decoded() -> None:
    msg = parse_fixture("odd_headers.eml")
    assert msg.header("x-comment") == "Café crème brûlée"


def test_address_list_with_odd_quoting_groups_and_comments() -> None:
    msg = parse_fixture("odd_headers.eml")
    assert msg.to == (
        Address("Smith, John", "john@example.com"),
        Address('O\'Brien "Pat"', "pat@example.com"),
        Address("", "ann@example.com"),
        Address("", "bob@example.com"),
        Address("Dee Dee", "dee@example.com"),
        Address("Élodie", "elodie@example.fr"),
    )


def test_unbalanced_quote_still_yields_every_address() -> None:
    msg = parse_fixture("odd_headers.eml")
    assert [a.address for a in msg.cc] == ["quote@example.com", "fred@example.com"]
    assert "Cc header: unterminated quoted string" in msg.defects


def test_missing_date_and_message_id_are_defects_not_failures() -> None:
    msg = parse_fixture("odd_headers.eml")
    assert msg.date is None and msg.message_id is None
    assert {"missing Date", "missing Message-ID"} <= set(msg.defects)
    assert msg.text.strip() == "Hallo, die Lieferung ist unvollständig angekommen."


# --- forwarded mail -------------------------------------------------------------------


def test_forwarded_mail_keeps_the_eml_and_lists_its_files() -> None:
    msg = parse_fixture("forwarded_with_attachment.eml")
    assert [(a.filename, a.content_type, a.container) for a in msg.attachments] == [
        ("Invoice 2026-118.eml", "message/rfc822", None),
        ("invoice-118.pdf", "application/pdf", "Invoice 2026-118.eml"),
        ("Terms.eml", "message/rfc822", "Invoice 2026-118.eml"),
        ("terms.txt", "text/plain", "Terms.eml"),
    ]
    pdf = msg.attachments[1]
    assert pdf.payload.startswith(b"%PDF-1.4") and pdf.size == len(pdf.payload)
    # The forwarded mail's inline logo is part of its body, not one of its files.
    assert not any(a.content_type == "image/png" for a in msg.attachments)
    assert msg.text.startswith("The invoice below is wrong")


def test_limits_apply_to_files_inside_forwarded_mail() -> None:
    msg = parse_fixture("forwarded_with_attachment.eml", ParseLimits(max_attachment_bytes=100))
    by_name = {a.filename: a for a in msg.attachments}
    assert by_name["Invoice 2026-118.eml"].skipped
    assert by_name["invoice-118.pdf"].payload.startswith(b"%PDF")
    assert by_name["terms.txt"].payload == b"Terms and conditions."


def test_deeply_nested_forwards_stop_listing_but_keep_the_eml() -> None:
    inner = EmailMessage()
    inner["Subject"] = "level 0"
    inner.set_content("bottom")
    inner.add_attachment(b"data", maintype="application", subtype="pdf", filename="deep.pdf")
    for level in range(1, 9):
        outer = EmailMessage()
        outer["Subject"] = f"level {level}"
        outer.set_content("forwarding")
        outer.add_attachment(inner)
        inner = outer
    msg = parse_message(inner.as_bytes())
    names = [a.filename for a in msg.attachments]
    assert names[0] == "level 7.eml"
    assert "deep.pdf" not in names  # beyond the nesting limit: still inside the .eml
    assert len(names) == 6


# --- HTML-only replies ------------------------------------------------------------------


def test_outlook_html_reply_is_cut_at_its_reply_marker() -> None:
    msg = parse_fixture("html_reply_outlook.eml")
    assert "Gentile cliente" in msg.text  # the full text keeps the history
    assert " ".join(msg.reply_text.split()) == (
        "Buongiorno, il pacco non è ancora arrivato, potete verificare? Grazie, Giulia"
    )
    assert msg.language == "it"


def test_gmail_html_reply_loses_quote_and_signature() -> None:
    msg = parse_fixture("html_reply_gmail.eml")
    expected = "The reset link has expired again. Could you send a new one?"
    assert " ".join(msg.reply_text.split()) == expected
    assert "Marco Conti | ACME Ltd" in msg.text


REPLY = "<p>Thanks, that works now.</p>"


@pytest.mark.parametrize(
    "history",
    [
        # Apple Mail / Thunderbird: a bare blockquote, no attribution line
        '<blockquote type="cite"><div>Please try again.</div></blockquote>',
        # Outlook on the web: an empty marker and a header block without "From:" first
        '<div id="appendonsend"></div><div>Date: Monday<br>Subject: x</div><div>old</div>',
        # Hotmail: the ruler names the start of the history
        '<hr id="stopSpelling">Date: Thu, 26 Jun 2014<br>Subject: Test<br>Please try again.',
        # Outlook desktop: the reply header block in a language not in any table
        '<div id="divRplyFwdMsg"><b>Lähettäjä:</b> Support<br><b>Aihe:</b> x</div><p>old</p>',
        # Yandex and mail.ru: an attribution without any verb, then the quote
        '<p>26.06.2014, 14:41, "Support" &lt;support@example.com&gt;:</p>'
        "<blockquote>Please try again.</blockquote>",
        # Gmail: the signature block
        '<div class="gmail_signature">Ann Example<br>Head of Things</div>',
    ],
)
def test_html_history_markers_are_cut_from_reply_text(history: str) -> None:
    converted = html_to_texts(f"<html><body>{REPLY}{history}</body></html>")
    assert converted.quoted.strip().startswith("Thanks, that works now.")
    msg = parse_message(
        b"From: a@example.org\nContent-Type: text/html; charset=utf-8\n\n"
        + f"<html><body>{REPLY}{history}</body></html>".encode()
    )
    assert msg.reply_text.strip() == "Thanks, that works now."
    assert msg.text.strip() != msg.reply_text.strip()  # the history is still in `text`


def test_inline_answers_between_html_quotes_are_kept() -> None:
    html = (
        "<blockquote>Which version?</blockquote><p>3.2</p>"
        "<blockquote>Which browser?</blockquote><p>Firefox</p>"
    )
    converted = html_to_texts(html)
    assert "> Which version?" in converted.quoted
    msg = parse_message(b"Content-Type: text/html\n\n" + html.encode())
    assert msg.reply_text.split("\n") == [
        "> Which version?",
        "",
        "3.2",
        "",
        "> Which browser?",
        "",
        "Firefox",
    ]


def test_html_text_never_shows_the_internal_marker() -> None:
    converted = html_to_texts('<p>a</p><div id="appendonsend"></div><p>b\ue000</p>')
    assert "\ue000" not in converted.text and "\ue000" not in converted.quoted
    assert converted.text.split() == ["a", "b"]


# --- TNEF -----------------------------------------------------------------------------


def test_winmail_fixture_becomes_files_and_text() -> None:
    msg = parse_fixture("winmail.eml")
    assert [a.filename for a in msg.attachments] == ["Angebot.pdf", "Größe.xlsx"]
    assert msg.text == "Guten Tag, anbei das Angebot und die Größentabelle."
    assert msg.language == "de"
