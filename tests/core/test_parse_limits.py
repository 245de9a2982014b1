"""Size limits: oversize parts are listed with their true size and a reason, never dropped."""

from __future__ import annotations

import base64
import hashlib
import quopri
import random
import time
import tracemalloc
from email.message import EmailMessage

import pytest

from mailbridge.core.classify import Identity, classify
from mailbridge.core.message import ParsedMessage, ParseLimits
from mailbridge.core.parse import parse_message
from mailbridge.core.serialize import parsed_to_json

pytestmark = pytest.mark.unit

MB = 1024 * 1024


def mail_with(*attachments: tuple[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.org>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "files"
    msg["Message-ID"] = "<limits-1@example.org>"
    msg.set_content("The files are attached.")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return msg.as_bytes()


def one_part_mail(data: bytes, encoding: str) -> bytes:
    body = base64.encodebytes(data) if encoding == "base64" else quopri.encodestring(data)
    return (
        b"From: ann@example.org\nMIME-Version: 1.0\n"
        b"Content-Type: application/octet-stream; name=a.bin\n"
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\n\n" + body
    )


def parse_traced(raw: bytes, limits: ParseLimits | None) -> tuple[ParsedMessage, float, int]:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        msg = parse_message(raw, limits)
        elapsed = time.perf_counter() - started
        return msg, elapsed, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big_mail() -> tuple[bytes, bytes]:
    data = random.Random(20).randbytes(20 * MB)
    return mail_with(("dump.bin", data)), data


def test_20_mb_attachment_is_kept_without_a_limit(big_mail: tuple[bytes, bytes]) -> None:
    raw, data = big_mail
    msg, elapsed, peak = parse_traced(raw, None)
    (att,) = msg.attachments
    assert att.size == 20 * MB and not att.skipped
    assert hashlib.sha256(att.payload).digest() == hashlib.sha256(data).digest()
    assert msg.text.strip() == "The files are attached."
    # About 2 s and 5.6 times the raw size here; the bounds catch a blow-up, not noise.
    assert elapsed < 30, f"20 MB took {elapsed:.1f} s"
    assert peak < 7 * len(raw), f"peak {peak / MB:.0f} MB for {len(raw) / MB:.0f} MB of mail"


def test_20_mb_attachment_over_the_limit_is_listed_not_kept(
    big_mail: tuple[bytes, bytes],
) -> None:
    raw, _ = big_mail
    msg, _, peak = parse_traced(raw, ParseLimits(max_attachment_bytes=10 * MB))
    (att,) = msg.attachments
    assert (att.filename, att.content_type) == ("dump.bin", "application/octet-stream")
    assert att.size == 20 * MB  # the true decoded size, although nothing was decoded
    assert att.payload == b"" and att.skipped
    assert att.skipped_reason == f"attachment over the size limit of {10 * MB} bytes"
    assert msg.text.strip() == "The files are attached."
    assert peak < 4 * len(raw), f"peak {peak / MB:.0f} MB for {len(raw) / MB:.0f} MB of mail"


@pytest.mark.parametrize("size", [1, 2, 3, 4, 57, 58, 59, 1000])
@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_skipped_size_is_the_decoded_size(size: int, encoding: str) -> None:
    data = (bytes(range(256)) * 4)[:size]
    raw = one_part_mail(data, encoding)
    (whole,) = parse_message(raw).attachments
    (skipped,) = parse_message(raw, ParseLimits(max_attachment_bytes=size - 1)).attachments
    assert (whole.size, whole.payload) == (size, data)
    assert (skipped.size, skipped.payload, skipped.skipped) == (size, b"", True)


def test_attachment_exactly_at_the_limit_is_kept() -> None:
    raw = mail_with(("a.bin", b"x" * 100), ("b.bin", b"y" * 101))
    kept, dropped = parse_message(raw, ParseLimits(max_attachment_bytes=100)).attachments
    assert (kept.payload, kept.skipped_reason) == (b"x" * 100, None)
    assert (dropped.payload, dropped.size, dropped.skipped) == (b"", 101, True)


def test_message_over_its_limit_keeps_text_and_lists_every_attachment() -> None:
    raw = mail_with(("a.bin", b"a" * 10), ("b.bin", b"b" * 5000))
    msg = parse_message(raw, ParseLimits(max_message_bytes=len(raw) - 1))
    assert msg.text.strip() == "The files are attached."
    assert msg.subject == "files" and msg.message_id == "limits-1@example.org"
    assert [(a.filename, a.size, a.payload) for a in msg.attachments] == [
        ("a.bin", 10, b""),
        ("b.bin", 5000, b""),
    ]
    reason = f"message over the size limit of {len(raw) - 1} bytes"
    assert {a.skipped_reason for a in msg.attachments} == {reason}
    assert f"message is {len(raw)} bytes, {reason}: attachments not kept" in msg.defects


def test_message_at_its_limit_is_untouched() -> None:
    raw = mail_with(("a.bin", b"a" * 10))
    msg = parse_message(raw, ParseLimits(max_message_bytes=len(raw)))
    assert msg.attachments[0].payload == b"a" * 10
    assert not any("size limit" in d for d in msg.defects)


def test_json_names_the_skip_reason() -> None:
    msg = parse_message(mail_with(("a.bin", b"abc")), ParseLimits(max_attachment_bytes=2))
    (entry,) = parsed_to_json(msg, classify(msg, Identity()))["attachments"]
    assert entry["size"] == 3
    assert entry["skipped_reason"] == "attachment over the size limit of 2 bytes"
