"""parse_message on hand-written fixtures, broken input and the shared corpus."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.core.classify import Identity, classify
from mailbridge.core.message import Address, ParsedMessage
from mailbridge.core.parse import message_fingerprint, normalize_subject, parse_message
from mailbridge.core.serialize import parsed_to_json
from tests.support.corpus import corpus_files, folders
from tests.support.required import shared_corpus

pytestmark = pytest.mark.unit

EML = Path(__file__).resolve().parent.parent / "data" / "eml"


def parse_fixture(name: str) -> ParsedMessage:
    return parse_message((EML / name).read_bytes())


def test_plain_mail_headers_and_body() -> None:
    msg = parse_fixture("plain.eml")
    assert msg.message_id == "20260302091500.1234@mail.example.org"
    assert msg.from_ == Address("Jane Doe", "jane.doe@example.org")
    assert msg.to == (Address("Support", "support@example.com"),)
    assert msg.cc == (Address("Smith, John", "john@example.net"), Address("", "ops@example.net"))
    assert msg.reply_to == (Address("", "jane+replies@example.org"),)
    assert msg.subject == "Re: Fwd: Cannot log in to my account"
    assert msg.date == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    assert msg.in_reply_to == "ticket-1042@support.example.com"
    assert msg.references == ("first@support.example.com", "ticket-1042@support.example.com")
    assert msg.html is None
    assert msg.defects == ()
    assert "On Sun, Mar 1, 2026" in msg.text
    assert msg.reply_text.endswith("Thanks,\nJane")
    assert "Dear customer" not in msg.reply_text
    assert msg.language == "en"


def test_html_only_is_converted_with_links_and_lists() -> None:
    msg = parse_fixture("html_only.eml")
    assert msg.html is not None and "<b>#5521</b>" in msg.html
    assert "My order #5521 never arrived." in msg.text
    assert "[order page](https://shop.example.org/orders/5521)" in msg.text
    assert "* first item" in msg.text and "* second item" in msg.text
    assert "<p>" not in msg.text


def test_alternative_prefers_text_part_and_keeps_html() -> None:
    msg = parse_fixture("alternative.eml")
    assert msg.text == "The invoice total looks wrong to me, could you check it?"
    assert msg.html is not None and "<i>total</i>" in msg.html
    assert msg.attachments == ()


def test_italian_quoted_printable_reply() -> None:
    msg = parse_fixture("italian_qp.eml")
    assert msg.subject == "R: Perché il pacco non è arrivato?"
    assert msg.from_ == Address("Mario Rossi", "mario.rossi@example.it")
    assert "la spedizione risulta ferma da una settimana" in msg.text
    assert msg.reply_text.endswith("Grazie mille,\nMario")
    assert "Inviato da iPhone" not in msg.reply_text
    assert "ha scritto" not in msg.reply_text
    assert msg.language == "it"
    assert msg.date is not None and msg.date.utcoffset() == timedelta(hours=1)


def test_latin1_body_labelled_utf8_is_recovered() -> None:
    msg = parse_fixture("latin1_as_utf8.eml")
    assert msg.text.startswith("Grüße aus Köln, die Rücksendung")
    assert "\ufffd" not in msg.text
    assert any("utf-8" in d for d in msg.defects)
    assert msg.language == "de"


def test_utf8_body_labelled_latin1_is_recovered() -> None:
    raw = (
        b"From: a@example.org\nMessage-ID: <x@y>\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\n" + "Très bien, merci".encode()
    )
    msg = parse_message(raw)
    assert msg.text == "Très bien, merci"
    assert any("utf-8" in d for d in msg.defects)


def test_broken_rfc2047_words_keep_the_rest_of_the_header() -> None:
    msg = parse_fixture("broken_rfc2047.eml")
    assert msg.from_ == Address("François Dupont", "francois@example.fr")
    assert msg.subject.startswith("Problème")
    assert "not base64!" in msg.subject
    assert "café" in msg.subject  # unknown charset, decoded by fallback
    assert msg.subject.endswith("=?utf-8?B?broken")  # unterminated word kept as written


def test_rfc2231_filename() -> None:
    msg = parse_fixture("rfc2231_filename.eml")
    (att,) = msg.attachments
    assert att.filename == "Verträge 2026.pdf"
    assert att.content_type == "application/pdf"
    assert att.size == len(att.payload) == 20
    assert att.payload.startswith(b"%PDF-1.4")
    assert att.inline is False
    assert msg.text == "Please find the signed contract attached."


def test_inline_image_in_related_part() -> None:
    msg = parse_fixture("inline_image.eml")
    (image,) = msg.attachments
    assert (image.filename, image.content_type, image.inline) == (
        "screenshot.png",
        "image/png",
        True,
    )
    assert image.content_id == "shot1@example.org"
    assert image.payload.startswith(b"\x89PNG")
    assert msg.text == "This is the error I get:"


def test_attached_message_becomes_eml_named_after_its_subject() -> None:
    msg = parse_fixture("attached_message.eml")
    (att,) = msg.attachments
    assert att.filename == "Your order confirmation.eml"
    assert att.content_type == "message/rfc822"
    assert b"Thank you for your order." in att.payload
    assert att.size == len(att.payload)
    assert msg.text == "See the mail I received, attached."


def test_missing_message_id_and_date_are_defects() -> None:
    msg = parse_fixture("missing_headers.eml")
    assert msg.message_id is None and msg.date is None
    assert "missing Message-ID" in msg.defects
    assert "missing Date" in msg.defects
    assert msg.text.strip() == "A message without Message-ID and without Date."


def test_dsn_parts_are_attachments_not_body() -> None:
    msg = parse_fixture("dsn_bounce.eml")
    assert [a.content_type for a in msg.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert "Final-Recipient" not in msg.text


def test_garbage_bytes_give_a_message_with_defects() -> None:
    msg = parse_message(b"\x00\xff\xfe\x80 not an email \x1b[31m")
    assert msg.message_id is None and msg.from_ is None
    assert msg.defects


@pytest.mark.parametrize("charset", ["\x00", "utf-8\x00", "a\x00b"])
def test_a_charset_name_with_a_nul_is_read_as_an_unknown_charset(charset: str) -> None:
    # codecs.lookup refuses such a name with ValueError, not LookupError: the text is
    # still read, never a crash that sends the mail to quarantine.
    raw = (
        f"From: ada@example.com\r\nSubject: =?{charset}?q?caf=C3=A9?=\r\n"
        f'Content-Type: text/plain; charset="{charset}"\r\n\r\ncaf\xc3\xa9 ouvert\r\n'
    ).encode("latin-1")
    msg = parse_message(raw)
    assert "ouvert" in msg.text
    assert msg.from_ == Address("", "ada@example.com")


def test_message_ids_lose_brackets_and_odd_forms_survive() -> None:
    raw = (
        b"Message-ID:   bare-id@example.org  \n"
        b"In-Reply-To: junk <a@b> <c@d>\nReferences: x@y z@w\n\nhi"
    )
    msg = parse_message(raw)
    assert msg.message_id == "bare-id@example.org"
    assert msg.in_reply_to == "a@b"
    assert msg.references == ("x@y", "z@w")


def test_date_without_zone_is_read_as_utc() -> None:
    msg = parse_message(b"Date: Mon, 2 Mar 2026 10:00:00 -0000\n\nx")
    assert msg.date == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    bad = parse_message(b"Date: yesterday-ish\n\nx")
    assert bad.date is None and "invalid Date" in bad.defects


def test_odd_address_quoting() -> None:
    raw = (
        b'From: "Doe, Jane (Support)" <JANE@Example.ORG>\n'
        b"To: undisclosed-recipients:;\n"
        b"Cc: bob@example.com., <carol@example.com>\n\nx"
    )
    msg = parse_message(raw)
    assert msg.from_ == Address("Doe, Jane (Support)", "jane@example.org")
    assert msg.to == ()
    assert [a.address for a in msg.cc] == ["bob@example.com", "carol@example.com"]


def test_eight_bit_headers_are_decoded() -> None:
    raw = "Subject: Über café\nFrom: Zoë <zoe@example.org>\n\nx".encode()
    msg = parse_message(raw)
    assert msg.subject == "Über café"
    assert msg.from_ == Address("Zoë", "zoe@example.org")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Fwd: AW: help", "help"),
        ("RIF: R: I:  order   42", "order 42"),
        ("Antw: SV: TR: Fw: x", "x"),
        ("Re[2]: status", "status"),
        ("Regarding the invoice", "Regarding the invoice"),
    ],
)
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_fingerprint_same_mail_different_received_headers() -> None:
    body = b"Message-ID: <m1@x>\nFrom: a@x.org\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\nbody\n"
    first = message_fingerprint(b"Received: from mx1\n" + body)
    second = message_fingerprint(b"Received: from mx2\nReceived: from relay\n" + body)
    assert first == second
    assert first[0] == "m1@x"


def test_fingerprint_reused_message_id_with_other_body_differs() -> None:
    head = b"Message-ID: <m1@x>\nFrom: a@x.org\nDate: Mon, 2 Mar 2026 10:00:00 +0000\n\n"
    assert message_fingerprint(head + b"one")[1] != message_fingerprint(head + b"two")[1]


def test_fingerprint_without_message_id_is_raw_hash() -> None:
    import hashlib

    raw = b"From: a@x.org\n\nhello"
    assert message_fingerprint(raw) == (None, hashlib.sha256(raw).hexdigest())


def test_json_contract_keys_and_values() -> None:
    msg = parse_fixture("inline_image.eml")
    data = parsed_to_json(msg, classify(msg, Identity()))
    assert json.loads(json.dumps(data)) == data
    assert data["from"] == {"name": "Pia", "address": "pia@example.org"}
    assert data["date"] == "2026-03-06T09:00:00+00:00"
    assert data["has_html"] is True
    assert data["attachments"] == [
        {
            "filename": "screenshot.png",
            "content_type": "image/png",
            "size": 70,
            "inline": True,
            "skipped_reason": None,
            "container": None,
        }
    ]
    assert data["kind"] == "customer" and data["rules"] == []
    expected_keys = {
        "message_id", "from", "to", "cc", "reply_to", "subject", "date", "in_reply_to",
        "references", "text", "reply_text", "has_html", "attachments", "kind", "language",
        "defects", "rules", "ack_withheld_by", "sender_header",
    }  # fmt: skip
    assert set(data) == expected_keys


def test_json_from_is_null_without_sender() -> None:
    msg = parse_message(b"Subject: x\n\nbody")
    assert parsed_to_json(msg, classify(msg, Identity()))["from"] is None


def test_date_keeps_offset() -> None:
    msg = parse_message(b"Date: Mon, 2 Mar 2026 10:00:00 +0530\n\nx")
    assert msg.date is not None
    assert msg.date.utcoffset() == timezone(timedelta(hours=5, minutes=30)).utcoffset(None)


FIXTURES = sorted(p.read_bytes() for p in EML.glob("*.eml"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_never_raises_on_random_bytes(raw: bytes) -> None:
    msg = parse_message(raw)
    assert isinstance(msg, ParsedMessage)
    assert all(attachment.filename for attachment in msg.attachments)
    json.dumps(parsed_to_json(msg, classify(msg, Identity())))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURES),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=6),
    st.integers(0, 10_000),
)
def test_never_raises_on_mutated_fixtures(
    raw: bytes, edits: list[tuple[int, bytes]], cut: int
) -> None:
    data = bytearray(raw)
    for position, chunk in edits:
        at = position % (len(data) + 1)
        data[at : at + len(chunk)] = chunk
    mutated = bytes(data[: max(cut, len(data) // 2)])
    msg = parse_message(mutated)
    assert all(attachment.filename for attachment in msg.attachments)
    json.dumps(parsed_to_json(msg, classify(msg, Identity())))
    message_fingerprint(mutated)


def test_every_corpus_file_parses() -> None:
    root = shared_corpus()
    paths = [path for folder in folders(root) for path in corpus_files(root, folder)]
    failures = []
    for path in paths:
        try:
            msg = parse_message(path.read_bytes())
            json.dumps(parsed_to_json(msg, classify(msg, Identity())))
        except Exception as exc:  # noqa: BLE001 - collect all, report together
            failures.append(f"{path.relative_to(root)}: {exc!r}")
    assert paths, "corpus folder is empty"
    assert failures == []
