"""The daemon: one poller per mailbox, one sender, and a scheduler for the SLA sweep.

`run_once` is the burst mode (`mailbridge run --once`): ingest every mailbox, process,
send, sweep, send again, and return. `run_forever` does the same continuously until told
to stop, then finishes the message in hand and returns. What each part is doing is kept in
`health`; `ready` is set once every mailbox this instance holds has connected or failed to.

Several instances may share one database: each polls only the mailboxes it holds a lease
on (jobs/leases.py), renewed every third of `service.takeover_after`; the others show as
"elsewhere". A clean stop hands every lease back at once.
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
from mailbridge.core.ownership import elsewhere, reconcile
from mailbridge.db.models import Outbox
from mailbridge.db.outage import database_outage, database_place
from mailbridge.errors import DeliveryError, PermanentError
from mailbridge.jobs.escalate import next_due, sweep
from mailbridge.jobs.fetch import fetch_mailbox
from mailbridge.jobs.leases import Keeper, LeaseLost, Round
from mailbridge.jobs.outbox import SendReport, send_pending, smtp_settings
from mailbridge.jobs.process import ProcessReport, process_pending
from mailbridge.jobs.retention import purge
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.outages import RETRY_SECONDS, OutageWatch

log = logging.getLogger(__name__)

IDLE_SLICE = 60.0  # seconds per IDLE; stop() interrupts it, the server's limit is 29 min
MAX_BACKOFF = 60.0  # after an IMAP outage, reconnect within a minute of its end
STOP_GRACE = 20.0  # seconds for pollers to finish and for a last outbox flush
SWEEP_GAP = timedelta(seconds=1)  # the exact-time sweep never runs back to back

ImapFactory = Callable[[ImapSettings], ImapMailbox]


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
        return component(self.mailbox.source_name)

    def halt(self) -> None:
        self.stop.set()
        if self.connection is not None:
            self.connection.interrupt()


def component(source: str) -> str:
    return f"mailbox:{source}"


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
        keeper: Keeper | None = None,
    ) -> None:
        self.app = app
        self.imap_factory = imap_factory
        self._fixed_smtp = smtp is not None
        self.smtp = smtp or smtp_settings(app)
        self.health = Health(app.clock)
        self.metrics = Metrics(app, self.health)
        self.outage = OutageWatch(self.health, database_place(app.config.database_url))
        self.ready = asyncio.Event()  # every mailbox has connected, or failed to, once
        self._process_lock = asyncio.Lock()
        self._outbox_wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = asyncio.Event()  # set once pollers are done: last outbox pass
        self._pollers: dict[str, _Poller] = {}
        self._sender: asyncio.Task[None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._given_keeper = keeper  # who this instance is among several; default: the process
        self._keeper: Keeper | None = None  # run_forever: this instance's leases
        self._leases: asyncio.Task[None] | None = None
        self._lease_wakeup = asyncio.Event()
        self._first_round = asyncio.Event()
        self._leaving: set[str] = set()  # sources being handed back
        self._lease_trouble = False  # the last lease round failed (logged once)

    async def run_once(self) -> PassReport:
        """One pass; each mailbox under its lease for the pass, skipped (and reported) when
        a running instance polls it."""
        report = PassReport()
        keeper = self._given_keeper or Keeper(self.app)
        await asyncio.to_thread(keeper.start)
        try:
            for mailbox in watched_sources(self.app.config):
                await self._fetch_once(keeper, mailbox, report)
        finally:
            await asyncio.to_thread(keeper.retire)
        report.processed = await asyncio.to_thread(process_pending, self.app)
        report.escalated = await asyncio.to_thread(sweep, self.app)
        report.sent = await send_pending(self.app, self.smtp)
        return report

    async def _fetch_once(self, keeper: Keeper, mailbox: MailboxConfig,
                          report: PassReport) -> None:
        name = mailbox.source_name
        owner = await asyncio.to_thread(keeper.take, name)
        if owner is not None:
            log.warning("mailbox %s: skipped: instance %s polls it", name, owner)
            report.elsewhere[name] = owner
            return
        try:
            fetched = await asyncio.to_thread(self._fetch_with_new_connection, mailbox,
                                              keeper)
            report.fetched[name] = fetched
        except (DeliveryError, LeaseLost) as exc:
            log.error("mailbox %s: %s", name, exc)
            report.failed_mailboxes[name] = str(exc)

    def _fetch_with_new_connection(self, mailbox: MailboxConfig, keeper: Keeper) -> int:
        conn = self.imap_factory(imap_settings(mailbox))
        try:
            conn.connect()
            return fetch_mailbox(self.app, mailbox, conn, tenure=keeper.tenure).fetched
        finally:
            conn.close()

    @property
    def stopping(self) -> asyncio.Event:
        return self._stop

    def stop(self) -> None:
        self._stop.set()
        self._lease_wakeup.set()
        for poller in self._pollers.values():
            poller.halt()

    def alive(self) -> str | None:
        """None while every part of the daemon runs; else which part has stopped. (A mail
        server being down is not this: the part waiting for it is alive and retrying.)"""
        if self._sender is None or self._sender.done():
            return "the outbox sender is not running"
        if self._leases is None or self._leases.done():
            return "the mailbox lease keeper is not running"
        for name, poller in self._pollers.items():
            # A halted poller (its lease lost, handed back) is on its way out, not wedged.
            if poller.task is None or (poller.task.done() and not poller.stop.is_set()):
                return f"the poller of mailbox {name} is not running"
        if self._scheduler is None or not self._scheduler.running:
            return "the scheduler is not running"
        return None

    async def reconfigure(self, config: Config, templates: TemplateSet) -> None:
        """Switch to a new, already checked configuration and template set: between
        messages, never in the middle of one. Pollers of changed mailboxes reconnect; new
        ones are polled once their lease is taken, removed ones are handed back."""
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
            if wanted.get(name) != poller.mailbox and not poller.stop.is_set():
                self._spawn(self._replace_poller(poller, wanted.get(name)), f"replace:{name}")
        self._lease_wakeup.set()  # take new sources, hand back removed ones
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
        try:
            await self._process()  # whatever a previous run stored but did not finish
        except Exception as exc:  # noqa: BLE001 - the pollers process it once they can
            self._failed(exc, None, "processing what was stored earlier failed")
        self._keeper = keeper = self._given_keeper or Keeper(self.app)
        self._leases = leases = asyncio.create_task(self._keep_leases(keeper), name="leases")
        self._sender = sender = asyncio.create_task(self._send_loop(), name="sender")
        announce = asyncio.create_task(self._until_settled())
        log.info("mailbridge running: %d mailbox(es)", len(self.app.config.mailbox))
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing the work in hand")
            announce.cancel()
            scheduler.shutdown(wait=False)
            await asyncio.wait([leases], timeout=STOP_GRACE)  # ends after its round in hand
            # Pollers see the stop flag between steps; cancelling them instead could close
            # a connection under a thread that is still using it.
            pollers = [p.task for p in self._pollers.values() if p.task is not None]
            late: set[asyncio.Task[None]] = set()
            if pollers or self._background:
                _, late = await asyncio.wait([*pollers, *self._background], timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            await self._retire(keeper)
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
        await self._first_round.wait()
        await asyncio.gather(*(poller.settled.wait() for poller in self._pollers.values()))
        self.ready.set()

    async def _pause(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Sleep, but wake at once when told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop or self._stop).wait(), seconds)

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
            self.health.failing(part, f"{what}: {exc}")

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
            self._failed(exc, "retention", "purge failed")
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
                self._failed(exc, "smtp", "outbox pass failed")
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
            except LeaseLost as exc:
                log.warning("%s", exc)
                poller.settled.set()
                self._let_go(poller, "elsewhere", "another instance has taken it over")
                self._lease_wakeup.set()
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
            try:
                report = await asyncio.to_thread(fetch_mailbox, self.app, mailbox, conn,
                                                 poller.stop.is_set,
                                                 self._keeper.tenure if self._keeper else None)
                if report.stored or self.outage.ongoing:  # also what waited for the database
                    await self._process()
            except Exception as exc:
                outage = database_outage(exc)
                if outage is None:
                    raise
                # The IMAP copy is untouched until its bytes are committed: try again soon.
                self.outage.down(outage, poller.component)
                await self._pause(RETRY_SECONDS, poller.stop)
                continue
            self.outage.up()
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

    # -- mailbox leases: poll exactly what this instance holds --

    async def _keep_leases(self, keeper: Keeper) -> None:
        """A lease round every third of takeover_after (sooner when asked), until stopped."""
        while not self._stop.is_set():
            self._lease_wakeup.clear()
            sources = {m.source_name: m for m in watched_sources(self.app.config)}
            round_ = asyncio.ensure_future(asyncio.to_thread(keeper.round, list(sources)))
            # A database that does not answer must not keep us polling past our leases.
            while not (await asyncio.wait([round_], timeout=keeper.interval))[0]:
                self._pause_if_lapsed(keeper)
            try:
                result = round_.result()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                if not self._lease_trouble:
                    log.error("could not renew the mailbox leases (polling goes on until they "
                              "run out, then pauses until the database answers): %s", exc)
                self._lease_trouble = True
                self._pause_if_lapsed(keeper)
            else:
                if self._lease_trouble:
                    log.info("mailbox leases renewed again")
                self._lease_trouble = False
                if not self._stop.is_set():
                    self._apply_round(keeper, result, sources)
                self._first_round.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lease_wakeup.wait(), keeper.interval)

    def _apply_round(self, keeper: Keeper, result: Round,
                     sources: dict[str, MailboxConfig]) -> None:
        polling = {n for n, poller in self._pollers.items() if not poller.stop.is_set()}
        changes = reconcile(result.held, polling, self._leaving, list(sources))
        for name in changes.stop:
            log.warning("mailbox %s: another instance has taken it over; stopping here", name)
            self._let_go(self._pollers[name], "elsewhere", "another instance has taken it over")
        for name in changes.start:
            if name not in self._pollers:  # else one on its way out: started next round
                self._start_poller(sources[name])
        giving_up = {*changes.release, *filter(None, [result.hand_back])} - self._leaving
        for name in giving_up:
            self._leaving.add(name)
            self._spawn(self._hand_back(keeper, name), f"hand-back:{name}")
        for name, owner in result.holders.items():
            if name not in self._pollers and name not in self._leaving:
                state, ok, detail = elsewhere(owner, name in result.unheld, keeper.ttl)
                self.health.set(component(name), state, ok=ok, detail=detail)

    def _pause_if_lapsed(self, keeper: Keeper) -> None:
        if not keeper.lapsed():
            return
        for poller in list(self._pollers.values()):
            if not poller.stop.is_set():
                log.error("mailbox %s: its lease ran out without renewal: paused until the "
                          "database answers", poller.mailbox.source_name)
                self._let_go(poller, "paused", "its lease could not be renewed: the database "
                             "does not answer; resumes by itself", ok=False)

    def _let_go(self, poller: _Poller, state: str, detail: str, *, ok: bool = True) -> None:
        """Stop polling a source this instance does not hold (any more) and say why."""
        poller.halt()

        async def stop_then_show() -> None:
            await self._replace_poller(poller, None)
            if poller.mailbox.source_name not in self._pollers:
                self.health.set(poller.component, state, ok=ok, detail=detail)

        self._spawn(stop_then_show(), f"let-go:{poller.mailbox.source_name}")

    async def _hand_back(self, keeper: Keeper, name: str) -> None:
        """Stop the poller (it finishes what it holds), then give the lease up."""
        try:
            poller = self._pollers.get(name)
            if poller is not None:
                await self._replace_poller(poller, None)
            await asyncio.to_thread(keeper.hand_back, name)
            log.info("mailbox %s: handed back for another instance to poll", name)
            if any(m.source_name == name for m in watched_sources(self.app.config)):
                self.health.set(component(name), "unowned", detail="handed back for another "
                                "instance to poll")
        except Exception:  # noqa: BLE001 - still ours: the next round polls it again
            log.exception("mailbox %s: could not hand its lease back", name)
        finally:
            self._leaving.discard(name)

    async def _retire(self, keeper: Keeper) -> None:
        try:
            await asyncio.to_thread(keeper.retire)
        except Exception:  # noqa: BLE001 - the leases then run out by themselves
            log.exception("could not hand the mailbox leases back; other instances take "
                          "them over once they run out")
