"""The SLA sweep against a large ticket table, on SQLite and PostgreSQL.

    python bench/sweep.py [--n 1000000] [--due 1000] [--db sqlite|postgresql|both] [--quick]

Fills a fresh database with N tickets, 90% of them closed (next_escalation_at NULL) and the
rest open: `--due` of those past their first-response deadline, the others due later.
Then measures, each the median of several runs:
  raw SELECT   the indexed range scan alone, through a bare connection: the baseline;
  find due     what a sweep does before firing: lock the due tickets (BEGIN IMMEDIATE on
               SQLite, FOR UPDATE SKIP LOCKED on PostgreSQL), read what has fired for them
               and their customers' first words, for all `--due` tickets at once; rolled
               back, so every run finds the same;
  find none    a whole `sweep()` when nothing is due (the usual case, every 30 s);
and once, a whole `sweep()` that fires level 1 on every due ticket: escalation rows,
events, and a notification in the outbox for each (a recipe row, rendered when sent).
`--quick` is N = 100,000. The last line holds the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import database, workdir
from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from mailbridge import heap
from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.config import config_from_dict
from mailbridge.db import queries
from mailbridge.db.models import Escalation, Event, Outbox, Tally, Ticket
from mailbridge.tickets import escalate

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
CHUNK = 20_000
REPEAT = 7
H = timedelta(hours=1)


def config(db_url: str, data_dir: Path) -> Any:
    return config_from_dict(
        {
            "database": {"url": db_url, "auto_migrate": True},
            "mailbox": [
                {
                    "name": "support",
                    "address": "support@shop.example",
                    "host": "127.0.0.1",
                    "username": "support",
                }
            ],
            "smtp": {"host": "127.0.0.1", "from": "Shop Support <support@shop.example>"},
            "sla": [
                {
                    "name": "standard",
                    "first_response": "8h",
                    "resolution": "5d",
                    "levels": [
                        {"at": "-1h", "notify": "team@shop.example"},
                        {"at": "0", "notify": "lead@shop.example", "raise_priority": "high"},
                        {"at": "+4h", "notify": "manager@shop.example", "raise_priority": "urgent"},
                    ],
                }
            ],
            "staff": {
                "team_address": "team@shop.example",
                "escalation_address": "lead@shop.example",
            },
            "service": {"data_dir": str(data_dir)},
        },
        data_dir / "bench.toml",
        {},
    )


def ticket_rows(n: int, due: int) -> Iterator[dict[str, Any]]:
    """n tickets: 90% closed, then `due` open ones past their deadline, the rest later."""
    closed, open_ = n * 9 // 10, n - n * 9 // 10
    if due > open_:
        raise SystemExit(f"--due {due} is more than the {open_} open tickets")
    for i in range(n):
        created = NOW - timedelta(days=400) + timedelta(seconds=i * 30)
        row = {
            "number": 1000 + i,
            "subject": f"Order {10000 + i} has not arrived",
            "requester_name": "Ada Customer",
            "requester_address": f"c{i}@customer.example",
            "mailbox": "support",
            "queue": "support",
            "priority": "normal",
            "language": "en",
            "sla_policy": "standard",
            "escalation_level": 0,
            "resolution_paused_seconds": 0,
        }
        if i < closed:
            row.update(
                status="closed",
                created_at=created,
                updated_at=created + H,
                first_response_due_at=created + 8 * H,
                first_responded_at=created + H,
                resolution_due_at=created + 120 * H,
                resolved_at=created + 2 * H,
                next_escalation_at=None,
            )
        else:
            k = i - closed
            # Due ones are 30 min past their deadline; later ones spread over five days.
            spread = timedelta(seconds=5 * 86400 / max(open_ - due, 1))
            deadline = (
                NOW - H / 2 - k * timedelta(seconds=1)
                if k < due
                else NOW + 2 * H + (k - due) * spread
            )
            start = deadline - 8 * H
            row.update(
                status="new",
                created_at=start,
                updated_at=start,
                first_response_due_at=deadline,
                first_responded_at=None,
                resolution_due_at=start + 120 * H,
                resolved_at=None,
                next_escalation_at=deadline if k < due else deadline - H,
            )
        yield row


def fill(app: App, n: int, due: int) -> float:
    """Insert the tickets (executemany in chunks) and some fired levels of closed ones."""
    start = time.perf_counter()
    table = Ticket.__table__
    chunk: list[dict[str, Any]] = []
    with app.engine.begin() as conn:
        for row in ticket_rows(n, due):
            chunk.append(row)
            if len(chunk) == CHUNK:
                conn.execute(insert(table), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(table), chunk)
        ids = conn.scalars(
            select(Ticket.id).where(Ticket.status == "closed").order_by(Ticket.id).limit(n // 20)
        ).all()
        escalations = [
            {
                "ticket_id": ticket_id,
                "policy": "standard",
                "deadline": "first_response",
                "level": 1,
                "due_at": NOW - 300 * H,
                "fired_at": NOW - 300 * H,
            }
            for ticket_id in ids
        ]
        for first in range(0, len(escalations), CHUNK):
            conn.execute(insert(Escalation.__table__), escalations[first : first + CHUNK])
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return time.perf_counter() - start


def median_ms(run: Callable[[], object], repeat: int = REPEAT) -> tuple[float, object]:
    times, result = [], None
    run()  # warm: statement caches, pages in memory
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def raw_select(conn: Connection, due: int) -> int:
    query = text(
        "SELECT id FROM ticket WHERE next_escalation_at <= :now "
        "ORDER BY next_escalation_at LIMIT :limit"
    )
    now: Any = NOW.replace(tzinfo=None) if conn.dialect.name == "sqlite" else NOW
    return len(conn.execute(query, {"now": now, "limit": due}).all())


def find_due(app: App, due: int) -> int:
    """The sweep's reading half, for `due` tickets at once, then rolled back."""
    with app.sessions() as session, session.begin():
        escalate._lock_for_writing(session)
        tickets = queries.tickets_due(session, NOW, due)
        ids = [ticket.id for ticket in tickets]
        queries.fired_steps(session, ids)
        queries.first_customer_texts(session, ids)
        found = len(tickets)
        session.rollback()
    return found


