"""The filter's verdict is read from its headers, and only where our own MTA put them.

The samples are laid out as the filters really write them: amavis puts its X-Spam-* fields
above its own Received line; a Postfix milter (rspamd, spamass-milter) appends its fields at
the end of the header block; Exchange Online stamps its own at the end too. A sender plants
the same fields in the mail it sends, below every Received line our MTA adds.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, replace

import pytest

from mailbridge.core.parse import MAX_HEADER_FIELDS, parse_message
from mailbridge.core.spam_headers import (
    by_hosts,
    host_trusted,
    normalize_host,
    trusted_verdict,
)


@dataclass(frozen=True)
class Settings:
    headers: bool = True
    trusted_hosts: tuple[str, ...] = ("mx.example.org",)
    score_threshold: float | None = None
    scl_threshold: int = 5
    foreign_removed: bool = False


# --- real layouts ------------------------------------------------------------------------

DOVECOT = (
    "Return-Path: <bounce@news.shop.example>\n"
    "Delivered-To: support@example.org\n"
    "Received: from mx.example.org\n"
    "\tby imap.example.org with LMTP\n"
    "\tid 2LnWAt5hQ2bKCQAAqoPDZA\n"
    "\t(envelope-from <bounce@news.shop.example>)\n"
    "\tfor <support@example.org>; Tue, 14 May 2024 12:01:02 +0200\n"
)
POSTFIX_EDGE = (
    "Received: from mail.shop.example (mail.shop.example [198.51.100.7])\n"
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits))\n"
    "\t(No client certificate requested)\n"
    "\tby mx.example.org (Postfix) with ESMTPS id 4VdQyS0b3Jz9sTL\n"
    "\tfor <support@example.org>; Tue, 14 May 2024 12:01:01 +0200 (CEST)\n"
)
SENDER_BLOCK = (
    "Received: from app7.shop.example (app7.shop.example [10.1.2.7])\n"
    "\tby mail.shop.example (Postfix) with ESMTP id 1C2D3E4F5A\n"
    "\tfor <support@example.org>; Tue, 14 May 2024 10:00:58 +0000 (UTC)\n"
    "From: Shop Deals <deals@shop.example>\n"
    "To: support@example.org\n"
    "Subject: Only today: 90% off\n"
    "Date: Tue, 14 May 2024 10:00:58 +0000\n"
    "Message-ID: <deal-88213@shop.example>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\n"
)
BODY = "\nBuy now.\n"

AMAVIS_REINJECTED = (
    "Received: from localhost (localhost [127.0.0.1])\n"
    "\tby mx.example.org (Postfix) with ESMTP id 4VdQyT2kLmz9sTM\n"
    "\tfor <support@example.org>; Tue, 14 May 2024 12:01:02 +0200 (CEST)\n"
    "X-Virus-Scanned: Debian amavisd-new at mx.example.org\n"
)
AMAVIS_OWN_RECEIVED = (
    "Received: from mx.example.org ([127.0.0.1])\n"
    "\tby localhost (mx.example.org [127.0.0.1]) (amavisd-new, port 10024)\n"
    "\twith ESMTP id xK3_b9QwZ1rT for <support@example.org>;\n"
    "\tTue, 14 May 2024 12:01:01 +0200 (CEST)\n"
)


def sa_fields(flag: str, score: str, required: str = "5.0") -> str:
    """SpamAssassin's fields as amavis writes them: folded, tests in brackets."""
    return (
        f"X-Spam-Flag: {flag}\n"
        f"X-Spam-Score: {score}\n"
        "X-Spam-Level: *******\n"
        f"X-Spam-Status: {'Yes' if flag == 'YES' else 'No'}, score={score} tagged_above=-999\n"
        f"\trequired={required} tests=[BAYES_99=3.5, BAYES_999=0.2, DKIM_SIGNED=0.1,\n"
        "\tDKIM_VALID=-0.1, HTML_MESSAGE=0.001, RCVD_IN_DNSWL_NONE=-0.0001,\n"
        "\tURIBL_ABUSE_SURBL=1.25, URIBL_BLACK=1.7] autolearn=no autolearn_force=no\n"
    )


