"""winmail.dat: TNEF built byte by byte (tests/support/tnef.py), unpacked into ordinary
attachments and text."""

from __future__ import annotations

import pytest

from mailbridge.core.message import ParseLimits
from mailbridge.core.parse import parse_message
from mailbridge.core.tnef import unpack_tnef
from tests.support.tnef import FILES, PDF, SHEET, build_tnef, outlook_mail

pytestmark = pytest.mark.unit


def test_winmail_dat_is_replaced_by_the_files_inside() -> None:
    raw = outlook_mail(build_tnef(FILES, body="Anbei die Unterlagen."), text="Siehe Anhang.")
    msg = parse_message(raw)
    assert [(a.filename, a.content_type, a.size) for a in msg.attachments] == [
        ("Angebot.pdf", "application/pdf", len(PDF)),
        (
            "Größe.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            len(SHEET),
        ),
    ]
    assert [a.payload for a in msg.attachments] == [PDF, SHEET]
    assert {a.container for a in msg.attachments} == {"winmail.dat"}
    assert msg.text.strip() == "Siehe Anhang."  # the message's own text part wins
    assert not any("TNEF" in d for d in msg.defects)


def test_tnef_plain_body_is_the_text_when_the_message_has_none() -> None:
    msg = parse_message(outlook_mail(build_tnef(FILES, body="Anbei die Unterlagen.")))
    assert msg.text == "Anbei die Unterlagen."
    assert msg.reply_text == "Anbei die Unterlagen."


def test_tnef_html_body_becomes_text_and_is_kept_as_html() -> None:
    html = "<p>Guten Tag,</p><p>die <b>Rechnung</b> fehlt.</p>"
    msg = parse_message(outlook_mail(build_tnef([], html=html)))
    assert msg.html == html
    assert "die Rechnung fehlt." in msg.text
    assert msg.attachments == ()


def test_tnef_rtf_body_becomes_text() -> None:
    rtf = rb"{\rtf1\ansi\ansicpg1252 {\fonttbl\f0 Arial;}\f0 Bitte um R\'fcckruf.\par}"
    msg = parse_message(outlook_mail(build_tnef([(b"a.txt", b"abc")], rtf=rtf)))
    assert msg.text == "Bitte um Rückruf."
    assert [a.filename for a in msg.attachments] == ["a.txt"]


def test_size_limit_applies_to_files_inside_tnef() -> None:
    raw = outlook_mail(build_tnef(FILES, body="x"))
    msg = parse_message(raw, ParseLimits(max_attachment_bytes=100))
    pdf, sheet = msg.attachments
    assert (pdf.payload, pdf.size, pdf.skipped) == (b"", len(PDF), True)
    assert (sheet.payload, sheet.skipped) == (SHEET, False)


@pytest.mark.parametrize("cut", [0, 3, 7, 20, 40, 60, 90, 150, 400, 1000, 1100])
def test_truncated_tnef_never_raises(cut: int) -> None:
    data = build_tnef(FILES, body="Anbei.", html="<p>x</p>")[:cut]
    content = unpack_tnef(data)  # must not raise
    msg = parse_message(outlook_mail(data, text="hi"))
    assert msg.text.strip() == "hi"
    if not content.files and not content.text and not content.html:
        # Nothing could be read: the original stays, so nothing is lost.
        (kept,) = msg.attachments
        assert kept.filename == "winmail.dat" and kept.payload == data


def test_not_tnef_at_all_is_kept_with_a_defect() -> None:
    msg = parse_message(outlook_mail(b"this is no TNEF", text="hi"))
    (kept,) = msg.attachments
    assert (kept.filename, kept.payload) == ("winmail.dat", b"this is no TNEF")
    assert any(d.startswith("TNEF could not be unpacked") for d in msg.defects)
