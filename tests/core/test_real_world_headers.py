"""Headers as real clients write them: broken folding, raw 8-bit text in the charsets of the
world, encoded words that bend RFC 2047, and text that must never reach a customer garbled."""

from __future__ import annotations

import base64
import json

import pytest

from mailbridge.core.classify import Identity, classify
from mailbridge.core.clip import clip_context
from mailbridge.core.header_block import mend_header_block
from mailbridge.core.message import Address
from mailbridge.core.mime_text import decode_header_value
from mailbridge.core.parse import parse_message
from mailbridge.core.readable import garbled, readable
from mailbridge.core.serialize import parsed_to_json

pytestmark = pytest.mark.unit

TRACKER = (
    b"X-Brightmail-Tracker: H4sIAAAAAAAAA+NgFmpgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg\r\n"
    b"H4sIAAAAAAAAA+NgFmpgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBgYGBg\r\n"
    b"AAAAAAAAAAAAAAAAAAAA==\r\n"
)


def raw(*headers: bytes, body: bytes = b"Hello\r\n") -> bytes:
    return b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# --- 1. broken folding -------------------------------------------------------------------


def test_a_tracker_folded_without_whitespace_no_longer_hides_the_fields_after_it() -> None:
    mail = (
        b"Received: from mx.example.cn\r\n"
        + TRACKER
        + raw(
            b"From: Zhang Wei <zhang@example.cn>",
            b"To: support@shop.example",
            b"Subject: Order 1931",
            b"Message-ID: <broken-fold@example.cn>",
            b"Content-Type: text/plain; charset=utf-8",
            body="Grüße\r\n".encode(),
        )
    )

    msg = parse_message(mail)

    assert msg.from_ == Address("Zhang Wei", "zhang@example.cn")
    assert msg.subject == "Order 1931"
    assert msg.message_id == "broken-fold@example.cn"
    assert msg.text.strip() == "Grüße"  # Content-Type was read: the body is UTF-8
    assert (
        "a header line without a field name was read as the continuation of the field "
        "above it (broken folding)"
    ) in msg.defects
    assert msg.header("x-brightmail-tracker").endswith("AAAAAAAAAAAAAAAAAAAA==")


def test_a_body_started_without_the_blank_line_stays_the_body() -> None:
    mail = b"From: ann@example.org\r\nSubject: Hi\r\nHello there, no blank line\r\n\r\nAnn\r\n"

    assert mend_header_block(mail) == (mail, ())
    msg = parse_message(mail)
    assert msg.subject == "Hi"
    assert "Hello there, no blank line" in msg.text


def test_a_well_formed_header_block_is_left_as_it_is() -> None:
    mail = b"From Ann Mon Nov 23 09:00:00 2026\nFrom: ann@example.org\n  (folded)\nSubject: x\n\nB"
    repaired, repairs = mend_header_block(mail)
    assert repairs == () and repaired is mail


# --- 2. raw 8-bit header bytes --------------------------------------------------------------

WORLD = [
    ("gb2312", "关于订单的问题", "张伟"),
    ("big5", "關於訂單的問題", "陳大文"),
    ("shift_jis", "注文についての質問です", "山田太郎"),
    ("euc_kr", "주문에 관한 질문입니다", "김민수"),
    ("koi8_r", "Вопрос о заказе", "Иван Петров"),
    ("windows-1251", "Вопрос о заказе", "Иван Петров"),
    ("windows-1252", "Question à propos – déjà", "Françoise Lefèvre"),
    ("latin-1", "Frage für Müller", "Jürgen Groß"),
]


def eight_bit_mail(charset: str, subject: str, name: str, *, declared: bool) -> bytes:
    content_type = f"text/plain; charset={charset}" if declared else "text/plain"
    return raw(
        b"From: " + name.encode(charset) + b" <customer@example.net>",
        b"To: support@shop.example",
        b"Subject: " + subject.encode(charset),
        b"Message-ID: <8bit@example.net>",
        content_type.encode(),
        body="Hello".encode(charset) + b"\r\n",
    )


@pytest.mark.parametrize(("charset", "subject", "name"), WORLD, ids=[w[0] for w in WORLD])
def test_raw_8bit_headers_read_in_the_declared_charset(
    charset: str, subject: str, name: str
) -> None:
    msg = parse_message(eight_bit_mail(charset, subject, name, declared=True))
    assert msg.subject == subject
    assert msg.from_ == Address(name, "customer@example.net")


@pytest.mark.parametrize(("charset", "subject", "name"), WORLD, ids=[w[0] for w in WORLD])
def test_raw_8bit_headers_read_without_a_declared_charset(
    charset: str, subject: str, name: str
) -> None:
    msg = parse_message(eight_bit_mail(charset, subject, name, declared=False))
    assert msg.subject == subject
    assert msg.from_ is not None and msg.from_.name == name


def test_a_declared_charset_the_headers_do_not_fit_gives_way() -> None:
    mail = raw(
        b"From: customer@example.net",
        b"Subject: " + "Grüße aus Köln".encode(),
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Message-ID: <x@y>",
    )
    assert parse_message(mail).subject == "Grüße aus Köln"


