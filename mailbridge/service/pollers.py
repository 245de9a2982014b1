"""Mailbox pollers: one task per watched folder this instance holds a lease on.

Each poller connects, fetches, hands what it stored to processing, then waits for news
(IDLE where offered, else the poll interval), reconnecting with backoff when the server goes
away and pausing (mail left on the server) while the database is away. Several instances
may share one database: a lease round every third of `service.takeover_after`
(inbound/leases.py) decides which folders this instance polls; the others show as
"elsewhere". A clean stop hands every lease back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mailbridge.adapters.imap import ImapMailbox, ImapSettings, imap_settings
from mailbridge.app import App
from mailbridge.config import Config, MailboxConfig
from mailbridge.core.ownership import elsewhere, reconcile
from mailbridge.db.outage import database_outage
from mailbridge.errors import DeliveryError, describe_error, one_line
from mailbridge.inbound.fetch import fetch_mailbox
from mailbridge.inbound.leases import Keeper, LeaseLost, Round, Tenure
from mailbridge.oauth.endpoint import SignInRequired
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.outages import RETRY_SECONDS, OutageWatch

log = logging.getLogger(__name__)

IDLE_SLICE = 60.0  # seconds per IDLE; stop() interrupts it, the server's limit is 29 min
MAX_BACKOFF = 60.0  # after an IMAP outage, reconnect within a minute of its end
SIGN_IN_RETRY = 60.0  # a mailbox waiting for `mailbridge oauth login` looks this often
STOP_GRACE = 20.0  # seconds for pollers to finish and for a last outbox flush

ImapFactory = Callable[[ImapSettings], ImapMailbox]
Spawn = Callable[[Coroutine[Any, Any, None], str], None]


@dataclass(frozen=True, slots=True)
class PollerParts:
    """What a daemon builds its pollers from: how to reach a mailbox, where to report, and
    the daemon's own stop signal, processing and background tasks."""

    imap_factory: ImapFactory
    health: Health
    metrics: Metrics
    outage: OutageWatch
    stopping: asyncio.Event  # the whole daemon is stopping
    process: Callable[[], Awaitable[None]]  # process what the pollers stored
    spawn: Spawn  # a background task the daemon waits for when it stops
    tokens: TokenProviders | None = None  # OAuth2 sign-ins of the mailboxes that use one


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


def _settings(mailbox: MailboxConfig, tokens: TokenProviders | None) -> ImapSettings:
    return imap_settings(mailbox, tokens.for_mailbox(mailbox) if tokens is not None else None)


def fetch_with_new_connection(
    app: App,
    mailbox: MailboxConfig,
    tenure: Tenure | None = None,
    imap_factory: ImapFactory = ImapMailbox,
    tokens: TokenProviders | None = None,
    found: Callable[[int], object] = lambda count: None,
) -> int:
    """One catch-up pass over a folder on a connection of its own (`run --once`); `found`
    as `fetch_mailbox` says."""
    conn = imap_factory(_settings(mailbox, tokens))
    try:
        conn.connect()
        return fetch_mailbox(app, mailbox, conn, tenure=tenure, found=found).fetched
    finally:
        conn.close()