def due_as_filled(app: App) -> list[dict[str, Any]]:
    """What firing changes on the due tickets, as filled."""
    query = select(
        Ticket.id.label("tid"), Ticket.next_escalation_at, Ticket.escalation_level, Ticket.priority
    ).where(Ticket.next_escalation_at <= NOW)
    with app.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def unfire(app: App, before: list[dict[str, Any]]) -> None:
    """Undo a firing, untimed: its escalation rows, events, outbox rows and counts go, the
    due tickets are put back as filled, and the dead rows are vacuumed, so the next firing
    meets the database the first one met."""
    with app.engine.begin() as conn:
        conn.execute(delete(Escalation).where(Escalation.fired_at == NOW))
        for model in (Event, Outbox, Tally):  # the fill writes none of these
            conn.execute(delete(model))
        restore = (
            update(Ticket)
            .where(Ticket.id == bindparam("tid"))
            .values(
                next_escalation_at=bindparam("next_escalation_at"),
                escalation_level=bindparam("escalation_level"),
                priority=bindparam("priority"),
            )
        )
        conn.execute(restore, before)
    vacuum = "VACUUM ANALYZE" if app.engine.dialect.name == "postgresql" else "VACUUM"
    with app.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(vacuum))


def measure(kind: str, n: int, due: int, fire_runs: int) -> dict[str, float]:
    with workdir("mb-sweep-") as tmp, database(kind, tmp) as url:
        clock = FrozenClock(NOW)
        app = build_app(config(url, tmp), clock=clock)
        try:
            print(f"{kind}: inserting {n:,} tickets …", file=sys.stderr, flush=True)
            fill_s = fill(app, n, due)
            print(f"{kind}: filled in {fill_s:.1f} s", file=sys.stderr, flush=True)
            heap.settle()  # as `mailbridge run` does once started (mailbridge/heap.py)
            with app.engine.connect() as conn:
                raw_ms, raw_found = median_ms(lambda: raw_select(conn, due))
            find_ms, found = median_ms(lambda: find_due(app, due))
            assert raw_found == found == due, (raw_found, found)
            clock.advance(-10 * H)  # nothing is due yet
            none_ms, fired_none = median_ms(lambda: escalate.sweep(app))
            assert fired_none == 0
            clock.advance(10 * H)
            before = due_as_filled(app)
            fires: list[float] = []
            for n_fire in range(fire_runs):
                if n_fire:
                    unfire(app, before)
                start = time.perf_counter()
                fired = escalate.sweep(app)
                fires.append((time.perf_counter() - start) * 1000)
                assert fired == due, fired
            fire_ms = statistics.median(fires)
            after_ms, _ = median_ms(lambda: escalate.sweep(app))
        finally:
            app.close()
    figures = {
        "fill_s": fill_s,
        "raw_ms": raw_ms,
        "find_ms": find_ms,
        "none_ms": none_ms,
        "fire_ms": fire_ms,
        "fire_best_ms": min(fires),
        "after_ms": after_ms,
    }
    print(
        f"{kind}: raw SELECT of {due} due {raw_ms:.1f} ms; find {due} due {find_ms:.1f} ms "
        f"({find_ms / raw_ms:.1f}x raw; target < 50 ms); sweep finding none "
        f"{none_ms:.2f} ms (target < 5 ms); sweep firing {due} {fire_ms:.0f} ms, the median "
        f"of {len(fires)} ({', '.join(f'{f:.0f}' for f in fires)}; {fire_ms / due:.2f} ms "
        f"each; target < 300 ms); next sweep {after_ms:.2f} ms",
        file=sys.stderr,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="tickets (default 1,000,000)")
    parser.add_argument("--due", type=int, default=1000, help="tickets due (default 1000)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="N = 100,000")
    parser.add_argument(
        "--fires", type=int, default=5, help="firings of the due tickets, each undone (default 5)"
    )
    args = parser.parse_args()
    # Each escalation is logged, as in the daemon, but not onto this terminal.
    logging.basicConfig(handlers=[logging.FileHandler(os.devnull)], level=logging.INFO)
    n = 100_000 if args.quick else args.n
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    started = time.perf_counter()
    results = {kind: measure(kind, n, args.due, max(args.fires, 1)) for kind in kinds}
    parts = [
        f"{kind} find {args.due} {r['find_ms']:.1f} ms (raw {r['raw_ms']:.1f} ms), "
        f"none {r['none_ms']:.2f} ms, fire {args.due} {r['fire_ms']:.0f} ms "
        f"(best {r['fire_best_ms']:.0f})"
        for kind, r in results.items()
    ]
    print(f"sweep N={n:,} (90% closed), {time.perf_counter() - started:.0f} s: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
