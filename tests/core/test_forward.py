"""core.forward: the customer's original found in forwards as Gmail, Outlook, Thunderbird
and Apple Mail write them, in English, Italian, German and French; and what is not one."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from mailbridge.core.forward import (
    find_forward,
    find_inline,
    original_message,
    same_start,
    text_start,
    ticket_subject,
)
from mailbridge.core.message import Address, ParseLimits
from mailbridge.core.parse import parse_message

ADA = Address("Ada Lovelace", "ada@customer.example")
ORIGINAL = "Hello Alice,\nmy printer is on fire.\n\nAda"

GMAIL = """Can you take this one? She is a good customer.

---------- Forwarded message ---------
From: Ada Lovelace <ada@customer.example>
Date: Mon, 23 Nov 2026 at 10:02
Subject: Printer on fire
To: Alice Bianchi <alice@shop.example>
Cc: Charles <charles@customer.example>


Hello Alice,
my printer is on fire.

Ada
"""
GMAIL_IT = """Puoi occupartene tu?

---------- Messaggio inoltrato ---------
Da: Ada Lovelace <ada@customer.example>
Date: lun 23 nov 2026 alle ore 10:02
Subject: Printer on fire
To: Alice Bianchi <alice@shop.example>


Hello Alice,
my printer is on fire.

Ada
"""
GMAIL_DE = """Bitte übernehmen.

---------- Weitergeleitete Nachricht ---------
Von: Ada Lovelace <ada@customer.example>
Date: Mo., 23. Nov. 2026 um 10:02 Uhr
Subject: Printer on fire
To: <alice@shop.example>


Hello Alice,
my printer is on fire.

Ada
"""
GMAIL_FR = """Tu peux t'en occuper ?

---------- Message transféré ---------
De : Ada Lovelace <ada@customer.example>
Date: lun. 23 nov. 2026 à 10:02
Subject: Printer on fire
To: <alice@shop.example>


Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK = """Please look after this customer.

Alice Bianchi | Shop

-----Original Message-----
From: Ada Lovelace <ada@customer.example>\x20
Sent: Monday, November 23, 2026 10:02 AM
To: Alice Bianchi <alice@shop.example>
Subject: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_IT = """Te la passo.

-----Messaggio originale-----
Da: Ada Lovelace <ada@customer.example>\x20
Inviato: lunedì 23 novembre 2026 10:02
A: Alice Bianchi <alice@shop.example>
Oggetto: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_DE = """Zur Info.

-----Ursprüngliche Nachricht-----
Von: Ada Lovelace <ada@customer.example>\x20
Gesendet: Montag, 23. November 2026 10:02
An: Alice Bianchi <alice@shop.example>
Betreff: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_FR = """Pour toi.

-----Message d'origine-----
De\u00a0: Ada Lovelace <ada@customer.example>\x20
Envoyé\u00a0: lundi 23 novembre 2026 10:02
À\u00a0: Alice Bianchi <alice@shop.example>
Objet\u00a0: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_RULE = """Please look after this customer.

________________________________
From: Ada Lovelace <ada@customer.example>
Sent: Monday, November 23, 2026 10:02
To: Alice Bianchi <alice@shop.example>
Subject: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_MAILTO = """Please look after this customer.

-----Original Message-----
From: Lovelace, Ada [mailto:ada@customer.example]\x20
Sent: Monday, November 23, 2026 10:02 AM
To: Bianchi, Alice
Subject: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
OUTLOOK_BARE = """Please look after this customer.

From: Ada Lovelace <ada@customer.example>
Sent: Monday, November 23, 2026 10:02 AM
To: Alice Bianchi <alice@shop.example>
Subject: Printer on fire

Hello Alice,
my printer is on fire.

Ada
"""
THUNDERBIRD = """Can you take this?


-------- Forwarded Message --------
Subject: \tPrinter on fire
Date: \tMon, 23 Nov 2026 10:02:00 +0100
From: \tAda Lovelace <ada@customer.example>
To: \talice@shop.example



Hello Alice,
my printer is on fire.

Ada
"""
THUNDERBIRD_IT = """Te la giro.


-------- Messaggio Inoltrato --------
Oggetto: \tPrinter on fire
Data: \tMon, 23 Nov 2026 10:02:00 +0100
Mittente: \tAda Lovelace <ada@customer.example>
Organizzazione: \tCustomer Srl
A: \talice@shop.example



Hello Alice,
my printer is on fire.

Ada
"""
APPLE = """FYI, can you answer her?

Begin forwarded message:

> From: Ada Lovelace <ada@customer.example>
> Subject: Printer on fire
> Date: 23 November 2026 at 10:02:00 CET
> To: Alice Bianchi <alice@shop.example>
>\x20
> Hello Alice,
> my printer is on fire.
>\x20
> Ada
"""
APPLE_IT = """Puoi risponderle?

Inizio messaggio inoltrato:

> Da: Ada Lovelace <ada@customer.example>
> Oggetto: Printer on fire
> Data: 23 novembre 2026 10:02:00 CET
> A: Alice Bianchi <alice@shop.example>
>\x20
> Hello Alice,
> my printer is on fire.
>\x20
> Ada
"""
APPLE_UNQUOTED = """FYI

Begin forwarded message:

From: Ada Lovelace <ada@customer.example>
Subject: Printer on fire
Date: 23 November 2026 at 10:02:00 CET
To: Alice Bianchi <alice@shop.example>

Hello Alice,
my printer is on fire.

Ada
"""