class Pollers:
    """The pollers of one daemon and the lease rounds that decide which folders it polls."""

    def __init__(self, app: App, parts: PollerParts) -> None:
        self.app = app
        self.imap_factory, self.tokens = parts.imap_factory, parts.tokens
        self.health, self.metrics, self.outage = parts.health, parts.metrics, parts.outage
        self._stop, self._process, self._spawn = parts.stopping, parts.process, parts.spawn
        self._pollers: dict[str, _Poller] = {}
        self._keeper: Keeper | None = None
        self._leases: asyncio.Task[None] | None = None
        self._lease_wakeup = asyncio.Event()
        self._first_round = asyncio.Event()
        self._leaving: set[str] = set()  # sources being handed back
        # Sources this instance cannot sign in to (OAuth2), with why: not taken here.
        self._barred: dict[str, str] = {}
        self._lease_trouble = False  # the last lease round failed (logged once)

    def start(self, keeper: Keeper) -> None:
        """Start the lease rounds; each round starts and stops pollers as leases say."""
        self._keeper = keeper
        self._leases = asyncio.create_task(self._keep_leases(keeper), name="leases")

    def halt(self) -> None:
        self._lease_wakeup.set()
        for poller in self._pollers.values():
            poller.halt()

    def rethink(self) -> None:
        """Run a lease round now (the configuration changed, a lease was lost)."""
        self._lease_wakeup.set()

    def alive(self) -> str | None:
        if self._leases is None or self._leases.done():
            return "the mailbox lease keeper is not running"
        for name, poller in self._pollers.items():
            # A halted poller (its lease lost, handed back) is on its way out, not wedged.
            if poller.task is None or (poller.task.done() and not poller.stop.is_set()):
                return f"the poller of mailbox {name} is not running"
        return None

    def reconfigure(self, config: Config) -> None:
        """Pollers of changed folders reconnect; new ones are polled once their lease is
        taken, removed ones are handed back."""
        wanted = {mailbox.source_name: mailbox for mailbox in watched_sources(config)}
        for name, poller in list(self._pollers.items()):
            if wanted.get(name) != poller.mailbox and not poller.stop.is_set():
                self._spawn(self._replace_poller(poller, wanted.get(name)), f"replace:{name}")
        self.rethink()

    async def settled(self) -> None:
        """The first lease round is done and every folder it gave this instance has
        connected or failed to; folders polled elsewhere are not waited for."""
        await self._first_round.wait()
        await asyncio.gather(*(poller.settled.wait() for poller in self._pollers.values()))

    async def wind_down(self) -> set[asyncio.Task[None]]:
        """Wait for the lease round in hand; the poller tasks, to be waited for next."""
        if self._leases is not None:
            await asyncio.wait([self._leases], timeout=STOP_GRACE)
        return {p.task for p in self._pollers.values() if p.task is not None}

    async def retire(self) -> None:
        if self._keeper is not None:
            await self._retire(self._keeper)

    async def _pause(self, seconds: float, stop: asyncio.Event | None = None) -> None:
        """Sleep, but wake at once when told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((stop or self._stop).wait(), seconds)

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

    def _start_poller(self, mailbox: MailboxConfig) -> _Poller:
        poller = _Poller(mailbox)
        if self._stop.is_set():
            poller.stop.set()
        self.health.set(poller.component, "connecting", ok=False, detail="not connected yet")
        poller.task = asyncio.create_task(
            self._poll_loop(poller), name=f"poll:{mailbox.source_name}"
        )
        self._pollers[mailbox.source_name] = poller
        return poller

    def _poller_failed(self, poller: _Poller, detail: str, state: str = "failing") -> None:
        self.health.failing(poller.component, detail, state)
        if state != "signed-out":  # looking for a new sign-in is no reconnection
            self.metrics.imap_reconnects.labels(poller.mailbox.name).inc()
        poller.settled.set()

    async def _signed_out(self, poller: _Poller, exc: SignInRequired) -> None:
        """No access token without a person: say so once (for every poller and the sender
        waiting for the same sign-in), then look again now and then (a new `mailbridge
        oauth login` is picked up); the other mailboxes carry on."""
        provider = self.tokens.for_mailbox(poller.mailbox) if self.tokens is not None else None
        if provider is None or provider.tell_once(str(exc)):
            log.error("%s", exc)  # it names the mailbox and the command to run
        self._poller_failed(poller, str(exc), "signed-out")
        await self._pause(SIGN_IN_RETRY, poller.stop)

    async def _poll_loop(self, poller: _Poller) -> None:
        mailbox, backoff = poller.mailbox, 1.0
        while not poller.stop.is_set():
            conn = self.imap_factory(_settings(mailbox, self.tokens))
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
            except SignInRequired as exc:
                await self._signed_out(poller, exc)
            except DeliveryError as exc:
                # The adapter's error names what was refused or lost, and the server's own
                # words: a prefix here would guess (a missing folder is no refused connection).
                log.error("mailbox %s: %s; retrying in %.0f s", mailbox.source_name, exc, backoff)
                self._poller_failed(poller, one_line(str(exc)))
                await self._pause(backoff, poller.stop)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception as exc:  # a poller that dies would leave mail unread
                log.exception(
                    "mailbox %s: unexpected failure; reconnecting in %.0f s",
                    mailbox.source_name,
                    backoff,
                )
                self._poller_failed(poller, f"unexpected failure: {describe_error(exc)}")
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
            if not self.outage.ongoing:  # while paused, a retry is not news for /healthz
                self.health.set(poller.component, "fetching")
            try:
                report = await asyncio.to_thread(
                    fetch_mailbox,
                    self.app,
                    mailbox,
                    conn,
                    poller.stop.is_set,
                    self._keeper.tenure if self._keeper else None,
                )
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
            self.metrics.polled(mailbox)
            self.health.set(poller.component, "idle" if idle else "polling")
            if idle:
                await self._idle(poller, conn, interval)
            else:
                await self._pause(interval, poller.stop)
            if self._token_ending(conn):
                # Servers such as Exchange Online end a session when its token expires:
                # log in again with a fresh one first.
                log.debug("mailbox %s: reconnecting with a fresh access token", mailbox.source_name)
                return

    def _token_ending(self, conn: ImapMailbox) -> bool:
        """The token this session logged in with (not the sign-in's newest, which another
        session may have refreshed already) is about to run out."""
        due = conn.token_refresh_at
        return due is not None and self.app.clock.now() >= due

    async def _idle(self, poller: _Poller, conn: ImapMailbox, interval: float) -> None:
        remaining = interval
        while remaining > 0 and not poller.stop.is_set():
            slice_ = min(IDLE_SLICE, remaining)
            if await asyncio.to_thread(conn.idle_wait, slice_):
                return
            remaining -= slice_

    async def _keep_leases(self, keeper: Keeper) -> None:
        """A lease round every third of takeover_after (sooner when asked), until stopped."""
        while not self._stop.is_set():
            self._lease_wakeup.clear()
            sources = {m.source_name: m for m in watched_sources(self.app.config)}
            self._barred = await asyncio.to_thread(self._sign_in_problems, sources)
            round_ = asyncio.ensure_future(
                asyncio.to_thread(keeper.round, list(sources), set(self._barred))
            )
            # A database that does not answer must not keep us polling past our leases.
            while not (await asyncio.wait([round_], timeout=keeper.interval))[0]:
                self._pause_if_lapsed(keeper)
            try:
                result = round_.result()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                if not self._lease_trouble:
                    log.error(
                        "could not renew the mailbox leases (polling goes on until they "
                        "run out, then pauses until the database answers): %s",
                        exc,
                    )
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

    def _sign_in_problems(self, sources: dict[str, MailboxConfig]) -> dict[str, str]:
        """The sources whose OAuth2 sign-in cannot give a token here, and why."""
        if self.tokens is None:
            return {}
        problems = {}
        for name, mailbox in sources.items():
            provider = self.tokens.for_mailbox(mailbox)
            if provider is not None and (problem := provider.sign_in_problem()):
                problems[name] = problem
        return problems

    def _apply_round(
        self, keeper: Keeper, result: Round, sources: dict[str, MailboxConfig]
    ) -> None:
        polling = {n for n, poller in self._pollers.items() if not poller.stop.is_set()}
        changes = reconcile(
            result.held,
            polling,
            self._leaving,
            [name for name in sources if name not in self._barred],
        )
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
                if name in self._barred and owner is None:  # held ones are being handed back
                    self._cannot_sign_in(sources[name], self._barred[name])
                else:
                    self.health.set(component(name), state, ok=ok, detail=detail)

    def _cannot_sign_in(self, mailbox: MailboxConfig, problem: str) -> None:
        """Nobody polls a mailbox this instance cannot sign in to: unhealthy, said once."""
        provider = self.tokens.for_mailbox(mailbox) if self.tokens is not None else None
        if provider is None or provider.tell_once(problem):
            log.error("%s", problem)  # it names the mailbox and the command to run
        self.health.failing(component(mailbox.source_name), problem, "signed-out")

    def _pause_if_lapsed(self, keeper: Keeper) -> None:
        if not keeper.lapsed():
            return
        for poller in list(self._pollers.values()):
            if not poller.stop.is_set():
                log.error(
                    "mailbox %s: its lease ran out without renewal: paused until the "
                    "database answers",
                    poller.mailbox.source_name,
                )
                self._let_go(
                    poller,
                    "paused",
                    "its lease could not be renewed: the database "
                    "does not answer; resumes by itself",
                    ok=False,
                )

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
            if name not in self._barred and any(
                m.source_name == name for m in watched_sources(self.app.config)
            ):
                self.health.set(
                    component(name), "unowned", detail="handed back for another instance to poll"
                )
        except Exception:  # still ours: the next round polls it again
            log.exception("mailbox %s: could not hand its lease back", name)
        finally:
            self._leaving.discard(name)

    async def _retire(self, keeper: Keeper) -> None:
        try:
            await asyncio.to_thread(keeper.retire)
        except Exception:  # the leases then run out by themselves
            log.exception(
                "could not hand the mailbox leases back; other instances take "
                "them over once they run out"
            )
