"""Every attachment gets a name: the one its part gives, decoded as clients write it, else
one built from its type; names are safe to save."""

from __future__ import annotations

import pytest

from mailbridge.core.attachment_names import built_name, extension
from mailbridge.core.message import Attachment, ParsedMessage
from mailbridge.core.parse import parse_message
from mailbridge.core.safe_text import safe_filename
from tests.support.tnef import build_tnef, outlook_mail

pytestmark = pytest.mark.unit

HEAD = (
    b"From: Ann <ann@example.org>\r\nTo: support@shop.example\r\nSubject: files\r\n"
    b"Message-ID: <m1@example.org>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
)
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe files.\r\n"


def mail(*parts: bytes, subtype: bytes = b"mixed") -> bytes:
    """A multipart mail: its text, then each of `parts` (header lines, a blank line, a body)."""
    body = b"".join(b"--b0\r\n" + part + b"\r\n" for part in (TEXT, *parts))
    return (
        HEAD
        + b"Content-Type: multipart/"
        + subtype
        + b'; boundary="b0"\r\n\r\n'
        + body
        + b"--b0--\r\n"
    )


def part(*headers: bytes, body: bytes = b"JVBERi0xLjQK") -> bytes:
    lines = b"".join(header + b"\r\n" for header in headers)
    return lines + b"Content-Transfer-Encoding: base64\r\n\r\n" + body


def attachments(raw: bytes) -> tuple[Attachment, ...]:
    return parse_message(raw).attachments


def only_name(raw: bytes) -> str:
    (attachment,) = attachments(raw)
    return attachment.filename


# --- the name the part gives ------------------------------------------------------------


def test_rfc2231_continuations_in_a_charset() -> None:
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b"Content-Disposition: attachment;",
            b" filename*0*=utf-8''Vertr%C3%A4ge%20;",
            b" filename*1*=f%C3%BCr%20;",
            b' filename*2="2026.pdf"',
        )
    )
    assert only_name(raw) == "Verträge für 2026.pdf"


def test_rfc2231_value_wins_over_the_plain_fallback_beside_it() -> None:
    # RFC 6266 and the clients that write both: the plain one is for old readers.
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b'Content-Disposition: attachment; filename="resume.pdf";',
            b" filename*=utf-8''r%C3%A9sum%C3%A9.pdf",
        )
    )
    assert only_name(raw) == "résumé.pdf"


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [
        (b"filename*=''caf%E9.txt", "café.txt"),  # no charset: latin-1 bytes
        (b"filename*=x-unknown''caf%C3%A9.txt", "café.txt"),  # no such charset: UTF-8 bytes
        (b"filename*=us-ascii''caf%C3%A9.txt", "café.txt"),  # mislabelled
        (b"filename*=iso-8859-1'it'Perch%E9.txt", "Perché.txt"),
    ],
)
def test_rfc2231_bytes_are_decoded_without_replacement_characters(
    parameter: bytes, expected: str
) -> None:
    raw = mail(
        part(
            b"Content-Type: text/plain",
            b"Content-Disposition: attachment; " + parameter,
            body=b"aGk=",
        )
    )
    assert only_name(raw) == expected


def test_rfc2047_words_in_a_quoted_filename_as_outlook_writes_them() -> None:
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b"Content-Disposition: attachment;",
            b' filename="=?utf-8?B?RmF0dHVyYSBuLiAxMjMg?=',
            b' =?utf-8?B?4oCUIG1hcnpvLnBkZg==?="',
        )
    )
    assert only_name(raw) == "Fattura n. 123 — marzo.pdf"


def test_content_type_name_when_the_disposition_has_no_filename() -> None:
    raw = mail(
        part(
            b'Content-Type: application/pdf; name="=?iso-8859-1?Q?Pr=E4sentation.pdf?="',
            b'Content-Disposition: attachment; filename=""',
        )
    )
    assert only_name(raw) == "Präsentation.pdf"