def spamd_result(score: str, spam_word: str = "False") -> str:
    return (
        f"X-Spamd-Result: default: {spam_word} [{score} / 15.00];\n"
        "\tBAYES_SPAM(5.10)[99.87%];\n"
        "\tABUSE_SURBL(5.00)[shop.example:url];\n"
        "\tR_SPF_ALLOW(-0.20)[+ip4:198.51.100.7];\n"
        "\tMIME_GOOD(-0.10)[text/plain];\n"
        "\tRCVD_COUNT_TWO(0.00)[2];\n"
        "\tASN(0.00)[asn:64500, ipnet:198.51.100.0/24, country:NL]\n"
    )


def rspamd_fields(score: str, action: str) -> str:
    return (
        spamd_result(score)
        + "X-Rspamd-Server: filter1.example.org\n"
        + "X-Rspamd-Queue-Id: 4VdQyS0b3Jz9sTL\n"
        + f"X-Rspamd-Action: {action}\n"
        + ("X-Spam: Yes\n" if action in ("add header", "rewrite subject") else "")
    )


def exchange_fields(scl: str) -> str:
    return (
        "X-MS-Exchange-Organization-Network-Message-Id: 7f0c2a8e-2b7d-4a11-9c0e-08dc741a9b31\n"
        f"X-MS-Exchange-Organization-SCL: {scl}\n"
        "X-Forefront-Antispam-Report:\n"
        "\tCIP:198.51.100.7;CTRY:NL;LANG:en;SCL:"
        f"{scl};SRV:;IPV:NLI;SFV:SPM;H:mail.shop.example;PTR:mail.shop.example;\n"
        "\tCAT:SPM;SFS:(13230031)(4636009)(376005)(1800799015);DIR:INB;\n"
        "X-MS-Exchange-CrossTenant-OriginalArrivalTime: 14 May 2024 10:01:01.2233 (UTC)\n"
    )


EXO_TOP = (
    "Received: from AM9PR04MB8321.eurprd04.prod.outlook.com (2603:10a6:20b:3e1::5)\n"
    "\tby DB9PR04MB9426.eurprd04.prod.outlook.com with HTTPS; Tue, 14 May 2024\n"
    "\t10:01:02 +0000\n"
    "Received: from mail.shop.example (198.51.100.7) by\n"
    "\tAM4PEPF00027A5F.mail.protection.outlook.com (10.167.16.73) with Microsoft SMTP\n"
    "\tServer (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.7587.21 via\n"
    "\tFrontend Transport; Tue, 14 May 2024 10:01:01 +0000\n"
)


def mail(*parts: str) -> bytes:
    return ("".join(parts) + BODY).encode()


def verdict(raw: bytes, **settings: object):  # type: ignore[no-untyped-def]
    return trusted_verdict(parse_message(raw), Settings(**settings))  # type: ignore[arg-type]


# amavis: X-Spam-* right above amavis's own Received line, which is the trusted hop.
AMAVIS = {"trusted_hosts": ("localhost",)}


def test_amavis_spam_above_its_own_received_is_spam() -> None:
    raw = mail(
        DOVECOT, AMAVIS_REINJECTED, sa_fields("YES", "7.2"), AMAVIS_OWN_RECEIVED,
        POSTFIX_EDGE, SENDER_BLOCK,
    )  # fmt: skip
    found = verdict(raw, **AMAVIS)
    assert found is not None and found.spam
    assert (found.source, found.score) == ("spamassassin", 7.2)
    assert "score=7.2" in found.detail and "required=5" in found.detail


