"""Composing outbound mail, and the customer-facing wording of times and excerpts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage, MIMEPart
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core.compose import (
    MAX_REFERENCES,
    Outgoing,
    build_message,
    can_write_address,
    make_message_id,
    tag_subject,
)
from mailbridge.core.humanize import excerpt, format_deadline, format_duration
from mailbridge.core.message import Address, Attachment

pytestmark = pytest.mark.unit

ROME = ZoneInfo("Europe/Rome")
SENT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
NOV_24 = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def outgoing(**changes: object) -> Outgoing:
    base = Outgoing(
        from_=Address("Example Support", "support@example.com"),
        to=(Address("Giulia Rossi", "giulia@example.net"),),
        subject="[#1042] Cable missing",
        text="Hello Giulia,\nyour ticket is [#1042].\n",
        html=None,
        message_id="mb.ack.7.9@example.com",
        date=SENT,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def content(part: MIMEPart) -> str:
    """A text part's content with the wire's CRLF line endings read back as newlines."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


# --- plain messages ---------------------------------------------------------------------


def test_plain_text_message_round_trips() -> None:
    raw = build_message(outgoing(auto_submitted="auto-replied"))
    parsed = parse(raw)
    assert list(parsed.keys())[:6] == [
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    ]  # fmt: skip
    assert set(parsed.keys()[6:]) == {
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    }  # fmt: skip
    assert parsed["From"] == "Example Support <support@example.com>"
    assert parsed["To"] == "Giulia Rossi <giulia@example.net>"
    assert parsed["Subject"] == "[#1042] Cable missing"
    assert parsed["Date"] == "Tue, 24 Nov 2026 09:30:00 +0000"
    assert parsed["Message-ID"] == "<mb.ack.7.9@example.com>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed.get_content_type() == "text/plain"
    assert content(parsed) == "Hello Giulia,\nyour ticket is [#1042].\n"


