"""One account of a database outage for the whole daemon: logged once when it starts and
once when it ends, and shown in health meanwhile, however many parts run into it."""

from __future__ import annotations

import logging
import time

from mailbridge.db.outage import Outage
from mailbridge.service.health import Health

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # how often paused work tries the database again


class OutageWatch:
    def __init__(self, health: Health, where: str) -> None:
        self._health = health
        self._where = where  # the database, as the operator knows it (file or host)
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def down(self, outage: Outage, component: str | None = None) -> None:
        """`component` (a mailbox) cannot go on: mark it paused; log the outage once."""
        if self._since is None:
            self._since = time.monotonic()
            advice = (
                f"free space on the disk holding {self._where}"
                if outage.disk_full
                else f"check {self._where}"
            )
            log.error(
                "database unavailable: %s; ingest paused, mail stays on the IMAP "
                "server and the outbox waits; resumes by itself (%s)",
                outage.reason,
                advice,
            )
        self._health.failing("database", outage.reason)
        if component is not None:
            self._health.failing(component, f"ingest paused: {outage.reason}", state="paused")

    def up(self) -> None:
        """Work went through again: end the outage (logged once)."""
        if self._since is None:
            return
        log.info(
            "database answers again: ingest resumed after %.0f s", time.monotonic() - self._since
        )
        self._since = None
        self._health.set("database", "reachable")