WEBMAIL_FR = """Pouvez-vous regarder ?

Objet: Printer on fire
Date: 2026-11-23 10:02
De: Ada Lovelace <ada@customer.example>
A: alice@shop.example

Hello Alice,
my printer is on fire.

Ada
"""

CASES = [
    ("gmail", GMAIL, "Fwd: Printer on fire", "gmail"),
    ("gmail-it", GMAIL_IT, "I: Printer on fire", "gmail"),
    ("gmail-de", GMAIL_DE, "WG: Printer on fire", "gmail"),
    ("gmail-fr", GMAIL_FR, "TR: Printer on fire", "gmail"),
    ("outlook", OUTLOOK, "FW: Printer on fire", "outlook"),
    ("outlook-it", OUTLOOK_IT, "I: Printer on fire", "outlook"),
    ("outlook-de", OUTLOOK_DE, "WG: Printer on fire", "outlook"),
    ("outlook-fr", OUTLOOK_FR, "TR: Printer on fire", "outlook"),
    ("outlook-rule", OUTLOOK_RULE, "Fw: Printer on fire", "outlook"),
    ("outlook-bare", OUTLOOK_BARE, "FW: Printer on fire", "outlook-block"),
    ("webmail-fr-bare", WEBMAIL_FR, "Fwd: Printer on fire", "outlook-block"),
    ("thunderbird", THUNDERBIRD, "Fwd: Printer on fire", "thunderbird"),
    ("thunderbird-it", THUNDERBIRD_IT, "Fwd: Printer on fire", "thunderbird"),
    ("apple", APPLE, "Fwd: Printer on fire", "apple"),
    ("apple-it", APPLE_IT, "I: Printer on fire", "apple"),
    ("apple-unquoted", APPLE_UNQUOTED, "Fwd: Printer on fire", "apple"),
]


@pytest.mark.parametrize(
    ("text", "subject", "form"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_client_and_language_gives_the_original(text: str, subject: str, form: str) -> None:
    found = find_inline(text, subject)

    assert found is not None
    assert found.form == form
    assert found.sender.address == ADA.address
    assert found.subject == "Printer on fire"
    assert found.text == ORIGINAL
    assert found.own_text and "@" not in found.own_text and "---" not in found.own_text


def test_the_forwarders_lines_and_the_originals_recipients_are_kept() -> None:
    found = find_inline(GMAIL, "Fwd: Printer on fire")

    assert found is not None
    assert found.sender == ADA
    assert found.own_text == "Can you take this one? She is a good customer."
    assert [a.address for a in found.to] == ["alice@shop.example"]
    assert [a.address for a in found.cc] == ["charles@customer.example"]


def test_outlooks_mailto_form_names_the_sender() -> None:
    found = find_inline(OUTLOOK_MAILTO, "FW: Printer on fire")

    assert found is not None
    assert found.sender == Address("Lovelace, Ada", "ada@customer.example")


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        (OUTLOOK.replace("FW", "RE"), "RE: Printer on fire"),  # Outlook writes it for replies
        (OUTLOOK_RULE, "RE: Printer on fire"),
        (OUTLOOK_BARE, "R: Printer on fire"),
        (OUTLOOK_BARE, "Printer on fire"),
    ],
)
def test_outlooks_reply_forms_need_a_forward_subject(text: str, subject: str) -> None:
    assert find_inline(text, subject) is None


@pytest.mark.parametrize(
    "text",
    [
        "From: my experience, the printer catches fire when it is hot.\nSubject: printers\n",
        "Hi team,\n\nFrom: next week I am away.\nDate: 1 Dec\nSubject: holidays\n",
        "Ada wrote to me. From: Ada Lovelace <ada@customer.example> Subject: fire\n",
        "On Mon, 23 Nov 2026 at 10:02, Ada Lovelace <ada@customer.example> wrote:\n> fire\n",
        "---------- Forwarded message ---------\nno header block here\n",
        "---------- Forwarded message ---------\nFrom: Ada Lovelace\nSubject: fire\n\ntext\n",
        "---------- Forwarded message ---------\nFrom: Ada <ada@customer.example>\n\ntext\n",
        "Begin forwarded message:\n\nI wrote this myself.\nFrom: Ada <ada@customer.example>\n",
        "",
    ],
    ids=[
        "prose",
        "prose-with-labels",
        "one-line",
        "reply-attribution",
        "marker-only",
        "no-address",
        "from-only",
        "prose-after-marker",
        "empty",
    ],
)
def test_what_is_not_a_forward(text: str) -> None:
    assert find_inline(text, "Fwd: something") is None