def test_every_line_ends_with_crlf_and_fits_the_limit() -> None:
    raw = build_message(outgoing(text="x" * 300 + "\n" + "é" * 200 + "\nend\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert content(parse(raw)) == "x" * 300 + "\n" + "é" * 200 + "\nend\n"


def test_same_input_gives_the_same_bytes() -> None:
    attached = (Attachment("a.txt", "text/plain", 2, False, payload=b"hi"),)
    first = build_message(outgoing(html="<p>x</p>", attachments=attached))
    assert build_message(outgoing(html="<p>x</p>", attachments=attached)) == first
    other = build_message(outgoing(html="<p>x</p>", attachments=attached, message_id="b@x.y"))
    assert other != first


def test_no_date_header_without_a_date_and_naive_dates_are_refused() -> None:
    assert "Date" not in parse(build_message(outgoing(date=None)))
    with pytest.raises(ValueError, match="aware"):
        build_message(outgoing(date=datetime(2026, 1, 1, 12, 0)))
    rome = build_message(outgoing(date=datetime(2026, 7, 1, 12, 0, tzinfo=ROME)))
    assert parse(rome)["Date"] == "Wed, 01 Jul 2026 12:00:00 +0200"


def test_several_recipients_and_reply_to() -> None:
    raw = build_message(
        outgoing(
            to=(Address("", "a@example.com"), Address("B", "b@example.com")),
            reply_to=(Address("Support", "support+t1042-abc@example.com"),),
        )
    )
    parsed = parse(raw)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@example.com", "b@example.com"]
    assert parsed["Reply-To"] == "Support <support+t1042-abc@example.com>"


def test_cc_is_written_after_to_and_absent_when_empty() -> None:
    raw = build_message(
        outgoing(cc=(Address("Marco Rossi", "marco@example.net"), Address("", "c@example.org")))
    )
    parsed = parse(raw)
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["marco@example.net", "c@example.org"]
    assert parsed["Cc"].addresses[0].display_name == "Marco Rossi"
    head = header_block(raw)
    assert head.index(b"\r\nTo:") < head.index(b"\r\nCc:")
    assert b"\r\nCc:" not in header_block(build_message(outgoing()))


def test_a_hostile_cc_name_cannot_add_headers_and_a_hostile_address_is_refused() -> None:
    name = "Eve\r\nBcc: victim@example.com\nX-Evil: 1\r"
    parsed = parse(build_message(outgoing(cc=(Address(name, "eve@example.com"),))))
    assert "Bcc" not in parsed and "X-Evil" not in parsed
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["eve@example.com"]
    assert parsed["Cc"].addresses[0].display_name == "Eve Bcc: victim@example.com X-Evil: 1"
    for address in ("eve@example.com\r\nBcc: v@example.com", "a@b.com, c@d.com", "<x@y.z>"):
        with pytest.raises(ValueError):
            build_message(outgoing(cc=(Address("", address),)))


# --- header injection and encoding -------------------------------------------------------


def test_customer_text_cannot_add_headers() -> None:
    raw = build_message(
        outgoing(
            subject="Help\r\nBcc: victim@example.com\nX-Evil: 1\rCc: c@example.com",
            to=(Address('Eve "the boss"\r\nBcc: v2@example.com\n, x', "eve@example.com"),),
            extra_headers=(("X-Mailbridge-Ticket", "1042\r\nBcc: v3@example.com"),),
        )
    )
    parsed = parse(raw)
    assert set(parsed.keys()) == {
        "From", "To", "Subject", "Date", "Message-ID", "X-Mailbridge-Ticket",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    }  # fmt: skip
    assert parsed["Subject"] == "Help Bcc: victim@example.com X-Evil: 1 Cc: c@example.com"
    recipients = parsed["To"].addresses
    assert [a.addr_spec for a in recipients] == ["eve@example.com"]
    assert recipients[0].display_name == 'Eve "the boss" Bcc: v2@example.com , x'
    assert parsed["X-Mailbridge-Ticket"] == "1042 Bcc: v3@example.com"
    assert parsed.defects == []


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\u2028", "\u2029", "\x85", "\u200e"])
def test_control_characters_are_removed_from_headers(char: str) -> None:
    raw = build_message(outgoing(subject=f"a{char}b", to=(Address(f"N{char}M", "n@x.org"),)))
    parsed = parse(raw)
    assert parsed["Subject"] == "a b"
    assert parsed["To"].addresses[0].display_name == "N M"


def test_non_ascii_names_and_subjects_are_encoded_and_folded() -> None:
    subject = "Rimborso non ricevuto per l'ordine n° 55-1931 — perché così tanto ritardo? " * 2
    raw = build_message(
        outgoing(subject=subject, to=(Address("Zoë Müller-Lüdenscheidt", "zoe@example.de"),))
    )
    head = header_block(raw)
    head.decode("ascii")  # RFC 2047 encoded words only
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    parsed = parse(raw)
    assert parsed["Subject"] == subject.strip()
    assert parsed["To"].addresses[0].display_name == "Zoë Müller-Lüdenscheidt"


def test_a_long_non_ascii_subject_folds_into_short_lines_and_round_trips() -> None:
    words = [
        "Rückerstattung",
        "für",
        "die",
        "Bestellung",
        "Nr.",
        "4411:",
        "Größe",
        "falsch,",
        "Lieferung",
        "verspätet",
        "—",
        "perché",
        "così",
        "tanto",
        "ritardo?",
        "€129,90",
        "«déjà",
        "payé»",
        "田中さん",
        "über",
        "straße",
    ]
    subject = " ".join(words[i % len(words)] for i in range(60))[:400]  # the kept maximum
    raw = build_message(outgoing(subject=subject))
    head = header_block(raw)
    head.decode("ascii")
    lines = head.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    subject_lines = [line for line in lines if line.startswith((b"Subject:", b" =?"))]
    assert len(subject_lines) > 5  # folded, not one encoded word per header
    encoded = [word for line in subject_lines for word in line.split() if word.startswith(b"=?")]
    assert all(len(word) <= 75 for word in encoded)  # RFC 2047's limit for one encoded word
    assert parse(raw)["Subject"] == subject.strip()


_BODY_TEXT = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=90)
    | st.sampled_from(["\n", "\r\n", "\r", " ", "\t", "=", ".", "From ", "é" * 40, "--"]),
    max_size=12,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_BODY_TEXT, html=st.none() | _BODY_TEXT)
def test_bodies_round_trip_whatever_their_characters(text: str, html: str | None) -> None:
    raw = build_message(outgoing(text=text, html=html))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")
    parsed = parse(raw)
    assert parsed.defects == []
    parts = list(parsed.iter_parts()) if html is not None else [parsed]
    expected = [text] if html is None else [text, html]
    for part, original in zip(parts, expected, strict=True):
        # Line breaks of any kind are sent as CRLF; the body always ends with one.
        lines = original.encode("utf-8").splitlines()
        assert content(part) == (b"\n".join(lines) + b"\n").decode("utf-8")