def test_amavis_clean_above_beats_a_planted_spam_copy() -> None:
    planted = "X-Spam-Flag: YES\nX-Spam-Status: Yes, score=99.0 required=5.0 tests=PLANTED\n"
    raw = mail(
        DOVECOT, AMAVIS_REINJECTED, sa_fields("NO", "-1.9"), AMAVIS_OWN_RECEIVED,
        POSTFIX_EDGE, planted, SENDER_BLOCK,
    )  # fmt: skip
    found = verdict(raw, **AMAVIS)
    assert found is not None and not found.spam and found.score == -1.9


def test_a_planted_clean_copy_does_not_hide_our_spam_verdict() -> None:
    planted = "X-Spam-Flag: NO\nX-Spam-Status: No, score=-50.0 required=5.0\n"
    raw = mail(
        DOVECOT, AMAVIS_REINJECTED, sa_fields("YES", "9.8"), AMAVIS_OWN_RECEIVED,
        POSTFIX_EDGE, planted, SENDER_BLOCK,
    )  # fmt: skip
    found = verdict(raw, **AMAVIS)
    assert found is not None and found.spam and found.score == 9.8


def test_a_planted_copy_alone_counts_for_nothing() -> None:
    for planted in (
        sa_fields("YES", "12.0"),
        rspamd_fields("14.0", "reject"),
        exchange_fields("9"),
    ):
        raw = mail(
            DOVECOT, POSTFIX_EDGE, SENDER_BLOCK.replace("MIME-Version", planted + "MIME-Version")
        )
        assert verdict(raw) is None
        assert verdict(raw, **AMAVIS) is None  # nothing of amavis: no trusted hop


def test_a_planted_received_naming_our_host_moves_no_trust() -> None:
    # The sender writes a verdict and, below it, a Received line "by" our host: ours is
    # above both, so the topmost trusted line is still ours and the copy stays below it.
    planted = (
        "X-Spam-Flag: NO\nX-Spam-Status: No, score=-9.0 required=5.0\n"
        "Received: from x by mx.example.org (Postfix) with ESMTP id FAKE\n"
    )
    raw = mail(DOVECOT, POSTFIX_EDGE, planted, SENDER_BLOCK)
    assert verdict(raw) is None


def test_a_helo_cannot_hide_our_host() -> None:
    # The sender's HELO lands before our "by" in our own line.
    edge = POSTFIX_EDGE.replace("from mail.shop.example (", "from by (")
    planted = "X-Spam-Flag: NO\nReceived: from z by mx.example.org id FAKE\n"
    raw = mail(DOVECOT, sa_fields("YES", "8.0"), edge, planted, SENDER_BLOCK)
    found = verdict(raw)
    assert found is not None and found.spam


# Postfix + milter: fields appended at the very end, below everything.


def test_milter_fields_at_the_end_count_only_when_our_mta_strips_foreign_ones() -> None:
    raw = mail(DOVECOT, POSTFIX_EDGE, SENDER_BLOCK, rspamd_fields("12.40", "add header"))
    assert verdict(raw) is None  # position alone cannot tell it from a planted copy
    found = verdict(raw, foreign_removed=True)
    assert found is not None and found.spam and found.source == "rspamd"
    assert found.score == 12.4 and "action=add header" in found.detail


def test_spamass_milter_fields_at_the_end() -> None:
    raw = mail(DOVECOT, POSTFIX_EDGE, SENDER_BLOCK, sa_fields("YES", "6.1"))
    found = verdict(raw, foreign_removed=True)
    assert found is not None and found.spam and found.source == "spamassassin"


def test_with_foreign_removed_the_bottom_most_copy_counts() -> None:
    # A copy the stripping missed is the sender's: it lies above what the milter appended.
    planted = "X-Rspamd-Action: no action\nX-Spamd-Result: default: False [-5.00 / 15.00]\n"
    raw = mail(
        DOVECOT, POSTFIX_EDGE, planted, SENDER_BLOCK, rspamd_fields("13.10", "rewrite subject")
    )
    found = verdict(raw, foreign_removed=True)
    assert found is not None and found.spam and found.score == 13.1