def test_a_header_injection_in_the_from_line_yields_no_sender() -> None:
    for value in (
        "victim@x.example>\r\nBcc: a@b.example",
        "Evil\r\nBcc: a@b.example <victim@x.example>",
        "victim@x.example\u2028Bcc: a@b.example",
        '"Evil\nBcc: x@y.example" <victim@x.example>',
    ):
        text = f"---------- Forwarded message ---------\nFrom: {value}\nSubject: hi\n\nbody\n"
        found = find_inline(text, "Fwd: hi")
        if found is not None:  # what survives is a single clean mailbox, nothing more
            assert "\n" not in found.sender.name and "\r" not in found.sender.name
            assert "bcc" not in found.sender.address and "\n" not in found.sender.address
            assert found.sender.address in ("victim@x.example",)


def _outer(text: str, subject: str, to: str = "support@shop.example") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Alice Bianchi <alice@shop.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<fwd1@shop.example>"
    msg.set_content(text)
    return msg


def test_a_reply_all_quoting_the_customer_is_no_forward() -> None:
    outer = _outer(GMAIL, "Fwd: Printer on fire", to="ada@customer.example, support@shop.example")
    assert find_forward(parse_message(outer.as_bytes())) is None


def test_an_attached_message_is_the_original_with_its_files() -> None:
    inner = EmailMessage()
    inner["From"] = "Ada Lovelace <ada@customer.example>"
    inner["To"] = "alice@shop.example"
    inner["Subject"] = "Printer on fire"
    inner["Message-ID"] = "<orig1@customer.example>"
    inner.set_content(ORIGINAL + "\n")
    inner.add_attachment(b"\xff\xd8jpeg", maintype="image", subtype="jpeg", filename="fire.jpg")
    outer = _outer("See attached, please answer her.\n", "Fwd: Printer on fire")
    outer.add_attachment(inner)

    found = find_forward(parse_message(outer.as_bytes()), ParseLimits(max_parts=50))

    assert found is not None
    assert (found.form, found.sender, found.subject) == ("rfc822", ADA, "Printer on fire")
    assert found.text.strip() == ORIGINAL
    assert found.own_text == "See attached, please answer her."
    assert [a.filename for a in found.attachments] == ["fire.jpg"]
    original = original_message(found)
    assert original.message_id == "orig1@customer.example"
    assert original.from_ == ADA and original.reply_to == ()
    assert [a.payload for a in original.attachments] == [b"\xff\xd8jpeg"]


def test_inline_forward_wins_over_an_attached_message_of_the_customers() -> None:
    inner = EmailMessage()
    inner["From"] = "Someone Else <else@elsewhere.example>"
    inner["Subject"] = "old thread"
    inner.set_content("old\n")
    outer = _outer(GMAIL, "Fwd: Printer on fire")
    outer.add_attachment(inner)

    found = find_forward(parse_message(outer.as_bytes()))

    assert found is not None and found.form == "gmail" and found.sender == ADA


def test_the_original_as_a_message_has_no_headers_of_the_forward() -> None:
    found = find_inline(GMAIL, "Fwd: Printer on fire")
    assert found is not None

    original = original_message(found)

    assert original.from_ == ADA and original.headers == {} and original.message_id is None
    assert original.reply_text.startswith("Hello Alice")
    assert ticket_subject(found, "Fwd: Printer on fire") == "Printer on fire"


def test_huge_hostile_input_is_read_in_bounded_time() -> None:
    bodies = [
        "-----Original Message-----\n" + "From: " + "<" * 100_000 + "\n",
        ("---------- Forwarded message ---------\n" + "From: a\n") * 20_000,
        "From: x\nSent: y\n" * 50_000,
        ">" * 200_000 + "\n" + "_" * 200_000,
        ("\n" + "Subject: " + "x" * 10_000) * 200,
        "---------- Forwarded message ---------\nFrom: " + "a," * 50_000 + "\nSubject: x\n",
    ]
    for text in bodies:
        started = time.thread_time()  # CPU time of this thread: the same on a busy machine
        find_inline(text, "Fwd: x")
        assert time.thread_time() - started < 2.0


WROTE = "Hello Alice,\nmy printer is on fire since this morning and it smokes. What now?\n\nAda\n"


def test_a_rewrapped_and_quoted_copy_starts_the_same_as_its_original() -> None:
    copy = (
        "> Hello Alice, my printer is on fire\n> since this morning and it smokes.\n> What now?\n"
    )
    assert same_start(text_start(WROTE), text_start(copy + "\n> Ada\n> --\n> Sent from my phone"))


def test_another_mail_or_a_short_one_is_not_the_same() -> None:
    other = WROTE.replace("printer", "scanner")
    assert not same_start(text_start(WROTE), text_start(other))
    assert text_start("Hi, thanks!") == ""
    assert not same_start(text_start("Hi, thanks!"), text_start("Hi, thanks! Ada"))


def test_the_start_of_a_huge_text_is_read_in_bounded_time() -> None:
    huge = ("word " * 2_000_000) + ">" * 1_000_000
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    assert len(text_start(huge)) == 200
    assert time.thread_time() - started < 0.5