@pytest.mark.parametrize(
    "name",
    [
        "Zoë Müller-Lüdenscheidt — perché così tanto ritardo è " * 2,
        "田中 " * 30,
        "x" * 120,
        'O\'Brien, "Pat" \\ Co.',
    ],
)
def test_long_names_are_folded_between_words(name: str) -> None:
    raw = build_message(outgoing(to=(Address(name, "a@x.org"), Address(name, "b@x.org"))))
    head = header_block(raw)
    assert max(len(line) for line in head.split(b"\r\n")) <= 78 or b"x" * 80 in head
    recipients = parse(raw)["To"].addresses
    assert [a.addr_spec for a in recipients] == ["a@x.org", "b@x.org"]
    # Decoders differ on the space between encoded words; the words themselves are whole
    # (the last one may be cut where an overlong name is shortened).
    shown = recipients[0].display_name.split()
    assert shown[:-1] == name.split()[: len(shown) - 1]
    assert " ".join(name.split()).startswith(" ".join(shown))
    assert len(" ".join(shown)) >= min(len(name.strip()), 80) - 1  # a cut may end at a space


@pytest.mark.parametrize(
    "changes",
    [
        {"to": ()},
        {"to": (Address("x", "not an address"),)},
        {"to": (Address("x", "zo\ufffd@example.com"),)},  # bytes that were not UTF-8
        {"to": (Address("x", "zoë@-example.com"),)},
        {"to": (Address("x", "zoë@exämple..com"),)},
        {"from_": Address("x", "@example.com")},
        {"message_id": "<mb.1@example.com>"},
        {"message_id": "no-at-sign"},
        {"message_id": "mb.1@exa mple.com"},
        {"extra_headers": (("Bcc", "v@example.com"),)},
        {"extra_headers": (("subject", "again"),)},
        {"extra_headers": (("Content-Type", "text/html"),)},
        {"extra_headers": (("X Bad", "v"),)},
        {"extra_headers": (("X-Bad:", "v"),)},
    ],
)
def test_unsafe_values_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_message(outgoing(**changes))


# --- internationalised addresses (RFC 6531/6532) ---------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "josé@exämple.de",
        "用户@例子.广告",
        "ada@exämple.de",
        "δοκιμή@παράδειγμα.δοκιμή",
        "jörg.o'neil@example.com",
    ],
)
def test_an_internationalised_address_is_written_in_utf8_as_it_is(address: str) -> None:
    raw = build_message(outgoing(to=(Address("José Müller", address),)))
    (to,) = [line for line in header_block(raw).split(b"\r\n") if line.startswith(b"To:")]
    assert to == b"To: =?utf-8?b?Sm9zw6kgTcO8bGxlcg==?= <" + address.encode() + b">"
    assert parse(raw)["To"].addresses[0].display_name == "José Müller"
    assert raw.partition(b"\r\n\r\n")[2].isascii()  # the body stays 7-bit
    assert can_write_address(address)


def test_an_ascii_mail_stays_ascii() -> None:
    assert build_message(outgoing()).isascii()


@pytest.mark.parametrize(
    "address",
    [
        "zoë @example.com",
        "zo\u200bë@example.com",
        "zoë@example.com\u3002x",
        "zoë.@example.com",
        "@exämple.de",
        "zoë@",
    ],
)
def test_an_internationalised_address_no_mail_can_carry_is_refused(address: str) -> None:
    assert not can_write_address(address)
    with pytest.raises(ValueError, match="invalid address"):
        build_message(outgoing(to=(Address("", address),)))


def test_raw_utf8_bytes_in_an_address_become_text() -> None:
    """The email package keeps a UTF-8 header's bytes as surrogates; Address decodes them."""
    assert Address("José", "jos\udcc3\udca9@ex\udcc3\udca4mple.de").address == "josé@exämple.de"
    assert Address("", "J\udcc3\udc89@X.DE").address == "jé@x.de"
    assert Address("", "jos\udcff@x.de").address == "jos\ufffd@x.de"  # not UTF-8
    assert Address("Ada", "Ada@Example.com").address == "Ada@Example.com"  # left as given


# --- threading headers ------------------------------------------------------------------


def test_in_reply_to_ends_the_references() -> None:
    raw = build_message(outgoing(in_reply_to="<parent@mail.example.net>", references=("root@x",)))
    parsed = parse(raw)
    assert parsed["In-Reply-To"] == "<parent@mail.example.net>"
    assert parsed["References"].split() == ["<root@x>", "<parent@mail.example.net>"]


def test_references_keep_the_root_and_the_latest_ids() -> None:
    ids = tuple(f"id{i}@example.com" for i in range(30))
    raw = build_message(outgoing(references=ids + ("id3@example.com",), in_reply_to=ids[-1]))
    refs = parse(raw)["References"].split()
    assert len(refs) == MAX_REFERENCES
    assert refs == [f"<id{i}@example.com>" for i in (0, *range(21, 30))]


