"""`mailbridge db`: apply migrations, or back up the database."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailbridge.cli.common import EXIT_OK, command_config


def configure(db: argparse.ArgumentParser) -> None:
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="apply migrations")
    backup = db_commands.add_parser(
        "backup",
        help="a consistent copy of a running SQLite database (PostgreSQL: prints "
        "the pg_dump command)",
    )
    backup.add_argument("path", type=Path, metavar="PATH", help="where the copy goes (new file)")
    db.set_defaults(handler=_db)


def _db(args: argparse.Namespace) -> int:
    from mailbridge.db import migrate
    from mailbridge.db.engine import make_engine

    config = command_config(args)
    if args.db_command == "backup":
        from mailbridge.db.backup import backup

        print(backup(config.database_url, args.path))
        if config.blob_dir.is_dir():
            print(
                f"attachments and raw mail kept as files are not in the database: back up "
                f"{config.blob_dir} too, after the database (rsync -a, tar)"
            )
        return EXIT_OK
    engine = make_engine(config.database_url)
    try:
        migrate.upgrade(engine)
        print(f"database at revision {migrate.current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK
