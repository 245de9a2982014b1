"""Prometheus metrics: what happened in this process (reconnects, send latency, the last
look into each mailbox) as ordinary counters and gauges, and what the database holds read
at scrape time (service/metric_families.py): figures recounted from the tables, and the
counters the database keeps as things happen (core/tallies.py). Those match the database,
survive restarts and are the same whichever instance is asked."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailbridge.app import App
from mailbridge.config import MailboxConfig
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.service.health import Health
from mailbridge.service.metric_families import database_families
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
        self.last_poll = Gauge(
            "mailbridge_mailbox_last_poll_timestamp_seconds",
            "When this instance last finished looking for new mail in a mailbox's folder "
            "(Unix time); only the instance holding the folder's lease polls it",
            ["mailbox", "folder"],
            registry=self.registry,
        )
        self._clock = app.clock
        self.registry.register(DatabaseCollector(app))
        self.registry.register(HealthCollector(health))
        if tokens is not None:
            self.registry.register(TokenCollector(tokens))

    def polled(self, mailbox: MailboxConfig) -> None:
        """A look for new mail in the folder is done (the server answered)."""
        self.last_poll.labels(mailbox.name, mailbox.folder).set(self._clock.now().timestamp())

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
        signed_in = GaugeMetricFamily(
            "mailbridge_oauth_signed_in",
            "1 while an account's OAuth2 sign-in can give tokens; 0 when it needs "
            "`mailbridge oauth login` (none yet, revoked, refused)",
            labels=["account"],
        )
        for account, provider in sorted(self._tokens.all().items()):
            left = provider.seconds_left()
            if left is not None:
                family.add_metric([account], left)
            lost = provider.problem or provider.sign_in_problem()
            signed_in.add_metric([account], 0.0 if lost else 1.0)
        yield family
        yield signed_in


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
        yield from database_families(data, self._app.config, self._app.clock.now())
