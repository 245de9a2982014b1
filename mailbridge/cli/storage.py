"""`mailbridge storage check|migrate`: the files of [storage] against the rows that name
them, and moving stored bytes between the database and the files."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from mailbridge.cli.common import EXIT_FAILURE, EXIT_OK, command_config, duration, open_app

if TYPE_CHECKING:  # the database code loads only when the command runs
    from mailbridge.app import App
    from mailbridge.db.blobs import BlobStore


def configure(storage: argparse.ArgumentParser) -> None:
    actions = storage.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="rows whose file is missing or damaged (exit 1), and orphan files"
    )
    check.add_argument(
        "--fix",
        action="store_true",
        help="remove orphan files older than the grace period, and unfinished temporary files",
    )
    check.add_argument(
        "--grace",
        type=_grace,
        metavar="DURATION",
        help="how old an orphan must be to be removed (default: [storage] orphan_grace, 1h)",
    )
    migrate = actions.add_parser(
        "migrate", help="move stored raw mail and attachments, in batches (resumable)"
    )
    migrate.add_argument("--to", choices=("files", "database"), required=True)
    storage.set_defaults(handler=_storage)


def _grace(text: str) -> timedelta:
    return timedelta(0) if text.strip() in ("0", "0s") else duration(text)


def _storage(args: argparse.Namespace) -> int:
    from mailbridge.app import placement_for

    config = command_config(args)
    store = placement_for(config).store
    assert store is not None
    with open_app(config) as app:
        if args.storage_command == "migrate":
            return _migrate(app, args.to, str(store.root))
        grace = config.storage.orphan_grace if args.grace is None else args.grace
        return _check(app, store, grace, args.fix)


def _migrate(app: App, to: Literal["files", "database"], where: str) -> int:
    from mailbridge.db.storage_upkeep import migrate

    report = migrate(app.sessions, to)
    place = f"the files in {where}" if to == "files" else "the database"
    print(
        f"moved to {place}: {report.raw} raw message(s), {report.attachments} "
        f"attachment(s), {report.bytes:,} bytes"
    )
    for problem in report.problems:
        print(f"not moved: {problem}")
    return EXIT_FAILURE if report.problems else EXIT_OK


def _check(app: App, store: BlobStore, grace: timedelta, fix: bool) -> int:
    from mailbridge.db.storage_upkeep import check

    report = check(app.sessions, store, app.clock.now(), grace, fix=fix)
    print(f"{store.root}: {report.rows} row(s) keep their bytes as files")
    for problem in report.problems:
        print(f"problem: {problem}")
    print(
        f"{report.orphans} orphan file(s) no row names ({report.orphan_bytes:,} bytes), "
        f"{report.young} of them younger than {grace}"
    )
    if report.leftovers:
        print(f"{report.leftovers} unfinished temporary file(s)")
    for name in report.foreign:
        print(f"not written by mailbridge, left alone: {name}")
    if fix:
        print(f"removed {report.removed} orphan file(s) and the unfinished temporary files")
    return EXIT_FAILURE if report.problems else EXIT_OK
