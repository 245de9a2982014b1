"""Every parser entry point takes time linear in its input, whatever shape a sender gives it.

Each case builds one hostile shape (a long run of one character class, many near-matches,
unbalanced quotes or brackets, deep nesting, many lines) at 10, 100 and 1,000 times a normal
size (at most a few MB, well within what the parser takes), and times the call. Linear
work takes about ten times longer per step, quadratic work about a hundred times: a step that
grows more than MAX_STEP_GROWTH fails. Times are the thread's CPU time with the garbage
collector paused, the smallest input is the best of three runs, and a step only a little
too slow is measured again, so a loaded machine does not fail a case. A call that runs far
past what linear growth allows, or past CEILING_SECONDS, is stopped and fails at once.
"""

from __future__ import annotations

import base64
import gc
import re
import signal
import struct
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from compressed_rtf import compress  # type: ignore[import-untyped]

from mailbridge.core.authres import proves_author, trusted_results
from mailbridge.core.bounce import read_bounce
from mailbridge.core.classify import Identity, classify
from mailbridge.core.correlate import thread_clues
from mailbridge.core.faq import FaqIndex, parse_entry, rank_mail, says_solved
from mailbridge.core.forward import find_inline
from mailbridge.core.header_block import mend_header_block
from mailbridge.core.humanize import excerpt
from mailbridge.core.language import detect_language
from mailbridge.core.message import ParsedMessage
from mailbridge.core.mime_text import decode_header_value, html_to_texts
from mailbridge.core.parse import message_fingerprint, normalize_subject, parse_message
from mailbridge.core.readable import readable
from mailbridge.core.reply_trim import trim_reply
from mailbridge.core.rules import Facts, compile_rules, evaluate
from mailbridge.core.spam_headers import trusted_verdict
from mailbridge.core.staff import parse_commands, strip_signature

pytestmark = pytest.mark.unit

