"""`mailbridge run` (the daemon, or one pass with --once) and `mailbridge demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailbridge.cli.common import EXIT_FAILURE, EXIT_OK, command_config
from mailbridge.config import config_path

if TYPE_CHECKING:
    from mailbridge.cli.common import Commands

log = logging.getLogger("mailbridge")


def register(commands: Commands) -> None:
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument(
        "--once",
        action="store_true",
        help="one full pass (ingest, process, send, sweep), then exit",
    )

    demo = commands.add_parser("demo", help="embedded IMAP + SMTP + SQLite with sample mail")
    demo.add_argument("--dir", type=Path, help="keep the demo's database here (default: temporary)")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the demo daemon running after the tour, until Ctrl-C",
    )
    run.set_defaults(handler=_run)
    demo.set_defaults(handler=_demo)


def _run(args: argparse.Namespace) -> int:
    from mailbridge.app import build_app
    from mailbridge.service.daemon import Daemon
    from mailbridge.service.systemd import Service

    path = config_path(args.config)
    app = build_app(command_config(args))
    try:
        daemon = Daemon(app)
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


def _demo(args: argparse.Namespace) -> int:
    from mailbridge.demo import EXTRA_MODULES, INSTALL

    try:  # here, not at the top: the daemon runs without the demo extra
        from mailbridge.demo.run import run_demo
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in EXTRA_MODULES:
            raise
        print(
            f"mailbridge: the demo needs pymap and aiosmtpd, from the demo extra ({package} is "
            f"missing): {INSTALL}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return run_demo(args.dir, keep_running=args.keep_running)
