"""The daemon: one poller per mailbox, one sender, and a scheduler for the SLA sweep.

`run_once` is the burst mode (`mailbridge run --once`): ingest every mailbox, process,
send, sweep, send again, and return. `run_forever` does the same continuously until told
to stop, then finishes the message in hand and returns. What each part is doing is kept in
`health`; `ready` is set once every mailbox has connected or failed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailbridge.adapters.imap import ImapMailbox, ImapSettings
from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.adapters.templates import TemplateSet
from mailbridge.app import App, identity_for
from mailbridge.config import Config, MailboxConfig
from mailbridge.db.models import Outbox
from mailbridge.errors import DeliveryError, PermanentError
from mailbridge.jobs.escalate import next_due, sweep
from mailbridge.jobs.fetch import fetch_mailbox
from mailbridge.jobs.outbox import SendReport, send_pending, smtp_settings
from mailbridge.jobs.process import ProcessReport, process_pending
from mailbridge.jobs.retention import purge
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics

log = logging.getLogger(__name__)

IDLE_SLICE = 60.0  # seconds per IDLE; stop() interrupts it, the server's limit is 29 min
MAX_BACKOFF = 300.0
STOP_GRACE = 20.0  # seconds for pollers to finish and for a last outbox flush
SWEEP_GAP = timedelta(seconds=1)  # the exact-time sweep never runs back to back

ImapFactory = Callable[[ImapSettings], ImapMailbox]


@dataclass
class PassReport:
    fetched: dict[str, int] = field(default_factory=dict)
    failed_mailboxes: dict[str, str] = field(default_factory=dict)
    processed: ProcessReport = field(default_factory=ProcessReport)
    sent: SendReport = field(default_factory=SendReport)
    escalated: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed_mailboxes


@dataclass(eq=False)
class _Poller:
    """The task watching one mailbox, and what it needs to be stopped on its own."""

    mailbox: MailboxConfig
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # connected or failed once
    task: asyncio.Task[None] | None = None
    connection: ImapMailbox | None = None

    @property
    def component(self) -> str:
        return f"mailbox:{self.mailbox.source_name}"

    def halt(self) -> None:
        self.stop.set()
        if self.connection is not None:
            self.connection.interrupt()


def watched_sources(config: Config) -> list[MailboxConfig]:
    """Every folder a poller watches: each mailbox, and the Sent folders in observe mode."""
    return [source for mailbox in config.mailbox for source in mailbox.sources()]


def imap_settings(mailbox: MailboxConfig) -> ImapSettings:
    return ImapSettings(
        host=mailbox.host,
        port=mailbox.effective_port,
        security=mailbox.security,
        username=mailbox.username,
        password=mailbox.password.get_secret_value() if mailbox.password else "",
        folder=mailbox.folder,
    )


class Daemon:
    def __init__(
        self,
        app: App,
        *,
        imap_factory: ImapFactory = ImapMailbox,
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.app = app
        self.imap_factory = imap_factory
        self._fixed_smtp = smtp is not None
        self.smtp = smtp or smtp_settings(app)
        self.health = Health(app.clock)
        self.metrics = Metrics(app, self.health)
        self.ready = asyncio.Event()  # every mailbox has connected, or failed to, once
        self._process_lock = asyncio.Lock()
        self._outbox_wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = asyncio.Event()  # set once pollers are done: last outbox pass
        self._pollers: dict[str, _Poller] = {}
        self._sender: asyncio.Task[None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def run_once(self) -> PassReport:
        report = PassReport()
        for mailbox in watched_sources(self.app.config):
            try:
                fetched = await asyncio.to_thread(self._fetch_with_new_connection, mailbox)
                report.fetched[mailbox.source_name] = fetched
            except DeliveryError as exc:
                log.error("mailbox %s: %s", mailbox.source_name, exc)
                report.failed_mailboxes[mailbox.source_name] = str(exc)
        report.processed = await asyncio.to_thread(process_pending, self.app)
        report.escalated = await asyncio.to_thread(sweep, self.app)
        report.sent = await send_pending(self.app, self.smtp)
        return report

    def _fetch_with_new_connection(self, mailbox: MailboxConfig) -> int:
        conn = self.imap_factory(imap_settings(mailbox))
        try:
            conn.connect()
            return fetch_mailbox(self.app, mailbox, conn).fetched
        finally:
            conn.close()

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def stop(self) -> None:
        self._stop.set()
        for poller in self._pollers.values():
            poller.halt()

    def alive(self) -> str | None:
        """None while every part of the daemon runs; else which part has stopped. (A mail
        server being down is not this: the part waiting for it is alive and retrying.)"""
        if self._sender is None or self._sender.done():
            return "the outbox sender is not running"
        for name, poller in self._pollers.items():
            if poller.task is None or poller.task.done():
                return f"the poller of mailbox {name} is not running"
        if self._scheduler is None or not self._scheduler.running:
            return "the scheduler is not running"
        return None

    async def reconfigure(self, config: Config, templates: TemplateSet) -> None:
        """Switch to a new, already checked configuration and template set: between
        messages, never in the middle of one. Pollers of changed mailboxes reconnect."""
        async with self._process_lock:
            self.app.config, self.app.templates = config, templates
            self.app.identity = identity_for(config)
            self.app.__dict__.pop("reply_secret", None)  # cached; the staff secret may change
            if not self._fixed_smtp:
                self.smtp = smtp_settings(self.app)
        if self._scheduler is not None:
            self._scheduler.reschedule_job(
                "sweep", trigger="interval", seconds=config.service.sweep_interval.total_seconds())
            self._schedule_purge(self._scheduler)
        wanted = {mailbox.source_name: mailbox for mailbox in watched_sources(config)}
        for name, poller in list(self._pollers.items()):
            if wanted.get(name) != poller.mailbox:
                self._spawn(self._replace_poller(poller, wanted.get(name)), f"replace:{name}")
        for name, mailbox in wanted.items():
            if name not in self._pollers:  # a changed one is replaced once it has stopped
                self._start_poller(mailbox)
        self._outbox_wakeup.set()

    async def swap_templates(self, templates: TemplateSet) -> None:
        """Switch to a new, already checked template set between messages."""
        async with self._process_lock:
            self.app.templates = templates

    async def _replace_poller(self, poller: _Poller, mailbox: MailboxConfig | None) -> None:
        """Stop a poller (it finishes what it holds), then start its successor, if any."""
        poller.halt()
        if poller.task is not None:
            await asyncio.wait([poller.task], timeout=STOP_GRACE)
        if self._pollers.get(poller.mailbox.source_name) is poller:
            del self._pollers[poller.mailbox.source_name]
            self.health.remove(poller.component)
        if mailbox is not None and not self._stop.is_set():
            self._start_poller(mailbox)
            log.info("mailbox %s: reconnecting with its new settings", mailbox.source_name)

    async def run_forever(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then let each poller finish what it holds."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self._sweep, "interval", id="sweep",
            seconds=self.app.config.service.sweep_interval.total_seconds(),
            next_run_time=self.app.clock.now(), max_instances=1, coalesce=True,
        )
        self._schedule_purge(scheduler)
        scheduler.start()
        self._scheduler = scheduler
        self.health.set("scheduler", "running")
        self.health.set("smtp", "idle")
        await self._process()  # whatever a previous run stored but did not finish
        for mailbox in watched_sources(self.app.config):
            self._start_poller(mailbox)
        self._sender = sender = asyncio.create_task(self._send_loop(), name="sender")
        announce = asyncio.create_task(self._until_settled(list(self._pollers.values())))
        log.info("mailbridge running: %d mailbox(es)", len(self.app.config.mailbox))
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing the work in hand")
            announce.cancel()
            scheduler.shutdown(wait=False)
            # Pollers see the stop flag between steps; cancelling them instead could close
            # a connection under a thread that is still using it.
            pollers = [p.task for p in self._pollers.values() if p.task is not None]
            late: set[asyncio.Task[None]] = set()
            if pollers or self._background:
                _, late = await asyncio.wait([*pollers, *self._background], timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            # The sender is not cancelled mid-send (a mail accepted but not yet marked would
            # go out twice): it makes one last pass and returns, or is cut off after a grace.
            self._draining.set()
            self._outbox_wakeup.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sender, STOP_GRACE)
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            log.info("stopped")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _until_settled(self, pollers: list[_Poller]) -> None:
        await asyncio.gather(*(poller.settled.wait() for poller in pollers))
        self.ready.set()

    async def _pause(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Sleep, but wake at once when told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop or self._stop).wait(), seconds)

    async def _sweep(self) -> None:
        try:
            fired = await asyncio.to_thread(sweep, self.app)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.exception("escalation sweep failed")
            self.health.failing("scheduler", f"escalation sweep failed: {exc}")
            return
        self.health.set("scheduler", "running")
        if fired:
            self._outbox_wakeup.set()
        await self._wake_at_next_due()

    async def _wake_at_next_due(self) -> None:
        """Besides the interval, sweep at the moment the next warning or level falls due."""
        try:
            due = await asyncio.to_thread(next_due, self.app)
        except Exception:  # noqa: BLE001 - the interval sweep still runs
            log.exception("could not look up the next escalation time")
            return
        scheduler = self._scheduler
        if due is None or scheduler is None or not scheduler.running:
            return
        scheduler.add_job(self._sweep, "date", id="sweep-at-next-due", replace_existing=True,
                          run_date=max(due, self.app.clock.now() + SWEEP_GAP),
                          misfire_grace_time=None)

    def _schedule_purge(self, scheduler: AsyncIOScheduler) -> None:
        if scheduler.get_job("purge") is not None:
            scheduler.remove_job("purge")
        retention = self.app.config.retention
        if retention.purge_after is not None:
            scheduler.add_job(self._purge, "interval", id="purge",
                              seconds=retention.interval.total_seconds(),
                              next_run_time=self.app.clock.now(), max_instances=1, coalesce=True)

    async def _purge(self) -> None:
        try:
            report = await asyncio.to_thread(purge, self.app)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            log.exception("retention: purge failed")
            self.health.failing("retention", f"purge failed: {exc}")
            return
        self.health.remove("retention")
        if report.anything:
            log.info("retention: %s", report.summary())

    async def _process(self) -> None:
        async with self._process_lock:
            report = await asyncio.to_thread(process_pending, self.app, self._stop.is_set)
        if report.processed or report.ignored:
            self._outbox_wakeup.set()
            await self._wake_at_next_due()  # a new ticket may fall due before the interval

    async def _send_loop(self) -> None:
        while True:
            self._outbox_wakeup.clear()
            last = self._draining.is_set()
            try:
                self._smtp_health(await send_pending(self.app, self.smtp,
                                                     observe=self._observe_sent))
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any one failure
                log.exception("outbox pass failed")
                self.health.failing("smtp", f"outbox pass failed: {exc}")
            if last:
                return
            interval = self.app.config.service.outbox_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_wakeup.wait(), interval)

    def _observe_sent(self, row: Outbox, seconds: float) -> None:
        queued = (self.app.clock.now() - row.created_at).total_seconds()
        self.metrics.observe_sent(row.kind, seconds, queued)

    def _smtp_health(self, report: SendReport) -> None:
        if report.sent:
            self.health.set("smtp", "sending")
        elif report.deferred:
            self.health.failing("smtp", f"{report.deferred} mail(s) deferred: the server "
                                "refused them for now or could not be reached")

    def _start_poller(self, mailbox: MailboxConfig) -> _Poller:
        poller = _Poller(mailbox)
        if self._stop.is_set():
            poller.stop.set()
        self.health.set(poller.component, "connecting", ok=False, detail="not connected yet")
        poller.task = asyncio.create_task(self._poll_loop(poller),
                                          name=f"poll:{mailbox.source_name}")
        self._pollers[mailbox.source_name] = poller
        return poller

    def _poller_failed(self, poller: _Poller, detail: str) -> None:
        self.health.failing(poller.component, detail)
        self.metrics.imap_reconnects.labels(poller.mailbox.name).inc()
        poller.settled.set()

    async def _poll_loop(self, poller: _Poller) -> None:
        mailbox, backoff = poller.mailbox, 1.0
        while not poller.stop.is_set():
            conn = self.imap_factory(imap_settings(mailbox))
            poller.connection = conn
            try:
                await asyncio.to_thread(conn.connect)
                log.info("mailbox %s: connected to %s", mailbox.source_name, mailbox.host)
                backoff = 1.0
                self.health.set(poller.component, "connected")
                poller.settled.set()
                await self._watch(poller, conn)
            except DeliveryError as exc:
                kind = "refused" if isinstance(exc, PermanentError) else "lost"
                log.error("mailbox %s: connection %s: %s; retrying in %.0f s",
                          mailbox.source_name, kind, exc, backoff)
                self._poller_failed(poller, f"connection {kind}: {exc}")
                await self._pause(backoff, poller.stop)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as exc:  # noqa: BLE001 - a poller that dies would leave mail unread
                log.exception("mailbox %s: unexpected failure; reconnecting in %.0f s",
                              mailbox.source_name, backoff)
                self._poller_failed(poller, f"unexpected failure: {exc}")
                await self._pause(backoff, poller.stop)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                poller.connection = None
                await asyncio.to_thread(conn.close)

    async def _watch(self, poller: _Poller, conn: ImapMailbox) -> None:
        """Fetch, process, then wait for news: IDLE when offered, else the poll interval."""
        mailbox = poller.mailbox
        interval = mailbox.poll_interval.total_seconds()
        idle = await asyncio.to_thread(conn.supports_idle)
        while not poller.stop.is_set():
            self.health.set(poller.component, "fetching")
            report = await asyncio.to_thread(fetch_mailbox, self.app, mailbox, conn,
                                             poller.stop.is_set)
            if report.stored:
                await self._process()
            self.health.set(poller.component, "idle" if idle else "polling")
            if idle:
                await self._idle(poller, conn, interval)
            else:
                await self._pause(interval, poller.stop)

    async def _idle(self, poller: _Poller, conn: ImapMailbox, interval: float) -> None:
        remaining = interval
        while remaining > 0 and not poller.stop.is_set():
            slice_ = min(IDLE_SLICE, remaining)
            if await asyncio.to_thread(conn.idle_wait, slice_):
                return
            remaining -= slice_
