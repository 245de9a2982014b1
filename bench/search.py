"""Full-text search latency and indexing cost, each next to a baseline from the same run.

    python bench/search.py [--db sqlite|postgresql|both] [--tickets 100000]
                           [--articles 1000000] [--queries 50] [--quick] [--seed 1]

Builds the tickets and articles (generated Italian and English text, one article in
twenty with an attachment) with bulk inserts into a migrated database, so the index
triggers run as they do for every article, then measures:
  search    `search_tickets` (what `tickets search` runs) for --queries queries of 1-3
            words drawn from the text's vocabulary with its frequencies (a Pareto pick:
            the commonest word is a third of all words, so most queries hold a word
            found in nearly every article, the hard case): p50, p95 and max;
  baseline  a lookup of one ticket by its number, the same number of times;
  indexing  inserting the same batch of articles and attachments with the index triggers
            and without them (dropped): the time the index adds, in %, on the inserts
            alone (`bench/ingest.py --search-index-cost` measures it on ingest).
`--quick` is 10,000 tickets and 100,000 articles.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import database, migrated, workdir
from sqlalchemy import Connection, Engine, insert, select, text

from mailbridge.db.engine import make_sessionmaker
from mailbridge.db.models import Article, AttachmentRecord, Ticket
from mailbridge.tickets.search import search_tickets

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BATCH = 5_000
INDEXING_ARTICLES = 20_000

ITALIAN = [
    "stampante",
    "fattura",
    "ordine",
    "spedizione",
    "pagamento",
    "rimborso",
    "consegna",
    "prodotto",
    "cliente",
    "problema",
    "errore",
    "account",
    "password",
    "accesso",
    "ricevuta",
    "importo",
    "sconto",
    "garanzia",
    "reso",
    "sostituzione",
    "cartuccia",
    "carta",
    "scanner",
    "rete",
    "server",
    "posta",
    "indirizzo",
    "telefono",
    "numero",
    "giorno",
    "settimana",
    "mese",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "perché",
    "quando",
    "dove",
    "grazie",
    "buongiorno",
    "saluti",
    "cordiali",
    "urgente",
    "ancora",
    "sempre",
    "però",
    "città",
    "qualità",
]
ENGLISH = [
    "printer",
    "invoice",
    "order",
    "shipping",
    "payment",
    "refund",
    "delivery",
    "product",
    "customer",
    "problem",
    "error",
    "account",
    "password",
    "login",
    "receipt",
    "amount",
    "discount",
    "warranty",
    "return",
    "replacement",
    "cartridge",
    "paper",
    "scanner",
    "network",
    "server",
    "mail",
    "address",
    "phone",
    "number",
    "day",
    "week",
    "month",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "because",
    "when",
    "where",
    "thanks",
    "hello",
    "regards",
    "urgent",
    "again",
    "always",
    "however",
    "quality",
    "broken",
    "working",
    "missing",
    "late",
    "wrong",
    "charged",
    "twice",
]


def vocabulary(rng: random.Random) -> list[str]:
    """Real words first (frequent), then a long tail of product-like names (rare)."""
    tail = [f"{rng.choice(ITALIAN + ENGLISH)}{n}" for n in range(20_000)]
    return ITALIAN + ENGLISH + tail


def sentence(rng: random.Random, words: list[str], count: int) -> str:
    # A Zipf-like pick: small indexes (the real words) come up far more often.
    return " ".join(
        words[min(int(rng.paretovariate(0.6)) - 1, len(words) - 1)] for _ in range(count)
    )


def ticket_rows(
    first: int, count: int, rng: random.Random, words: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "id": first + i,
            "number": 1000 + first + i,
            "subject": sentence(rng, words, 5),
            "requester_name": "",
            "requester_address": f"c{first + i}@customer.example",
            "mailbox": "support",
            "queue": "default",
            "priority": "normal",
            "status": rng.choice(("new", "open", "waiting", "resolved", "closed")),
            "sla_policy": "default",
            "created_at": NOW,
            "updated_at": NOW,
            "escalation_level": 0,
            "resolution_paused_seconds": 0,
        }
        for i in range(count)
    ]


def article_rows(
    first: int, count: int, tickets: int, rng: random.Random, words: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    articles, attachments = [], []
    for i in range(count):
        article_id = first + i
        quoted = "\n> ".join(sentence(rng, words, 12) for _ in range(2))
        articles.append(
            {
                "id": article_id,
                "ticket_id": 1 + (article_id - 1) % tickets,
                "direction": "in",
                "author_kind": "customer",
                "kind": "customer",
                "from_name": "",
                "from_address": "c@customer.example",
                "to": [],
                "cc": [],
                "defects": [],
                "subject": sentence(rng, words, 5),
                "text_body": f"{sentence(rng, words, 40)}\n\n> {quoted}\n",
                "internal": False,
                "created_at": NOW,
            }
        )
        if article_id % 20 == 0:
            attachments.append(
                {
                    "article_id": article_id,
                    "filename": f"{rng.choice(words)}_{rng.choice(words)}.pdf",
                    "content_type": "application/pdf",
                    "size": 1,
                    "sha256": "0" * 64,
                    "inline": False,
                    "storage": "db",
                }
            )
    return articles, attachments


def insert_articles(
    connection: Connection,
    first: int,
    count: int,
    tickets: int,
    rng: random.Random,
    words: list[str],
) -> None:
    for start in range(first, first + count, BATCH):
        articles, attachments = article_rows(
            start, min(BATCH, first + count - start), tickets, rng, words
        )
        connection.execute(insert(Article), articles)
        if attachments:
            connection.execute(insert(AttachmentRecord), attachments)


def build(engine: Engine, tickets: int, articles: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = vocabulary(rng)
    started = time.perf_counter()
    with engine.begin() as connection:
        for first in range(1, tickets + 1, BATCH):
            connection.execute(
                insert(Ticket), ticket_rows(first, min(BATCH, tickets + 1 - first), rng, words)
            )
    for first in range(1, articles + 1, 100_000):
        with engine.begin() as connection:
            insert_articles(
                connection, first, min(100_000, articles + 1 - first), tickets, rng, words
            )
        print(
            f"  {first + min(100_000, articles + 1 - first) - 1:>9,} articles "
            f"{time.perf_counter() - started:7.1f} s",
            flush=True,
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return words


def timed(action: Callable[[], object], times: int) -> list[float]:
    took = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        took.append((time.perf_counter() - started) * 1000)
    return took


def percentiles(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  max {ordered[-1]:7.1f} ms"


def measure_search(engine: Engine, words: list[str], tickets: int, queries: int, seed: int) -> None:
    rng = random.Random(seed + 1)
    # Query words follow the text's own distribution, common words included.
    asked = [sentence(rng, words, rng.randint(1, 3)) for _ in range(queries)]
    sessions = make_sessionmaker(engine)
    found: list[int] = []
    with sessions() as session:
        search_tickets(session, asked[0])  # warm the connection and the cache
        pending = iter(asked)
        took = timed(lambda: found.append(len(search_tickets(session, next(pending)))), queries)
        numbers = iter(rng.randint(1000, 1000 + tickets - 1) for _ in range(queries))
        baseline = timed(
            lambda: session.scalars(select(Ticket).where(Ticket.number == next(numbers))).one(),
            queries,
        )
    print(
        f"  search    {percentiles(took)}  "
        f"({sum(1 for f in found if f)} of {queries} found something)"
    )
    print(f"  baseline  {percentiles(baseline)}  (one ticket by number)")
    print(
        f"  ratio     p50 {statistics.median(took) / statistics.median(baseline):.0f}x the baseline"
    )


def measure_indexing(kind: str, base: Path, seed: int) -> None:
    """The same articles inserted into two fresh databases, one without the triggers."""
    seconds = {}
    for round_, indexed in enumerate((False, True, False, True)):
        place = base / f"indexing{round_}"
        place.mkdir()
        with database(kind, place) as url:
            engine = migrated(url, search_index=indexed)
            rng = random.Random(seed)
            words = vocabulary(rng)
            with engine.begin() as connection:
                connection.execute(insert(Ticket), ticket_rows(1, 1000, rng, words))
            started = time.perf_counter()
            with engine.begin() as connection:
                insert_articles(connection, 1, INDEXING_ARTICLES, 1000, rng, words)
            took = time.perf_counter() - started
            seconds[indexed] = min(took, seconds.get(indexed, took))
            engine.dispose()
    added = seconds[True] - seconds[False]
    print(
        f"  indexing  {INDEXING_ARTICLES:,} articles: {seconds[False]:.2f} s without the index, "
        f"{seconds[True]:.2f} s with it: {added / INDEXING_ARTICLES * 1000:.3f} ms per article "
        f"(+{added / seconds[False] * 100:.0f}% on the inserts alone)"
    )


def run(kind: str, tickets: int, articles: int, queries: int, seed: int) -> None:
    print(f"{kind}: {tickets:,} tickets, {articles:,} articles", flush=True)
    with workdir("mb-bench-search-") as base, database(kind, base) as url:
        engine = migrated(url)
        words = build(engine, tickets, articles, seed)
        measure_search(engine, words, tickets, queries, seed)
        engine.dispose()
        measure_indexing(kind, base, seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10,000 tickets, 100,000 articles")
    args = parser.parse_args(argv)
    tickets, articles = (10_000, 100_000) if args.quick else (args.tickets, args.articles)
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run(kind, tickets, articles, args.queries, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
