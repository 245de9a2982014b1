"""The service report's time over a large history, beside a bare count of the same rows.

    python bench/report.py [--db sqlite|postgresql|both] [--tickets 1000000] [--days 730]
                           [--since 90d] [--by week] [--runs 3] [--seed 1] [--keep DIR]

Builds --tickets tickets spread evenly over the --days before a fixed moment, with bulk
inserts into a migrated database: most answered and resolved, some still open, spam and
merged ones, acknowledgements in the outbox, escalations, tags (unhappy among them) and
the events the report reads (reopens, ratings, FAQ answers that solved the matter) among
ordinary ones. Six in ten tickets are on a business-hours policy (an Italian office
calendar with its holidays), so first response and resolution times are business time.

Then measures, --runs times each after one run to warm up (best, median and worst, and
the machine's load average while it measured):
  report    `make_report` for the last --since, grouped --by (what `mailbridge report
            --since 90d --by week` runs, without the interpreter's start);
  command   one `mailbridge report --since 90d --by week --json` in a child process;
  count     `SELECT COUNT(*)` over the same tickets (created in the period).
`--quick` is 100,000 tickets. With `--keep DIR` the database is built once and kept (a
SQLite file in DIR, or a PostgreSQL database named after DIR) with a note of what was
built and when its history ends; a later run with the same DIR and sizes migrates it to
the head revision and measures it again, as of that same moment (the child process alone
reports up to the real now). `--drop DIR` removes what `--keep DIR` kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import PG_ADMIN, database, workdir
from sqlalchemy import Engine, create_engine, func, insert, select, text

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.config import load_config
from mailbridge.core.report import period_since
from mailbridge.core.sla import parse_duration
from mailbridge.db import migrate
from mailbridge.db.engine import make_engine
from mailbridge.db.models import Escalation, Event, Outbox, Ticket, TicketTag
from mailbridge.reports import make_report

BATCH = 10_000
QUEUES = ("billing", "orders", "returns", "technical", "general")
ASSIGNEES = (None, "ann@shop.example", "bob@shop.example", "cy@shop.example", "di@shop.example")
LANGUAGES = ("it", "en", "de", "fr", None)
ACK_RAW = b"X" * 2_000  # about what an acknowledgement weighs, so rows are not tiny

CONFIG = """\
[database]
url = "{url}"
auto_migrate = false

[[mailbox]]
name = "support"
address = "support@shop.example"
host = "127.0.0.1"
username = "support"
password_file = "{data}/imap-password"

[smtp]
host = "127.0.0.1"
from = "Shop Support <support@shop.example>"

[[sla]]
name = "office"
first_response = "8h"
resolution = "40h"
business_hours = true
queues = ["billing", "orders", "returns"]

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"

[calendar]
timezone = "Europe/Rome"
holidays = "IT"

[staff]
escalation_address = "lead@shop.example"