@pytest.mark.parametrize(
    ("raw_name", "expected"),
    [
        ("ciële.txt".encode(), "ciële.txt"),  # UTF-8, as RFC 6532 clients send it
        ("Größe.txt".encode("latin-1"), "Größe.txt"),  # latin-1, unlabelled
    ],
)
def test_raw_8bit_names_are_decoded(raw_name: bytes, expected: str) -> None:
    raw = mail(
        part(
            b"Content-Type: text/plain; name=" + raw_name,
            b"Content-Disposition: attachment;\r\n\tfilename=" + raw_name,
            body=b"aGk=",
        )
    )
    name = only_name(raw)
    assert name == expected
    assert "\ufffd" not in name


def test_content_location_basename() -> None:
    raw = mail(
        part(
            b"Content-Type: image/jpeg",
            b"Content-Location: http://example.org/photos/Photo%2025.jpg?size=large#x",
        )
    )
    assert only_name(raw) == "Photo 25.jpg"


def test_content_location_windows_path() -> None:
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b"Content-Location: C:\\Users\\ann\\Desktop\\offer.pdf",
        )
    )
    assert only_name(raw) == "offer.pdf"


def test_filename_comes_before_name_before_content_location() -> None:
    raw = mail(
        part(
            b'Content-Type: application/pdf; name="second.pdf"',
            b'Content-Disposition: attachment; filename="first.pdf"',
            b"Content-Location: third.pdf",
        ),
        part(
            b'Content-Type: application/pdf; name="second.pdf"',
            b"Content-Disposition: attachment",
            b"Content-Location: third.pdf",
        ),
        part(
            b"Content-Type: application/pdf",
            b"Content-Disposition: attachment",
            b"Content-Location: third.pdf",
        ),
    )
    assert [a.filename for a in attachments(raw)] == ["first.pdf", "second.pdf", "third.pdf"]


def test_inline_image_is_named_after_its_content_id() -> None:
    html = b'Content-Type: text/html\r\n\r\n<p><img src="cid:image001.png@01DA2B3C.4D5E6F70"></p>'
    raw = mail(
        html,
        part(b"Content-Type: image/png", b"Content-ID: <image001.png@01DA2B3C.4D5E6F70>"),
        part(
            b"Content-Type: image/jpeg",
            b"Content-ID: <ii_lx81f0a2>",
            b"Content-Disposition: inline",
        ),
        part(b"Content-Type: image/gif", b"Content-ID: <../../logo>"),
        subtype=b"related",
    )
    found = attachments(raw)
    assert [(a.filename, a.inline) for a in found] == [
        ("image001.png", True),
        ("ii_lx81f0a2.jpg", True),
        ("logo.gif", True),
    ]
    assert not any(d.startswith("attachment without a name") for d in parse_message(raw).defects)


# --- names built from the type ----------------------------------------------------------


def test_unnamed_parts_get_names_from_their_type_and_a_defect() -> None:
    raw = mail(
        part(b"Content-Type: image/jpeg", b"Content-Disposition: inline"),  # no Content-ID
        part(b"Content-Type: application/pdf"),
        part(b'Content-Type: application/pdf; name="named.pdf"'),
        part(b"Content-Type: application/x-nobody-knows"),
        part(b"Content-Type: message/delivery-status", body=b""),
    )
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == [
        "image001.jpg",
        "attachment-2.pdf",
        "named.pdf",
        "attachment-3.bin",
        "attachment-4.txt",
    ]
    built = [d for d in msg.defects if d.startswith("attachment without a name")]
    assert built == [
        "attachment without a name: named image001.jpg",
        "attachment without a name: named attachment-2.pdf",
        "attachment without a name: named attachment-3.bin",
        "attachment without a name: named attachment-4.txt",
    ]


def test_a_bounce_report_part_has_a_name() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; a@example.org\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
    )
    (status,) = attachments(raw)
    assert (status.filename, status.content_type) == ("attachment-1.txt", "message/delivery-status")


def test_files_inside_winmail_dat_without_names_are_named() -> None:
    (unpacked,) = attachments(outlook_mail(build_tnef([(b"", b"data")]), text="See the file."))
    assert unpacked.filename == "attachment-1.bin"
    assert unpacked.container == "winmail.dat"