def test_long_message_ids_are_folded_between_ids_never_encoded() -> None:
    gmail = "CAH" + "x" * 90 + "@mail.gmail.com"
    raw = build_message(outgoing(in_reply_to=gmail, references=(gmail.replace("CAH", "CAB"),)))
    head = header_block(raw)
    assert b"=?" not in head
    assert f"In-Reply-To: <{gmail}>".encode() in head
    assert parse(raw)["References"].split() == [f"<{gmail.replace('CAH', 'CAB')}>", f"<{gmail}>"]


def test_malformed_foreign_ids_are_dropped() -> None:
    raw = build_message(
        outgoing(
            in_reply_to="not an id",
            references=("ok@example.com", "a b@c", "x@y\r\nBcc: v@example.com", "", "z" * 300),
        )
    )
    parsed = parse(raw)
    assert "In-Reply-To" not in parsed
    assert parsed["References"] == "<ok@example.com>"


# --- multipart --------------------------------------------------------------------------


def test_html_makes_multipart_alternative_text_first() -> None:
    raw = build_message(outgoing(html="<p>Ciao <b>Giulia</b> — €</p>"))
    parsed = parse(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert content(parts[1]) == "<p>Ciao <b>Giulia</b> — €</p>\n"
    assert all("MIME-Version" not in p for p in parts)
    assert raw.count(b"MIME-Version") == 1


def test_attachments_make_multipart_mixed() -> None:
    attachments = (
        Attachment("..\\..\\invoice 55.pdf", "application/pdf", 4, False, payload=b"%PDF"),
        Attachment("logo.png", "image/png", 3, True, content_id="logo@x", payload=b"PNG"),
        Attachment("fattura è.txt", "multipart/mixed", 2, False, payload=b"\x00\xff"),
    )
    parsed = parse(build_message(outgoing(html="<p>x</p>", attachments=attachments)))
    assert parsed.get_content_type() == "multipart/mixed"
    body, pdf, logo, odd = parsed.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in body.iter_parts()] == ["text/plain", "text/html"]
    assert (pdf.get_filename(), pdf.get_content()) == ("invoice 55.pdf", b"%PDF")
    assert pdf.get_content_disposition() == "attachment"
    assert logo.get_content_disposition() == "inline"
    assert logo["Content-ID"] == "<logo@x>"
    assert odd.get_content_type() == "application/octet-stream"
    assert (odd.get_filename(), odd.get_content()) == ("fattura è.txt", b"\x00\xff")


def test_an_attachment_from_hostile_mail_keeps_every_line_within_smtp_limits() -> None:
    attached = (
        Attachment("r" * 10_000 + ".pdf", "application/" + "x" * 5_000, 4, False, payload=b"%PDF"),
        Attachment("s.png", "image/png", 3, True, content_id="c" * 5_000 + "@x", payload=b"PNG"),
        Attachment("é" * 3_000, "text/plain", 1, False, payload=b"x"),
    )
    raw = build_message(outgoing(attachments=attached))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    _, long_name, cid, accented = parse(raw).iter_parts()
    assert long_name.get_content_type() == "application/octet-stream"
    name = long_name.get_filename()
    assert name is not None and len(name) == 200 and name.endswith("….pdf")
    assert cid["Content-ID"] is None  # an id that cannot be written is left out
    assert accented.get_filename() == "é" * 199 + "…"


def test_text_with_attachment_but_no_html() -> None:
    attached = (Attachment("a.csv", "text/csv", 3, False, payload=b"a,b"),)
    parsed = parse(build_message(outgoing(attachments=attached)))
    text, csv = parsed.iter_parts()
    assert content(text) == "Hello Giulia,\nyour ticket is [#1042].\n"
    assert (csv.get_content_type(), csv.get_content()) == ("text/csv", "a,b")


def test_customer_text_cannot_forge_a_mime_boundary() -> None:
    probe = build_message(outgoing(html="<p>x</p>"))
    boundary = parse(probe).get_boundary()
    assert boundary is not None
    forged = f"hi\n--{boundary}\nContent-Type: text/html\n\n<script>x</script>\n--{boundary}--\n"
    parsed = parse(build_message(outgoing(text=forged, html="<p>x</p>")))
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert content(parts[0]) == forged


# --- ids and subjects -------------------------------------------------------------------


