"""classify: one row per rule, precedence between kinds, and the recorded rule names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.core.classify import NO_ACK, RULES, Identity, classify
from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message

pytestmark = pytest.mark.unit

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
    ("null_return_path_with_dsn", "bounce", message(  # any Return-Path line, not the topmost
        "Return-Path: <mx@mx.example.org>", "Return-Path: <>", body=DSN_BODY,
        subject="Failure notice")),
    ("auto_submitted", "auto_reply", message("Auto-Submitted: auto-replied")),
    ("x_autoreply", "auto_reply", message("X-Autoreply: yes")),
    ("auto_response_suppress", "auto_reply", message("X-Auto-Response-Suppress: OOF, DR")),
    ("exchange_rules_loop", "auto_reply", message("X-MS-Exchange-Inbox-Rules-Loop: a@x.org")),
    ("precedence_auto_reply", "auto_reply", message("Precedence: auto_reply")),
    ("auto_reply_subject", "auto_reply", message(subject="Risposta automatica: Re: ordine")),
    ("noreply_sender", "auto_reply", message(sender="Shop <no-reply@shop.example.net>")),
    ("read_receipt", "auto_reply", message(
        "Content-Type: multipart/report; report-type=disposition-notification; boundary=B",
        body="--B\nContent-Type: text/plain\n\nYour message was displayed.\n--B--\n")),
    ("null_return_path", "auto_reply", message("Return-Path: <>")),
    ("precedence_list", "bulk", message("Precedence: list")),
    ("list_id", "bulk", message("List-Id: Users <users.lists.example.org>")),
    ("list_unsubscribe", "bulk", message("List-Unsubscribe: <mailto:leave@lists.example.org>")),
    ("list_post", "bulk", message("List-Post: <mailto:users@lists.example.org>")),
    ("campaign_headers", "bulk", message("X-MC-User: 1234abcd")),
    ("precedence_bulk", NO_ACK, message("Precedence: bulk")),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "kind", "msg"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_each_rule(rule: str, kind: str, msg: ParsedMessage) -> None:
    verdict = classify(msg, IDENTITY)
    assert verdict.rules == (rule,)
    assert not verdict.acknowledgeable
    if kind == NO_ACK:
        assert verdict.kind == "customer" and verdict.ack_withheld_by == (rule,)
    else:
        assert verdict.kind == kind and verdict.automated and verdict.ack_withheld_by == ()


def test_every_rule_has_a_case() -> None:
    assert {rule.name for rule in RULES} == {case[0] for case in RULE_CASES}


def test_plain_customer_mail() -> None:
    verdict = classify(message(), IDENTITY)
    assert verdict.kind == "customer" and verdict.rules == ()
    assert not verdict.automated and verdict.acknowledgeable


@pytest.mark.parametrize("precedence", ["bulk", "junk", " Bulk "])
def test_precedence_bulk_from_a_person_keeps_the_mail_a_customers(precedence: str) -> None:
    verdict = classify(message(f"Precedence: {precedence}"), IDENTITY)
    assert verdict.kind == "customer" and not verdict.automated
    assert verdict.ack_withheld_by == ("precedence_bulk",)


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: <news.shop.example>",
        "X-Campaign: 77",
        "List-Unsubscribe: <https://shop.example/u>",
        "List-Post: <mailto:news@shop.example>",
    ],
)
def test_precedence_bulk_with_list_or_campaign_headers_is_bulk(header: str) -> None:
    verdict = classify(message("Precedence: bulk", header), IDENTITY)
    assert verdict.kind == "bulk" and verdict.ack_withheld_by == ()
    assert "precedence_bulk" in verdict.rules


@pytest.mark.parametrize(
    "header",
    [
        "List-Post: <mailto:users@lists.example.org>",
        "List-Post: NO (posting not allowed on this list)",
    ],
)
def test_list_post_alone_marks_list_mail(header: str) -> None:
    """A list that shows its posting address, or that none is allowed, is a list."""
    verdict = classify(message(header), IDENTITY)
    assert verdict.kind == "bulk" and verdict.rules == ("list_post",)
    assert not verdict.acknowledgeable


def test_a_read_receipt_request_is_not_a_signal() -> None:
    """People's clients ask for receipts; only the receipt itself is automated."""
    verdict = classify(message("Disposition-Notification-To: jane@example.org"), IDENTITY)
    assert verdict.kind == "customer" and verdict.acknowledgeable


