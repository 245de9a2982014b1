"""`customer erase` of an address with many tickets, among other customers', on SQLite and
PostgreSQL.

    python bench/erase.py [--tickets 1000] [--others 50000] [--db sqlite|postgresql|both]

Fills a fresh database with OTHERS tickets of other customers (each with its raw mail, an
article, two events and an acknowledgement), a year of staff digests and a thousand
ignored mails (what the erasure searches outside tickets), and TICKETS tickets of one
customer, each with her raw mail (2 KB), her article and a staff answer, a 10 KB
attachment, five events, an acknowledgement row, the acknowledgement and the answer sent
to her. Then times, on the command's code path (`erase_customer`): the dry run, the
erasure (in batches of customer_erasure.BATCH tickets, each its own transaction), and a
second erasure, which finds nothing. It checks that no row holds her address afterwards.
The last line holds the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from typing import Any

from _common import database, workdir
from sqlalchemy import Text, cast, func, insert, select
from sweep import CHUNK, NOW, config

from mailbridge.app import App, build_app
from mailbridge.clock import FrozenClock
from mailbridge.db.models import (
    Acknowledgement,
    Article,
    AttachmentRecord,
    Event,
    InboundMessage,
    Outbox,
    Ticket,
)
from mailbridge.tickets import customer_erasure

HER = "zelda.q@example.com"
AT = NOW - timedelta(days=30)


def raw_mail(sender: str, i: int) -> bytes:
    head = f"From: Someone <{sender}>\r\nTo: support@shop.example\r\nSubject: Order {i}\r\n"
    return (head + f"Message-ID: <{i}.{sender}>\r\n\r\n").encode() + b"my order is late " * 110


def tickets(conn: Any, first: int, count: int, requester: str) -> list[int]:
    rows = [
        {
            "number": first + i,
            "subject": f"Order {first + i}",
            "requester_address": requester if requester else f"c{first + i}@customer.example",
            "mailbox": "support",
            "queue": "support",
            "sla_policy": "standard",
            "status": "closed",
            "created_at": AT,
            "updated_at": AT,
            "resolved_at": AT + timedelta(hours=5),
        }
        for i in range(count)
    ]
    ids: list[int] = []
    for part in range(0, count, CHUNK):
        ids += conn.execute(
            insert(Ticket.__table__).returning(Ticket.id), rows[part : part + CHUNK]
        ).scalars()
    return ids


def mail_of(conn: Any, ids: list[int], sender: Any) -> list[int]:
    """One stored raw mail per ticket; their ids."""
    rows = [
        {
            "mailbox": "support",
            "folder": "INBOX",
            "uidvalidity": 1,
            "uid": i,
            "fingerprint": f"{i:064d}",
            "raw": raw_mail(sender(i), i),
            "size": 2000,
            "received_at": AT,
            "state": "processed",
            "attempts": 1,
            "ticket_id": i,
            "message_id": f"{i}.{sender(i)}",
        }
        for i in ids
    ]
    return list(
        conn.execute(insert(InboundMessage.__table__).returning(InboundMessage.id), rows).scalars()
    )


def articles(
    conn: Any, ids: list[int], messages: list[int], sender: Any, *, answered: bool
) -> list[int]:
    rows = [
        {
            "ticket_id": i,
            "direction": "in",
            "author_kind": "customer",
            "from_address": sender(i),
            "from_name": "Someone",
            "to": ["support@shop.example"],
            "subject": f"Order {i}",
            "text_body": "my order is late " * 60,
            "message_id": f"{i}.{sender(i)}",
            "created_at": AT,
            "inbound_message_id": m,
        }
        for i, m in zip(ids, messages, strict=True)
    ]
    made = list(conn.execute(insert(Article.__table__).returning(Article.id), rows).scalars())
    if answered:
        conn.execute(
            insert(Article.__table__),
            [
                {
                    "ticket_id": i,
                    "direction": "out",
                    "author_kind": "staff",
                    "from_address": "alice@shop.example",
                    "to": [sender(i)],
                    "subject": f"Re: Order {i}",
                    "text_body": "Hello, it is on its way. " * 10,
                    "message_id": f"mb.reply.{i}@shop.example",
                    "created_at": AT,
                }
                for i in ids
            ],
        )
    return made


def events_and_mail(conn: Any, ids: list[int], sender: Any, many: bool) -> None:
    kinds = ["created", "ack_queued"] + (["staff_reply", "rated", "first_response"] if many else [])
    data = {"kind": "customer", "message_id": "x@y", "by": "alice@shop.example", "verdict": "good"}
    for kind in kinds:
        conn.execute(
            insert(Event.__table__),
            [{"ticket_id": i, "at": AT, "type": kind, "data": data} for i in ids],
        )
    conn.execute(
        insert(Acknowledgement.__table__),
        [
            {"ticket_id": i, "mailbox": "support", "address": sender(i), "domain": "x", "at": AT}
            for i in ids
        ],
    )
    for kind in ["ack", "reply"] if many else ["ack"]:
        conn.execute(
            insert(Outbox.__table__),
            [
                {
                    "ticket_id": i,
                    "kind": kind,
                    "envelope_from": "support@shop.example",
                    "envelope_to": [sender(i)],
                    "message_id": f"mb.{kind}.{i}@shop.example",
                    "raw": raw_mail("support@shop.example", i),
                    "state": "sent",
                    "attempts": 1,
                    "next_attempt_at": AT,
                    "created_at": AT,
                    "sent_at": AT,
                }
                for i in ids
            ],
        )


def unticketed(conn: Any) -> None:
    """A year of digests to one staff member; a thousand ignored mails of other people."""
    conn.execute(
        insert(Outbox.__table__),
        [
            {
                "kind": "digest",
                "envelope_from": "support@shop.example",
                "envelope_to": ["alice@shop.example"],
                "message_id": f"mb.digest.{d}@shop.example",
                "raw": b"Subject: Your tickets\r\n\r\n" + b"[#1] Someone | Order | 1h\r\n" * 40,
                "state": "sent",
                "next_attempt_at": AT,
                "created_at": AT,
            }
            for d in range(365)
        ],
    )
    conn.execute(
        insert(InboundMessage.__table__),
        [
            {
                "mailbox": "support",
                "folder": "INBOX",
                "uidvalidity": 2,
                "uid": n,
                "fingerprint": f"ignored{n:057d}",
                "raw": raw_mail(f"auto{n}@other.example", n),
                "size": 2000,
                "received_at": AT,
                "state": "ignored",
            }
            for n in range(1000)
        ],
    )


def fill(app: App, hers: int, others: int) -> float:
    start = time.perf_counter()

    def other(i: int) -> str:
        return f"c{i}@customer.example"

    def her(_i: int) -> str:
        return HER

    with app.engine.begin() as conn:
        for part in range(0, others, CHUNK):
            ids = tickets(conn, 100_000 + part, min(CHUNK, others - part), "")
            messages = mail_of(conn, ids, other)
            articles(conn, ids, messages, other, answered=False)
            events_and_mail(conn, ids, other, many=False)
        ids = tickets(conn, 1000, hers, HER)
        messages = mail_of(conn, ids, her)
        mine = articles(conn, ids, messages, her, answered=True)
        conn.execute(
            insert(AttachmentRecord.__table__),
            [
                {
                    "article_id": a,
                    "filename": f"invoice-{a}.pdf",
                    "content_type": "application/pdf",
                    "size": 10_000,
                    "sha256": "0" * 64,
                    "storage": "db",
                    "data": b"%PDF-1.4 " + bytes(range(256)) * 39,
                }
                for a in mine
            ],
        )
        events_and_mail(conn, ids, her, many=True)
        unticketed(conn)
    return time.perf_counter() - start


def measure(kind: str, hers: int, others: int) -> dict[str, float]:
    with workdir("mb-erase-") as tmp, database(kind, tmp) as url:
        app = build_app(config(url, tmp), clock=FrozenClock(NOW))
        try:
            print(f"{kind}: inserting {others:,} + {hers:,} tickets …", file=sys.stderr, flush=True)
            fill_s = fill(app, hers, others)
            if kind == "postgresql":
                with app.engine.connect() as conn:
                    conn.exec_driver_sql("ANALYZE")
            start = time.perf_counter()
            dry = customer_erasure.erase_customer(app, HER, dry_run=True)
            dry_s = time.perf_counter() - start
            start = time.perf_counter()
            done = customer_erasure.erase_customer(app, HER)
            erase_s = time.perf_counter() - start
            start = time.perf_counter()
            again = customer_erasure.erase_customer(app, HER)
            again_s = time.perf_counter() - start
            assert done.tickets == dry.tickets == hers and done.rows == dry.rows, (done, dry)
            assert not again.anything
            with app.sessions() as session:
                named = func.lower(cast(Outbox.envelope_to, Text)).contains(HER)
                left = session.scalar(select(func.count()).where(named))
                left = (left or 0) + (
                    session.scalar(select(func.count()).where(Ticket.requester_address == HER)) or 0
                )
            assert left == 0, left
        finally:
            app.close()
    figures = {
        "fill_s": fill_s,
        "dry_s": dry_s,
        "erase_s": erase_s,
        "again_s": again_s,
        "batches": done.batches,
        "rows": sum(done.rows.values()),
    }
    print(f"{kind}: {figures} {done.rows}", file=sys.stderr)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1000, help="hers (default 1,000)")
    parser.add_argument("--others", type=int, default=50_000, help="others' (default 50,000)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    results = {kind: measure(kind, args.tickets, args.others) for kind in kinds}
    parts = [
        f"{kind} erase {r['erase_s']:.2f} s ({r['rows']:,.0f} rows, {r['batches']:.0f} "
        f"transactions), dry run {r['dry_s']:.2f} s, again {r['again_s']:.2f} s"
        for kind, r in results.items()
    ]
    print(f"customer erase of {args.tickets:,} tickets among {args.others:,}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
