"""Database size and ingest speed with attachments and raw mail in the database or as
files ([storage]).

    python bench/storage.py [--n 5000] [--db sqlite|postgresql] [--server dovecot|pymap]
                            [--seed 1]

For each placement (everything in the database; attachments as files; attachments and raw
mail as files) it fills a private IMAP mailbox with the same N generated mails (the
ingest benchmark's set, bench/_common.generate), runs `mailbridge run --once` into a fresh
database, and prints the database size, the files directory's size, msg/s, and each
against the database placement. It also says what share of the mail's bytes are
attachments: raw mail holds every attachment again (base64), so raw mail is most of what
the database holds.
"""

from __future__ import annotations

import argparse
import email
import os
import sys
from email import policy
from pathlib import Path

from _common import (
    child_env,
    database,
    fill,
    generate,
    imap_server,
    mailbridge_command,
    mb,
    rate,
    run_child,
    tail,
    workdir,
    write_config,
)

PLACEMENTS = {
    "database": "",
    "attachments": '\n[storage]\nattachments = "files"\nraw = "database"\n',
    "attachments+raw": '\n[storage]\nattachments = "files"\nraw = "files"\n',
}
CHILD_TIMEOUT = 1800.0


def attachment_share(n: int, seed: int) -> tuple[int, int]:
    """(bytes of the mails, bytes of their attachments, decoded) of the benchmark set."""
    total = attached = 0
    for raw in generate(n, seed):
        total += len(raw)
        message = email.message_from_bytes(raw, policy=policy.default)
        for part in message.iter_attachments():  # type: ignore[attr-defined]
            attached += len(part.get_payload(decode=True) or b"")
    return total, attached


def database_bytes(url: str, directory: Path) -> int:
    if url.startswith("sqlite"):
        return sum(p.stat().st_size for p in directory.glob("mailbridge.db*"))
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("CHECKPOINT"))
            return int(connection.scalar(text("SELECT pg_database_size(current_database())")))
    finally:
        engine.dispose()


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def run(placement: str, args: argparse.Namespace) -> tuple[int, int, float]:
    with (
        workdir(f"mb-storage-{placement}-") as work,
        imap_server(args.server) as server,
        database(args.db, work) as url,
    ):
        count, _ = fill(server, args.n, args.seed)
        config = write_config(work, server, 9, url, more=PLACEMENTS[placement])
        log = work / "run.log"
        result = run_child(
            mailbridge_command(config, "run", "--once"), child_env(server), log, CHILD_TIMEOUT
        )
        if result.returncode not in (0, 1):  # 1: the closed SMTP port, after ingest
            sys.exit(f"{placement}: mailbridge exited {result.returncode}\n{tail(log)}")
        return (
            database_bytes(url, work),
            directory_bytes(work / "blobs"),
            rate(count, result.seconds),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--server", choices=("dovecot", "pymap"), default="dovecot")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    total, attached = attachment_share(args.n, args.seed)
    print(
        f"{args.n} mails, {mb(total):.1f} MB as sent; attachments {mb(attached):.1f} MB "
        f"decoded ({attached / total:.0%} of the bytes; base64 in the raw mail adds a third)"
    )
    print(f"{'placement':<16} {'database MB':>12} {'files MB':>10} {'msg/s':>8}  vs database")
    base: tuple[int, int, float] | None = None
    for placement in PLACEMENTS:
        db, files, speed = run(placement, args)
        base = base or (db, files, speed)
        versus = (
            f"database {1 - db / base[0]:+.0%} smaller"
            if placement != "database"
            else "(the reference)"
        ).replace("+", "")
        if placement != "database":
            versus += f", speed {speed / base[2] - 1:+.1%}"
        print(f"{placement:<16} {mb(db):>12.1f} {mb(files):>10.1f} {speed:>8.1f}  {versus}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
