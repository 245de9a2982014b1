"""/metrics after known events, through the daemon on pymap and the aiosmtpd sink, on
SQLite and PostgreSQL: tickets opened, acknowledgements, first responses, deadlines kept
and missed, reopened, spam and ignored mail show exactly what happened, from a real
Metrics registry; the counters never go back (a queue changed, spam purged); and no label
carries an address, a ticket or a name a sender or a staff member made up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from mailbridge.app import App
from mailbridge.clock import FrozenClock
from mailbridge.core.tallies import labels
from mailbridge.db import tally
from mailbridge.db.models import Tally, Ticket
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import ReceivedMail, SmtpSink
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.tickets import tallies
from mailbridge.tickets.spam_purge import purge_spam
from tests.support.builders import mail
from tests.support.served_app import app, clock, run_pass, to
from tests.support.sla_world import START
from tests.support.staff_relay import staff_reply, ticket
from tests.support.staff_world import SIGNED_STAFF

pytestmark = pytest.mark.integration

__all__ = ["app", "clock"]  # the fixtures these tests use

TEAM = SIGNED_STAFF["team_address"]
ADA, BEA = "ada@customer.example", "bea@customer.example"
H = timedelta(hours=1)
Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def app_sections() -> dict[str, Any]:
    """Two policies (billing answers within the hour), a rule sending invoices to billing,
    one ignoring bulk mail, and a blocked spam domain. Staff answer notifications as often
    as they like (no collision check)."""
    return {
        "staff": {**SIGNED_STAFF, "collision": "off"},
        "sla": [  # the first that matches holds
            {"name": "billing", "first_response": "1h", "resolution": "1d", "queues": ["billing"]},
            {"name": "standard", "first_response": "8h", "resolution": "5d"},
        ],
        "rule": [
            {"name": "invoices", "when": {"subject": {"words": ["invoice"]}},
             "then": {"queue": "billing"}},
            {"name": "bulk", "when": {"header": {"name": "X-Mailer", "matches": "blast"}},
             "then": {"ignore": True}},
        ],
        "spam": {"block": ["*@spam.example"]},
    }  # fmt: skip


def scrape(app: App) -> dict[Sample, float]:
    """Every sample a fresh registry serves, by name and sorted labels."""
    text = Metrics(app, Health(app.clock)).render().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def picked(seen: dict[Sample, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {key: value for (found, key), value in seen.items() if found == name}


def notice(sink: SmtpSink, number: int) -> ReceivedMail:
    """The team's notification of ticket `number`."""
    found = [m for m in to(sink, TEAM) if f"[#{number}]" in str(m.message["Subject"])]
    assert found, [str(m.message["Subject"]) for m in to(sink, TEAM)]
    return found[0]


def at(clock: FrozenClock, hours: float) -> None:
    """Move the clock to `hours` after the start."""
    clock.advance(START + H * hours - clock.now())


