"""Ingest throughput: mailbridge against the practical limit, measured in the same run.

    python bench/ingest.py [--n 5000] [--server dovecot|pymap] [--db sqlite|postgresql]
                           [--seed 1] [--no-team] [--search-index-cost | --spam-share 0.3]
                           [--rounds 2] [--parse-workers auto|N] [--attachment-mb M]
                           [--profile FILE [--profiler cprofile|pyinstrument|none]]

Fills a private IMAP mailbox with N generated mails, then measures on the same mailbox:
  fetch  raw imapclient FETCH BODY.PEEK[] in batches, nothing else (for scale);
  (a)    the same FETCH plus the stdlib parse (policy.default; headers read, every leaf
         part decoded): the baseline;
  (b)    `mailbridge run --once` as a subprocess, on a database migrated beforehand
         (untimed): fetch, store, move, parse, classify, thread, tickets with
         acknowledgements queued. SMTP points at a closed port, so the send step ends at
         the first refused connection and is not part of (b);
  (c)    sending: the queued acknowledgements made due again, and a second
         `mailbridge run --once` (empty mailbox) delivers them to a counting SMTP sink.
Prints messages, MB, seconds, msg/s, the ratio (b)/(a), and the memory of each subprocess
and of the parsing processes (b) starts for a long pass. `--parse-workers` sets
`[tickets] parse_workers` for (b) and (c) (default: the configuration's default, "auto";
1 is the single worker of earlier releases). `--attachment-mb M` gives every mail a scan of
M MB as well: the memory of (b) over a mailbox of large mail, which a batch bounded in bytes
(core/batching.py) keeps to a few messages' worth however many there are.

`--search-index-cost` measures instead what the full-text index adds to (b): the mailbox
filled again with the same N mails before each run, (b) into a fresh database with the
index triggers and into one with them dropped, alternately, --rounds times each; it prints
every run, the best of each and the time the index adds, in %, in wall time and in CPU time
of mailbridge and its parsing process (which leaves out PostgreSQL's own work).

--spam-share S [--rounds R] instead runs (b) on fresh databases with the `[spam]`
blocklist and a header rule configured (_common.SPAM_TOML), alternating R times: on the N
mails with none of them spam, then on the same N mails with the share S made spam
(blocklisted senders and a bulk mailer's header); and prints the best time per message of
each and their ratio.

--instances 2 (PostgreSQL) instead measures processing across instances: two mailboxes
(INBOX and a second folder of the same account), N/2 generated mails each, run three ways
on fresh databases: one instance with both mailboxes; two instances, each owning its own
mailbox, started together, with the narrow turns (`processing_turn = "narrow"`); the same
with the single cluster-wide turn of earlier versions (`"single"`). It prints each
combined rate and the share of processing time the instances spent waiting for locks,
from each pass's own log line.
"""

from __future__ import annotations

import argparse
import email
import re
import resource
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

from _common import (
    SPAM_TOML,
    ChildResult,
    CountingSink,
    ImapServer,
    child_env,
    database,
    fill,
    free_port,
    imap_client,
    imap_server,
    mailbridge_command,
    mb,
    migrated,
    rate,
    run_child,
    tail,
    tickets_table,
    workdir,
    write_config,
)

FETCH_BATCH = 200  # mailbridge's default mailbox.batch_size
CHILD_TIMEOUT = 1800.0


def fetch_pass(server: ImapServer, parse: bool) -> tuple[int, int, float]:
    """FETCH every message of INBOX (read-only), optionally parsing each; (count, bytes, s)."""
    count = size = 0
    client = imap_client(server)
    try:
        start = time.perf_counter()
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for first in range(0, len(uids), FETCH_BATCH):
            batch = uids[first : first + FETCH_BATCH]
            data = client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                raw = bytes(data[uid][b"BODY[]"])
                count += 1
                size += len(raw)
                if parse:
                    stdlib_parse(raw)
            del data
        seconds = time.perf_counter() - start
    finally:
        client.logout()
    return count, size, seconds


