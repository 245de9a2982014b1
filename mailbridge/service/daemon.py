"""The daemon: one poller per mailbox, one sender, and a scheduler for the SLA sweep.

`run_once` is the burst mode (`mailbridge run --once`): ingest every mailbox, process,
send, sweep, send again, and return. `run_forever` does the same continuously until told
to stop, then finishes the message in hand and returns. What each part is doing is kept in
`health`; `ready` is set once every mailbox this instance holds has connected or failed to.

Several instances may share one database: each polls only the mailboxes it holds a lease
on (see service/pollers.py); the others show as "elsewhere".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailbridge.adapters.faq_files import load_index
from mailbridge.adapters.imap import ImapMailbox
from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.adapters.templates import TemplateSet
from mailbridge.app import App, identity_for
from mailbridge.config import Config, MailboxConfig
from mailbridge.core.faq import FaqIndex
from mailbridge.db.models import Outbox
from mailbridge.db.outage import database_outage, database_place
from mailbridge.errors import DeliveryError, describe_error
from mailbridge.inbound.leases import Keeper, LeaseLost
from mailbridge.inbound.process import ProcessReport, new_preparer, process_pending
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenProvider, TokenProviders
from mailbridge.outbound.send import SendReport, bring_forward, send_pending, smtp_settings
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.outages import OutageWatch
from mailbridge.service.pollers import (
    STOP_GRACE,
    ImapFactory,
    Pollers,
    fetch_with_new_connection,
    watched_sources,
)
from mailbridge.tickets.escalate import next_due, sweep
from mailbridge.tickets.retention import purge

log = logging.getLogger(__name__)

SWEEP_GAP = timedelta(seconds=1)  # the exact-time sweep never runs back to back
PROBE_EVERY = 60.0  # seconds between offers of waiting mail to a server refusing it
__all__ = ["STOP_GRACE", "Daemon", "PassReport"]


@dataclass
class PassReport:
    fetched: dict[str, int] = field(default_factory=dict)
    failed_mailboxes: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)  # source -> instance polling it
    processed: ProcessReport = field(default_factory=ProcessReport)
    sent: SendReport = field(default_factory=SendReport)
    escalated: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed_mailboxes


class Daemon:
    def __init__(
        self,
        app: App,
        *,
        imap_factory: ImapFactory = ImapMailbox,
        smtp: SmtpSettings | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.app = app
        self.imap_factory = imap_factory
        self._fixed_smtp = smtp is not None
        self.tokens = TokenProviders(app.config, app.clock)  # OAuth2 sign-ins, if any
        self.smtp = self._signed_in(smtp or smtp_settings(app))
        self.health = Health(app.clock)
        self.metrics = Metrics(app, self.health, self.tokens)
        self.outage = OutageWatch(self.health, database_place(app.config.database_url))
        self.ready = asyncio.Event()  # every mailbox has connected, or failed to, once
        self._process_lock = asyncio.Lock()
        self._outbox_wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = asyncio.Event()  # set once pollers are done: last outbox pass
        self._sender: asyncio.Task[None] | None = None
        self._refused_at: float | None = None  # monotonic: the SMTP server turned mail away
        self._probed_at = 0.0
        self._scheduler: AsyncIOScheduler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._given_keeper = keeper  # who this instance is among several; default: the process
        self.preparer = new_preparer(app)  # its parse worker lives as long as a run
        self.pollers = Pollers(
            app,
            imap_factory=imap_factory,
            health=self.health,
            metrics=self.metrics,
            outage=self.outage,
            stopping=self._stop,
            process=self._process,
            spawn=self._spawn,
            tokens=self.tokens,
        )

    async def run_once(self) -> PassReport:
        """One pass; each mailbox under its lease for the pass, skipped (and reported) when
        a running instance polls it."""
        report = PassReport()
        keeper = self._given_keeper or Keeper(self.app, sole_on_sqlite=True)
        await asyncio.to_thread(keeper.start)
        try:
            for mailbox in watched_sources(self.app.config):
                await self._fetch_once(keeper, mailbox, report)
        finally:
            await asyncio.to_thread(keeper.retire)
        try:  # the parse worker starts with the first message to parse, if there is one
            report.processed = await asyncio.to_thread(
                process_pending, self.app, preparer=self.preparer
            )
        finally:
            await asyncio.to_thread(self.preparer.close)
        report.escalated = await asyncio.to_thread(sweep, self.app)
        report.sent = await send_pending(self.app, self.smtp)
        return report

    async def _fetch_once(self, keeper: Keeper, mailbox: MailboxConfig, report: PassReport) -> None:
        name = mailbox.source_name
        owner = await asyncio.to_thread(keeper.take, name)
        if owner is not None:
            log.warning("mailbox %s: skipped: instance %s polls it", name, owner)
            report.elsewhere[name] = owner
            return
        try:
            fetched = await asyncio.to_thread(
                fetch_with_new_connection,
                self.app,
                mailbox,
                keeper.tenure,
                self.imap_factory,
                self.tokens,
            )
            report.fetched[name] = fetched
        except SignInRequired as exc:
            log.error("%s", exc)  # it names the mailbox and the command to run
            report.failed_mailboxes[name] = str(exc)
        except (DeliveryError, LeaseLost) as exc:
            log.error("mailbox %s: %s", name, exc)
            report.failed_mailboxes[name] = str(exc)

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def stop(self) -> None:
        self._stop.set()
        self.pollers.halt()

    def alive(self) -> str | None:
        """None while every part of the daemon runs; else which part has stopped. (A mail
        server being down is not this: the part waiting for it is alive and retrying.)"""
        if self._sender is None or self._sender.done():
            return "the outbox sender is not running"
        problem = self.pollers.alive()
        if problem is not None:
            return problem
        if self._scheduler is None or not self._scheduler.running:
            return "the scheduler is not running"
        return None

    async def reconfigure(
        self, config: Config, templates: TemplateSet, *, faq: FaqIndex | None = None
    ) -> None:
        """Switch to a new, already checked configuration and template set: between
        messages, never in the middle of one. Pollers of changed mailboxes reconnect; new
        ones are polled once their lease is taken, removed ones are handed back."""
        async with self._process_lock:
            self.app.config, self.app.templates = config, templates
            self.app.identity = identity_for(config)
            self.app.__dict__.pop("reply_secret", None)  # cached; the staff secret may change
            # Checked with the configuration, like the templates (loaded here if not given).
            self.app.__dict__["faq"] = (
                faq if faq is not None or config.faq.dir is None else load_index(config)
            )
            self.tokens.reconfigure(config)
            if not self._fixed_smtp:
                self.smtp = self._signed_in(smtp_settings(self.app))
        if self._scheduler is not None:
            self._scheduler.reschedule_job(
                "sweep", trigger="interval", seconds=config.service.sweep_interval.total_seconds()
            )
            self._schedule_purge(self._scheduler)
        self.pollers.reconfigure(config)
        self._outbox_wakeup.set()

    async def swap_templates(self, templates: TemplateSet) -> None:
        """Switch to a new, already checked template set between messages."""
        async with self._process_lock:
            self.app.templates = templates

    async def run_forever(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then let each poller finish what it holds."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self._sweep,
            "interval",
            id="sweep",
            seconds=self.app.config.service.sweep_interval.total_seconds(),
            next_run_time=self.app.clock.now(),
            max_instances=1,
            coalesce=True,
        )
        self._schedule_purge(scheduler)
        scheduler.start()
        self._scheduler = scheduler
        self.health.set("scheduler", "running")
        self.health.set("smtp", "idle")
        await asyncio.to_thread(self.preparer.start)  # the parse worker, before any mail
        try:
            await self._process()  # whatever a previous run stored but did not finish
        except Exception as exc:  # noqa: BLE001 - the pollers process it once they can
            self._failed(exc, None, "processing what was stored earlier failed")
        self.pollers.start(self._given_keeper or Keeper(self.app, sole_on_sqlite=True))
        self._sender = sender = asyncio.create_task(self._send_loop(), name="sender")
        announce = asyncio.create_task(self._until_settled())
        log.info("mailbridge running: %d mailbox(es)", len(self.app.config.mailbox))
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing the work in hand")
            announce.cancel()
            scheduler.shutdown(wait=False)
            # Pollers see the stop flag between steps; cancelling them instead could close
            # a connection under a thread that is still using it.
            pollers = await self.pollers.wind_down()
            late: set[asyncio.Task[None]] = set()
            if pollers or self._background:
                _, late = await asyncio.wait([*pollers, *self._background], timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            await self.pollers.retire()
            await asyncio.to_thread(self.preparer.close)  # nothing is processed any more
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

    async def _until_settled(self) -> None:
        """Ready once the first lease round is done and every mailbox it gave this instance
        has connected or failed to; mailboxes polled elsewhere are not waited for."""
        await self.pollers.settled()
        self.ready.set()

    async def _sweep(self) -> None:
        try:
            fired = await asyncio.to_thread(sweep, self.app)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            self._failed(exc, "scheduler", "escalation sweep failed")
            return
        self.health.set("scheduler", "running")
        if fired:
            self._outbox_wakeup.set()
        await self._wake_at_next_due()

    def _failed(self, exc: Exception, part: str | None, what: str) -> None:
        """A background job failed: an outage is told once for all (it is not the job's
        fault, and retrying is what every job does anyway); anything else in full."""
        outage = database_outage(exc)
        if outage is not None:
            self.outage.down(outage)
            return
        log.exception("%s", what)
        if part is not None:
            self.health.failing(part, f"{what}: {describe_error(exc)}")

    async def _wake_at_next_due(self) -> None:
        """Besides the interval, sweep at the moment the next warning or level falls due."""
        try:
            due = await asyncio.to_thread(next_due, self.app)
        except Exception as exc:  # noqa: BLE001 - the interval sweep still runs
            self._failed(exc, None, "could not look up the next escalation time")
            return
        scheduler = self._scheduler
        if due is None or scheduler is None or not scheduler.running:
            return
        scheduler.add_job(
            self._sweep,
            "date",
            id="sweep-at-next-due",
            replace_existing=True,
            run_date=max(due, self.app.clock.now() + SWEEP_GAP),
            misfire_grace_time=None,
        )

    def _schedule_purge(self, scheduler: AsyncIOScheduler) -> None:
        if scheduler.get_job("purge") is not None:
            scheduler.remove_job("purge")
        retention = self.app.config.retention
        if retention.purge_after is not None:
            scheduler.add_job(
                self._purge,
                "interval",
                id="purge",
                seconds=retention.interval.total_seconds(),
                next_run_time=self.app.clock.now(),
                max_instances=1,
                coalesce=True,
            )

    async def _purge(self) -> None:
        try:
            report = await asyncio.to_thread(purge, self.app)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            self._failed(exc, "retention", "purge failed")
            return
        self.health.remove("retention")
        if report.anything:
            log.info("retention: %s", report.summary())

    async def _process(self) -> None:
        async with self._process_lock:
            report = await asyncio.to_thread(
                process_pending, self.app, self._stop.is_set, self.preparer
            )
        if report.processed or report.ignored:
            self._outbox_wakeup.set()
            await self._wake_at_next_due()  # a new ticket may fall due before the interval

    async def _send_loop(self) -> None:
        while True:
            self._outbox_wakeup.clear()
            last = self._draining.is_set()
            try:
                await self._probe_if_refusing()
                report = await send_pending(self.app, self.smtp, observe=self._observe_sent)
                self._smtp_health(report)
                await self._after_refusal(report)
            except Exception as exc:  # noqa: BLE001 - the sender must outlive any one failure
                self._failed(exc, "smtp", "outbox pass failed")
            if last:
                return
            interval = self.app.config.service.outbox_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_wakeup.wait(), interval)

    async def _probe_if_refusing(self) -> None:
        """While the server turns mail away, offer it the oldest waiting mail now and then,
        whatever that mail's own retry pause, so the end of an outage is noticed soon."""
        if self._refused_at is None or time.monotonic() - self._probed_at < PROBE_EVERY:
            return
        self._probed_at = time.monotonic()
        await asyncio.to_thread(bring_forward, self.app, limit=1)

    async def _after_refusal(self, report: SendReport) -> None:
        if report.refused:
            if self._refused_at is None:
                self._refused_at = self._probed_at = time.monotonic()
            return
        if self._refused_at is None or not report.sent:
            return
        waiting = await asyncio.to_thread(bring_forward, self.app)
        log.info(
            "the SMTP server accepts mail again after %.0f s: %d mail(s) waiting out a "
            "retry pause go now",
            time.monotonic() - self._refused_at,
            waiting,
        )
        self._refused_at = None
        self._outbox_wakeup.set()

    def _observe_sent(self, row: Outbox, seconds: float) -> None:
        queued = (self.app.clock.now() - row.created_at).total_seconds()
        self.metrics.observe_sent(row.kind, seconds, queued)

    def _signed_in(self, settings: SmtpSettings) -> SmtpSettings:
        """The SMTP settings with the OAuth2 sign-in of [smtp.oauth2], when there is one."""
        provider = self.tokens.for_smtp()
        if provider is None or settings.oauth is not None:
            return settings
        return replace(
            settings, oauth=provider, username=settings.username or provider.sign_in.username
        )

    def _smtp_health(self, report: SendReport) -> None:
        provider = self.smtp.oauth if isinstance(self.smtp.oauth, TokenProvider) else None
        if provider is not None and provider.problem and not report.sent:
            self.health.failing("smtp", provider.problem, "signed-out")
            return
        if report.sent:
            self.health.set("smtp", "sending")
        elif report.deferred:
            self.health.failing(
                "smtp",
                f"{report.deferred} mail(s) deferred: the server "
                "refused them for now or could not be reached",
            )

    # -- mailbox leases: poll exactly what this instance holds --