@pytest.fixture
def history(
    app: App, clock: FrozenClock, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> Iterator[App]:
    """Ada's printer (#1000, standard), Bea's invoice (#1001, billing), a blocked sender's
    spam (#1002), bulk mail ignored; Alice answers and resolves Ada's after 2 h (both
    kept), answers Bea after 3 h (missed: billing's hour), and Ada writes again."""
    imap_server.append_many(
        [
            mail(f"Ada <{ADA}>", "Printer on fire", message_id="<p1@customer.example>"),
            mail(f"Bea <{BEA}>", "Wrong invoice", message_id="<i1@customer.example>"),
            mail("Win <win@spam.example>", "You won", message_id="<s1@spam.example>"),
            mail("News <news@bulk.example>", "Offers", headers={"X-Mailer": "Blast Mailer 2"}),
        ]
    )
    run_pass(app)
    smtp_sink.wait_for(4)  # two acknowledgements, two notifications
    at(clock, 2)
    imap_server.append(
        staff_reply(notice(smtp_sink, 1000), "#resolve\nA new printer is on its way.")
    )
    run_pass(app)
    assert ticket(app, 1000).status == "resolved"
    at(clock, 3)
    imap_server.append(staff_reply(notice(smtp_sink, 1001), "The invoice is fixed."))
    run_pass(app)
    at(clock, 5)
    imap_server.append(mail(f"Ada <{ADA}>", "Re: [#1000] Printer on fire", "It burns again.\n"))
    run_pass(app)
    assert ticket(app, 1000).status == "open"
    yield app


def test_the_counters_show_exactly_what_happened(history: App) -> None:
    seen = scrape(history)

    standard = {"mailbox": "support", "queue": "support", "policy": "standard"}
    billing = {"mailbox": "support", "queue": "billing", "policy": "billing"}
    assert picked(seen, "mailbridge_tickets_created_total") == {
        labels(**standard): 2,
        labels(**billing): 1,
    }
    assert picked(seen, "mailbridge_acknowledgements_sent_total") == {(): 2}
    assert picked(seen, "mailbridge_sla_met_total") == {
        labels(deadline="first_response", policy="standard"): 1,
        labels(deadline="resolution", policy="standard"): 1,
        labels(deadline="first_response", policy="billing"): 0,
        labels(deadline="resolution", policy="billing"): 0,
    }
    assert picked(seen, "mailbridge_sla_breached_total") == {
        labels(deadline="first_response", policy="standard"): 0,
        labels(deadline="resolution", policy="standard"): 0,
        labels(deadline="first_response", policy="billing"): 1,
        labels(deadline="resolution", policy="billing"): 0,
    }
    assert picked(seen, "mailbridge_tickets_reopened_total") == {
        labels(mailbox="support", queue="support"): 1
    }
    assert picked(seen, "mailbridge_tickets_marked_spam_total") == {labels(mailbox="support"): 1}
    # Ada's two mails, Bea's, the spam; the bulk mail; Alice's two answers, which made
    # articles of their own (staff ones) and count as processed.
    assert picked(seen, "mailbridge_messages_ingested_total") == {
        labels(mailbox="support", kind="customer"): 4,
        labels(mailbox="support", kind="ignored"): 1,
        labels(mailbox="support", kind="processed"): 2,
    }
    assert picked(seen, "mailbridge_escalations_total") == {labels(level="1"): 1}  # Bea's, at 1 h
    assert picked(seen, "mailbridge_tickets_opened_total") == {labels(mailbox="support"): 3}

    # Ada answered after 7,200 s (the 2 h bucket), Bea after 10,800 s (the 4 h one).
    buckets = picked(seen, "mailbridge_first_response_seconds_bucket")
    ada = {le: v for key, v in buckets.items() if ("queue", "support") in key
           for name, le in key if name == "le"}  # fmt: skip
    bea = {le: v for key, v in buckets.items() if ("queue", "billing") in key
           for name, le in key if name == "le"}  # fmt: skip
    assert (ada["3600.0"], ada["7200.0"], ada["+Inf"]) == (0, 1, 1)
    assert (bea["7200.0"], bea["14400.0"], bea["+Inf"]) == (0, 1, 1)
    assert picked(seen, "mailbridge_first_response_seconds_sum") == {
        labels(**standard): 7200.0,
        labels(**billing): 10800.0,
    }
    assert picked(seen, "mailbridge_first_response_seconds_count") == {
        labels(**standard): 1,
        labels(**billing): 1,
    }

    # The figures of now: Ada's open again, Bea's waits on her, the spam is held.
    tickets = picked(seen, "mailbridge_tickets")
    assert tickets[labels(status="open", queue="support")] == 1
    assert tickets[labels(status="waiting", queue="billing")] == 1
    assert tickets[labels(status="spam", queue="support")] == 1
    assert sum(tickets.values()) == 3
    assert seen["mailbridge_overdue_tickets", ()] == 0
    assert seen["mailbridge_oldest_pending_outbox_age_seconds", ()] == 0


def rows_and_keys(app: App) -> tuple[int, int]:
    with app.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Tally))
        keys = session.execute(select(Tally.name, Tally.labels).distinct()).all()
    return rows or 0, len(keys)