def stdlib_parse(raw: bytes) -> int:
    """What any consumer must do at least: parse, read the headers, decode every leaf part."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    touched = 0
    for name in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To"):
        touched += len(str(msg.get(name, "")))
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        touched += len(body.get_content())
    for part in msg.walk():
        if not part.is_multipart() and part is not body:
            touched += len(part.get_content())
    return touched


def inbox_count(server: ImapServer, folder: str = "INBOX") -> int:
    client = imap_client(server)
    try:
        return int(client.select_folder(folder, readonly=True)[b"EXISTS"])
    finally:
        client.logout()


def due_again(db_url: str) -> int:
    """Make the acknowledgements deferred by the closed SMTP port due now; how many."""
    from sqlalchemy import create_engine, update

    from mailbridge.db.models import Outbox

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(
                update(Outbox)
                .where(Outbox.state == "pending")
                .values(next_attempt_at=datetime(2000, 1, 1, tzinfo=UTC), attempts=0)
            )
            return int(result.rowcount)
    finally:
        engine.dispose()


def profile_in_process(config: Path, env: dict[str, str], out: Path, tool: str) -> None:
    """The steps of (b) called directly in this thread under a profiler, each timed.

    Profilers see only their own thread, and run_once() works in asyncio.to_thread.
    cProfile inflates call-heavy code (SQLAlchemy, the email package); pyinstrument
    samples, so its proportions are closer to an unprofiled run.
    """
    import logging

    from mailbridge.app import build_app
    from mailbridge.config import load_config
    from mailbridge.inbound.process import process_pending
    from mailbridge.logs import setup_logging
    from mailbridge.service.pollers import fetch_with_new_connection
    from mailbridge.tickets.escalate import sweep

    setup_logging("text")
    logging.getLogger().setLevel(logging.WARNING)  # keep the profile about the work
    app = build_app(load_config(config, env))
    steps: list[tuple[str, Callable[[], object]]] = [
        ("fetch + store + move", lambda: fetch_with_new_connection(app, app.config.mailbox[0])),
        ("process", lambda: process_pending(app)),
        ("sweep", lambda: sweep(app)),
    ]
    try:
        if tool == "pyinstrument":
            _pyinstrument(steps, out)
        elif tool == "cprofile":
            _cprofile(steps, out)
        else:
            _timed(steps, "not profiled")
    finally:
        app.close()


def _timed(steps: list[tuple[str, Callable[[], object]]], how: str = "profiled") -> None:
    for name, step in steps:
        start, cpu = time.perf_counter(), time.process_time()
        step()
        print(
            f"    {name:<22} {time.perf_counter() - start:8.2f} s, CPU of this process "
            f"{time.process_time() - cpu:6.2f} s ({how})"
        )


def _cprofile(steps: list[tuple[str, Callable[[], object]]], out: Path) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(_timed, steps)
    profiler.dump_stats(out)
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(60)
    stats.sort_stats("tottime").print_stats(30)


def _pyinstrument(steps: list[tuple[str, Callable[[], object]]], out: Path) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    profiler.start()
    _timed(steps)
    profiler.stop()
    out.write_text(profiler.output_text(unicode=False, show_all=False), encoding="utf-8")
    print(profiler.output_text(unicode=False, show_all=False))


def ingest_seconds(
    server: ImapServer, work: Path, kind: str, env: dict[str, str], indexed: bool
) -> tuple[float, float]:
    """(b) on a mailbox filled again and a fresh database, with or without the index: wall
    seconds, and CPU seconds of mailbridge and its parsing process (on SQLite all the
    work; steadier than wall time on a shared machine)."""
    with database(kind, work) as db_url:
        migrated(db_url, search_index=indexed).dispose()
        config = write_config(work, server, free_port(), db_url)
        log = work / "run-index.log"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = run_child(mailbridge_command(config, "run", "--once"), env, log, CHILD_TIMEOUT)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0 or inbox_count(server):
            raise SystemExit(tail(log))
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return result.seconds, cpu


def search_index_cost(server: ImapServer, work: Path, args: argparse.Namespace) -> None:
    took: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for run in range(args.rounds * 2):
        indexed = run % 2 == 1
        place = work / f"index-{run}"
        place.mkdir()
        count, _ = fill(server, args.n, args.seed)
        wall, cpu = ingest_seconds(server, place, args.db, child_env(server), indexed)
        took[indexed].append((wall, cpu))
        label = "(b) with the search index" if indexed else "(b) without the search index"
        print(
            f"{label:<34} {count:>6} msgs {wall:>8.2f} s {rate(count, wall):>9.1f} msg/s, "
            f"CPU {cpu:.2f} s",
            flush=True,
        )
    for name, at in (("wall", 0), ("CPU", 1)):
        without = min(run[at] for run in took[False])
        with_index = min(run[at] for run in took[True])
        print(
            f"search index, {name} time: best {with_index:.2f} s with it, {without:.2f} s "
            f"without: {(with_index / without - 1) * 100:+.1f}% (target < 10%), "
            f"{(with_index - without) / args.n * 1000:.2f} ms per message"
        )


def memory(result: ChildResult) -> str:
    text = f"peak RSS {result.max_rss_mb:.0f} MB"
    if result.helpers_max_rss_mb:
        text += (
            f"; {result.helpers} processes it started (forkserver, resource tracker, parse "
            f"workers), the largest {result.helpers_max_rss_mb:.0f} MB; together at most "
            f"{result.tree_rss_mb:.0f} MB RSS, {result.tree_pss_mb:.0f} MB PSS (sampled)"
        )
    return text


def spam_comparison(args: argparse.Namespace, server: ImapServer, work: Path) -> int:
    """(b) on the clean mails, then on the same mails with a share of spam, alternating for
    --rounds rounds: the best wall and CPU ms per message of each, and their ratios."""
    shares = (0.0, args.spam_share)
    best = {share: [float("inf"), float("inf")] for share in shares}
    for round_ in range(args.rounds):
        for share in shares:
            run = work / f"spam-{share}-{round_}"
            run.mkdir()
            result = _spam_run(args, server, run, share)
            if result is None:
                return 1
            for i, seconds in enumerate((result.seconds, result.cpu_seconds)):
                best[share][i] = min(best[share][i], seconds / args.n * 1000)
    (wall, cpu), (spam_wall, spam_cpu) = best[0.0], best[args.spam_share]
    print(
        f"best of {args.rounds}, ms/msg without spam / with {args.spam_share:.0%} spam: "
        f"wall {wall:.2f} / {spam_wall:.2f} (ratio {spam_wall / wall:.2f}), CPU of mailbridge "
        f"{cpu:.2f} / {spam_cpu:.2f} (ratio {spam_cpu / cpu:.2f})  (target <= 1.0: no slowdown)"
    )
    return 0


def _spam_run(
    args: argparse.Namespace, server: ImapServer, run: Path, share: float
) -> ChildResult | None:
    """One (b) on a fresh database and a refilled INBOX; None if it failed."""
    with database(args.db, run) as db_url:
        count, size = fill(server, args.n, args.seed, spam_share=share)
        config = write_config(
            run, server, free_port(), db_url, team=args.team, more=SPAM_TOML + tickets_table()
        )
        log = run / "run-b.log"
        command = mailbridge_command(config, "run", "--once")
        b = run_child(command, child_env(server), log, CHILD_TIMEOUT)
        left = inbox_count(server)
        tickets, spam = _spam_counts(db_url)
    print(line(f"(b) with {share:.0%} spam", count, size, b.seconds))
    print(
        f"    {b.seconds / count * 1000:.2f} ms/msg, CPU {b.cpu_seconds / count * 1000:.2f} "
        f"ms/msg; {tickets} tickets, {spam} of them spam; exit {b.returncode}, left {left}",
        flush=True,
    )
    if b.returncode != 0 or left:
        print(tail(log), file=sys.stderr)
        return None
    return b


def _spam_counts(db_url: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, func, select

    from mailbridge.db.models import Ticket

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            total = conn.scalar(select(func.count(Ticket.id))) or 0
            spam = conn.scalar(select(func.count(Ticket.id)).where(Ticket.status == "spam")) or 0
            return int(total), int(spam)
    finally:
        engine.dispose()


SECOND = "Second"  # the second mailbox's folder
_PASS = re.compile(r"processing pass: ([0-9.]+) s, ([0-9.]+) s of it waiting for turns")


def instances_comparison(args: argparse.Namespace, server: ImapServer, work: Path) -> int:
    """One instance with both mailboxes, then two instances each owning one, with the
    narrow turns and with the single one; each on a fresh database and refilled folders."""
    half = args.n // 2
    print(f"server {args.server}, database postgresql, 2 mailboxes x {half} mails")
    runs = [
        ("one instance, both mailboxes", "narrow", [[("support", "INBOX"), ("sales", SECOND)]]),
        ("two instances, narrow turns", "narrow", [[("support", "INBOX")], [("sales", SECOND)]]),
        ("two instances, single turn", "single", [[("support", "INBOX")], [("sales", SECOND)]]),
    ]
    failed = 0
    for label, kind, layout in runs:
        fill(server, half, args.seed)
        fill(server, half, args.seed + 1, folder=SECOND)
        with database("postgresql", work) as db_url:
            migrated(db_url).dispose()
            results = _instances(server, work, db_url, kind, layout)
        seconds = max(result.seconds for result, _ in results)
        spent = sum(passed for _, (passed, _) in results)
        waited = sum(waiting for _, (_, waiting) in results)
        share = waited / spent if spent else 0.0
        print(
            f"{label:<34} {2 * half:>6} msgs {seconds:>8.2f} s "
            f"{rate(2 * half, seconds):>9.1f} msg/s   waiting for locks {share:6.1%} "
            f"of processing ({waited:.2f} s of {spent:.2f} s)"
        )
        failed += sum(result.returncode != 0 for result, _ in results)
        failed += inbox_count(server) + inbox_count(server, SECOND)
    print("target: two instances at most 5% of processing time waiting for locks")
    return 1 if failed else 0


def _instances(
    server: ImapServer, work: Path, db_url: str, kind: str, layout: list[list[tuple[str, str]]]
) -> list[tuple[ChildResult, tuple[float, float]]]:
    """`run --once` of each instance (its own directory and mailboxes), started together:
    each one's result and (seconds processing, seconds of it waiting for locks)."""
    env = child_env(server)
    found: list[tuple[ChildResult, tuple[float, float]]] = []

    def run(index: int, mailboxes: list[tuple[str, str]]) -> None:
        directory = work / f"instance-{index}"
        directory.mkdir(exist_ok=True)
        config = write_config(
            directory, server, free_port(), db_url, mailboxes=mailboxes, processing_turn=kind
        )
        log = directory / "run.log"
        result = run_child(mailbridge_command(config, "run", "--once"), env, log, CHILD_TIMEOUT)
        if result.returncode:
            print(tail(log), file=sys.stderr)
        passes = _PASS.findall(log.read_text(encoding="utf-8", errors="replace"))
        found.append((result, (sum(float(p) for p, _ in passes), sum(float(w) for _, w in passes))))

    threads = [
        threading.Thread(target=run, args=(index, mailboxes))
        for index, mailboxes in enumerate(layout)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def line(label: str, count: int, size: int, seconds: float) -> str:
    return (
        f"{label:<34} {count:>6} msgs {mb(size):>8.1f} MB {seconds:>8.2f} s "
        f"{rate(count, seconds):>9.1f} msg/s"
    )


def _toml_workers(value: str) -> str:
    return '"auto"' if value == "auto" else str(int(value))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000, help="messages (default 5000)")
    parser.add_argument("--server", choices=("dovecot", "pymap"), default="dovecot")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-team",
        dest="team",
        action="store_false",
        help="no staff.team_address: tickets queue no notification to staff",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run (b)'s steps in-process under a profiler, write the result here",
    )
    parser.add_argument(
        "--profiler",
        choices=("cprofile", "pyinstrument", "none"),
        default="cprofile",
        help="pyinstrument must be installed (pip install pyinstrument); none only times the steps",
    )
    parser.add_argument(
        "--search-index-cost",
        action="store_true",
        help="only (b), with and without the full-text index triggers, alternately",
    )
    parser.add_argument(
        "--spam-share",
        type=float,
        default=0.0,
        metavar="S",
        help="compare (b) without spam and with this share of spam (e.g. 0.3)",
    )
    parser.add_argument(
        "--parse-workers",
        default=None,
        metavar="auto|N",
        help='[tickets] parse_workers for (b) and (c); default: left out ("auto")',
    )
    parser.add_argument(
        "--attachment-mb",
        type=int,
        default=0,
        metavar="M",
        help="every mail also carries a scan of M MB (memory with large mail: --n 30 and 30)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="with --search-index-cost or --spam-share: runs of each (default 2)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: processing across two instances on PostgreSQL (see above)",
    )
    args = parser.parse_args(argv)
    if args.instances == 2:
        with workdir("mailbridge-bench-") as work, imap_server(args.server) as server:
            return instances_comparison(args, server, work)
    if args.spam_share:
        with workdir("mailbridge-bench-") as work, imap_server(args.server) as server:
            return spam_comparison(args, server, work)

    if args.search_index_cost:
        with workdir("mailbridge-bench-") as work, imap_server(args.server) as server:
            print(f"server {args.server}, database {args.db}, N={args.n}, seed {args.seed}")
            search_index_cost(server, work, args)
        return 0
    with (
        workdir("mailbridge-bench-") as work,
        imap_server(args.server) as server,
        database(args.db, work) as db_url,
    ):
        print(
            f"server {args.server}, database {args.db}, N={args.n}, seed {args.seed}, "
            f"{'a notification to the team per ticket' if args.team else 'no team address'}, "
            f"parse_workers {args.parse_workers or 'auto (default)'}"
        )
        start = time.perf_counter()
        count, size = fill(server, args.n, args.seed, attachment_mb=args.attachment_mb)
        print(
            f"filled INBOX: {count} msgs, {mb(size):.1f} MB in {time.perf_counter() - start:.1f} s"
        )

        raw_fetch = fetch_pass(server, parse=False)
        baseline = fetch_pass(server, parse=True)
        print(line("fetch only (for scale)", *raw_fetch))
        print(line("(a) fetch + stdlib parse", *baseline))

        closed_port = free_port()  # nothing listens: acknowledgements stay queued
        workers = args.parse_workers
        more = tickets_table(
            "" if workers is None else f"parse_workers = {_toml_workers(workers)}\n"
        )
        config = write_config(work, server, closed_port, db_url, team=args.team, more=more)
        env = child_env(server)
        if args.profile:
            start = time.perf_counter()
            profile_in_process(config, env, args.profile, args.profiler)
            print(
                f"(b) in-process under {args.profiler}: {time.perf_counter() - start:.2f} s; "
                f"stats in {args.profile}"
            )
            return 0

        # Migrated first, untimed, as an installed mailbridge's database is when it starts:
        # (b) is a start that needs no migration, so it does not load alembic.
        upgraded = run_child(mailbridge_command(config, "db", "upgrade"), env, work / "up.log", 120)
        if upgraded.returncode != 0:
            raise SystemExit(f"db upgrade failed: see {work / 'up.log'}")
        log_b = work / "run-b.log"
        b = run_child(mailbridge_command(config, "run", "--once"), env, log_b, CHILD_TIMEOUT)
        left = inbox_count(server)
        print(line("(b) mailbridge run --once", baseline[0], baseline[1], b.seconds))
        print(f"    exit {b.returncode}, left in INBOX {left}; {memory(b)}")
        print("    " + tail(log_b, 1))
        if b.returncode != 0 or left:
            print(tail(log_b), file=sys.stderr)

        queued = due_again(db_url)
        with CountingSink() as sink:
            config = write_config(work, server, sink.port, db_url, team=args.team, more=more)
            log_c = work / "run-c.log"
            c = run_child(mailbridge_command(config, "run", "--once"), env, log_c, CHILD_TIMEOUT)
            sent = len(sink.arrivals)
        print(
            f"{'(c) sending the queued mail':<34} {sent:>6} msgs of {queued} queued "
            f"{c.seconds:>8.2f} s {rate(sent, c.seconds):>9.1f} msg/s "
            f"(exit {c.returncode}, peak RSS {c.max_rss_mb:.1f} MB)"
        )

        ratio = rate(baseline[0], b.seconds) / rate(baseline[0], baseline[2])
        print(
            f"ratio (b)/(a) = {ratio:.2f}  (target >= 0.80)   "
            f"peak memory (b), all its processes together = {b.tree_pss_mb:.0f} MB PSS "
            f"(target < 250 MB; as a sum of RSS, which counts the pages the parse workers "
            f"share with their forkserver once in each, {max(b.tree_rss_mb, b.max_rss_mb):.0f} MB)"
        )
        return 0 if b.returncode == 0 and not left else 1


if __name__ == "__main__":
    sys.exit(main())