def test_undecodable_headers_give_valid_utf8_json() -> None:
    mail = raw(
        b"From: \xff\xfe\x81 <a@example.net>",
        b"Subject: \x81\x8d\x8f\x90\x9d\xff",
        b"Message-ID: <x@y>",
        b"X-Junk: \xc3\x28\xa0\xa1",
    )
    msg = parse_message(mail)
    document = json.dumps(parsed_to_json(msg, classify(msg, Identity())), ensure_ascii=False)
    document.encode("utf-8")  # raises on a lone surrogate
    assert not any("\udc80" <= c <= "\udcff" for c in document)


# --- 3. encoded words as clients bend them ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("=?us-ascii?Q?ABC / 123?=", "ABC / 123"),
        ("=?UTF-8?Q? Personal=C3=A4nderung?=", "Personaländerung"),
        ("=?utf-8?Q?Caf=C3=A9?==?utf-8?Q?_cr=C3=A8me?=", "Café crème"),
        ("Re:=?utf-8?Q?Caf=C3=A9?=", "Re:Café"),
        ("=?utf-8?B?5YWz5LqO?= =?utf-8?B?6K6i5Y2V?=", "关于订单"),
        ("=?utf-8?Q?=E5=85?= =?utf-8?Q?=B3?=", "关"),  # a character split between two words
        ("=?unicode-1-1-utf-7?Q?Gr+APwA3w-e?=", "Grüße"),
        ("=?utf7?Q?Gr+APwA3w-e?=", "Grüße"),
        ("=?x-unknown?Q?Gr=C3=BC=C3=9Fe?=", "Grüße"),
        (
            "=?iso-8859-1?B?" + base64.b64encode("关于订单的问题".encode("gb2312")).decode() + "?=",
            "关于订单的问题",
        ),
        ("=?iso-8859-1?Q?Gr=FC=DFe?=", "Grüße"),
        ("=?utf-8?B?not base64!?=", "=?utf-8?B?not base64!?="),
    ],
)
def test_encoded_words_read_as_a_person_would(value: str, text: str) -> None:
    assert decode_header_value(value) == text


def test_an_encoded_display_name_with_spaces_inside() -> None:
    mail = raw(
        b"From: =?UTF-8?Q?M=C3=BCller GmbH?= <info@mueller.example>",
        b"Subject: =?us-ascii?Q?Invoice 2026 / 11?=",
        b"Message-ID: <x@y>",
    )
    msg = parse_message(mail)
    assert msg.from_ == Address("Müller GmbH", "info@mueller.example")
    assert msg.subject == "Invoice 2026 / 11"


# --- 7. never send garbage ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Frage für Müller",
        "Solicitação de informação",
        "Perché non funziona più?",
        "Ærø blåbærsyltetøj",
        "Tiếng Việt có dấu",
        "Вопрос о заказе",
        "关于订单的问题",
        "注文についての質問です",
        "주문에 관한 질문입니다",
        "«Ça va?» – déjà vu",
        "50 °C, 3 ½ h",
        "iPhone-ом",
        "Ελληνικά",
        "",
    ],
)
def test_text_people_write_reads_as_written(text: str) -> None:
    assert not garbled(text)
    assert readable(text) == text


@pytest.mark.parametrize(
    ("text", "repaired"),
    [
        ("关于订单的问题".encode("gb2312").decode("cp1252"), "关于订单的问题"),
        ("Grüße aus Köln".encode().decode("cp1252"), "Grüße aus Köln"),
        ("Вопрос о заказе".encode("cp1251").decode("cp1252"), "Вопрос о заказе"),
        ("Order \x85 1931", "Order … 1931"),  # Windows-1252 read as Latin-1
    ],
)
def test_western_mojibake_is_read_again(text: str, repaired: str) -> None:
    assert garbled(text)
    assert readable(text) == repaired


@pytest.mark.parametrize("text", ["Order \ufffd\ufffd 1931", "d\u0439j\u0430 vu \U0001f600"])
def test_text_that_cannot_be_repaired_is_left_out(text: str) -> None:
    assert readable(text) is None


def test_a_garbled_subject_goes_out_as_the_ticket_number_alone() -> None:
    context = {
        "subject": "Order \ufffd 1931",
        "requester_name": "\u0416\u0443k",
        "excerpt": "关于订单".encode("gb2312").decode("cp1252"),
        "queue": "\ufffd",
    }

    clipped = clip_context(context, "en")

    assert clipped["subject"] == "" and clipped["requester_name"] == ""
    assert clipped["excerpt"] == "关于订单"
    assert clipped["queue"] == "\ufffd"  # not the customer's words: left as it is


def test_a_subject_garbled_once_before_it_was_sent_is_read_again() -> None:
    # Big5 read as Latin-1 by some gateway, then written out as UTF-8: what arrives is
    # valid UTF-8 of mojibake.
    subject = "大家說英語 每日聽MP3"
    once_garbled = subject.encode("big5").decode("latin-1").encode("utf-8")
    msg = parse_message(
        raw(b"From: a@example.tw", b"Subject: " + once_garbled, b"Message-ID: <x@y>")
    )
    assert msg.subject == subject


def test_characters_no_charset_can_read_are_left_out_of_subjects_and_names() -> None:
    mail = raw(
        "From: Biz Phones\ufffd\ufffd <info@example.net>".encode(),
        "Subject: A business phone\ufffd\ufffd\ufffd".encode(),
        b"Message-ID: <x@y>",
    )
    msg = parse_message(mail)
    assert msg.subject == "A business phone"
    assert msg.from_ == Address("Biz Phones", "info@example.net")
    assert "header subject: undecodable characters removed" in msg.defects