@pytest.mark.parametrize(
    ("content_type", "number", "expected"),
    [
        ("image/jpeg", 1, "image001.jpg"),
        ("image/png", 12, "image012.png"),
        ("application/pdf", 2, "attachment-2.pdf"),
        ("text/plain", 3, "attachment-3.txt"),
        ("application/octet-stream", 4, "attachment-4.bin"),
        ("application/x-unknown", 5, "attachment-5.bin"),
        ("text/x-unknown", 6, "attachment-6.txt"),
        ("image/jpg", 7, "image007.jpg"),
    ],
)
def test_built_names(content_type: str, number: int, expected: str) -> None:
    assert built_name(content_type, number) == expected


def test_extension_does_not_depend_on_the_machine() -> None:
    # The host's mime.types may list more; the built names stay the same everywhere.
    assert (
        extension("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        == ".docx"
    )
    assert extension("application/vnd.example.nobody") == ".bin"


# --- names made safe ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (b'"../../../etc/passwd"', "passwd"),
        (b'"C:\\\\Documents and Settings\\\\ann\\\\report.pdf"', "report.pdf"),
        (b'"invoice\xe2\x80\xaefdp.exe"', "invoice fdp.exe"),  # U+202E: no disguised .exe
        (b'"tab\there.pdf"', "tab here.pdf"),
        (b'"what? <now>: a|b*.pdf"', "what_ _now__ a_b_.pdf"),
        (b'"  .hidden. "', "hidden"),
        (b'".."', "attachment-1.pdf"),  # nothing left of it: built instead
    ],
)
def test_names_are_made_safe(filename: bytes, expected: str) -> None:
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b"Content-Disposition: attachment; filename=" + filename,
        )
    )
    assert only_name(raw) == expected


def test_long_names_are_bounded_with_their_extension() -> None:
    raw = mail(
        part(
            b"Content-Type: application/pdf",
            b'Content-Disposition: attachment; filename="' + b"r" * 5000 + b'.pdf"',
        )
    )
    name = only_name(raw)
    assert len(name) == 200 and name.endswith("….pdf")


def test_safe_filename_keeps_ordinary_names() -> None:
    for name in ("Fattura 2026-118.pdf", "Größe.xlsx", "报告.docx", "a.b.c.tar.gz", "#1 (2).png"):
        assert safe_filename(name) == name


# --- never nameless ----------------------------------------------------------------------


def assert_named(msg: ParsedMessage) -> None:
    assert all(a.filename for a in msg.attachments), [a.filename for a in msg.attachments]


def test_every_kind_of_part_gets_a_name() -> None:
    inner = (
        b"From: b@example.org\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="i"\r\n\r\n'
        b"--i\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
        b"--i\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--i--\r\n"
    )
    raw = mail(
        part(b"Content-Type: application/octet-stream"),
        b"Content-Type: message/rfc822\r\n\r\n" + inner,
        part(b"Content-Type: multipart/alternative"),  # no boundary: read as a leaf
        part(b"Content-Type: image/png", b"Content-ID: <>", b"Content-Disposition: inline"),
        part(b"Content-Type: message/disposition-notification", body=b""),
    )
    msg = parse_message(raw)
    assert_named(msg)
    assert [a.filename for a in msg.attachments] == [
        "attachment-1.bin",
        "inner.eml",
        "attachment-2.bin",
        "image003.png",
        "attachment-4.txt",
    ]


def test_a_disposition_without_its_type_still_gives_the_filename() -> None:
    raw = mail(part(b"Content-Type: application/pdf", b'Content-Disposition: filename="bare.pdf"'))
    assert only_name(raw) == "bare.pdf"


def test_rfc2231_pieces_that_do_not_fit_together_fall_back_to_the_name() -> None:
    raw = mail(
        part(
            b'Content-Type: application/pdf; name="fallback.pdf"',
            b"Content-Disposition: attachment; filename*=utf-8''a.pdf; filename*0=b",
        )
    )
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == ["fallback.pdf"]
    assert "attachment filename could not be decoded" in msg.defects


def test_a_content_location_the_url_parser_refuses_is_no_name() -> None:
    raw = mail(part(b"Content-Type: application/pdf", b"Content-Location: http://[::1/x.pdf"))
    assert only_name(raw) == "attachment-1.pdf"
