"""The daemon as a systemd service: READY once every mailbox has connected or been marked
failing, STATUS lines, WATCHDOG pings while every part runs, RELOADING/STOPPING around
those phases, SIGHUP and template edits reloaded only when good, and the /healthz and
/metrics listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from datetime import datetime, timedelta
from pathlib import Path

from mailbridge.config import is_loopback
from mailbridge.db import revision
from mailbridge.errors import ConfigError, MailbridgeError, TemplateError, describe_error
from mailbridge.logs import config_secrets, hide_secrets
from mailbridge.service.daemon import Daemon
from mailbridge.service.metrics import CONTENT_TYPE
from mailbridge.service.notify import Notifier, watchdog_interval
from mailbridge.service.reload import (
    TemplateWatcher,
    brand_template_dirs,
    keep_restart_only,
    load_candidate,
    load_templates,
    templates_dir,
)
from mailbridge.service.snapshot import brief
from mailbridge.service.web import Response, WebServer

__all__ = ["Service"]

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between looks at the stop and reload flags, watchdog and templates
STATUS_EVERY = 5.0
TEMPLATE_POLL_EVERY = 2.0
HEALTH_CHECK_TIMEOUT = 5.0


class Service:
    def __init__(
        self,
        daemon: Daemon,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        watchdog: timedelta | None = None,
    ) -> None:
        self.daemon = daemon
        self.app = daemon.app
        self.config_path = config_path
        self.notifier = notifier or Notifier(None)
        self.watchdog = watchdog
        self.web: WebServer | None = None
        self._reload = asyncio.Event()
        self._watcher = TemplateWatcher(
            templates_dir(self.app.config), *brand_template_dirs(self.app.config)
        )
        self._status: str | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._withheld: str | None = None

    @classmethod
    def from_environ(cls, daemon: Daemon, config_path: Path | None) -> Service:
        return cls(daemon, config_path, Notifier.from_environ(), watchdog_interval())

    async def run(self) -> None:
        """Check, start, serve until stopped; raises MailbridgeError when it cannot start."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        try:
            await self._preflight()
            if self.app.config.service.listen_address is not None:
                await self._listen(*self.app.config.service.listen_address)
            running = asyncio.create_task(self.daemon.run_forever(), name="daemon")
            supervisor = asyncio.create_task(self._supervise(), name="supervisor")
            try:
                await running
            finally:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
            if self.web is not None:
                await self.web.close()
            self.notifier.close()

    async def _preflight(self) -> None:
        """What READY promises beyond connected mailboxes: a migrated database and
        templates that all render."""
        engine = self.app.engine
        current = await asyncio.to_thread(revision.current_revision, engine)
        if current != revision.HEAD:
            raise MailbridgeError(
                f"the database is at revision {current or '(empty)'}, this mailbridge needs "
                f"{revision.HEAD}: run `mailbridge db upgrade` (or set database.auto_migrate = "
                f"true)"
            )
        problems = await asyncio.to_thread(self.app.templates.check)
        if problems:
            raise TemplateError("\n".join(problems))

    async def _listen(self, host: str, port: int) -> None:
        self.web = WebServer(host, port, {"/healthz": self.healthz, "/metrics": self.metrics})
        try:
            await self.web.start()
        except OSError as exc:
            self.web = None
            raise MailbridgeError(
                f"service.listen: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        if not is_loopback(host):  # listen_public = true said so; say it once more
            log.warning(
                "service.listen: /healthz and /metrics are served on %s:%d, where other "
                "hosts can reach them (listen_public = true); they tell whoever asks the "
                "mailbox names, counts and errors: allow only the monitoring host to "
                "connect",
                host,
                port,
            )

    # -- the main loop --

    async def _supervise(self) -> None:
        daemon = self.daemon
        ready = asyncio.create_task(daemon.ready.wait())
        stopping = asyncio.create_task(daemon.stopping.wait())
        await asyncio.wait([ready, stopping], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not daemon.stopping.is_set():
            status = await self._status_line()
            log.info("ready: %s", status)
            self.notifier.ready(status)
        loop = asyncio.get_running_loop()
        last_ping = next_status = next_poll = 0.0
        try:
            while not daemon.stopping.is_set():
                now = loop.time()
                if self.watchdog is not None and now - last_ping >= self._ping_every():
                    last_ping = now if self._ping() else last_ping
                if self._reload.is_set():
                    self._reload.clear()
                    await self.reload()
                if now >= next_poll:
                    next_poll = now + TEMPLATE_POLL_EVERY
                    await self._poll_templates()
                if now >= next_status:
                    next_status = now + STATUS_EVERY
                    self._refresh_status()
                await _first_of(stopping, self._reload, TICK)
            self.notifier.stopping("stopping: finishing the work in hand")
        finally:
            stopping.cancel()
            if self._status_task is not None:
                self._status_task.cancel()

    def _ping_every(self) -> float:
        assert self.watchdog is not None
        return min(self.watchdog.total_seconds() / 3, TICK)

    def _ping(self) -> bool:
        """WATCHDOG=1 only while every part of the daemon runs: a wedged or dead part should
        get the process restarted. A mail server being down is not such a case."""
        problem = self.daemon.alive()
        if problem != self._withheld:
            if problem:
                log.error("watchdog: not confirming liveness: %s", problem)
            self._withheld = problem
        return problem is None and self.notifier.watchdog()

    def _refresh_status(self) -> None:
        """Send a STATUS= line when it changed; its database read runs on its own, so a
        slow database never holds up the watchdog."""
        if self._status_task is not None and not self._status_task.done():
            return

        async def refresh() -> None:
            line = await self._status_line()
            if line != self._status:
                self._status = line
                self.notifier.status(line)

        self._status_task = asyncio.create_task(refresh(), name="status")

    async def _status_line(self) -> str:
        """ "3 mailboxes idle, outbox 0 pending, next escalation 14:30"."""
        health = self.daemon.health
        parts = [health.mailbox_summary()]
        try:
            numbers = await asyncio.to_thread(self._brief)
        except Exception as exc:  # noqa: BLE001 - the status says so instead
            health.failing("database", describe_error(exc))
            parts.append("database unreachable")
        else:
            health.set("database", "reachable")
            parts.append(f"outbox {numbers[0]} pending")
            parts.append(f"next escalation {self._when(numbers[1])}")
        failing = [name for name in health.problems() if not name.startswith("mailbox:")]
        if failing:
            parts.append("failing: " + ", ".join(failing))
        return ", ".join(parts)

    def _brief(self) -> tuple[int, datetime | None]:
        with self.app.sessions() as session:
            numbers = brief(session)
        return numbers.outbox_pending, numbers.next_escalation_at

    def _when(self, moment: datetime | None) -> str:
        if moment is None:
            return "none"
        zone = self.app.config.calendar.zone
        local, today = moment.astimezone(zone), self.app.clock.now().astimezone(zone).date()
        return local.strftime("%H:%M" if local.date() == today else "%a %d %b %H:%M")

    # -- reloading --

    async def reload(self) -> bool:
        """SIGHUP: load and check the configuration file and its templates; switch to them
        only when both are good, else log why and keep the running ones."""
        path = self.config_path or self.app.config.source
        self.notifier.reloading("reloading configuration and templates")
        log.info("SIGHUP: reloading %s", path)
        try:
            candidate = await asyncio.to_thread(load_candidate, path)
        except (ConfigError, TemplateError) as exc:
            log.error("reload rejected, the running configuration and templates stay:\n%s", exc)
            self.notifier.ready(self._status)
            return False
        config, waiting = keep_restart_only(self.app.config, candidate.config)
        for key in waiting:
            log.warning("reload: %s changed; the new value takes effect after a restart", key)
        hide_secrets(config_secrets(config))
        await self.daemon.reconfigure(config, candidate.templates, faq=candidate.faq)
        self._watcher.reset(templates_dir(config), *brand_template_dirs(config))
        log.info("reload: configuration and templates from %s are live", path)
        self._status = await self._status_line()
        self.notifier.ready(self._status)
        return True

    async def _poll_templates(self) -> None:
        if not await asyncio.to_thread(self._watcher.poll):
            return
        directory = self._watcher.directory
        try:
            templates = await asyncio.to_thread(load_templates, self.app.config)
        except TemplateError as exc:
            log.error(
                "templates in %s changed but are broken; the running ones stay:\n%s", directory, exc
            )
            return
        await self.daemon.swap_templates(templates)
        log.info(
            "templates in %s changed: reloaded (%d templates, languages %s)",
            directory,
            len(templates.names()),
            ", ".join(sorted(templates.languages())),
        )

    # -- the listener --

    async def healthz(self) -> Response:
        health = self.daemon.health
        try:
            await asyncio.wait_for(asyncio.to_thread(self._ping_database), HEALTH_CHECK_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            detail = "no answer in time" if isinstance(exc, TimeoutError) else describe_error(exc)
            health.failing("database", detail)
        else:
            health.set("database", "reachable")
        document = health.as_json()
        if not self.daemon.ready.is_set():
            document["status"] = "starting"
        healthy = health.healthy and self.daemon.ready.is_set()
        return Response(200 if healthy else 503, (json.dumps(document) + "\n").encode())

    def _ping_database(self) -> None:
        with self.app.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    async def metrics(self) -> Response:
        body = await asyncio.to_thread(self.daemon.metrics.render)
        return Response(200, body, CONTENT_TYPE)


async def _first_of(stopping: asyncio.Task[bool], flag: asyncio.Event, timeout: float) -> None:
    """Wait until the daemon is stopping, `flag` is set, or `timeout` passes."""
    waiter = asyncio.create_task(flag.wait())
    try:
        await asyncio.wait([stopping, waiter], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