def test_a_pass_folds_the_tally_and_folding_changes_no_figure(history: App) -> None:
    """Each daemon pass folded what it counted: one row per counter and label set. Counts
    added since (one committed, one in a savepoint rolled back) fold into them."""
    rows, keys = rows_and_keys(history)
    assert rows == keys
    totals = lambda: tally.totals(history.sessions())  # noqa: E731
    before = totals()
    with history.transaction() as session:
        tally.add(session, [(name, key, 1.0) for name, key in before])
        with pytest.raises(RuntimeError), session.begin_nested():
            tally.add(session, [(name, key, 100.0) for name, key in before])
            raise RuntimeError("this step fails: what it counted goes with it")
    assert rows_and_keys(history) == (2 * keys, keys)

    assert tallies.fold(history) == keys
    assert rows_and_keys(history) == (keys, keys)
    assert totals() == {key: value + 1 for key, value in before.items()}
    assert tallies.fold(history) == 0  # nothing left to fold


def test_the_counters_never_go_back(
    history: App, clock: FrozenClock, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    """A ticket moved to another queue, under another policy, and the spam purged: what
    was counted stays counted under the labels it had."""
    counters = ("mailbridge_tickets_created_total", "mailbridge_sla_breached_total",
                "mailbridge_sla_met_total", "mailbridge_tickets_marked_spam_total",
                "mailbridge_first_response_seconds_bucket")  # fmt: skip
    before = {name: picked(scrape(history), name) for name in counters}
    at(clock, 6)
    imap_server.append(staff_reply(notice(smtp_sink, 1001), "#queue support\nMoved."))
    run_pass(history)
    assert ticket(history, 1001).queue == "support"
    clock.advance(timedelta(days=40))  # past [spam] purge_after
    assert purge_spam(history).tickets == 1

    after = {name: picked(scrape(history), name) for name in counters}
    assert after == before


def test_no_label_carries_an_address_a_ticket_or_a_made_up_name(
    history: App, clock: FrozenClock, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink
) -> None:
    """A sender names queues in every header a rule could read; a staff member moves a
    ticket to a queue the configuration does not know, answers and resolves another: the
    made-up names show as "other", and no label value holds an address or a number."""
    made_up = "evil-queue-1f3a"
    imap_server.append(
        mail(
            f"Eve <eve+{made_up}@{made_up}.example>",
            f"[#{made_up}] queue={made_up}",
            f"#queue {made_up}\n",
            to=f"support+{made_up}@shop.example",
            headers={"X-Queue": made_up, "X-Mailbox": made_up, "X-Policy": made_up},
        )
    )
    run_pass(history)
    at(clock, 7)
    imap_server.append(staff_reply(notice(smtp_sink, 1001), f"#queue {made_up}\nMoved."))
    run_pass(history)
    assert ticket(history, 1001).queue == made_up
    imap_server.append(staff_reply(notice(smtp_sink, 1003), f"#queue {made_up}\nAnswered."))
    run_pass(history)

    seen = scrape(history)
    assert seen["mailbridge_tickets", labels(status="waiting", queue="other")] >= 1
    created = picked(seen, "mailbridge_tickets_created_total")
    assert created[labels(mailbox="support", queue="support", policy="standard")] == 3  # Eve's too
    answered = picked(seen, "mailbridge_first_response_seconds_count")
    assert answered[labels(mailbox="support", queue="other", policy="standard")] == 1

    config = history.config
    named = {
        "mailbox": {m.name for m in config.mailbox},
        "queue": set(config.queue_names),
        "policy": {p.name for p in config.sla},
    }
    with history.sessions() as session:
        numbers = {str(n) for n in session.scalars(select(Ticket.number))}
    assert numbers == {"1000", "1001", "1002", "1003"}
    for (name, key), _ in seen.items():
        for label, value in key:
            assert "@" not in value and made_up not in value, (name, label, value)
            if label != "le":  # a bucket's bound is a number of seconds
                assert not any(n in value for n in numbers), (name, label, value)
            if label in named:
                assert value in named[label] | {"other"}, (name, label, value)