SCALES = (10, 100, 1000)
MAX_STEP_GROWTH = 40.0  # linear: about 10 per step; quadratic: about 100
FLOOR_SECONDS = 0.0002  # shorter times are mostly the call's fixed cost and timer noise
CEILING_SECONDS = 10.0  # no input here is large enough to excuse more, however it grows
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def times_normal(unit: str, normal: int, scale: int) -> str:
    """`unit` repeated to `scale` times a normal length of `normal` characters."""
    return unit * max(1, normal * scale // len(unit))


# --- mails -------------------------------------------------------------------------------

HEADERS = {
    "From": "Ann Example <ann@example.org>",
    "To": "support@shop.example",
    "Subject": "Printer on fire",
    "Date": "Mon, 23 Nov 2026 09:00:00 +0100",
    "Message-ID": "<m1@example.org>",
}
BODY = "Hello,\nmy printer is on fire. What now?\n\nAnn\n"


def mail(body: str = BODY, **headers: str) -> bytes:
    """A mail with the usual headers, some replaced (`Content_Type` is Content-Type)."""
    fields = {**HEADERS, **{name.replace("_", "-"): value for name, value in headers.items()}}
    head = "".join(f"{name}: {value}\n" for name, value in fields.items())
    return f"{head}\n{body}".encode("utf-8", "surrogateescape")


def multipart(parts: list[str], boundary: str = "b0", **headers: str) -> bytes:
    body = "".join(f"--{boundary}\n{part}\n" for part in parts) + f"--{boundary}--\n"
    content_type = f'multipart/mixed; boundary="{boundary}"'
    return mail(body, MIME_Version="1.0", Content_Type=content_type, **headers)


def attachment(disposition: str) -> bytes:
    part = f"Content-Type: application/pdf\nContent-Disposition: {disposition}\n\nJVBERi0=\n"
    return multipart(["Content-Type: text/plain\n\nSee the file.\n", part])


def nested(depth: int, lines: int) -> bytes:
    """Multiparts inside multiparts, `depth` deep, the innermost a file of `lines` lines."""
    text = "Content-Type: text/plain\n\nA line of text in this part.\n"
    inner = "Content-Type: application/octet-stream\n\n" + "A line of the file.\n" * lines
    for level in range(depth, 0, -1):
        inner = (
            f'Content-Type: multipart/mixed; boundary="b{level}"\n\n'
            f"--b{level}\n{text}\n--b{level}\n{inner}\n--b{level}--\n"
        )
    return multipart([text, inner])


def winmail(rtf: str) -> bytes:
    """A mail whose only body is RTF in a winmail.dat (stored: compressing it is slow)."""

    def record(name: int, kind: int, data: bytes) -> bytes:
        checksum = sum(data) & 0xFFFF
        return struct.pack("<BHHI", 1, name, kind, len(data)) + data + struct.pack("<H", checksum)

    packed = bytes(compress(rtf.encode("latin-1"), compressed=False))
    props = struct.pack("<IHHII", 1, 0x0102, 0x1009, 1, len(packed)) + packed
    blob = (
        struct.pack("<IH", 0x223E9F78, 1)
        + record(0x9007, 6, struct.pack("<II", 1252, 0))
        + record(0x9003, 6, props + b"\0" * (-len(packed) % 4))
    )
    part = (
        "Content-Type: application/ms-tnef\nContent-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="winmail.dat"\n\n'
        + base64.encodebytes(blob).decode()
    )
    return multipart([part])


def html_mail(html: str) -> bytes:
    return mail(html, Content_Type="text/html; charset=utf-8")


# --- bounces -----------------------------------------------------------------------------

BOUNCE_HEAD = (
    "From: MAILER-DAEMON@mx.example.org\nTo: support@shop.example\n"
    "Subject: failure notice\nMessage-ID: <bounce@mx.example.org>\n"
)


def qmail_bounce(recipients: int) -> bytes:
    failed = "".join(
        f"<user{i}@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        for i in range(recipients)
    )
    return (
        f"{BOUNCE_HEAD}\nHi. This is the qmail-send program at mx.example.org.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"{failed}--- Below this line is a copy of the message.\n\n"
        "Message-ID: <mb.ack.1@shop.example>\nSubject: Re: Printer\n\nHello\n"
    ).encode()


def postfix_bounce(recipients: int) -> bytes:
    failed = "".join(
        f"<user{i}@example.org>: host mx.example.org[192.0.2.25] said: 550 5.1.1\n"
        "    Recipient address rejected: User unknown\n\n"
        for i in range(recipients)
    )
    return (
        f"{BOUNCE_HEAD}MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="P"\n\n'
        "--P\nContent-Description: Notification\nContent-Type: text/plain\n\n"
        "The Postfix program at host mx.example.org.\n\n"
        "I'm sorry to have to inform you that the message returned below could not\n"
        f"be delivered to one or more destinations.\n\n{failed}--P--\n"
    ).encode()


def dsn_bounce(recipients: int) -> bytes:
    blocks = "".join(
        f"Final-Recipient: rfc822; user{i}@example.org\nAction: failed\n"
        "Status: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 unknown\n\n"
        for i in range(recipients)
    )
    return (
        f"{BOUNCE_HEAD}MIME-Version: 1.0\nContent-Type: multipart/report; "
        'report-type=delivery-status; boundary="R"\n\n'
        "--R\nContent-Type: text/plain\n\nYour message could not be delivered.\n"
        "--R\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"{blocks}--R--\n"
    ).encode()


def plain_bounce(text: str) -> bytes:
    return f"{BOUNCE_HEAD}\n{text}".encode()


# --- what the entry points are given -----------------------------------------------------

UNHAPPY_RULES = compile_rules(
    tomllib.loads((TEMPLATES / "rules" / "unhappy-customers.toml").read_text("utf-8"))["rule"]
)
FAQ = FaqIndex.build(
    parse_entry(path.name, path.read_text("utf-8"))
    for path in sorted((TEMPLATES / "faq").glob("*.md"))
)
FAQ_CONCEPTS = FaqIndex.build(FAQ.entries, "lexicon")
WORDS_RULES = compile_rules(
    [
        {
            "name": "words",
            "when": {"text": {"words": ["money back", "perché", "rimborso"]}},
            "then": {"tags": ["words"]},
        }
    ]
)
# A pattern that backtracks from every start position: only the bounded view of a header
# (core/rule_conditions.py) keeps it from growing with what a sender writes.
HEADER_RULES = compile_rules(
    [{"name": "h", "when": {"header": {"name": "X-Junk", "matches": "a+b"}}, "then": {}}]
)
SIGNATURES = [re.compile(p, re.MULTILINE) for p in (r"^Alice Rossi$", r"^Sent from my")]
REPLY = parse_message(mail())


def route(subject: str, body: str) -> object:
    return evaluate(UNHAPPY_RULES, Facts(subject=subject, body=body))


def with_subject(subject: str) -> ParsedMessage:
    return replace(REPLY, subject=subject)


def with_references(count: int) -> ParsedMessage:
    return replace(REPLY, references=tuple(f"m{i}@example.org" for i in range(count)))


@dataclass(frozen=True)
class SpamSettings:
    headers: bool = True
    trusted_hosts: tuple[str, ...] = ("mx.example.org",)
    score_threshold: float | None = 5.0
    scl_threshold: int = 5
    foreign_removed: bool = True


def with_spam_fields(fields: list[tuple[str, str]]) -> ParsedMessage:
    """A mail with these fields below our MTA's Received line."""
    fields = [("received", "from a by mx.example.org id 1"), *fields]
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        headers.setdefault(name, []).append(value)
    return replace(
        REPLY,
        headers={name: tuple(values) for name, values in headers.items()},
        header_order=tuple(name for name, _ in fields),
    )


def spam_verdict(parsed: ParsedMessage) -> object:
    return trusted_verdict(parsed, SpamSettings())


def words_rule(body: str) -> object:
    return evaluate(WORDS_RULES, Facts(subject="Ordine", body=body))


def header_rule(values: tuple[str, ...]) -> object:
    return evaluate(HEADER_RULES, Facts(headers={"x-junk": values}))


def authentication(value: str) -> object:
    return proves_author(trusted_results([value], "mx.example.org"), "example.org")


AR = "mx.example.org; "


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Any], object]
    make: Callable[[int], Any]  # the input at `scale` times a normal size


