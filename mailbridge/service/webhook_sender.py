"""The webhook half of the send loop: a task beside the mail's (service/sender.py wakes,
starts and stops both), delivering webhook rows (outbound/webhook_send.py) whenever woken
and every `service.outbox_interval`. It runs on its own so that an endpoint that is slow
or down never delays a mail, and a pass of mail never delays a notification.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from mailbridge.app import App
from mailbridge.outbound.webhook_send import HookReport, deliver_webhooks

# (exception, health part or None, what failed): the daemon's account of a failed job.
Failed = Callable[[Exception, str | None, str], None]


class WebhookSender:
    def __init__(self, app: App, *, failed: Failed) -> None:
        self.app = app
        self._failed = failed
        self._wakeup = asyncio.Event()
        self._draining = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        self._wakeup.set()

    async def send_once(self) -> HookReport:
        """One pass, outside the loop (`run --once`)."""
        return await deliver_webhooks(self.app)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhooks")

    async def finish(self, grace: float) -> None:
        """One last pass, then return; cut off after `grace` seconds."""
        await drain(self._task, self._draining, self._wakeup, grace)

    async def _loop(self) -> None:
        while True:
            self._wakeup.clear()
            last = self._draining.is_set()
            try:
                await deliver_webhooks(self.app)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                self._failed(exc, None, "webhook pass failed")
            if last:
                return
            interval = self.app.config.service.outbox_interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), interval)


async def drain(
    task: asyncio.Task[None] | None, draining: asyncio.Event, wakeup: asyncio.Event, grace: float
) -> None:
    """Ask a send loop for its last pass and wait for it, `grace` seconds at most (the mail
    sender's and the webhooks' loops stop alike)."""
    draining.set()
    wakeup.set()
    if task is None:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(task, grace)
