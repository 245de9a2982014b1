"""Reading bounces and per-mail return paths: pure functions on generated reports."""

from __future__ import annotations

import pytest

from mailbridge.core.bounce import (
    ReturnPathToken,
    find_return_path,
    make_return_path,
    read_bounce,
    return_path_valid,
)

pytestmark = pytest.mark.unit

OUR_ID = "mb.ack.7.12.3f9a1c2b4d5e@shop.example"
ORIGINAL = (
    "From: Shop Support <support@shop.example>\r\n"
    "To: Ada <ada@corp.example>\r\n"
    "Subject: [#1000] Re: Printer on fire\r\n"
    f"Message-ID: <{OUR_ID}>\r\n"
    "Auto-Submitted: auto-replied\r\n"
)


def rfc3464(
    *recipient_blocks: str, original: str = ORIGINAL, original_type: str = "text/rfc822-headers"
) -> bytes:
    blocks = "\r\n".join(recipient_blocks)
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <MAILER-DAEMON@mx.corp.example>\r\n"
        "To: support+b7-abcdefghij@shop.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <20261123100005.A1@mx.corp.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n'
        "\r\n"
        "--R\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx.corp.example.\r\n"
        "Your message could not be delivered to one or more recipients.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.corp.example\r\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0100\r\n"
        "\r\n"
        f"{blocks}"
        f"--R\r\nContent-Type: {original_type}\r\n\r\n"
        f"{original}\r\n"
        "--R--\r\n"
    ).encode()


FAILED_BLOCK = (
    "Final-Recipient: rfc822; ada@corp.example\r\n"
    "Original-Recipient: rfc822;Ada@Corp.Example\r\n"
    "Action: failed\r\n"
    "Status: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <ada@corp.example>: Recipient address\r\n"
    "    rejected: User unknown in local recipient table\r\n"
)
DELAYED_BLOCK = (
    "Final-Recipient: rfc822; bob@corp.example\r\n"
    "Action: delayed\r\n"
    "Status: 4.4.1\r\n"
    "Diagnostic-Code: X-Postfix; connect to mx2.corp.example: Connection timed out\r\n"
)

POSTFIX_WITHOUT_DSN = (
    "From: MAILER-DAEMON@mx.corp.example (Mail Delivery System)\r\n"
    "To: support@shop.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="P"\r\n'
    "\r\n"
    "--P\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n"
    "The Postfix program at host mx.corp.example.\r\n"
    "\r\n"
    "I'm sorry to have to inform you that the message returned\r\n"
    "below could not be delivered to one or more destinations.\r\n"
    "\r\n"
    "<ada@corp.example>: host mail.corp.example[192.0.2.25] said: 550 5.1.1\r\n"
    "    <ada@corp.example>: Recipient address rejected: User unknown (in reply to\r\n"
    "    RCPT TO command)\r\n"
    "\r\n"
    "--P\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n"
    f"{ORIGINAL}\r\nWe have your message.\r\n"
    "--P--\r\n"
).encode()

EXCHANGE_STYLE = (
    "From: System Administrator <postmaster@corp.example>\r\n"
    "To: support@shop.example\r\n"
    "Subject: Undeliverable: [#1000] Re: Printer on fire\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="X"\r\n'
    "\r\n"
    "--X\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    "Your message\r\n"
    "\r\n"
    "  To:      Ada\r\n"
    "  Subject: [#1000] Re: Printer on fire\r\n"
    "  Sent:    Mon, 23 Nov 2026 10:00:00 +0100\r\n"
    "\r\n"
    "did not reach the following recipient(s):\r\n"
    "\r\n"
    "ada@corp.example on Mon, 23 Nov 2026 10:00:05 +0100\r\n"
    "    The recipient name is not recognized\r\n"
    "    The MTS-ID of the original message is: c=IT;a= ;p=Corp;l=EXCH1-261123\r\n"
    "    MSEXCH:IMS:Corp:Site:EXCH1 0 (000C05A6) Unknown Recipient\r\n"
    "\r\n"
    "--X\r\nContent-Type: message/rfc822\r\n\r\n"
    f"{ORIGINAL}\r\nWe have your message.\r\n"
    "--X--\r\n"
).encode()


# --- RFC 3464 -----------------------------------------------------------------------------


def test_rfc3464_report_names_each_recipient_with_action_status_and_reason() -> None:
    report = read_bounce(rfc3464(FAILED_BLOCK, "\r\n", DELAYED_BLOCK))

    assert report.standard and report.reporting_mta == "mx.corp.example"
    assert report.original_message_ids == (OUR_ID,)
    failed, delayed = report.recipients
    assert (failed.address, failed.original, failed.action, failed.status) == (
        "ada@corp.example",
        "ada@corp.example",
        "failed",
        "5.1.1",
    )
    assert failed.diagnostic == (
        "550 5.1.1 <ada@corp.example>: Recipient address rejected: "
        "User unknown in local recipient table"
    )
    assert failed.failed and failed.permanent
    assert (delayed.address, delayed.action, delayed.status) == (
        "bob@corp.example",
        "delayed",
        "4.4.1",
    )
    assert delayed.diagnostic.startswith("connect to mx2.corp.example")
    assert not delayed.failed and not delayed.permanent
    assert report.failed == (failed,)