def test_make_message_id_is_deterministic() -> None:
    assert make_message_id("Example.com", "ack.7.9") == "mb.ack.7.9@example.com"
    assert make_message_id("example.com", "ack.7.9") == make_message_id("example.com", "ack.7.9")
    for domain, unique in [("example.com", "a b"), ("exa_mple.com", "x"), ("", "x"), ("x", "")]:
        with pytest.raises(ValueError):
            make_message_id(domain, unique)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("No cable", "[#1042] No cable"),
        ("Re: [#1042] No cable", "Re: [#1042] No cable"),
        ("[#1042] No cable", "[#1042] No cable"),
        ("Re: No cable", "Re: [#1042] No cable"),
        ("RE: Fwd: AW: No cable", "RE: Fwd: AW: [#1042] No cable"),
        ("R: I: Cavo mancante", "R: I: [#1042] Cavo mancante"),
        ("Re[2]: No cable", "Re[2]: [#1042] No cable"),
        ("Re: [#1042] No cable [#1042]", "Re: [#1042] No cable"),
        ("[#1042][#1042] x", "[#1042] x"),
        ("Re: [#10421] Other ticket", "Re: [#1042] [#10421] Other ticket"),
        ("Order 1042", "[#1042] Order 1042"),
        ("Reply needed", "[#1042] Reply needed"),
        ("", "[#1042]"),
        ("  Hello\r\n  world ", "[#1042] Hello world"),
    ],
)
def test_tag_subject(subject: str, expected: str) -> None:
    assert tag_subject(subject, "[#1042]") == expected


# --- humanize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("due", "language", "expected"),
    [
        (NOV_24, "en", "by Tuesday 24 November at 17:00"),
        (NOV_24, "it", "entro martedì 24 novembre alle 17:00"),
        (NOV_24, "it_IT", "entro martedì 24 novembre alle 17:00"),
        # Summer time: 07:05 UTC is 09:05 in Rome.
        (datetime(2026, 7, 6, 7, 5, tzinfo=UTC), "en", "by Monday 6 July at 09:05"),
        (datetime(2026, 7, 6, 7, 5, tzinfo=UTC), "it", "entro lunedì 6 luglio alle 9:05"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=UTC), "it", "entro giovedì 1 gennaio all'1:30"),
        (datetime(2026, 3, 1, 7, 0, tzinfo=UTC), "it", "entro domenica 1 marzo all'8:00"),
        (datetime(2026, 3, 1, 10, 0, tzinfo=UTC), "it", "entro domenica 1 marzo all'11:00"),
        # The local day may differ from the UTC day.
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "en", "by Friday 1 January at 00:30"),
        (
            datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
            "de",
            "by Friday 1 May at 19:00",
        ),
    ],
)
def test_format_deadline(due: datetime, language: str, expected: str) -> None:
    assert format_deadline(due, language, ROME) == expected


def test_format_deadline_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        format_deadline(datetime(2026, 1, 1), "en", ROME)


@pytest.mark.parametrize(
    ("delta", "language", "expected"),
    [
        (timedelta(seconds=30), "en", "less than a minute"),
        (timedelta(minutes=1), "en", "1 minute"),
        (timedelta(hours=2, minutes=30), "en", "2 hours and 30 minutes"),
        (timedelta(days=1, hours=3, minutes=5), "en", "1 day and 3 hours"),
        (timedelta(days=3), "en", "3 days"),
        (timedelta(days=2, minutes=7), "en", "2 days and 7 minutes"),
        (timedelta(hours=1, minutes=1), "it", "1 ora e 1 minuto"),
        (timedelta(days=2, hours=5), "it", "2 giorni e 5 ore"),
        (timedelta(seconds=5), "it", "meno di un minuto"),
    ],
)
def test_format_duration(delta: timedelta, language: str, expected: str) -> None:
    assert format_duration(delta, language) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", "Hello"),
        ("\r\n\r\nHello\r\n\r\n\r\n\r\nWorld  \r\n\r\n", "Hello\n\nWorld"),
        ("1\n2\n3\n4\n5\n6\n7\n8", "1\n2\n3\n4\n5\n6 …"),
        ("tab\there \x1b[31mred\x1b[0m\x00", "tab\there [31mred[0m"),
        ("", ""),
    ],
)
def test_excerpt(text: str, expected: str) -> None:
    assert excerpt(text) == expected


def test_excerpt_cuts_long_text_at_a_word() -> None:
    text = "word " * 200
    short = excerpt(text, max_chars=100)
    assert short.endswith("word …")
    assert len(short) <= 102
    assert excerpt("x" * 500, max_chars=100) == "x" * 100 + " …"
