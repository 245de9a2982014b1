"""`mailbridge purge`: apply the [retention] policy (purge_after, erase_content_after)
and the spam purge ([spam] purge_after) now, or say what they would remove."""

from __future__ import annotations

import argparse

from mailbridge.cli.common import EXIT_OK, command_config, open_app


def configure(purge: argparse.ArgumentParser) -> None:
    purge.add_argument(
        "--dry-run", action="store_true", help="report what would be removed, remove nothing"
    )
    purge.set_defaults(handler=_purge)


def _purge(args: argparse.Namespace) -> int:
    from mailbridge.tickets.content_retention import erase_closed_content
    from mailbridge.tickets.retention import purge
    from mailbridge.tickets.spam_purge import purge_spam

    verb = "would remove" if args.dry_run else "removed"
    removed = []
    with open_app(command_config(args)) as app:
        retention = app.config.retention
        if not retention.anything:
            print(
                f"{app.config.source}: retention.purge_after and erase_content_after are "
                "not set: closed tickets keep everything"
            )
        if retention.purge_after is not None:
            report = purge(app, dry_run=args.dry_run)
            removed += [report.summary()] if report.anything else []
        if retention.erase_content_after is not None:
            erased = erase_closed_content(app, dry_run=args.dry_run)
            removed += [erased.summary()] if erased.anything else []
        spam = purge_spam(app, dry_run=args.dry_run)
        removed += [spam.summary()] if spam.anything else []
    for line in removed:
        print(f"{verb}: {line}")
    if not removed:
        print("nothing to remove")
    return EXIT_OK