def test_an_expired_temporary_failure_is_failed_but_not_permanent() -> None:
    block = FAILED_BLOCK.replace("Status: 5.1.1", "Status: 4.2.2").replace(
        "550 5.1.1", "452 4.2.2 mailbox full"
    )
    (recipient,) = read_bounce(rfc3464(block)).recipients
    assert recipient.failed and not recipient.permanent


def test_original_message_id_from_an_attached_message() -> None:
    raw = rfc3464(
        FAILED_BLOCK,
        original=ORIGINAL + "\r\nWe have your message.",
        original_type="message/rfc822",
    )
    assert read_bounce(raw).original_message_ids == (OUR_ID,)


def test_global_delivery_status_is_read_too() -> None:
    raw = rfc3464(FAILED_BLOCK).replace(
        b"message/delivery-status", b"message/global-delivery-status"
    )
    (recipient,) = read_bounce(raw).recipients
    assert (recipient.address, recipient.status) == ("ada@corp.example", "5.1.1")


# --- non-standard reports -----------------------------------------------------------------


def test_postfix_report_without_a_delivery_status_part() -> None:
    report = read_bounce(POSTFIX_WITHOUT_DSN)

    assert not report.standard
    (recipient,) = report.recipients
    assert (recipient.address, recipient.action, recipient.status) == (
        "ada@corp.example",
        "failed",
        "5.1.1",
    )
    assert "Recipient address rejected: User unknown" in recipient.diagnostic
    assert report.original_message_ids == (OUR_ID,)


def test_a_report_whose_charset_name_holds_a_nul_is_still_read() -> None:
    # codecs refuses such a name with ValueError, not LookupError.
    plain = b"Content-Description: Notification\r\nContent-Type: text/plain\r\n"
    assert plain in POSTFIX_WITHOUT_DSN
    raw = POSTFIX_WITHOUT_DSN.replace(plain, plain[:-2] + b'; charset="x\x00"\r\n')
    report = read_bounce(raw)

    (recipient,) = report.recipients
    assert (recipient.address, recipient.status) == ("ada@corp.example", "5.1.1")


def test_exchange_style_report() -> None:
    report = read_bounce(EXCHANGE_STYLE)

    assert not report.standard
    (recipient,) = report.recipients
    assert (recipient.address, recipient.action) == ("ada@corp.example", "failed")
    assert "The recipient name is not recognized" in recipient.diagnostic
    assert recipient.permanent
    assert report.original_message_ids == (OUR_ID,)


def test_original_quoted_in_plain_text_still_names_the_mail() -> None:
    raw = (
        "From: MAILER-DAEMON@old.corp.example\r\nTo: support@shop.example\r\n"
        "Subject: failure notice\r\n\r\n"
        "Hi. This is the qmail-send program at old.corp.example.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<ada@corp.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n"
        f"{ORIGINAL}\r\nWe have your message.\r\n"
    ).encode()
    report = read_bounce(raw)
    assert report.original_message_ids == (OUR_ID,)
    assert [r.address for r in report.failed] == ["ada@corp.example"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not an email at all \x00\xff",
        b'Content-Type: multipart/report; boundary="x"\r\n\r\n--x\r\nContent-Type: '
        b"message/delivery-status\r\n\r\nAction: failed\r\n--x",
        b"From: a@b\r\nSubject: hello\r\n\r\nJust a customer mail.\r\n",
    ],
)
def test_anything_else_yields_an_empty_report(raw: bytes) -> None:
    report = read_bounce(raw)
    assert report.recipients == () and report.original_message_ids == ()


# --- return paths -------------------------------------------------------------------------


def test_return_path_round_trip() -> None:
    address = make_return_path("support@shop.example", 42, OUR_ID)
    assert address.startswith("support+b42-") and address.endswith("@shop.example")

    token = find_return_path(["Ada <ada@corp.example>", f"<{address.upper()}>"])
    assert token == ReturnPathToken(42, address.split("-")[1].split("@")[0], address)
    assert return_path_valid(token, OUR_ID)


def test_a_forged_or_foreign_return_path_is_not_valid() -> None:
    address = make_return_path("support@shop.example", 42, OUR_ID)
    other_row = address.replace("+b42-", "+b43-")
    token = find_return_path([other_row])
    assert token is not None and not return_path_valid(token, OUR_ID)
    # The check is keyed by the row's Message-ID: another mail's id does not fit.
    genuine = find_return_path([address])
    assert genuine is not None and not return_path_valid(genuine, "mb.x.1@shop.example")


@pytest.mark.parametrize(
    "recipient",
    [
        "support@shop.example",
        "support+t1000-abcdefghijkl@shop.example",
        "support+b42@shop.example",
        "support+b42-short@shop.example",
        "not an address",
    ],
)
def test_addresses_without_a_return_path_token(recipient: str) -> None:
    assert find_return_path([recipient]) is None


def test_bounce_address_with_its_own_plus_part() -> None:
    address = make_return_path("bounces+shop@lists.example", 7, OUR_ID)
    token = find_return_path([address])
    assert token is not None and token.outbox_id == 7 and return_path_valid(token, OUR_ID)
