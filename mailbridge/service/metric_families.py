"""The /metrics families read from the database (a Snapshot): gauges of what is still in
play (the backlog, spam held, mail to send, quarantine), and the counters the database
keeps as things happen (the tally, core/tallies.py: messages, tickets opened and reopened,
acknowledgements, first responses, deadlines kept and missed, escalations, ratings, spam).

Label values are the configuration's names, or fixed words (a status, a state, a limit):
a queue or mailbox the configuration does not name shows as "other", so neither a
sender nor a queue a staff member types can add a series.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from mailbridge.config import Config
from mailbridge.core import tallies
from mailbridge.core.ack_policy import LIMITS
from mailbridge.core.rating import RATINGS
from mailbridge.core.sla import DEADLINES
from mailbridge.core.states import OutboxState, TicketStatus
from mailbridge.core.tallies import OTHER, Labels, bounded, labels, le_label
from mailbridge.db.tally import Totals
from mailbridge.service.snapshot import Snapshot

__all__ = ["database_families"]


def database_families(data: Snapshot, config: Config, now: datetime) -> Iterator[Metric]:
    yield from _tickets(data, config, now)
    yield from _mail(data, now)
    yield from _tallied(data.tallies, config)
    yield _first_responses(data.tallies)


def _tickets(data: Snapshot, config: Config, now: datetime) -> Iterator[Metric]:
    opened = CounterMetricFamily(
        "mailbridge_tickets_opened",
        "Tickets opened, by mailbox; spam included (mailbridge_tickets_created_total by mailbox)",
        labels=["mailbox"],
    )
    by_mailbox: dict[str, float] = {mailbox.name: 0.0 for mailbox in config.mailbox}
    for (name, key), value in data.tallies.items():
        if name == tallies.TICKETS_CREATED:
            mailbox = dict(key).get("mailbox", OTHER)
            by_mailbox[mailbox] = by_mailbox.get(mailbox, 0.0) + value
    for mailbox, count in sorted(by_mailbox.items()):
        opened.add_metric([mailbox], count)
    yield opened
    yield _in_play(data, config)
    yield from _spam(data)
    yield GaugeMetricFamily(
        "mailbridge_unanswered_tickets",
        "Open tickets still waiting for a first response (spam is not open)",
        value=data.unanswered,
    )
    yield GaugeMetricFamily(
        "mailbridge_overdue_tickets",
        "Open tickets past their first-response deadline without an answer",
        value=data.overdue,
    )
    yield GaugeMetricFamily(
        "mailbridge_oldest_unanswered_ticket_age_seconds",
        "How long the oldest ticket without a first response has waited (0 when none)",
        value=data.oldest_unanswered_age(now),
    )


def _in_play(data: Snapshot, config: Config) -> Metric:
    """The tickets still in play by status and queue: the backlog, and spam held."""
    family = GaugeMetricFamily(
        "mailbridge_tickets",
        "Tickets by status and queue, now: the backlog (new, open, waiting) and spam held",
        labels=["status", "queue"],
    )
    named = config.queue_names
    counts: dict[tuple[str, str], int] = {}
    for (status, queue), count in data.tickets_by_status_queue.items():
        key = (str(status), bounded(queue, named))
        counts[key] = counts.get(key, 0) + count
    for backlog in (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.WAITING):
        for own in {mailbox.effective_queue for mailbox in config.mailbox}:
            counts.setdefault((str(backlog), own), 0)  # the backlog shows before a ticket
    for (word, queue), count in sorted(counts.items()):
        family.add_metric([word, queue], count)
    return family


def _spam(data: Snapshot) -> Iterator[Metric]:
    """Spam costs nothing in the other figures; these two say how much of it there is."""
    yield GaugeMetricFamily(
        "mailbridge_spam_tickets",
        "Spam tickets held until [spam] purge_after purges them",
        value=data.spam,
    )
    purged = CounterMetricFamily(
        "mailbridge_spam_tickets_purged",
        "Spam tickets deleted by the spam purge, by mailbox",
        labels=["mailbox"],
    )
    for mailbox, count in sorted(data.spam_purged.items()):
        purged.add_metric([mailbox], count)
    yield purged


def _mail(data: Snapshot, now: datetime) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "mailbridge_quarantined_messages",
        "Messages processing gave up on, waiting for a person",
        value=data.quarantined,
    )
    outbox = GaugeMetricFamily(
        "mailbridge_outbox_messages",
        "Outgoing mails waiting to be sent or given up on",
        labels=["state"],
    )
    for state in (OutboxState.PENDING, OutboxState.FAILED):
        outbox.add_metric([state], data.outbox_by_state.get(state, 0))
    yield outbox
    yield GaugeMetricFamily(
        "mailbridge_oldest_pending_outbox_age_seconds",
        "How long the oldest mail still to be sent has waited (0 when none)",
        value=data.oldest_pending_outbox_age(now),
    )


# --- the counters kept as things happen ----------------------------------------------------


def _expected(name: str, config: Config) -> list[Labels]:
    """Label sets shown at 0 before their first count, so a rate or a ratio has a series
    from the start: each deadline of each policy, each mailbox, limit and verdict."""
    if name == tallies.ACKNOWLEDGEMENTS_SENT:
        return [()]
    if name == tallies.ACKNOWLEDGEMENTS_SUPPRESSED:
        return [labels(limit=limit) for limit in LIMITS]
    if name == tallies.RATINGS:
        return [labels(verdict=verdict) for verdict in RATINGS]
    if name in (tallies.SLA_MET, tallies.SLA_BREACHED):
        return [labels(deadline=d, policy=p.name) for d in DEADLINES for p in config.sla]
    if name == tallies.TICKETS_MARKED_SPAM:
        return [labels(mailbox=mailbox.name) for mailbox in config.mailbox]
    if name == tallies.MESSAGES_INGESTED:
        return [labels(mailbox=m.name, kind=k) for m in config.mailbox for k in _FIRST_KINDS]
    return []


_FIRST_KINDS = ("customer", "ignored")  # of messages, shown before the first one


def _tallied(totals: Totals, config: Config) -> Iterator[Metric]:
    for name, (label_names, description) in tallies.COUNTERS.items():
        family = CounterMetricFamily("mailbridge_" + name, description, labels=label_names)
        values = dict.fromkeys(_expected(name, config), 0.0)
        values.update({key: value for (counter, key), value in totals.items() if counter == name})
        for key, value in sorted(values.items()):
            found = dict(key)
            family.add_metric([found.get(label, OTHER) for label in label_names], value)
        yield family


def _first_responses(totals: Totals) -> Metric:
    """The histogram, from its rows: a count per bucket (made cumulative here) and a sum."""
    family = HistogramMetricFamily(
        "mailbridge_" + tallies.FIRST_RESPONSE,
        tallies.FIRST_RESPONSE_HELP,
        labels=tallies.FIRST_RESPONSE_LABELS,
    )
    in_bucket: dict[Labels, dict[str, float]] = {}
    sums: dict[Labels, float] = {}
    for (name, key), value in totals.items():
        if name == tallies.FIRST_RESPONSE + tallies.BUCKET:
            le = dict(key).get("le", "+Inf")
            series = tuple(pair for pair in key if pair[0] != "le")
            counts = in_bucket.setdefault(series, {})
            counts[le] = counts.get(le, 0.0) + value
        elif name == tallies.FIRST_RESPONSE + tallies.SUM:
            sums[key] = value
    for series, counts in sorted(in_bucket.items()):
        running, buckets = 0.0, []
        for bound in (*tallies.FIRST_RESPONSE_BUCKETS, math.inf):
            running += counts.get(le_label(bound), 0.0)
            buckets.append((le_label(bound), running))
        found = dict(series)
        values = [found.get(label, OTHER) for label in tallies.FIRST_RESPONSE_LABELS]
        family.add_metric(values, buckets, sums.get(series, 0.0))
    return family
