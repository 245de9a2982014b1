"""Every file of every shared corpus (`../shared/corpus`): parsed without a crash, a sender
found whenever the mail names one, subjects and attachment names readable, no attachment
without a name. Each test lists every file that fails it."""

from __future__ import annotations

import pytest

from tests.support.corpus import (
    FileCheck,
    check_file,
    corpus_files,
    folders,
    named_senders,
    unreadable,
)
from tests.support.required import shared_corpus

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def checks() -> list[FileCheck]:
    root = shared_corpus()
    found = [
        check_file(path, folder) for folder in folders(root) for path in corpus_files(root, folder)
    ]
    assert found, f"no corpus files under {root}"
    return found


def name(check: FileCheck) -> str:
    return str(check.path.relative_to(shared_corpus()))


def test_every_corpus_has_files() -> None:
    root = shared_corpus()
    assert folders(root)
    assert [folder for folder in folders(root) if not corpus_files(root, folder)] == []


def test_no_file_crashes_the_parser(checks: list[FileCheck]) -> None:
    assert [f"{name(c)}: {c.crash}" for c in checks if c.crash is not None] == []


def test_a_sender_is_found_whenever_the_mail_names_one(checks: list[FileCheck]) -> None:
    missing = [f"{name(c)}: names {', '.join(c.named)}" for c in checks if c.sender_missing]
    assert missing == []


def test_no_subject_has_replacement_or_c1_control_characters(checks: list[FileCheck]) -> None:
    assert [f"{name(c)}: {c.subject!r}" for c in checks if unreadable(c.subject)] == []


def test_no_attachment_is_nameless(checks: list[FileCheck]) -> None:
    assert [f"{name(c)}: {c.nameless} without a name" for c in checks if c.nameless] == []


def test_no_attachment_name_has_replacement_or_c1_control_characters(
    checks: list[FileCheck],
) -> None:
    unreadable_names = [
        f"{name(c)}: {a.filename!r}"
        for c in checks if c.parsed is not None
        for a in c.parsed.attachments if unreadable(a.filename)
    ]  # fmt: skip
    assert unreadable_names == []


def test_senders_named_after_broken_folding_count_and_the_body_does_not() -> None:
    raw = (
        b"Subject: x\r\nX-Brightmail-Tracker: H4sIAAAAAAAAA+NgFmpgEmpg\r\n"
        b"AAAAAAAAA+NgFmpgEmpgB\r\nFrom: Ann <ann@example.org>\r\n"
        b"Return-Path: <>\r\nSender: MAILER-DAEMON (Mail Delivery System)\r\n\r\n"
        b"From: body@example.org\r\n"
    )
    assert named_senders(raw) == ("ann@example.org", "MAILER-DAEMON")
