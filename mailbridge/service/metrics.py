"""Prometheus metrics: what happened in this process (reconnects, send latency) as ordinary
counters, and what the database holds (messages, tickets, outbox, escalations) computed from
it at scrape time, so those match it exactly and survive restarts."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailbridge.app import App
from mailbridge.core.ack_policy import LIMITS
from mailbridge.core.rating import RATINGS
from mailbridge.core.states import OutboxState
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.service.health import Health
from mailbridge.service.snapshot import Snapshot, snapshot

__all__ = ["CONTENT_TYPE", "Metrics"]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
_SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_DELAY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0)


class Metrics:
    """One registry per daemon (not the global default one, so tests can run several)."""

    def __init__(self, app: App, health: Health, tokens: TokenProviders | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.imap_reconnects = Counter(
            "mailbridge_imap_reconnects",
            "IMAP connections lost or refused, by mailbox",
            ["mailbox"],
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "mailbridge_send_latency_seconds",
            "Time the SMTP server took to accept one mail",
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.delivery_delay = Histogram(
            "mailbridge_delivery_delay_seconds",
            "Time from queueing a mail to the SMTP server accepting it, by kind",
            ["kind"],
            buckets=_DELAY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(app))
        self.registry.register(HealthCollector(health))
        if tokens is not None:
            self.registry.register(TokenCollector(tokens))

    def observe_sent(self, kind: str, smtp_seconds: float, queued_seconds: float) -> None:
        self.send_latency.observe(smtp_seconds)
        self.delivery_delay.labels(kind).observe(max(queued_seconds, 0.0))

    def render(self) -> bytes:
        """The exposition text; reads the database, so call it from a worker thread."""
        return generate_latest(self.registry)


class HealthCollector(Collector):
    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "mailbridge_component_healthy",
            "1 when the component is well, 0 when it is failing",
            labels=["component"],
        )
        for name, state in self._health.snapshot().items():
            family.add_metric([name], 1.0 if state.ok else 0.0)
        yield family


class TokenCollector(Collector):
    def __init__(self, tokens: TokenProviders) -> None:
        self._tokens = tokens

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "mailbridge_oauth_token_seconds_remaining",
            "Seconds the current OAuth2 access token of an account (a mailbox name, or [smtp]) "
            "is still valid; 0 when expired, and stays 0 when it cannot be refreshed",
            labels=["account"],
        )
        for account, provider in sorted(self._tokens.all().items()):
            left = provider.seconds_left()
            if left is not None:
                family.add_metric([account], left)
        yield family


class DatabaseCollector(Collector):
    """Reads the database at scrape time. A large database takes a while to count, so a
    reading is reused for twenty times as long as it took (at least a few seconds): however
    often Prometheus asks, counting costs at most a twentieth of one core."""

    def __init__(self, app: App, *, reuse_factor: float = 20.0, min_reuse: float = 5.0) -> None:
        self._app = app
        self._reuse_factor, self._min_reuse = reuse_factor, min_reuse
        self._cached: tuple[float, datetime, Snapshot] | None = None

    def read(self) -> tuple[datetime, Snapshot]:
        """(when, what) of a reading young enough to reuse, or a fresh one."""
        started = time.monotonic()
        if self._cached is not None and started < self._cached[0]:
            return self._cached[1], self._cached[2]
        now = self._app.clock.now()
        with self._app.sessions() as session:
            data = snapshot(session, now)
        took = time.monotonic() - started
        self._cached = (started + max(self._min_reuse, took * self._reuse_factor), now, data)
        return now, data

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families are built at scrape time; nothing to check up front

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("mailbridge_database_up", "1 when the database answered this scrape")
        try:
            _, data = self.read()
        except Exception:  # a scrape must answer even when the database does not
            log.exception("metrics: cannot read the database")
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up

        ingested = CounterMetricFamily(
            "mailbridge_messages_ingested",
            "Messages stored from IMAP, by mailbox and kind (classification, or the state of "
            "a message that made no article)",
            labels=["mailbox", "kind"],
        )
        for (mailbox, kind), count in sorted(data.ingested.items()):
            ingested.add_metric([mailbox, kind], count)
        yield ingested

        opened = CounterMetricFamily(
            "mailbridge_tickets_opened",
            "Tickets opened, by mailbox; spam included, purged spam too",
            labels=["mailbox"],
        )
        for mailbox, count in sorted(data.tickets_opened.items()):
            opened.add_metric([mailbox], count)
        yield opened
        yield from _spam(data)

        yield CounterMetricFamily(
            "mailbridge_acknowledgements_sent",
            "Acknowledgements the SMTP server accepted",
            value=data.acknowledgements_sent,
        )

        withheld = CounterMetricFamily(
            "mailbridge_acknowledgements_suppressed",
            "Acknowledgements withheld by an hourly limit, by limit (address, domain, mailbox)",
            labels=["limit"],
        )
        for limit in LIMITS:
            withheld.add_metric([limit], data.acknowledgements_withheld.get(limit, 0))
        yield withheld

        outbox = GaugeMetricFamily(
            "mailbridge_outbox_messages",
            "Outgoing mails waiting to be sent or given up on",
            labels=["state"],
        )
        for state in (OutboxState.PENDING, OutboxState.FAILED):
            outbox.add_metric([state], data.outbox_by_state.get(state, 0))
        yield outbox

        escalations = CounterMetricFamily(
            "mailbridge_escalations", "Escalations fired, by level", labels=["level"]
        )
        for level, count in sorted(data.escalations.items()):
            escalations.add_metric([str(level)], count)
        yield escalations

        ratings = CounterMetricFamily(
            "mailbridge_ratings",
            "Satisfaction ratings customers gave by mail, by verdict (good, bad)",
            labels=["verdict"],
        )
        for verdict in RATINGS:
            ratings.add_metric([verdict], data.ratings.get(verdict, 0))
        yield ratings

        yield GaugeMetricFamily(
            "mailbridge_quarantined_messages",
            "Messages processing gave up on, waiting for a person",
            value=data.quarantined,
        )
        yield GaugeMetricFamily(
            "mailbridge_unanswered_tickets",
            "Open tickets still waiting for a first response (spam is not open)",
            value=data.unanswered,
        )
        yield GaugeMetricFamily(
            "mailbridge_oldest_unanswered_ticket_age_seconds",
            "How long the oldest ticket without a first response has waited (0 when none)",
            value=data.oldest_unanswered_age(self._app.clock.now()),
        )


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