T = times_normal
CASES = [
    # parse_message: headers
    Case(
        "From: address characters after a second @",
        parse_message,
        lambda s: mail(From=f"ann@example.org@{T('a', 40, s)}"),
    ),
    Case(
        "From: unbalanced quote",
        parse_message,
        lambda s: mail(From='"Ann ' + T("a@b.example ", 40, s)),
    ),
    Case(
        "From: open angle brackets",
        parse_message,
        lambda s: mail(From=T("<", 40, s) + "ann@example.org"),
    ),
    Case(
        "From: nested comments",
        parse_message,
        lambda s: mail(From="ann@example.org " + T("(", 40, s)),
    ),
    Case(
        "To: many addresses",
        parse_message,
        lambda s: mail(To=", ".join(f"User {i} <user{i}@example.org>" for i in range(s))),
    ),
    Case("Subject: many words", parse_message, lambda s: mail(Subject=T("word ", 60, s))),
    Case(
        "Subject: many encoded words",
        parse_message,
        lambda s: mail(Subject=T("=?utf-8?q?caf=C3=A9?= ", 60, s)),
    ),
    Case(
        "References: many ids",
        parse_message,
        lambda s: mail(References=" ".join(f"<m{i}@example.org>" for i in range(3 * s))),
    ),
    Case(
        "References: open angle brackets", parse_message, lambda s: mail(References=T("<", 90, s))
    ),
    Case(
        "Content-Type: many parameters",
        parse_message,
        lambda s: mail(Content_Type="text/plain; " + T("p=v; ", 50, s) + "charset=utf-8"),
    ),
    Case(
        "Content-Type: semicolons in a quoted value",
        parse_message,
        lambda s: mail(Content_Type='text/plain; charset=utf-8; name="' + T("a;", 50, s) + '"'),
    ),
    Case(
        "Content-Type: unbalanced quotes",
        parse_message,
        lambda s: mail(Content_Type="text/plain; " + T('a="b;', 50, s)),
    ),
    Case(
        "filename: semicolons in a quoted value",
        parse_message,
        lambda s: attachment(f'attachment; filename="{T("x;", 30, s)}.pdf"'),
    ),
    Case(
        "filename: RFC 2231 continuations",
        parse_message,
        lambda s: attachment("attachment; " + "; ".join(f"filename*{i}=part{i}" for i in range(s))),
    ),
    Case(
        "filename: RFC 2231 continuations in a charset",
        parse_message,
        lambda s: attachment(
            "attachment; " + "; ".join(f"filename*{i}*=utf-8''%C3%A4" for i in range(s))
        ),
    ),
    Case(
        "filename: many encoded words",
        parse_message,
        lambda s: attachment(f'attachment; filename="{T("=?utf-8?q?caf=C3=A9?= ", 60, s)}"'),
    ),
    Case(
        "filename: many path separators",
        parse_message,
        lambda s: attachment(f'attachment; filename="{T("../", 30, s)}x.pdf"'),
    ),
    Case(
        "filename: control characters",
        parse_message,
        lambda s: attachment('attachment; filename="' + T("a\u202e", 30, s) + '.pdf"'),
    ),
    Case(
        "Content-Location: long path",
        parse_message,
        lambda s: multipart(
            [
                "Content-Type: application/pdf\nContent-Location: http://x/"
                + T("a/", 40, s)
                + "?"
                + T("q", 40, s)
                + "\n\nJVBERi0=\n"
            ]
        ),
    ),
    Case(
        "Content-ID: long, inline image",
        parse_message,
        lambda s: multipart(
            [
                "Content-Type: image/png\nContent-Disposition: inline\n"
                f"Content-ID: <{T('a.', 40, s)}@x>\n\niVBORw0=\n"
            ]
        ),
    ),
    Case(
        "attachments: many without a name",
        parse_message,
        lambda s: multipart([f"Content-Type: application/pdf\n\npart {i}\n" for i in range(s)]),
    ),
    Case(
        "boundary: long",
        parse_message,
        lambda s: multipart(["Content-Type: text/plain\n\nHello\n"] * 2, T("b", 40, s)),
    ),
    Case(
        "From: none, many fallback mailboxes without an address",
        parse_message,
        lambda s: mail(
            From="Ann",
            Sender=T("Ann Example (no address), ", 40, s),
            Reply_To=T("<a@b> <", 40, s),
            Return_Path=T("<", 40, s),
        ),
    ),
    Case(
        "headers: many lines without a field name",
        parse_message,
        lambda s: mail(
            From="ann@example.org\n" + T("H4sIAAAAAAAAA+NgFmpk\n", 40, s) + "X-After: 1"
        ),
    ),
    # mend_header_block
    Case(
        "header block: lines without a field name",
        mend_header_block,
        lambda s: (
            "From: ann@example.org\n" + T("H4sIAAAA+NgFmpk\n", 40, s) + "Subject: x\n\nbody"
        ).encode(),
    ),
    Case(
        "header block: spaces before colons",
        mend_header_block,
        lambda s: ("From  : ann@example.org\n" + T("X-A      : v\n", 40, s) + "\nbody").encode(),
    ),
    Case(
        "header block: one long line without a colon",
        mend_header_block,
        lambda s: ("From: ann@example.org\n" + T("a", 40, s) + "\nSubject: x\n\nbody").encode(),
    ),
    Case(
        "header block: a long field name without its colon",
        mend_header_block,
        lambda s: (
            "From: ann@example.org\n" + T("a", 40, s) + T(" ", 40, s) + "\nSubject: x\n\nbody"
        ).encode(),
    ),
    # parse_message: bodies
    Case(
        "body: many lines",
        parse_message,
        lambda s: mail(T("Thanks, the printer works again now.\n", 300, s)),
    ),
    Case("body: one long line", parse_message, lambda s: mail(T("word ", 300, s))),
    Case("body: no spaces", parse_message, lambda s: mail(T("a", 300, s))),
    Case(
        "body: HTML paragraphs",
        parse_message,
        lambda s: html_mail(T("<p>Hello, my printer is on fire.</p>\n", 300, s)),
    ),
    Case("body: HTML tags never closed", parse_message, lambda s: html_mail(T("<div ", 300, s))),
    Case(
        "body: HTML quotes",
        parse_message,
        lambda s: html_mail(T("<blockquote>old</blockquote><p>new</p>\n", 300, s)),
    ),
    Case("MIME: nested multiparts", parse_message, lambda s: nested(s // 4, 40 * s)),
    Case(
        "TNEF: RTF text",
        parse_message,
        lambda s: winmail("{\\rtf1\\ansi " + T("Hello there\\par ", 200, s) + "}"),
    ),
    Case(
        "TNEF: RTF hyperlink fields never closed",
        parse_message,
        lambda s: winmail("{\\rtf1 " + T('{\\field{\\*\\fldinst{HYPERLINK "', 200, s)),
    ),
    Case(
        "TNEF: RTF fonts without a charset",
        parse_message,
        lambda s: winmail("{\\rtf1{\\fonttbl" + T("{\\f0 Arial;}", 200, s) + "}\\f0 Hi}"),
    ),
    Case(
        "MIME: many parts",
        parse_message,
        lambda s: multipart([f"Content-Type: text/plain\n\npart {i}\n" for i in range(s)]),
    ),
    # decode_header_value
    Case(
        "header: encoded words", decode_header_value, lambda s: T("=?utf-8?q?caf=C3=A9?= ", 60, s)
    ),
    Case(
        "header: encoded words never closed", decode_header_value, lambda s: T("=?utf-8?q?a", 60, s)
    ),
    Case(
        "header: spaces between encoded words",
        decode_header_value,
        lambda s: "=?utf-8?q?a?=" + T(" ", 60, s) + "=?utf-8?q?b?=",
    ),
    Case("header: raw 8-bit bytes", decode_header_value, lambda s: T("caf\udcc3\udca9 ", 60, s)),
    Case(
        "header: raw GB2312 bytes",
        decode_header_value,
        lambda s: T("\udcb9\udcd8\udcd3\udcda ", 60, s),
    ),
    Case(
        "header: encoded words with spaces, never closed",
        decode_header_value,
        lambda s: T("=?utf-8?q?a b c ", 60, s),
    ),
    Case(
        "header: encoded words glued together",
        decode_header_value,
        lambda s: T("=?utf-8?q?caf=C3=A9?=", 60, s),
    ),
    Case(
        "header: question marks after an opening",
        decode_header_value,
        lambda s: "=?utf-8?q?" + T("?", 60, s),
    ),
    # readable text
    Case("readable: Latin-1 symbols", readable, lambda s: T("\u00b9\u00d8\u00d3\u00da", 60, s)),
    Case("readable: mixed alphabets", readable, lambda s: T("d\u0439j\u0430 ", 60, s)),
    # html_to_texts
    Case(
        "HTML: paragraphs",
        html_to_texts,
        lambda s: T("<p>Hello, my printer is on fire.</p>\n", 300, s),
    ),
    Case("HTML: tags never closed", html_to_texts, lambda s: T("<div ", 300, s)),
    Case("HTML: near-miss markers", html_to_texts, lambda s: T("<span <hr id ", 300, s)),
    Case(
        "HTML: many markers",
        html_to_texts,
        lambda s: T('<div id="appendonsend"></div><p>x</p>', 300, s),
    ),
    Case(
        "HTML: quotes",
        html_to_texts,
        lambda s: T("<blockquote>old</blockquote><p>new</p>\n", 300, s),
    ),
    Case("HTML: nested quotes", html_to_texts, lambda s: T("<blockquote>a", 300, s)),
    Case(
        "HTML: unbalanced attribute quotes",
        html_to_texts,
        lambda s: T('<p class="a>x</p>\n', 300, s),
    ),
    # find_inline (forwards)
    Case(
        "forward: a separator on every other line",
        lambda text: find_inline(text, "Fwd: x"),
        lambda s: T("---------- Forwarded message ---------\nFrom: a\n", 2000, s),
    ),
    Case(
        "forward: quoted separators",
        lambda text: find_inline(text, "Fwd: x"),
        lambda s: T("> -----Original Message-----\n> From: a\n", 2000, s),
    ),
    # trim_reply
    Case(
        "reply: many lines",
        trim_reply,
        lambda s: T("Thanks, the printer works again now.\n", 300, s),
    ),
    Case("reply: leading blank lines", trim_reply, lambda s: T(" " * 99 + "\n", 3000, s) + "Hello"),
    Case(
        "reply: quoted attributions",
        trim_reply,
        lambda s: (
            "Hi\n"
            + T("> On Mon, 1 Jan 2024 at 10:00, Ann <ann@example.org> wrote:\n", 1000, s)
            + "Thanks"
        ),
    ),
    Case(
        "reply: attribution near-misses",
        trim_reply,
        lambda s: T("On " + "1" * 150 + " wrote" * 40 + " x\nthen:\n", 300, s),
    ),
    Case(
        "reply: header blocks",
        trim_reply,
        lambda s: T("From: Ann\nSent: Monday\nTo: Bob\nSubject: x\n\n> old\nnew\n", 300, s),
    ),
    Case("reply: deep quote markers", trim_reply, lambda s: T("> ", 300, s) + "x\nHello"),
    # classify
    Case(
        "classify: long subject",
        lambda m: classify(m, Identity()),
        lambda s: parse_message(mail(Subject=T("automatic ", 60, s))),
    ),
    Case(
        "classify: long sender",
        lambda m: classify(m, Identity()),
        lambda s: parse_message(mail(From="noreply" + T("-x", 40, s) + "@example.org")),
    ),
    # the bounce parser
    Case("bounce: qmail, many recipients", read_bounce, lambda s: qmail_bounce(2 * s)),
    Case("bounce: Postfix, many recipients", read_bounce, lambda s: postfix_bounce(2 * s)),
    Case("bounce: RFC 3464, many recipients", read_bounce, dsn_bounce),
    Case(
        "bounce: Message-ID line of many @",
        read_bounce,
        lambda s: plain_bounce("Message-ID: <" + T("a@", 100, s) + "\n"),
    ),
    Case(
        "bounce: long text",
        read_bounce,
        lambda s: plain_bounce(T("Delivery to the following recipient failed.\n", 300, s)),
    ),
    # staff replies
    Case("commands: one line of #note", parse_commands, lambda s: T("#note ", 300, s) + "x"),
    Case("commands: many lines", parse_commands, lambda s: T("#tag vip\n", 300, s) + "Hello"),
    Case(
        "commands: #assign to a long domain",
        parse_commands,
        lambda s: "#assign a@" + T(".", 300, s) + "<",
    ),
    Case("commands: #tag of many names", parse_commands, lambda s: "#tag " + T("a ", 300, s) + "!"),
    Case(
        "commands: #requester of a long address",
        parse_commands,
        lambda s: "#requester Ann <" + T("a.", 300, s) + "@example.org>\nHi",
    ),
    Case(
        "commands: #requester of many quotes",
        parse_commands,
        lambda s: '#requester "' + T('a\\"', 300, s) + " <a@example.org>\nHi",
    ),
    Case(
        "signature: many lines",
        lambda t: strip_signature(t, SIGNATURES),
        lambda s: T("Thanks for waiting.\n", 300, s),
    ),
    Case(
        "signature: one long line",
        lambda t: strip_signature(t, SIGNATURES),
        lambda s: T("Alice ", 300, s),
    ),
    # threading
    Case(
        "thread_clues: many references",
        lambda m: thread_clues(m, "#"),
        lambda s: with_references(10 * s),
    ),
    Case(
        "thread_clues: tag near-misses",
        lambda m: thread_clues(m, "#"),
        lambda s: with_subject(T("[# ", 60, s)),
    ),
    Case("normalize_subject: reply prefixes", normalize_subject, lambda s: T("Re: ", 400, s)),
    Case(
        "normalize_subject: numbered prefixes",
        normalize_subject,
        lambda s: T("Re[2]: Fwd: ", 400, s),
    ),
    # routing on the shipped unhappy-customer rules
    Case(
        "rules: prose",
        lambda b: route("Ordine", b),
        lambda s: T("Il pagamento non è andato a buon fine ieri. ", 300, s),
    ),
    Case(
        "rules: near-misses",
        lambda b: route("Ordine", b),
        lambda s: T("sono molto still no ", 300, s),
    ),
    Case(
        "rules: runs of spaces",
        lambda b: route("Ordine", b),
        lambda s: "vi ho" + T(" ", 300, s) + "x",
    ),
    Case("rules: long subject", lambda t: route(t, "Hello"), lambda s: T("rimborso? ", 60, s)),
    Case(
        "rules: combining marks",
        lambda b: route("Ordine", b),
        lambda s: "e" + T("\u0301\u0316", 300, s),
    ),
    Case("rules: words, combining marks", words_rule, lambda s: "e" + T("\u0301\u0316", 300, s)),
    Case("rules: words, near-misses", words_rule, lambda s: T("money money back ", 300, s)),
    Case("rules: header, one long value", header_rule, lambda s: (T("a", 100, s),)),
    Case("rules: header, many values", header_rule, lambda s: ("a" * 100,) * (2 * s)),
    # FAQ suggestions
    Case(
        "faq: many sentences",
        lambda t: rank_mail(FAQ, "Indirizzo", t, None),
        lambda s: T("Come posso cambiare il mio indirizzo? ", 300, s),
    ),
    Case(
        "faq: one long sentence",
        lambda t: rank_mail(FAQ, "Indirizzo", t, None),
        lambda s: T("parola ", 15, s),
    ),
    Case(
        "faq: long subject",
        lambda t: rank_mail(FAQ, t, "Hello", None),
        lambda s: T("indirizzo ", 10, s),
    ),
    Case(
        "faq: combining marks",
        lambda t: rank_mail(FAQ, t, "Hello", None),
        lambda s: "e" + T("\u0f73", 60, s),
    ),
    Case(
        "faq: concepts, one long sentence",
        lambda t: rank_mail(FAQ_CONCEPTS, "wallet", t, None),
        lambda s: T("pinched wallet bank details ", 8, s),
    ),
    Case("faq: solved, combining marks", says_solved, lambda s: "e" + T("\u0301\u0316", 300, s)),
    # language
    Case("language: no spaces", detect_language, lambda s: T("a", 30, s)),
    Case("language: words", detect_language, lambda s: T("ciao come stai ", 300, s)),
    Case("language: many @", detect_language, lambda s: T("a@", 30, s)),
    # excerpts
    Case("excerpt: many lines", excerpt, lambda s: T("Hello there\n", 300, s)),
    Case("excerpt: control characters", excerpt, lambda s: T("\x1b[31m", 300, s)),
    Case("excerpt: blank lines", excerpt, lambda s: T("\n", 300, s) + "x"),
    # fingerprints
    Case(
        "fingerprint: long From",
        message_fingerprint,
        lambda s: mail(From='"Ann ' + T("a@b.example ", 40, s)),
    ),
    Case(
        "fingerprint: nested comments in From",
        message_fingerprint,
        lambda s: mail(From="ann@example.org " + T("(", 40, s)),
    ),
    Case(
        "fingerprint: many headers",
        message_fingerprint,
        lambda s: mail(X_Extra=T("value\nX-Extra: ", 40, s) + "x"),
    ),
    Case(
        "fingerprint: headers only",
        message_fingerprint,
        lambda s: T("X-Header: value\n", 300, s).encode(),
    ),
    # Authentication-Results (proof for staff mail)
    Case(
        "Authentication-Results: nested comments",
        authentication,
        lambda s: AR + "dkim=pass " + T("(", 100, s) + T(")", 100, s),
    ),
    Case(
        "Authentication-Results: long property",
        authentication,
        lambda s: AR + "dkim=pass header.d=" + T("a", 200, s),
    ),
    Case(
        "Authentication-Results: long word",
        authentication,
        lambda s: AR + "dkim=pass " + T("a", 200, s),
    ),
    Case(
        "spam verdict: many fields",
        spam_verdict,
        lambda s: with_spam_fields([("x-spam-flag", "NO"), ("received", "by x")] * (10 * s)),
    ),
    Case(
        "spam verdict: X-Spamd-Result long score",
        spam_verdict,
        lambda s: with_spam_fields(
            [("x-spamd-result", "default: False [" + T("9", 100, s) + " / 15.00]")]
        ),
    ),
    Case(
        "spam verdict: Received with many by words",
        spam_verdict,
        lambda s: with_spam_fields([("received", T("by by ", 100, s)), ("x-spam-flag", "YES")]),
    ),
    Case(
        "spam verdict: X-Forefront-Antispam-Report many items",
        spam_verdict,
        lambda s: with_spam_fields(
            [("x-forefront-antispam-report", T("SFV:SPM;", 100, s) + "SCL:9")]
        ),
    ),
    Case(
        "spam verdict: X-Spam-Status many pairs",
        spam_verdict,
        lambda s: with_spam_fields([("x-spam-status", "Yes, " + T("score=1 ", 100, s))]),
    ),
    Case(
        "Authentication-Results: many results",
        authentication,
        lambda s: AR + T("dkim=fail header.d=example.org; ", 200, s),
    ),
]


class TooSlow(BaseException):
    """Raised by the CPU-time alarm; not an Exception, so no parser's safety net takes it."""


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: FrameType | None) -> None:
        raise TooSlow

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def cpu_time(call: Callable[[Any], object], arg: Any, limit: float) -> float:
    gc.disable()
    try:
        with cpu_limit(limit):
            start = time.thread_time()
            call(arg)
            return time.thread_time() - start
    finally:
        gc.enable()


def growth(case: Case) -> list[float]:
    """CPU seconds of the call at each scale, stopping at the first step that grows too much."""
    inputs = [case.make(scale) for scale in SCALES]
    case.call(case.make(1))  # imports, models and caches are loaded outside the timing
    times: list[float] = []
    for scale, arg in zip(SCALES, inputs, strict=True):
        previous = times[-1] if times else None
        allowed = (
            CEILING_SECONDS
            if previous is None
            else min(CEILING_SECONDS, max(1.0, 4 * MAX_STEP_GROWTH * previous))
        )
        try:
            times.append(measure(case.call, arg, previous, allowed))
        except TooSlow:
            pytest.fail(
                f"{case.name}: stopped after {allowed:.2f} s of CPU at {scale}x "
                f"(times so far: {seconds(times)})"
            )
        if previous is not None and step(previous, times[-1]) > MAX_STEP_GROWTH:
            break
    return times


def measure(
    call: Callable[[Any], object], arg: Any, previous: float | None, allowed: float
) -> float:
    """The best of a few runs; a step slower than linear but within what noise on a loaded
    machine could explain is run again before it counts."""
    if previous is None:
        return min(cpu_time(call, arg, allowed) for _ in range(3))
    best = cpu_time(call, arg, allowed)
    for _ in range(3):
        borderline = MAX_STEP_GROWTH < step(previous, best) <= 2 * MAX_STEP_GROWTH
        if not borderline or best > 0.5:  # half a second of CPU is no scheduling noise
            break
        best = min(best, cpu_time(call, arg, allowed))
    return best


def step(earlier: float, later: float) -> float:
    return later / max(earlier, FLOOR_SECONDS)


def seconds(times: list[float]) -> str:
    return ", ".join(f"{t * 1000:.2f} ms" for t in times)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs a CPU-time alarm")
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_growth_is_linear(case: Case) -> None:
    times = growth(case)
    steps = [step(earlier, later) for earlier, later in zip(times, times[1:], strict=False)]
    assert len(times) == len(SCALES) and max(steps) <= MAX_STEP_GROWTH, (
        f"{case.name}: {seconds(times)} at {SCALES[: len(times)]}x a normal size, "
        f"growing {', '.join(f'{s:.0f}x' for s in steps)} per step"
    )
