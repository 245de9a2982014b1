"""classify: one row per rule, precedence between kinds, and the recorded rule names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.core.classify import RULES, Identity, classify
from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message

EML = Path(__file__).resolve().parent.parent / "data" / "eml"
IDENTITY = Identity(
    own_addresses=frozenset({"support@example.com"}),
    own_domains=frozenset({"tickets.example.com"}),
    loop_token="support@example.com",
)
BODY = "Hello, my order has not arrived yet. Could you check it please?"


def message(
    *headers: str,
    sender: str = "Jane <jane@example.org>",
    body: str = BODY,
    subject: str = "Where is my order?",
) -> ParsedMessage:
    lines = [
        f"From: {sender}",
        "To: support@example.com",
        f"Subject: {subject}",
        "Date: Mon, 02 Mar 2026 09:00:00 +0000",
        "Message-ID: <m1@example.org>",
        *headers,
    ]
    return parse_message(("\n".join(lines) + "\n\n" + body).encode())


DSN_BODY = "Delivery to the following recipient failed permanently: gone@example.org"

# (rule name, kind, message that only this rule should recognise)
RULE_CASES: list[tuple[str, str, ParsedMessage]] = [
    ("own_loop_header", "loop", message("X-Loop: support@example.com")),
    ("own_message_id", "loop", parse_message(
        b"From: x@example.org\nMessage-ID: <mb.ack.7.c0ffee@tickets.example.com>\n\nhello")),
    ("own_sender", "loop", message(sender="Support <Support@Example.com>")),
    ("delivery_status_report", "bounce", message(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=B",
        body="--B\nContent-Type: text/plain\n\nsee below\n--B--\n")),
    ("daemon_sender_with_dsn", "bounce", message(
        sender="postmaster@mx.example.org", body=DSN_BODY, subject="Failure notice")),
    ("null_return_path_with_dsn", "bounce", message(
        "Return-Path: <>", body=DSN_BODY, subject="Failure notice")),
    ("auto_submitted", "auto_reply", message("Auto-Submitted: auto-replied")),
    ("x_autoreply", "auto_reply", message("X-Autoreply: yes")),
    ("auto_response_suppress", "auto_reply", message("X-Auto-Response-Suppress: OOF, DR")),
    ("exchange_rules_loop", "auto_reply", message("X-MS-Exchange-Inbox-Rules-Loop: a@x.org")),
    ("precedence_auto_reply", "auto_reply", message("Precedence: auto_reply")),
    ("auto_reply_subject", "auto_reply", message(subject="Risposta automatica: Re: ordine")),
    ("noreply_sender", "auto_reply", message(sender="Shop <no-reply@shop.example.net>")),
    ("precedence_bulk", "bulk", message("Precedence: bulk")),
    ("list_id", "bulk", message("List-Id: Users <users.lists.example.org>")),
    ("list_unsubscribe", "bulk", message("List-Unsubscribe: <mailto:leave@lists.example.org>")),
    ("campaign_headers", "bulk", message("X-MC-User: 1234abcd")),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "kind", "msg"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_rule(rule: str, kind: str, msg: ParsedMessage) -> None:
    verdict = classify(msg, IDENTITY)
    assert verdict.rules == (rule,)
    assert verdict.kind == kind
    assert verdict.automated


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} == {case[0] for case in RULE_CASES}


def test_plain_customer_mail() -> None:
    verdict = classify(message(), IDENTITY)
    assert verdict.kind == "customer" and verdict.rules == ()
    assert not verdict.automated


@pytest.mark.parametrize(
    "header",
    ["Auto-Submitted: no", "X-Auto-Response-Suppress: DR, RN", "Precedence: first-class"],
)
def test_values_that_do_not_mean_automated(header: str) -> None:
    assert classify(message(header), IDENTITY).kind == "customer"


@pytest.mark.parametrize(
    "subject",
    ["Out of Office: holiday", "Automatic reply: Where is my order?", "Abwesenheitsnotiz",
     "Réponse automatique : absent", "Respuesta automática"],
)  # fmt: skip
def test_auto_reply_subjects(subject: str) -> None:
    assert classify(message(subject=subject), IDENTITY).kind == "auto_reply"


def test_subject_mentioning_office_is_not_auto_reply() -> None:
    assert classify(message(subject="Our office printer is broken"), IDENTITY).kind == "customer"


def test_loop_beats_everything_and_all_matches_are_recorded() -> None:
    msg = message("X-Loop: support@example.com", "Auto-Submitted: auto-replied",
                  "Precedence: bulk")  # fmt: skip
    verdict = classify(msg, IDENTITY)
    assert verdict.kind == "loop"
    assert verdict.rules == ("own_loop_header", "auto_submitted", "precedence_bulk")


def test_bounce_beats_auto_reply() -> None:
    msg = parse_message((EML / "dsn_bounce.eml").read_bytes())
    verdict = classify(msg, IDENTITY)
    assert verdict.kind == "bounce"
    assert verdict.rules[0] == "delivery_status_report"
    assert "auto_submitted" in verdict.rules and "noreply_sender" in verdict.rules


def test_auto_reply_beats_bulk() -> None:
    verdict = classify(message("Precedence: list", "X-Autoreply: yes"), IDENTITY)
    assert verdict.kind == "auto_reply"
    assert verdict.rules == ("x_autoreply", "precedence_bulk")


def test_mailer_daemon_without_dsn_is_auto_reply_not_bounce() -> None:
    verdict = classify(message(sender="MAILER-DAEMON@mx.example.org"), IDENTITY)
    assert verdict.kind == "auto_reply"
    assert verdict.rules == ("noreply_sender",)


def test_empty_identity_never_flags_a_loop() -> None:
    msg = message("X-Loop: ", sender="support@example.com")
    assert classify(msg, Identity()).kind == "customer"


def test_other_x_loop_value_is_not_ours() -> None:
    assert classify(message("X-Loop: helpdesk@other.example"), IDENTITY).kind == "customer"


def test_a_colleague_whose_server_stamps_our_domain_is_no_loop() -> None:
    # Exchange at the support team's own domain writes ids like <AM0PR…@tickets.example.com>.
    msg = parse_message(
        b"From: colleague@partner.example\nMessage-ID: <AM0PR01MB1234@tickets.example.com>\n"
        b"Subject: Question\n\nhello"
    )
    assert classify(msg, IDENTITY).kind == "customer"
