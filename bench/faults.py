"""The fault run at full size: no mail lost or repeated through kills and outages.

    python bench/faults.py [--database sqlite|postgresql|both] [--kills 30]
                           [--imap-outage 30] [--smtp-refusal 60] [--smtp-drops 5]
                           [--pg-outage 20] [--instances 3] [--takeover-after SECONDS]
                           [--rate 8] [--burst 400] [--seed 1] [--keep]

The same machinery as tests/faults (see tests/faults/harness.py): real `mailbridge run`
processes, pymap and an aiosmtpd sink on loopback, customer mail arriving all the time, and
in turn: kill -9 at random moments, the IMAP server stopped mid-IDLE and mid-FETCH, the SMTP
server answering 451 and then cutting connections mid-DATA, and on PostgreSQL (a private
cluster this script starts and stops) the database stopped, then three instances with the
owner of the mailbox killed. Prints one table per database; exit status 0 when every mail
became exactly one ticket or article and every acknowledgement arrived.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from _common import workdir

from tests.faults.cluster import PrivatePostgres
from tests.faults.harness import Outcome, Plan, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--kills", type=int, default=30, help="kill -9 this many times")
    parser.add_argument("--imap-outage", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument(
        "--smtp-refusal",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="451 to every DATA for this long",
    )
    parser.add_argument(
        "--smtp-drops", type=int, default=5, help="then cut this many connections mid-DATA"
    )
    parser.add_argument("--pg-outage", type=float, default=20.0, metavar="SECONDS")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument(
        "--takeover-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="service.takeover_after (default: mailbridge's own default)",
    )
    parser.add_argument("--rate", type=float, default=8.0, help="customer mails per second")
    parser.add_argument(
        "--burst",
        type=int,
        default=400,
        help="mails injected at once before stopping IMAP mid-FETCH",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the working directory (daemon logs) and print its path",
    )
    return parser.parse_args(argv)


def plan_for(args: argparse.Namespace, database: str) -> Plan:
    return Plan(
        database=database,
        kills=args.kills,
        imap_outage=args.imap_outage,
        smtp_refusal=args.smtp_refusal,
        smtp_drops=args.smtp_drops,
        pg_outage=args.pg_outage,
        instances=args.instances,
        takeover_after=args.takeover_after,
        rate=args.rate,
        burst=args.burst,
        seed=args.seed,
        recovery_timeout=600.0,
    )


@contextmanager
def place(database: str, keep: bool) -> Iterator[Path]:
    """A working directory for the configuration, SQLite file and daemon logs."""
    prefix = f"mailbridge-faults-{database}-"
    if keep:
        yield Path(tempfile.mkdtemp(prefix=prefix))
        return
    with workdir(prefix) as path:
        yield path


def one(plan: Plan, keep: bool) -> Outcome:
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {line}", flush=True)

    with place(plan.database, keep) as path:
        say(f"{plan.database}: working in {path}" + (" (kept)" if keep else ""))
        outcome = run(plan, path, say)
    print(
        f"\n{plan.database}, {time.monotonic() - began:.0f} s:\n{outcome.explain()}\n", flush=True
    )
    return outcome


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: daemons, servers and the cluster are stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    # The servers' own logs: a connection cut mid-DATA leaves the sink a line it does not
    # understand, and servers stopped under their clients log every write that failed.
    for noisy in ("mail.log", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in databases and (problem := PrivatePostgres.problem()) is not None:
        print(f"postgresql: {problem}", file=sys.stderr)
        return 2
    failed = [db for db in databases if one(plan_for(args, db), args.keep).problems]
    if failed:
        print(f"promises broken on: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
