"""`mailbridge demo`: the real daemon against an embedded IMAP server, an SMTP sink and
SQLite, with a few customer mails, narrated as it happens.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TextIO

from sqlalchemy import select

from mailbridge.adapters.templates import default_templates_dir
from mailbridge.app import App, build_app
from mailbridge.config import CalendarConfig, Config, DigestConfig, config_from_dict
from mailbridge.core.waiting import DEADLINE_PREFIX as WAITING_PREFIX
from mailbridge.db.models import Escalation, Event, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.inbound.digest import send_digests
from mailbridge.inbound.routing import summary
from mailbridge.service.daemon import Daemon

FIRST_RESPONSE = "20s"
REMIND_AFTER = "20s"  # a ticket waiting on the customer: the reminder (tickets/waiting.py)
TOUR_LIMIT = 90.0


DEMO_MX = "mx.demo.example"
MARCO = "marco.rossi@example.it"


def demo_config(imap: EmbeddedImapServer, smtp: SmtpSink, data_dir: Path) -> Config:
    data = {
        "database": {"url": f"sqlite:///{data_dir / 'mailbridge.db'}"},
        "mailbox": [
            {
                "name": "support",
                "address": "support@demo.example",
                "host": imap.host,
                "port": imap.port,
                "security": "none",
                "username": imap.username,
                "password_env": "MAILBRIDGE_DEMO_IMAP_PASSWORD",
                "after": "move",
                "poll_interval": "1s",
            }
        ],
        "smtp": {
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "from": "Demo Support <support@demo.example>",
        },
        "templates": {"language": "en", "company": "Demo Shop & Bank"},
        "tickets": {"remind_after": REMIND_AFTER, "close_after": "7d"},
        "sla": [{"name": "demo", "first_response": FIRST_RESPONSE, "resolution": "1d"}],
        "calendar": {"timezone": "Europe/Rome"},
        "staff": {
            "addresses": ["alice@demo.example"],
            "team_address": "team@demo.example",
            "escalation_address": "lead@demo.example",
            "trusted_authserv_id": DEMO_MX,
        },
        "service": {"data_dir": str(data_dir), "sweep_interval": "1s", "outbox_interval": "1s"},
        # The example FAQ: Giulia's question about closing her account is answered at once.
        "faq": {"dir": str(default_templates_dir() / "faq")},
        # The shipped unhappy-customer rules: Tom's third mail raises his ticket's priority.
        "rules": {"include": [str(default_templates_dir() / "rules" / "unhappy-customers.toml")]},
    }
    return config_from_dict(
        data, data_dir / "demo.toml", {"MAILBRIDGE_DEMO_IMAP_PASSWORD": imap.password}
    )


def customer_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    in_reply_to: str | None = None,
    extra: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "Demo Support <support@demo.example>"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="customer.example")
    # What the demo's receiving MTA would add: the customer's domain signed the mail, so
    # acknowledgements may quote it (an unauthenticated sender gets a minimal one).
    domain = sender.rpartition("@")[2].rstrip(">")
    msg["Authentication-Results"] = f"{DEMO_MX}; dkim=pass header.d={domain}"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (extra or {}).items():
        msg[name] = value
    msg.set_content(textwrap.dedent(body).strip() + "\n")
    return msg.as_bytes()


BANK = customer_mail(
    "Giulia Rossi <giulia.rossi@example.it>",
    "Come chiudo il conto corrente?",
    """
    Buongiorno,

    vorrei chiudere il mio conto corrente ma sul sito non trovo da nessuna parte come
    fare. Devo venire in filiale o posso farlo online? Il conto è cointestato con mio
    marito.

    Grazie,
    Giulia Rossi
    """,
    # Her husband holds the account with her: copied, he becomes a participant of the
    # ticket and gets Alice's answer in Cc.
    extra={"Cc": f"Marco Rossi <{MARCO}>"},
)
CABLE = customer_mail(
    "Tom Baker <tom.baker@example.co.uk>",
    "Order A-20931 arrived without the charging cable",
    """
    Hello,

    my order A-20931 (the X200 headphones) arrived today, but the box has no charging
    cable although the product page lists one. Could you send the cable, please?

    Tom
    """,
)


def chaser(ack_message_id: str, subject: str) -> bytes:
    return customer_mail(
        "Tom Baker <tom.baker@example.co.uk>",
        f"Re: {subject}",
        """
        Hello again,

        this is the third time I am writing about the missing cable (I also phoned
        on Monday). I still can't charge the headphones. Please tell me when it ships.

        Tom
        """,
        in_reply_to=ack_message_id,
    )


def out_of_office(ack_message_id: str, subject: str) -> bytes:
    return customer_mail(
        "Giulia Rossi <giulia.rossi@example.it>",
        f"Risposta automatica: {subject}",
        "Sono fuori ufficio fino a lunedì, risponderò al mio rientro.",
        in_reply_to=ack_message_id,
        extra={"Auto-Submitted": "auto-replied"},
    )


def staff_answer(notification: ReceivedMail) -> bytes:
    """Alice answers the notification from her own mail client, quoting it as Gmail does."""
    msg = EmailMessage()
    msg["From"] = "Alice Bianchi <alice@demo.example>"
    msg["To"] = notification.message["Reply-To"]
    msg["Subject"] = "Re: " + notification.message["Subject"]
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="demo.example")
    msg["In-Reply-To"] = notification.message["Message-ID"]
    msg["References"] = notification.message["Message-ID"]
    body = notification.message.get_body(("plain",))
    quoted = "\n".join(
        "> " + line for line in (body.get_content() if body is not None else "").splitlines()
    )
    msg.set_content(
        textwrap.dedent("""\
        #priority high

        Gentile signora Rossi,

        può chiudere il conto online dall'area clienti, alla voce "Chiusura conto";
        essendo cointestato, serve la conferma di entrambi gli intestatari.

        --
        Alice Bianchi | Demo Shop & Bank
        """)
        + "\nIl giorno lun 23 nov 2026, Demo Support <support@demo.example> ha scritto:\n"
        + quoted
        + "\n"
    )
    return msg.as_bytes()


class Narrator:
    """Prints what the daemon does, by watching the database and the SMTP sink."""

    def __init__(self, app: App, sink: SmtpSink, out: TextIO) -> None:
        self.app, self.sink, self.out = app, sink, out
        self.tickets: set[int] = set()
        self.escalations: set[int] = set()
        self.rule_events: set[int] = set()
        self.mails = 0

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def poll(self) -> None:
        with self.app.sessions() as session:
            for ticket in session.scalars(select(Ticket).order_by(Ticket.id)):
                if ticket.id not in self.tickets:
                    self.tickets.add(ticket.id)
                    due = ticket.first_response_due_at
                    self.say(
                        f"\n● ticket #{ticket.number} created for "
                        f"{ticket.requester_address}: {ticket.subject!r} "
                        f"(language {ticket.language}, reply due "
                        f"{due.astimezone().strftime('%H:%M:%S') if due else '-'})"
                    )
            matches = session.execute(
                select(Event, Ticket.number)
                .join(Ticket, Ticket.id == Event.ticket_id)
                .where(Event.type == "rule_matched")
            )
            for event, number in matches:
                if event.id not in self.rule_events:
                    self.rule_events.add(event.id)
                    self.say(
                        f"\n◆ ticket #{number}: rule {event.data['rule']!r} matched: "
                        f"{summary(event.data['actions'])}"
                    )
            fired = session.execute(
                select(Escalation, Ticket.number)
                .join(Ticket, Ticket.id == Escalation.ticket_id)
                .where(Escalation.deadline.not_like(f"{WAITING_PREFIX}%"))  # reminders
            )
            for escalation, number in fired:
                if escalation.id not in self.escalations:
                    self.escalations.add(escalation.id)
                    self.say(
                        f"\n▲ ticket #{number}: first response overdue, escalation level "
                        f"{escalation.level} recorded"
                    )
        for mail in self.sink.received[self.mails :]:
            self.mails += 1
            self.show_mail(mail)

    def show_mail(self, mail: ReceivedMail) -> None:
        msg = mail.message
        body = msg.get_body(("plain",))
        text = body.get_content().replace("\r\n", "\n") if body is not None else ""
        if any(r.endswith("@demo.example") for r in mail.recipients):  # to staff: the gist
            lines = text.rstrip().splitlines()
            text = "\n".join(lines[:14] + (["…"] if len(lines) > 14 else []))
        self.say(f"\n✉ sent to {', '.join(mail.recipients)}: {msg['Subject']}")
        self.say(f"  Auto-Submitted: {msg['Auto-Submitted']}  In-Reply-To: {msg['In-Reply-To']}")
        if msg["Reply-To"]:
            self.say(f"  Reply-To: {msg['Reply-To']}")
        self.say(textwrap.indent(text.rstrip(), "  │ ", lambda _line: True))

    def sent_to(self, address: str, subject_part: str = "") -> ReceivedMail | None:
        for mail in self.sink.received:
            if address in mail.recipients and subject_part in mail.message["Subject"]:
                return mail
        return None

    def ack_for(self, address: str) -> ReceivedMail | None:
        for mail in self.sink.received:
            if address in mail.recipients and mail.message["Auto-Submitted"] == "auto-replied":
                return mail
        return None


async def _until(condition: Callable[[], bool], narrator: Narrator, limit: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the demo did not see what it expected in time")
        await asyncio.sleep(0.2)
        narrator.poll()


def _reminder_to(narrator: Narrator, address: str) -> ReceivedMail | None:
    """A mail of our own accord to a customer: the reminder (acknowledgements are
    auto-replied, staff answers carry no Auto-Submitted)."""
    for mail in narrator.sink.received:
        if address in mail.recipients and mail.message["Auto-Submitted"] == "auto-generated":
            return mail
    return None


async def _show_reminder(narrator: Narrator) -> None:
    """Giulia's ticket waits on her since Alice's answer: she is reminded once."""
    giulia = "giulia.rossi@example.it"
    narrator.say(
        f"\n→ Giulia has not answered Alice; after {REMIND_AFTER} (tickets.remind_after) "
        "she gets a reminder, once; without an answer the ticket would close itself "
        "after tickets.close_after"
    )
    await _until(lambda: _reminder_to(narrator, giulia) is not None, narrator, TOUR_LIMIT)
    narrator.say("\n✔ reminder sent to Giulia, in her conversation")


async def tour(app: App, imap: EmbeddedImapServer, sink: SmtpSink, out: TextIO) -> None:
    narrator = Narrator(app, sink, out)
    daemon = Daemon(app)
    running = asyncio.create_task(daemon.run_forever())
    try:
        narrator.say("→ two customers write to support@demo.example")
        await asyncio.to_thread(imap.append, BANK)
        await asyncio.to_thread(imap.append, CABLE)
        await _until(
            lambda: bool(
                narrator.ack_for("tom.baker@example.co.uk")
                and narrator.ack_for("giulia.rossi@example.it")
            ),
            narrator,
            30,
        )
        tom_ack = narrator.ack_for("tom.baker@example.co.uk")
        giulia_ack = narrator.ack_for("giulia.rossi@example.it")
        assert tom_ack is not None and giulia_ack is not None
        await _until(
            lambda: narrator.sent_to("team@demo.example", "Giulia") is not None, narrator, 30
        )
        notice = narrator.sent_to("team@demo.example", "Giulia")
        assert notice is not None
        narrator.say(
            "\n→ Alice (staff) answers Giulia by replying to the notification from her "
            "own mail client; a command on the first line raises the priority. Giulia "
            f"copied her husband ({MARCO}): the answer goes to her, with him in Cc"
        )
        await asyncio.to_thread(imap.append, staff_answer(notice))
        await _until(lambda: narrator.sent_to(MARCO) is not None, narrator, 30)
        answer = narrator.sent_to(MARCO)
        assert answer is not None
        narrator.say(
            f"\n✔ Alice's answer reached both: To {answer.message['To']}, Cc {answer.message['Cc']}"
        )
        narrator.say(
            "\n→ Tom replies to his acknowledgement, upset; Giulia's mail server "
            "answers hers with an out-of-office"
        )
        await asyncio.to_thread(
            imap.append, chaser(tom_ack.message["Message-ID"], tom_ack.message["Subject"])
        )
        await asyncio.to_thread(
            imap.append,
            out_of_office(giulia_ack.message["Message-ID"], giulia_ack.message["Subject"]),
        )
        narrator.say(f"→ nobody answers; the first-response target is {FIRST_RESPONSE}")
        await _until(
            lambda: bool(narrator.escalations) and narrator.mails >= 3, narrator, TOUR_LIMIT
        )
        await _show_reminder(narrator)
        await asyncio.sleep(1.5)
        narrator.poll()
        await show_digest(app, narrator)
    finally:
        daemon.stop()
        await running
    narrator.say(
        f"\n{len(narrator.tickets)} tickets, {narrator.mails} mails sent, "
        f"{len(narrator.escalations)} escalation(s). Giulia got Alice's answer from "
        "the support address, without the quote, the signature or Alice's address, "
        "and Marco, whom she had copied, got it in Cc; "
        "her ticket waits on her and was not escalated. Tom's follow-up and Giulia's "
        "out-of-office joined their tickets without a second acknowledgement."
    )


EVERY_DAY: dict[str, tuple[str, ...]] = {
    day: ("00:00-24:00",) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


async def show_digest(app: App, narrator: Narrator) -> None:
    """The daily digest, as the team gets it every business morning: here a run on the same
    database whose `[digest]` hour has come and whose calendar is open every day, so the
    demo shows it now, whatever the day and time."""
    narrator.say(
        "\n→ the daily digest (here due now): the team gets the unassigned tickets, each "
        "on one line with a reply link to answer it by mail"
    )
    calendar = CalendarConfig(timezone=app.config.calendar.timezone, hours=EVERY_DAY)
    config = app.config.model_copy(
        update={"digest": DigestConfig(hour=0), "calendar_tables": calendar}
    )
    now_due = build_app(config, clock=app.clock)
    try:
        await asyncio.to_thread(send_digests, now_due)
    finally:
        now_due.close()
    await _until(
        lambda: narrator.sent_to("team@demo.example", "Unassigned tickets") is not None,
        narrator,
        30,
    )


def run_demo(
    directory: Path | None, *, keep_running: bool = False, out: TextIO = sys.stdout
) -> int:
    with tempfile.TemporaryDirectory(prefix="mailbridge-demo-") as scratch:
        data_dir = (directory or Path(scratch)).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        with EmbeddedImapServer() as imap, SmtpSink() as sink:
            app = build_app(demo_config(imap, sink, data_dir))
            try:
                out.write(
                    f"mailbridge demo: IMAP on {imap.host}:{imap.port}, SMTP sink on "
                    f"{sink.host}:{sink.port}, database in {data_dir}\n"
                )
                asyncio.run(tour(app, imap, sink, out))
                if keep_running:
                    out.write("\nstill running; Ctrl-C to stop\n")
                    asyncio.run(Daemon(app).run_forever())
            finally:
                app.close()
    return 0
