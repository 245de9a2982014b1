"""`mailbridge run`: the daemon, or one pass with --once."""

from __future__ import annotations

import argparse
import asyncio
import logging

from mailbridge import heap
from mailbridge.cli.common import EXIT_FAILURE, EXIT_OK, command_config
from mailbridge.config import config_path

log = logging.getLogger("mailbridge")


def configure(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--once",
        action="store_true",
        help="one full pass (ingest, process, send, sweep), then exit",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mailbridge.app import build_app
    from mailbridge.service.daemon import Daemon
    from mailbridge.service.systemd import Service

    path = config_path(args.config)
    app = build_app(command_config(args))
    try:
        daemon = Daemon(app)
        heap.settle()  # what start-up made lives as long as the process (mailbridge/heap.py)
        if args.once:
            report = asyncio.run(daemon.run_once())
            log.info(
                "pass done: fetched %d, tickets created %d, acknowledgements queued %d, "
                "sent %d, deferred %d, failed %d, escalated %d",
                sum(report.fetched.values()),
                report.processed.created,
                report.processed.acknowledged,
                report.sent.sent,
                report.sent.deferred,
                report.sent.failed,
                report.escalated,
            )
            return EXIT_OK if report.ok else EXIT_FAILURE
        asyncio.run(Service.from_environ(daemon, path).run())
        return EXIT_OK
    finally:
        app.close()
