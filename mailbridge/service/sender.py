"""The sender: the daemon's task that drains the outbox over SMTP, and the `smtp` part of
its health; beside it, the task that delivers the outbox's webhook rows
(service/webhook_sender.py), woken, started and stopped with it.

It makes a pass whenever woken (new mail queued, a sweep fired, a reload) and every
`service.outbox_interval` besides. While the server turns mail away it offers it the oldest
waiting mail now and then; once the server accepts mail again, whatever waits out a retry
pause goes at once. On stop it is not cancelled mid-send: it makes one last pass and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from mailbridge.adapters.smtp import SmtpSettings
from mailbridge.app import App
from mailbridge.db.models import Outbox
from mailbridge.oauth.tokens import TokenProvider, TokenProviders
from mailbridge.outbound.send import SendReport, bring_forward, send_pending, smtp_settings
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from mailbridge.service.webhook_sender import WebhookSender, drain

log = logging.getLogger(__name__)

PROBE_EVERY = 60.0  # seconds between offers of waiting mail to a server refusing it

# (exception, health part or None, what failed): the daemon's account of a failed job.
Failed = Callable[[Exception, str | None, str], None]


class Sender:
    def __init__(
        self,
        app: App,
        *,
        health: Health,
        metrics: Metrics,
        tokens: TokenProviders,
        failed: Failed,
        smtp: SmtpSettings | None = None,
    ) -> None:
        self.app = app
        self.health = health
        self.metrics = metrics
        self.tokens = tokens
        self._failed = failed
        self._fixed_smtp = smtp is not None
        self.smtp = self._signed_in(smtp or smtp_settings(app))
        self._wakeup = asyncio.Event()
        self._draining = asyncio.Event()  # set once pollers are done: last outbox pass
        self._task: asyncio.Task[None] | None = None
        self._refused_at: float | None = None  # monotonic: the SMTP server turned mail away
        self._probed_at = 0.0
        self.webhooks = WebhookSender(app, failed=failed)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and self.webhooks.running

    def wake(self) -> None:
        """Make a pass now: there may be mail to send (and webhooks to call)."""
        self._wakeup.set()
        self.webhooks.wake()

    def reconfigure(self) -> None:
        """Take the SMTP settings from the app's (new) configuration, unless they were given."""
        if not self._fixed_smtp:
            self.smtp = self._signed_in(smtp_settings(self.app))

    async def send_once(self) -> SendReport:
        """One pass, outside the loop (`run --once`): the mail's, and beside it the
        webhooks'."""
        report, _ = await asyncio.gather(
            send_pending(self.app, self.smtp), self.webhooks.send_once()
        )
        return report

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sender")
        self.webhooks.start()

    async def finish(self, grace: float) -> None:
        """One last pass of each, then return; cut off after `grace` seconds."""
        await asyncio.gather(self._finish_mail(grace), self.webhooks.finish(grace))

    async def _finish_mail(self, grace: float) -> None:
        await drain(self._task, self._draining, self._wakeup, grace)

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()
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
                await asyncio.wait_for(self._wakeup.wait(), interval)

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
        self._wakeup.set()

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
