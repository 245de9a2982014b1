"""`mailbridge purge`: apply the [retention] policy now, or say what it would remove."""

from __future__ import annotations

import argparse

from mailbridge.cli.common import EXIT_OK, command_config, open_app


def configure(purge: argparse.ArgumentParser) -> None:
    purge.add_argument(
        "--dry-run", action="store_true", help="report what would be removed, remove nothing"
    )
    purge.set_defaults(handler=_purge)


def _purge(args: argparse.Namespace) -> int:
    from mailbridge.tickets.retention import purge

    with open_app(command_config(args)) as app:
        if app.config.retention.purge_after is None:
            print(f"{app.config.source}: retention.purge_after is not set: everything is kept")
            return EXIT_OK
        report = purge(app, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb}: {report.summary()}" if report.anything else "nothing to remove")
    return EXIT_OK
