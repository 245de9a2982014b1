"""The pure parts of an erasure: the keyed pseudonym, the address in text (any case, never
inside another address), what of an audit event survives, and mail that names an address
where quoted-printable or base64 hides it from a search of its bytes."""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage

import pytest

from mailbridge.core.erasure import (
    ERASED,
    address_pattern,
    erased_message_id,
    erasure_key,
    is_pseudonym,
    mail_mentions,
    pseudonym,
    replace_address,
    scrub_event_data,
)

pytestmark = pytest.mark.unit

KEY = erasure_key(b"the staff secret")
ANN = "ann.lee@shop.example"


def test_the_pseudonym_is_stable_per_address_and_key_and_tells_nothing() -> None:
    made = pseudonym(KEY, ANN)
    assert made == pseudonym(KEY, ANN) and is_pseudonym(made)
    assert re.fullmatch(r"erased-[0-9a-f]{20}@invalid", made)
    assert made != pseudonym(KEY, "bob@shop.example")
    assert made != pseudonym(erasure_key(b"another secret"), ANN)
    assert "ann" not in made and "shop" not in made
    assert KEY != b"the staff secret" and len(KEY) == 32


@pytest.mark.parametrize(
    "text, replaced",
    [
        ("write to ANN.Lee@Shop.Example today", "write to X today"),
        ("<ann.lee@shop.example>.", "<X>."),
        ('"ann.lee@shop.example",', '"X",'),
        ("xann.lee@shop.example", "xann.lee@shop.example"),  # another address
        ("ann.lee@shop.example.org", "ann.lee@shop.example.org"),
        ("ann.lee@shop.examples", "ann.lee@shop.examples"),
        ("mr.ann.lee@shop.example", "mr.ann.lee@shop.example"),
        ("a ann.lee@shop.example b ann.lee@shop.example", "a X b X"),
    ],
)
def test_the_address_is_found_in_any_case_and_never_inside_another(
    text: str, replaced: str
) -> None:
    assert replace_address(text, address_pattern(ANN), "X") == replaced


def test_an_address_with_pattern_characters_is_taken_literally() -> None:
    odd = "a+b.c*d@shop.example"
    assert replace_address("to A+B.C*D@shop.example", address_pattern(odd), "X") == "to X"
    assert replace_address("to a+bxc*d@shop.example", address_pattern(odd), "X") != "to X"


def test_an_event_keeps_its_handling_and_numbers_and_loses_what_mail_said() -> None:
    data = {
        "by": ANN,
        "verdict": "good",
        "status_from": "resolved",
        "said": "my secret words",
        "filename": "passport.pdf",
        "message_id": "123.ann.lee@shop.example",
        "name": "Ann Lee",
        "late_minutes": 12,
        "authenticated": True,
        "empty": "",
        "none": None,
        "offered": [{"file": "refund-en.md", "score": 0.7}],
        "added": [ANN, "bob@shop.example"],
        "changes": {"cc": ["text of a command"]},
    }
    assert scrub_event_data(data, address_pattern(ANN), "P") == {
        "by": "P",
        "verdict": "good",
        "status_from": "resolved",
        "said": ERASED,
        "filename": ERASED,
        "message_id": ERASED,
        "name": ERASED,
        "late_minutes": 12,
        "authenticated": True,
        "empty": "",
        "none": None,
        "offered": [{"file": "refund-en.md", "score": 0.7}],
        "added": ["P", "bob@shop.example"],
        "changes": {"cc": [ERASED]},
    }
    assert scrub_event_data(data, None, "")["by"] == ANN, "retention keeps who acted"


def test_a_message_id_becomes_a_stable_one_that_names_nothing() -> None:
    made = erased_message_id(KEY, "123.ann.lee@shop.example")
    assert made == erased_message_id(KEY, "123.ann.lee@shop.example")
    assert made != erased_message_id(KEY, "124.ann.lee@shop.example")
    assert erased_message_id(KEY, made) == made, "a second erasure changes nothing"
    assert "ann" not in made


def mail(body: str, cte: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@b.example", "c@d.example", "Digest"
    message.set_content(body, cte=cte)
    return message.as_bytes()


def test_mail_naming_the_address_is_found_through_its_encodings() -> None:
    line = "é" * 60 + " ANN.LEE@shop.example"  # quoted-printable breaks inside the address
    quoted = mail(line, "quoted-printable")
    assert b"ann.lee@shop.example" not in quoted.lower()
    assert mail_mentions(quoted, address_pattern(ANN))
    based = mail("to ann.lee@shop.example", "base64")
    assert base64.b64encode(b"ann.lee") not in based
    assert mail_mentions(based, address_pattern(ANN))
    assert not mail_mentions(mail("to bob@shop.example", "base64"), address_pattern(ANN))
    assert mail_mentions(mail("plain ann.lee@shop.example", "7bit"), address_pattern(ANN))
    assert not mail_mentions(b"", address_pattern(ANN))


def test_an_encoded_header_is_read_too() -> None:
    message = EmailMessage()
    message["Subject"] = "=?utf-8?q?about_ann=2Elee=40shop=2Eexample?="
    message.set_content("nothing here")
    assert mail_mentions(message.as_bytes(), address_pattern(ANN))


def test_mail_listing_one_of_the_tickets_is_found_by_its_tag() -> None:
    digest = mail("[#1042] Ann Lee | Printer | 2h\n[#7] Bob | Other | 1h", "base64")
    tags = frozenset({"[#1042]", "[#99]"})
    assert mail_mentions(digest, address_pattern(ANN), tags)
    assert not mail_mentions(digest, address_pattern(ANN), frozenset({"[#104]", "[#10420]"}))
    assert not mail_mentions(digest, address_pattern(ANN))