def test_a_receipt_part_in_a_mixed_message_is_a_read_receipt() -> None:
    body = (
        "--B\nContent-Type: text/plain\n\nRead.\n"
        "--B\nContent-Type: message/disposition-notification\n\n"
        "Final-Recipient: rfc822; jane@example.org\nDisposition: manual-action/"
        "MDN-sent-manually; displayed\n--B--\n"
    )
    msg = message("Content-Type: multipart/mixed; boundary=B", body=body)
    assert classify(msg, IDENTITY).rules == ("read_receipt",)


def test_only_the_topmost_return_path_counts() -> None:
    """Lower Return-Path lines are the sender's to write; the delivering MTA's is on top."""
    forged = message("Return-Path: <jane@example.org>", "Return-Path: <>")
    assert classify(forged, IDENTITY).kind == "customer"
    assert classify(message("Return-Path: < >"), IDENTITY).rules == ("null_return_path",)


@pytest.mark.parametrize(
    "header",
    ["Auto-Submitted: no", "X-Auto-Response-Suppress: DR, RN", "Precedence: first-class"],
)
def test_values_that_do_not_mean_automated(header: str) -> None:
    assert classify(message(header), IDENTITY).kind == "customer"


@pytest.mark.parametrize(
    "subject",
    ["Out of Office: holiday", "Automatic reply: Where is my order?", "Abwesenheitsnotiz",
     "Réponse automatique : absent", "Respuesta automática",
     # prefixes before the phrase, as servers and clients add them
     "Re: Out of office", "AW: Automatische Antwort: Ihre Anfrage [#1000]",
     "R: Risposta automatica: ordine", "RE: Automatic reply: Invoice",
     "SV: Automatic reply: hello", "Fwd: Out of Office: holiday", "Re: Re: AW: abwesend: bis 3.5.",
     "Auto: Where is my order?", "Automatische Antwort: Rechnung",
     "Risposta automatica: fattura", "Réponse automatique : votre commande",
     "Respuesta automática: pedido",
     # the usual out-of-office phrases
     "Fuori ufficio fino al 5 maggio", "Fuori sede", "Nicht im Büro: Urlaub",
     "Abwesenheitsmeldung", "Absent du bureau", "Message d'absence",
     "Fuera de la oficina hasta el lunes", "Mensaje de ausencia", "Away from the office",
     "Automatic reply", "Autoresponder: thanks"],
)  # fmt: skip
def test_auto_reply_subjects(subject: str) -> None:
    verdict = classify(message(subject=subject), IDENTITY)
    assert verdict.kind == "auto_reply" and verdict.rules == ("auto_reply_subject",)


@pytest.mark.parametrize(
    "subject",
    ["Our office printer is broken", "Re: [#1000] Automatic reply setting broken",
     "Automobile insurance claim", "Autoresponse? How do I turn it off", "Risposte sbagliate",
     "Automatic reply not working", "Risposta automatica non funziona", "Out of office hours?",
     "Fuori tempo massimo: ordine 12", "Re: Absence of refund", "Officeless", "Reply: order",
     "Abwesenheit meines Mannes, Konto", "Offre: auto, moto"],
)  # fmt: skip
def test_subjects_mentioning_such_words_are_not_auto_replies(subject: str) -> None:
    assert classify(message(subject=subject), IDENTITY).kind == "customer"


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
    assert verdict.rules == ("x_autoreply", "precedence_list")


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