def test_fields_above_our_hop_come_first_even_with_foreign_removed() -> None:
    raw = mail(
        DOVECOT, "X-Rspamd-Action: no action\n", POSTFIX_EDGE, SENDER_BLOCK,
        "X-Rspamd-Action: reject\n",
    )  # fmt: skip
    found = verdict(raw, foreign_removed=True)
    assert found is not None and not found.spam


def test_rspamd_inserted_above_postfix_line() -> None:
    raw = mail(DOVECOT, rspamd_fields("2.10", "no action"), POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw)
    assert found is not None and not found.spam and found.score == 2.1


def test_rspamd_reject_says_true_in_its_result() -> None:
    raw = mail(DOVECOT, spamd_result("16.00", "True"), POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw)
    assert found is not None and found.spam and "reject=15" in found.detail


def test_rspamd_result_false_alone_proves_nothing_without_a_threshold() -> None:
    # False means only "below the reject score": the mail may still be spam.
    raw = mail(DOVECOT, spamd_result("9.00"), POSTFIX_EDGE, SENDER_BLOCK)
    assert verdict(raw) is None
    found = verdict(raw, score_threshold=6.0)
    assert found is not None and found.spam and "threshold=6" in found.detail


@pytest.mark.parametrize(
    ("action", "spam"),
    [
        ("add header", True),
        ("rewrite subject", True),
        ("reject", True),
        ("no action", False),
        ("greylist", False),
        ("soft reject", False),
    ],
)
def test_rspamd_actions(action: str, spam: bool) -> None:
    raw = mail(DOVECOT, f"X-Rspamd-Action: {action}\n", POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw)
    assert found is not None and found.spam is spam


def test_rspamd_x_spam_and_score_fields() -> None:
    raw = mail(DOVECOT, "X-Spam: Yes\n", POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw)
    assert found is not None and found.spam
    scored = mail(DOVECOT, "X-Rspamd-Score: 4.5\n", POSTFIX_EDGE, SENDER_BLOCK)
    assert verdict(scored) is None  # a score and no threshold: no yes or no
    found = verdict(scored, score_threshold=4.5)
    assert found is not None and found.spam


# Exchange Online: read through IMAP from the mailbox; fields stamped at the end.

EXO = {"trusted_hosts": ("*.prod.outlook.com",), "foreign_removed": True}


@pytest.mark.parametrize(
    ("scl", "threshold", "spam"),
    [("5", 5, True), ("9", 5, True), ("4", 5, False), ("1", 5, False), ("1", 1, True)],
)
def test_exchange_scl(scl: str, threshold: int, spam: bool) -> None:
    raw = mail(EXO_TOP, SENDER_BLOCK, exchange_fields(scl))
    found = verdict(raw, scl_threshold=threshold, **EXO)
    assert found is not None and found.source == "exchange" and found.spam is spam


def test_exchange_scl_minus_one_is_never_spam() -> None:
    raw = mail(EXO_TOP, SENDER_BLOCK, exchange_fields("-1"))
    found = verdict(raw, scl_threshold=0, **EXO)
    assert found is not None and not found.spam and "bypassed" in found.detail


def test_exchange_forefront_report_alone() -> None:
    report = exchange_fields("6").replace("X-MS-Exchange-Organization-SCL: 6\n", "")
    found = verdict(mail(EXO_TOP, SENDER_BLOCK, report), **EXO)
    assert found is not None and found.spam and found.score == 6.0


def test_exchange_fields_below_the_hop_without_foreign_removed_do_not_count() -> None:
    raw = mail(EXO_TOP, SENDER_BLOCK, exchange_fields("9"))
    assert verdict(raw, trusted_hosts=("*.prod.outlook.com",)) is None
    assert verdict(raw, trusted_hosts=("outlook.com",), foreign_removed=True) is None


# --- thresholds, settings ------------------------------------------------------------------


