"""The daemon: one poller per mailbox, one sender, and a scheduler for the SLA sweep.

`run_once` is the burst mode (`mailbridge run --once`): ingest every mailbox, process,
send, sweep, send again, and return. `run_forever` does the same continuously until told
to stop, then finishes the message in hand and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mailbridge.adapters.imap import ImapMailbox, ImapSettings
from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.app import App
from mailbridge.config import MailboxConfig
from mailbridge.errors import DeliveryError, PermanentError
from mailbridge.jobs.escalate import sweep
from mailbridge.jobs.fetch import fetch_mailbox
from mailbridge.jobs.outbox import SendReport, send_pending, smtp_settings
from mailbridge.jobs.process import ProcessReport, process_pending

log = logging.getLogger(__name__)

IDLE_SLICE = 60.0  # seconds per IDLE; stop() interrupts it, the server's limit is 29 min
MAX_BACKOFF = 300.0
STOP_GRACE = 20.0  # seconds for pollers to finish and for a last outbox flush

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
        self.smtp = smtp or smtp_settings(app)
        self._process_lock = asyncio.Lock()
        self._outbox_wakeup = asyncio.Event()
        self._stop = asyncio.Event()
        self._draining = asyncio.Event()  # set once pollers are done: last outbox pass
        self._connections: set[ImapMailbox] = set()

    async def run_once(self) -> PassReport:
        report = PassReport()
        for mailbox in self.app.config.mailbox:
            try:
                fetched = await asyncio.to_thread(self._fetch_with_new_connection, mailbox)
                report.fetched[mailbox.name] = fetched
            except DeliveryError as exc:
                log.error("mailbox %s: %s", mailbox.name, exc)
                report.failed_mailboxes[mailbox.name] = str(exc)
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

    def stop(self) -> None:
        self._stop.set()
        for conn in self._connections:
            conn.interrupt()

    async def run_forever(self) -> None:
        """Run until stop() (or SIGTERM/SIGINT); then let each poller finish what it holds."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stop)
        scheduler = AsyncIOScheduler()
        scheduler.add_job(
            self._sweep, "interval",
            seconds=self.app.config.service.sweep_interval.total_seconds(),
            next_run_time=self.app.clock.now(), max_instances=1, coalesce=True,
        )
        scheduler.start()
        await self._process()  # whatever a previous run stored but did not finish
        pollers = [asyncio.create_task(self._poll_loop(m), name=f"poll:{m.name}")
                   for m in self.app.config.mailbox]
        sender = asyncio.create_task(self._send_loop(), name="sender")
        log.info("mailbridge running: %d mailbox(es)", len(self.app.config.mailbox))
        if self.app.config.service.listen:
            log.warning("service.listen is set, but /healthz and /metrics are not served yet")
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: finishing the work in hand")
            scheduler.shutdown(wait=False)
            # Pollers see the stop flag between steps; cancelling them instead could close
            # a connection under a thread that is still using it.
            _, late = await asyncio.wait(pollers, timeout=STOP_GRACE)
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

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _sweep(self) -> None:
        fired = await asyncio.to_thread(sweep, self.app)
        if fired:
            self._outbox_wakeup.set()

    async def _process(self) -> None:
        async with self._process_lock:
            report = await asyncio.to_thread(process_pending, self.app)
        if report.processed or report.ignored:
            self._outbox_wakeup.set()

    async def _send_loop(self) -> None:
        interval = self.app.config.service.outbox_interval.total_seconds()
        while True:
            self._outbox_wakeup.clear()
            last = self._draining.is_set()
            try:
                await send_pending(self.app, self.smtp)
            except Exception:  # noqa: BLE001 - the sender must outlive any one failure
                log.exception("outbox pass failed")
            if last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_wakeup.wait(), interval)

    async def _poll_loop(self, mailbox: MailboxConfig) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            conn = self.imap_factory(imap_settings(mailbox))
            self._connections.add(conn)
            try:
                await asyncio.to_thread(conn.connect)
                log.info("mailbox %s: connected to %s", mailbox.name, mailbox.host)
                backoff = 1.0
                await self._watch(mailbox, conn)
            except DeliveryError as exc:
                kind = "refused" if isinstance(exc, PermanentError) else "lost"
                log.error("mailbox %s: connection %s: %s; retrying in %.0f s",
                          mailbox.name, kind, exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # noqa: BLE001 - a poller that dies would leave mail unread
                log.exception("mailbox %s: unexpected failure; reconnecting in %.0f s",
                              mailbox.name, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                self._connections.discard(conn)
                await asyncio.to_thread(conn.close)

    async def _watch(self, mailbox: MailboxConfig, conn: ImapMailbox) -> None:
        """Fetch, process, then wait for news: IDLE when offered, else the poll interval."""
        interval = mailbox.poll_interval.total_seconds()
        idle = await asyncio.to_thread(conn.supports_idle)
        while not self._stop.is_set():
            report = await asyncio.to_thread(fetch_mailbox, self.app, mailbox, conn)
            if report.stored:
                await self._process()
            if idle:
                await self._idle(conn, interval)
            else:
                await self._pause(interval)

    async def _idle(self, conn: ImapMailbox, interval: float) -> None:
        remaining = interval
        while remaining > 0 and not self._stop.is_set():
            slice_ = min(IDLE_SLICE, remaining)
            if await asyncio.to_thread(conn.idle_wait, slice_):
                return
            remaining -= slice_
