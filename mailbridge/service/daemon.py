"""The daemon: one poller per watched folder (service/pollers.py), the sender
(service/sender.py), and a scheduler for the SLA sweep, the retention purge, the daily
digest and the weekly report.

`run_once` is the burst mode (`mailbridge run --once`): fetch every mailbox, process,
sweep, send, and return. `run_forever` does the same continuously until told to stop, then
finishes the message in hand, lets the sender make its last pass, and returns. What each
part is doing is kept in `health`; `ready` is set once every mailbox this instance holds
has connected or failed to.

Several instances may share one database: each polls only the mailboxes it holds a lease
on (see service/pollers.py); the others show as "elsewhere".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailbridge import heap
from mailbridge.adapters.imap import ImapMailbox
from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.adapters.templates import TemplateSet
from mailbridge.app import App
from mailbridge.config import Config, MailboxConfig
from mailbridge.core.faq import FaqIndex
from mailbridge.db.blobs import BlobStore
from mailbridge.db.outage import database_outage, database_place
from mailbridge.db.storage_upkeep import remove_orphans
from mailbridge.errors import ConfigError, DeliveryError, describe_error
from mailbridge.inbound.digest import send_digests
from mailbridge.inbound.leases import Keeper, LeaseLost
from mailbridge.inbound.prepare import Preparer
from mailbridge.inbound.process import ProcessReport, new_preparer, process_pending
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.outbound.send import SendReport
from mailbridge.reports.weekly import send_weekly_report
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.outages import OutageWatch
from mailbridge.service.pollers import (
    STOP_GRACE,
    ImapFactory,
    PollerParts,
    Pollers,
    fetch_with_new_connection,
    watched_sources,
)
from mailbridge.service.sender import Sender
from mailbridge.tickets import tallies
from mailbridge.tickets.content_retention import erase_closed_content
from mailbridge.tickets.escalate import next_due, sweep
from mailbridge.tickets.retention import purge
from mailbridge.tickets.spam_purge import purge_spam

if TYPE_CHECKING:  # aiosmtpd, which it imports, comes with the lmtp extra
    from mailbridge.service.lmtp_server import LmtpListener

log = logging.getLogger(__name__)

SWEEP_GAP = timedelta(seconds=1)  # the exact-time sweep never runs back to back
DIGEST_INTERVAL = timedelta(minutes=1)  # how soon after its hour a daily digest goes out
WEEKLY_INTERVAL = timedelta(minutes=1)  # how soon after its moment the weekly report goes out
__all__ = ["STOP_GRACE", "Daemon", "PassReport"]


@dataclass
class PassReport:
    fetched: dict[str, int] = field(default_factory=dict)
    failed_mailboxes: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)  # source -> instance polling it
    processed: ProcessReport = field(default_factory=ProcessReport)
    sent: SendReport = field(default_factory=SendReport)
    escalated: int = 0
    digests: int = 0
    weekly_reports: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed_mailboxes


class _Warming:
    """`run --once` starts the parse worker (and the forkserver it forks from, about a
    second) on a thread of its own as soon as a mailbox has new mail, so that the start
    overlaps the fetch instead of delaying the first message; a pass over empty mailboxes
    (a cron job's usual one) starts nothing. `wait` before processing, so the worker is
    never started after the pass closes the preparer."""

    def __init__(self, preparer: Preparer) -> None:
        self._preparer = preparer
        self._thread: threading.Thread | None = None

    def begin(self, count: int) -> None:
        if self._thread is None and count:
            self._thread = threading.Thread(
                target=self._preparer.start, name="mailbridge-parse-start", daemon=True
            )
            self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()


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
        self.tokens = TokenProviders(app.config, app.clock)  # OAuth2 sign-ins, if any
        self.health = Health(app.clock)
        self.metrics = Metrics(app, self.health, self.tokens)
        self.outage = OutageWatch(self.health, database_place(app.config.database_url))
        self.sender = Sender(
            app,
            health=self.health,
            metrics=self.metrics,
            tokens=self.tokens,
            failed=self._failed,
            smtp=smtp,
        )
        self.ready = asyncio.Event()  # every mailbox has connected, or failed to, once
        self._process_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.lmtp: LmtpListener | None = None  # [lmtp]: mail handed in by an MTA
        self._delivered = asyncio.Event()  # mail came in over LMTP: process it
        self._scheduler: AsyncIOScheduler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._given_keeper = keeper  # who this instance is among several; default: the process
        self.preparer = new_preparer(app)  # its parse worker lives as long as a run
        self.pollers = Pollers(
            app,
            PollerParts(
                imap_factory=imap_factory,
                health=self.health,
                metrics=self.metrics,
                outage=self.outage,
                stopping=self._stop,
                process=self._process,
                spawn=self._spawn,
                tokens=self.tokens,
            ),
        )

    async def run_once(self) -> PassReport:
        """One pass; each mailbox under its lease for the pass, skipped (and reported) when
        a running instance polls it."""
        report = PassReport()
        keeper = self._given_keeper or Keeper(self.app, sole_on_sqlite=True)
        warming = _Warming(self.preparer)
        await asyncio.to_thread(keeper.start)
        try:
            for mailbox in watched_sources(self.app.config):
                await self._fetch_once(keeper, mailbox, report, warming.begin)
        finally:
            await asyncio.to_thread(keeper.retire)
            await asyncio.to_thread(warming.wait)
        try:  # the parse worker started while new mail was fetched, else with pending mail
            report.processed = await asyncio.to_thread(
                process_pending, self.app, preparer=self.preparer
            )
        finally:
            await asyncio.to_thread(self.preparer.close)
        report.escalated = await asyncio.to_thread(sweep, self.app)
        await asyncio.to_thread(tallies.fold, self.app)
        report.digests = await asyncio.to_thread(send_digests, self.app)
        report.weekly_reports = await asyncio.to_thread(send_weekly_report, self.app)
        report.sent = await self.sender.send_once()
        return report

    async def _fetch_once(
        self,
        keeper: Keeper,
        mailbox: MailboxConfig,
        report: PassReport,
        found: Callable[[int], object],
    ) -> None:
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
                found,
            )
            report.fetched[name] = fetched
        except SignInRequired as exc:
            log.error("%s", exc)  # it names the mailbox and the command to run
            report.failed_mailboxes[name] = str(exc)
        except (DeliveryError, LeaseLost) as exc:
            log.error("mailbox %s: %s", name, exc)
            report.failed_mailboxes[name] = str(exc)
        except Exception as exc:
            # The database busy for longer than its timeout (on SQLite, a running daemon's
            # processing holds the write lock for a batch) or away: what is not stored
            # stays on the server for the next run, and the run says why.
            outage = database_outage(exc)
            if outage is None:
                raise
            log.error("mailbox %s: fetch stopped, the rest waits: %s", name, outage.reason)
            report.failed_mailboxes[name] = outage.reason

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def stop(self) -> None:
        self._stop.set()
        self._delivered.set()
        self.pollers.halt()

    def alive(self) -> str | None:
        """None while every part of the daemon runs; else which part has stopped. (A mail
        server being down is not this: the part waiting for it is alive and retrying.)"""
        if not self.sender.running:
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
            self.app.reconfigure(config, templates, faq=faq)
            self.tokens.reconfigure(config)
            self.sender.reconfigure()
            heap.settle()  # what the reload replaced is collected (mailbridge/heap.py)
        if self._scheduler is not None:
            self._scheduler.reschedule_job(
                "sweep", trigger="interval", seconds=config.service.sweep_interval.total_seconds()
            )
            self._schedule_purge(self._scheduler)
        self.pollers.reconfigure(config)
        self.sender.wake()

    async def swap_templates(self, templates: TemplateSet) -> None:
        """Switch to a new, already checked template set between messages."""
        async with self._process_lock:
            self.app.templates = templates
            heap.settle()

    async def run_forever(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then let each poller finish what it holds."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        await self._start_lmtp()  # first: a listener that cannot start stops the daemon here
        scheduler = AsyncIOScheduler()
        self._every(scheduler, self._sweep, "sweep", self.app.config.service.sweep_interval)
        self._schedule_purge(scheduler)
        self._every(scheduler, self._digests, "digest", DIGEST_INTERVAL)
        self._every(scheduler, self._weekly_report, "weekly-report", WEEKLY_INTERVAL)
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
        self.sender.start()
        if self.lmtp is not None:
            self._spawn(self._process_deliveries(), "lmtp:process")
        announce = asyncio.create_task(self._until_settled())
        log.info("mailbridge running: %d mailbox(es)", len(self.app.config.mailbox))
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing the work in hand")
            announce.cancel()
            if self.lmtp is not None:  # no new mail; a store in hand is answered first
                await self.lmtp.close(STOP_GRACE)
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
            await self.sender.finish(STOP_GRACE)
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            log.info("stopped")

    async def _start_lmtp(self) -> None:
        if self.app.config.lmtp is None:
            return
        try:
            from mailbridge.service.lmtp_server import LmtpListener
        except ImportError as exc:
            raise ConfigError(
                "[lmtp] needs aiosmtpd, which comes with the lmtp extra: "
                "pip install 'mailbridge[lmtp]'"
            ) from exc
        self.lmtp = LmtpListener(self.app, self.health, self._delivered.set)
        await self.lmtp.start()

    async def _process_deliveries(self) -> None:
        """Process mail delivered over LMTP as soon as it is committed: one pass for all
        that arrived while the last one ran, as a poller's does for a batch."""
        while True:
            await self._delivered.wait()
            if self._stop.is_set():
                return
            self._delivered.clear()
            try:
                await self._process()
            except Exception as exc:  # noqa: BLE001 - stored mail waits for the next pass
                self._failed(exc, None, "processing mail delivered over LMTP failed")

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
            await asyncio.to_thread(tallies.fold, self.app)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            self._failed(exc, "scheduler", "escalation sweep failed")
            return
        self.health.set("scheduler", "running")
        if fired:
            self.sender.wake()
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

    def _every(
        self,
        scheduler: AsyncIOScheduler,
        job: Callable[[], Awaitable[None]],
        name: str,
        interval: timedelta,
    ) -> None:
        """Run `job` now and every `interval`, one run at a time, missed runs merged."""
        scheduler.add_job(
            job,
            "interval",
            id=name,
            seconds=interval.total_seconds(),
            next_run_time=self.app.clock.now(),
            max_instances=1,
            coalesce=True,
        )

    def _schedule_purge(self, scheduler: AsyncIOScheduler) -> None:
        """Every retention.interval: the retention policy when one is set, and the spam
        purge always ([spam] purge_after has no "keep everything")."""
        if scheduler.get_job("purge") is not None:
            scheduler.remove_job("purge")
        scheduler.add_job(
            self._purge,
            "interval",
            id="purge",
            seconds=self.app.config.retention.interval.total_seconds(),
            next_run_time=self.app.clock.now(),
            max_instances=1,
            coalesce=True,
        )

    async def _purge(self) -> None:
        try:
            if self.app.config.retention.purge_after is not None:
                report = await asyncio.to_thread(purge, self.app)
                if report.anything:
                    log.info("retention: %s", report.summary())
            if self.app.config.retention.erase_content_after is not None:
                erased = await asyncio.to_thread(erase_closed_content, self.app)
                if erased.anything:
                    log.info("retention: erased %s", erased.summary())
            spam = await asyncio.to_thread(purge_spam, self.app)
            orphans = await asyncio.to_thread(self._remove_orphans)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            self._failed(exc, "retention", "purge failed")
            return
        self.health.remove("retention")
        if spam.anything:
            log.info("retention: purged %s", spam.summary())
        if orphans:
            log.info("storage: removed %d file(s) no row names", orphans)

    def _remove_orphans(self) -> int:
        """Files no row names, past [storage] orphan_grace (db/storage_upkeep.py)."""
        config = self.app.config
        if not config.blob_dir.is_dir():
            return 0
        store = BlobStore(config.blob_dir)
        now = self.app.clock.now()
        return remove_orphans(self.app.sessions, store, now, config.storage.orphan_grace).removed

    async def _digests(self) -> None:
        """Each daily digest due and not yet sent (inbound/digest.py decides, once a day
        per reader across instances)."""
        try:
            queued = await asyncio.to_thread(send_digests, self.app)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            self._failed(exc, "scheduler", "daily digest failed")
            return
        if queued:
            self.sender.wake()

    async def _weekly_report(self) -> None:
        """The weekly report when it is due and not yet queued (reports/weekly.py decides,
        once a week across instances)."""
        try:
            queued = await asyncio.to_thread(send_weekly_report, self.app)
        except Exception as exc:  # noqa: BLE001 - the next run tries again
            self._failed(exc, "scheduler", "weekly report failed")
            return
        if queued:
            self.sender.wake()

    async def _process(self) -> None:
        async with self._process_lock:
            report = await asyncio.to_thread(
                process_pending, self.app, self._stop.is_set, self.preparer
            )
        if report.processed or report.ignored:
            self.sender.wake()
            await self._wake_at_next_due()  # a new ticket may fall due before the interval

    # -- mailbox leases: poll exactly what this instance holds --