def test_score_threshold_decides_instead_of_the_filter() -> None:
    raw = mail(DOVECOT, AMAVIS_REINJECTED, sa_fields("NO", "4.2"), AMAVIS_OWN_RECEIVED)
    found = verdict(raw, score_threshold=4.0, **AMAVIS)
    assert found is not None and found.spam
    spam = mail(DOVECOT, AMAVIS_REINJECTED, sa_fields("YES", "7.2"), AMAVIS_OWN_RECEIVED)
    found = verdict(spam, score_threshold=10.0, **AMAVIS)
    assert found is not None and not found.spam


def test_threshold_without_a_score_falls_back_to_the_filters_word() -> None:
    raw = mail(DOVECOT, "X-Spam-Flag: YES\n", POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw, score_threshold=100.0)
    assert found is not None and found.spam


def test_headers_off_reads_nothing() -> None:
    raw = mail(DOVECOT, sa_fields("YES", "7.2"), POSTFIX_EDGE, SENDER_BLOCK)
    assert verdict(raw, headers=False) is None
    assert verdict(raw, trusted_hosts=()) is None  # refused by config; harmless here


def test_spam_from_one_source_beats_clean_from_another() -> None:
    fields = sa_fields("NO", "1.0") + "X-Rspamd-Action: add header\n"
    found = verdict(mail(DOVECOT, fields, POSTFIX_EDGE, SENDER_BLOCK))
    assert found is not None and found.spam and found.source == "rspamd"


def test_hosts() -> None:
    assert normalize_host(" MX.Example.ORG. ") == "mx.example.org"
    assert normalize_host("*.prod.outlook.com") == "*.prod.outlook.com"
    for bad in ("", "a b", "*", "*.", "mx(1)", "*.*.x"):
        with pytest.raises(ValueError, match='after "by"'):
            normalize_host(bad)
    assert host_trusted("a.eurprd04.prod.outlook.com", ["*.prod.outlook.com"])
    assert not host_trusted("prod.outlook.com.evil.example", ["*.prod.outlook.com"])
    assert not host_trusted("evilprod.outlook.com", ["*.prod.outlook.com"])
    received = "from a (b [1.2.3.4]) by MX.example.org. (Postfix) with ESMTP id X; date"
    assert list(by_hosts(received)) == ["mx.example.org"]


# --- garbage and hostile input --------------------------------------------------------------

GARBAGE = [
    "nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1" * 5000, "7,2", "", "yes", "0x10",
    "\u0667.\u0662", "=?utf-8?q?7.2?=",
]  # fmt: skip


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_numbers_never_crash_and_never_prove_spam(value: str) -> None:
    fields = (
        f"X-Spam-Status: Maybe, score={value} required={value}\n"
        f"X-Spam-Score: {value}\n"
        f"X-Spamd-Result: default: maybe [{value} / {value}]\n"
        f"X-Rspamd-Score: {value}\n"
        f"X-MS-Exchange-Organization-SCL: {value}\n"
        f"X-Forefront-Antispam-Report: CIP:1.2.3.4;SCL:{value};SFV:SPM\n"
    )
    raw = mail(DOVECOT, fields, POSTFIX_EDGE, SENDER_BLOCK)
    for threshold in (None, 0.0, -1e9):
        found = verdict(raw, score_threshold=threshold, scl_threshold=0)
        assert found is None or not found.spam


@pytest.mark.parametrize(
    "field",
    [
        "X-Spam-Flag: YESS", "X-Spam-Flag: Y", "X-Spam-Status: Yes-ish, score=9",
        "X-Rspamd-Action: add   headers", "X-Spam: True", "X-MS-Exchange-Organization-SCL: 10",
        "X-MS-Exchange-Organization-SCL: -2", "X-Spam-Flag: =?utf-8?q?YES?=",
        "X-Spamd-Result: default: True", "X-Spamd-Result: default: True [99 / 15",
    ],
)  # fmt: skip
def test_values_off_the_grammar_prove_nothing(field: str) -> None:
    found = verdict(mail(DOVECOT, field + "\n", POSTFIX_EDGE, SENDER_BLOCK))
    assert found is None or not found.spam


