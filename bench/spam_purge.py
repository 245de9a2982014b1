"""The spam purge against a large ticket table, on SQLite and PostgreSQL.

    python bench/spam_purge.py [--n 200000] [--spam 0.5] [--db sqlite|postgresql|both]

Fills a fresh database with N tickets, a share of them spam marked 40 days ago, each
ticket with its raw mail (2 KB), one article (so one search index row) and two events.
Then measures, on the daemon's code path (`purge_spam`):
  nothing due   a purge when no spam's time is up (what most runs of the schedule find);
  purge         deleting every old spam ticket whole, in batches of retention.BATCH: the
                total, tickets per second, and the slowest batch (one transaction);
and checks that every spam row went and every other row stayed.
The last line holds the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from _common import database, workdir
from sqlalchemy import func, insert, select
from sweep import CHUNK, NOW, config

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import Article, Event, InboundMessage, Ticket
from mailbridge.tickets import spam_purge

RAW = b"Subject: cheap watches\r\n\r\n" + b"buy now " * 256  # 2 KB


def ticket_rows(n: int, spam: float) -> Iterator[dict[str, Any]]:
    """n tickets; every 1/spam-th one is spam, marked 40 days before NOW."""
    every = max(int(round(1 / spam)), 1) if spam else 0
    for i in range(n):
        created = NOW - timedelta(days=41)
        is_spam = bool(every) and i % every == 0
        yield {
            "number": 1000 + i,
            "subject": f"Order {i}",
            "requester_address": f"c{i}@customer.example",
            "mailbox": "support",
            "queue": "support",
            "sla_policy": "standard",
            "status": "spam" if is_spam else "closed",
            "created_at": created,
            "updated_at": created,
            "spam_at": created + timedelta(days=1) if is_spam else None,
        }


def chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fill(app: App, n: int, spam: float) -> float:
    start = time.perf_counter()
    with app.engine.begin() as conn:
        for chunk in chunks(ticket_rows(n, spam)):
            conn.execute(insert(Ticket.__table__), chunk)
        ids = conn.scalars(select(Ticket.id).order_by(Ticket.id)).all()
        at = NOW - timedelta(days=41)
        for part in range(0, len(ids), CHUNK):
            some = ids[part : part + CHUNK]
            messages = conn.execute(
                insert(InboundMessage.__table__).returning(InboundMessage.id),
                [
                    {
                        "mailbox": "support",
                        "folder": "INBOX",
                        "uidvalidity": 1,
                        "uid": i,
                        "fingerprint": f"{i:064d}",
                        "raw": RAW,
                        "size": len(RAW),
                        "received_at": at,
                        "state": "processed",
                        "attempts": 1,
                        "ticket_id": i,
                    }
                    for i in some
                ],
            ).scalars()
            conn.execute(
                insert(Article.__table__),
                [
                    {
                        "ticket_id": i,
                        "direction": "in",
                        "author_kind": "customer",
                        "subject": "cheap watches",
                        "text_body": "buy now " * 64,
                        "created_at": at,
                        "inbound_message_id": m,
                    }
                    for i, m in zip(some, messages, strict=True)
                ],
            )
            events = [{"ticket_id": i, "at": at, "data": {}} for i in some]
            conn.execute(insert(Event.__table__), [e | {"type": "created"} for e in events])
            conn.execute(insert(Event.__table__), [e | {"type": "acked"} for e in events])
    return time.perf_counter() - start


def measure(kind: str, n: int, spam: float) -> dict[str, float]:
    with workdir("mb-spam-purge-") as tmp, database(kind, tmp) as url:
        clock = FrozenClock(NOW - timedelta(days=20))  # nobody's time is up yet
        app = build_app(config(url, tmp), clock=clock)
        batches: list[float] = []
        real = spam_purge._purge_batch

        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return real(*args)
            finally:
                batches.append(time.perf_counter() - started)

        try:
            print(f"{kind}: inserting {n:,} tickets …", file=sys.stderr, flush=True)
            fill_s = fill(app, n, spam)
            with app.sessions() as session:
                held = session.scalar(select(func.count()).where(Ticket.status == "spam")) or 0
            start = time.perf_counter()
            assert not spam_purge.purge_spam(app).anything
            none_ms = (time.perf_counter() - start) * 1000
            clock.advance(timedelta(days=20))
            spam_purge._purge_batch = timed  # type: ignore[assignment]
            start = time.perf_counter()
            report = spam_purge.purge_spam(app)
            purge_s = time.perf_counter() - start
            assert report.tickets == report.articles == report.messages == held, report
            with app.sessions() as session:
                left = session.scalar(select(func.count(Ticket.id))) or 0
                articles = session.scalar(select(func.count(Article.id))) or 0
            assert left == articles == n - held, (left, articles)
        finally:
            spam_purge._purge_batch = real  # type: ignore[assignment]
            app.close()
    figures = {
        "fill_s": fill_s,
        "held": held,
        "none_ms": none_ms,
        "purge_s": purge_s,
        "per_s": held / purge_s,
        "batches": len(batches),
        "slowest_ms": max(batches) * 1000,
    }
    print(f"{kind}: {figures}", file=sys.stderr)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="tickets (default 200,000)")
    parser.add_argument("--spam", type=float, default=0.5, help="share that is spam (0.5)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    results = {kind: measure(kind, args.n, args.spam) for kind in kinds}
    parts = [
        f"{kind} {r['held']:,.0f} spam purged in {r['purge_s']:.1f} s ({r['per_s']:,.0f}/s, "
        f"{r['batches']:.0f} batches, slowest {r['slowest_ms']:.0f} ms), nothing due "
        f"{r['none_ms']:.1f} ms"
        for kind, r in results.items()
    ]
    print(f"spam purge N={args.n:,}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