[service]
data_dir = "{data}"
"""


class Rows:
    """The rows of one batch of tickets, and of what belongs to them."""

    def __init__(self) -> None:
        self.tickets: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.escalations: list[dict[str, Any]] = []
        self.tags: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def event(self, ticket_id: int, at: datetime, kind: str, **data: Any) -> None:
        self.events.append({"ticket_id": ticket_id, "at": at, "type": kind, "data": data})


def _ticket(
    rows: Rows, rng: random.Random, ticket_id: int, created: datetime, now: datetime
) -> None:
    queue = rng.choice(QUEUES)
    responded = created + timedelta(seconds=rng.expovariate(1 / 10_800))
    resolved = responded + timedelta(seconds=rng.expovariate(1 / 150_000))
    if rng.random() < 0.05:
        responded = resolved = None  # never answered (automated mail, lost causes)
    if resolved is not None and (resolved > now or rng.random() < 0.02):
        resolved = None
    responded = responded if responded is None or responded <= now else None
    roll = rng.random()
    status = "resolved" if resolved else ("waiting" if responded else "new")
    status = "spam" if roll < 0.02 else "merged" if roll < 0.03 else status
    rows.tickets.append(
        {
            "id": ticket_id,
            "number": 1000 + ticket_id,
            "subject": f"Order {ticket_id}",
            "requester_name": "",
            "requester_address": f"c{ticket_id}@customer.example",
            "mailbox": "support" if rng.random() < 0.8 else "sales",
            "queue": queue,
            "priority": "normal",
            "status": status,
            "language": rng.choice(LANGUAGES),
            "assignee": rng.choice(ASSIGNEES),
            "sla_policy": "office" if queue in ("billing", "orders", "returns") else "standard",
            "created_at": created,
            "updated_at": created,
            "first_response_due_at": created + timedelta(hours=8),
            "first_responded_at": responded,
            "resolution_due_at": created + timedelta(days=5),
            "resolved_at": resolved,
            "escalation_level": 0,
            "resolution_paused_seconds": 0,
        }
    )
    _around(rows, rng, ticket_id, created, responded, resolved)


def _around(
    rows: Rows,
    rng: random.Random,
    ticket_id: int,
    created: datetime,
    responded: datetime | None,
    resolved: datetime | None,
) -> None:
    if rng.random() < 0.9:
        rows.acks.append(
            {
                "ticket_id": ticket_id,
                "kind": "ack",
                "envelope_from": "support@shop.example",
                "envelope_to": [f"c{ticket_id}@customer.example"],
                "message_id": f"<ack.{ticket_id}@shop.example>",
                "raw": ACK_RAW,
                "state": "sent",
                "attempts": 1,
                "next_attempt_at": created,
                "created_at": created,
                "sent_at": created + timedelta(seconds=rng.uniform(1, 60)),
            }
        )
    rows.event(ticket_id, created, "ack_queued", form="full")
    if responded is not None:
        rows.event(ticket_id, responded, "first_response", late_minutes=None)
        rows.event(ticket_id, responded, "sla_paused", deadline="resolution")
    if rng.random() < 0.1:
        due = created + timedelta(hours=8)
        for level in range(1, rng.randint(1, 2) + 1):
            rows.escalations.append(
                {
                    "ticket_id": ticket_id,
                    "policy": "standard",
                    "deadline": "first_response",
                    "level": level,
                    "due_at": due,
                    "fired_at": due + timedelta(hours=4 * (level - 1)),
                }
            )
    _tags_and_outcomes(rows, rng, ticket_id, created, resolved)


def _tags_and_outcomes(
    rows: Rows, rng: random.Random, ticket_id: int, created: datetime, resolved: datetime | None
) -> None:
    roll = rng.random()
    if roll < 0.03:
        rows.tags += [
            {"ticket_id": ticket_id, "tag": t, "added_at": created}
            for t in ("unhappy", "complaint")
        ]
    elif roll < 0.1:
        rows.tags.append({"ticket_id": ticket_id, "tag": "invoice", "added_at": created})
    if resolved is None:
        return
    later = resolved + timedelta(hours=rng.uniform(1, 48))
    if rng.random() < 0.08:
        rows.event(ticket_id, later, "rated", verdict="good" if rng.random() < 0.8 else "bad")
    if rng.random() < 0.05:
        rows.event(ticket_id, later, "followup", status_from="resolved", status_to="open")
    if rng.random() < 0.03:
        rows.event(ticket_id, created, "faq_offered", offered=[{"file": "a.md", "score": 1}])
        rows.event(ticket_id, resolved, "resolved_by_customer", said="risolto")


def batches(tickets: int, days: int, seed: int, now: datetime) -> Iterator[Rows]:
    rng = random.Random(seed)
    span = timedelta(days=days).total_seconds()
    first = now - timedelta(days=days)
    for start in range(1, tickets + 1, BATCH):
        rows = Rows()
        for ticket_id in range(start, min(start + BATCH, tickets + 1)):
            created = first + timedelta(seconds=span * (ticket_id - 0.5) / tickets)
            _ticket(rows, rng, ticket_id, created, now)
        yield rows


def build(engine: Engine, tickets: int, days: int, seed: int, now: datetime) -> None:
    started = time.perf_counter()
    done = 0
    for rows in batches(tickets, days, seed, now):
        with engine.begin() as connection:
            connection.execute(insert(Ticket), rows.tickets)
            for model, values in (
                (Outbox, rows.acks),
                (Escalation, rows.escalations),
                (TicketTag, rows.tags),
                (Event, rows.events),
            ):
                if values:
                    connection.execute(insert(model), values)
        done += len(rows.tickets)
        if done % 100_000 == 0 or done == tickets:
            print(f"  {done:>9,} tickets {time.perf_counter() - started:7.1f} s", flush=True)
    analyze(engine)


def analyze(engine: Engine) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
        )


def timed(action: Callable[[], object], runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        took.append(time.perf_counter() - started)
    return took


def spread(took: list[float]) -> str:
    """Best, median and worst: the machine is shared, so the best is the figure."""
    best, median, worst = min(took), statistics.median(took), max(took)
    return f"best {best:6.3f} s  median {median:6.3f} s  worst {worst:6.3f} s"


def measure(app: App, config: Path, since: str, by: str, runs: int) -> None:
    period = period_since(app.clock.now(), parse_duration(since))
    report = make_report(app, period, by)  # type: ignore[arg-type]
    load = os.getloadavg()[0]
    took = timed(lambda: make_report(app, period, by), runs)  # type: ignore[arg-type]
    in_period = (
        select(func.count())
        .select_from(Ticket)
        .where(Ticket.created_at >= period.start, Ticket.created_at < period.end)
    )
    with app.engine.connect() as connection:
        counted = connection.execute(in_period).scalar_one()
        count = timed(lambda: connection.execute(in_period).scalar_one(), runs)
    load = max(load, os.getloadavg()[0])
    command = [sys.executable, "-m", "mailbridge", "--config", str(config), "report"]
    command += ["--since", since, "--by", by, "--json"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    child = time.perf_counter() - started
    print(
        f"  report    {spread(took)}  ({len(report.groups)} groups, "
        f"{report.total.tickets_in:,} tickets in the period)"
    )
    print(f"  count     {spread(count)}  (COUNT(*) = {counted:,})")
    print(f"  command   {child:6.3f} s  (a child process: the interpreter's start included)")
    print(f"  load average {load:.1f} on {os.cpu_count()} CPUs while measuring (1 minute, highest)")


@dataclass(frozen=True)
class Built:
    """What a kept database holds: the sizes it was built with and when its history ends."""

    tickets: int
    days: int
    seed: int
    now: str


@contextmanager
def kept_database(kind: str, keep: Path) -> Iterator[str]:
    """The URL of the database kept under `keep`, created if missing; never dropped."""
    if kind == "sqlite":
        yield f"sqlite:///{keep / 'mailbridge.db'}"
        return
    name = _kept_name(keep)
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if found.first() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.dispose()


def _kept_name(keep: Path) -> str:
    return "mailbridge_bench_report_" + hashlib.sha1(str(keep.resolve()).encode()).hexdigest()[:8]


def drop_kept(keep: Path) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{_kept_name(keep)}" WITH (FORCE)'))
    finally:
        admin.dispose()
    for kind in ("sqlite", "postgresql"):
        (keep / f"built-{kind}.json").unlink(missing_ok=True)
    (keep / "mailbridge.db").unlink(missing_ok=True)


def prepare(kind: str, url: str, wanted: Built, note: Path | None) -> datetime:
    """Migrate the database and fill it unless `note` says it holds `wanted` already; the
    moment its history ends."""
    engine = make_engine(url)
    try:
        if note is not None and note.exists():
            built = Built(**json.loads(note.read_text(encoding="utf-8")))
            if replace(built, now="") == replace(wanted, now=""):
                print(f"  reusing the database built for {built.now}")
                migrate.upgrade(engine)
                analyze(engine)
                return datetime.fromisoformat(built.now)
            raise SystemExit(f"{note} holds {built}, not {wanted}: --drop it first")
        migrate.upgrade(engine)
        now = datetime.fromisoformat(wanted.now)
        build(engine, wanted.tickets, wanted.days, wanted.seed, now)
        if note is not None:
            note.write_text(json.dumps(asdict(wanted)), encoding="utf-8")
        return now
    finally:
        engine.dispose()


def run(kind: str, wanted: Built, since: str, by: str, runs: int, keep: Path | None) -> None:
    print(
        f"{kind}: {wanted.tickets:,} tickets over {wanted.days} days; "
        f"report --since {since} --by {by}"
    )
    with workdir("mb-bench-report-") as base:
        if keep is None:
            place = database(kind, base)
        else:
            keep.mkdir(parents=True, exist_ok=True)
            place = kept_database(kind, keep)
        with place as url:
            note = keep / f"built-{kind}.json" if keep else None
            now = prepare(kind, url, wanted, note)
            config = base / "mailbridge.toml"
            config.write_text(CONFIG.format(url=url, data=base), encoding="utf-8")
            (base / "imap-password").write_text("unused", encoding="utf-8")
            (base / "imap-password").chmod(0o600)
            app = build_app(load_config(config), clock=FrozenClock(now), migrate_now=False)
            try:
                measure(app, config, since, by, runs)
            finally:
                app.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730, help="the history the tickets span")
    parser.add_argument("--since", default="90d")
    parser.add_argument("--by", default="week")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="100,000 tickets")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build once, keep, reuse")
    parser.add_argument("--drop", type=Path, metavar="DIR", help="remove what --keep kept")
    args = parser.parse_args(argv)
    if args.drop:
        drop_kept(args.drop)
        return 0
    # The history ends now, so the command in a child process reports on the same period.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tickets = 100_000 if args.quick else args.tickets
    wanted = Built(tickets, args.days, args.seed, now.isoformat())
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run(kind, wanted, args.since, args.by, args.runs, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