def test_scl_threshold_zero_still_reads_scl() -> None:
    raw = mail(DOVECOT, "X-MS-Exchange-Organization-SCL: 0\n", POSTFIX_EDGE, SENDER_BLOCK)
    found = verdict(raw, scl_threshold=0)
    assert found is not None and found.spam


def test_a_hundred_thousand_fields_cost_little_and_hide_our_verdict_from_nobody() -> None:
    padding = "X-Spam-Flag: NO\nReceived: by mx.example.org\n" * 50_000
    raw = mail(DOVECOT, sa_fields("YES", "8.8"), POSTFIX_EDGE, padding, SENDER_BLOCK)
    parsed = parse_message(raw)
    assert len(parsed.header_order) == MAX_HEADER_FIELDS
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    found = trusted_verdict(parsed, Settings())
    assert time.thread_time() - started < 0.5
    assert found is not None and found.spam


def test_past_the_field_cap_nothing_below_is_trusted_even_with_foreign_removed() -> None:
    padding = "X-Filler: x\n" * (MAX_HEADER_FIELDS + 10)
    raw = mail(DOVECOT, POSTFIX_EDGE, padding, SENDER_BLOCK, rspamd_fields("12.0", "reject"))
    assert verdict(raw, foreign_removed=True) is None


def test_a_megabyte_field_is_read_in_bounded_time() -> None:
    huge = "X-Spamd-Result: default: False [" + "9" * 1_000_000 + " / 15.00]\n"
    received = "Received: " + "by " * 300_000 + "mx.example.org\n"
    raw = mail(DOVECOT, huge, "X-Spam-Status: No, " + "score=1 " * 100_000 + "\n", received)
    parsed = parse_message(raw)
    started = time.thread_time()  # CPU time of this thread: the same on a busy machine
    found = trusted_verdict(parsed, Settings(score_threshold=0.5))
    assert time.thread_time() - started < 0.5
    assert found is None  # our host lies past what is read of that Received line


def test_values_kept_past_the_per_name_cap_count_for_nothing() -> None:
    # parse keeps 50 values of a name: the 51st copy, the milter's, has no value to read.
    planted = "X-Rspamd-Action: no action\n" * 60
    raw = mail(DOVECOT, POSTFIX_EDGE, planted, SENDER_BLOCK, "X-Rspamd-Action: reject\n")
    assert verdict(raw, foreign_removed=True) is None


# --- what parse keeps, and its trip between processes ---------------------------------------


def test_parse_keeps_the_field_order_and_it_survives_pickling() -> None:
    raw = mail(DOVECOT, sa_fields("YES", "7.2"), POSTFIX_EDGE, SENDER_BLOCK)
    parsed = parse_message(raw)
    assert parsed.header_order[:4] == ("return-path", "delivered-to", "received", "x-spam-flag")
    assert parsed.header_order.count("received") == len(parsed.headers["received"]) == 3
    copy = pickle.loads(pickle.dumps(parsed))
    assert copy.header_order == parsed.header_order
    found = trusted_verdict(copy, Settings())
    assert found is not None and found.spam


def test_without_order_nothing_is_trusted() -> None:
    parsed = parse_message(mail(DOVECOT, sa_fields("YES", "7.2"), POSTFIX_EDGE, SENDER_BLOCK))
    assert trusted_verdict(replace(parsed, header_order=()), Settings()) is None


def test_crlf_mail_with_folded_fields() -> None:
    raw = mail(DOVECOT, sa_fields("YES", "7.2"), POSTFIX_EDGE, SENDER_BLOCK).replace(b"\n", b"\r\n")
    found = trusted_verdict(parse_message(raw), Settings())
    assert found is not None and found.spam and found.score == 7.2
