"""Arrival-to-acknowledgement latency with the daemon running under IDLE, and over LMTP.

    python bench/latency.py [--n 200] [--server dovecot|pymap] [--db sqlite|postgresql]
                            [--via imap|lmtp]

Starts a private IMAP server, a counting SMTP sink and `mailbridge run` as a subprocess,
then appends generated mails one at a time. For each: the time from APPEND returning to
the sink accepting the acknowledgement; the next mail goes in only after that. Prints
p50, p90, p99 and max. A mail whose acknowledgement takes longer than --timeout counts as
a miss and is reported; the run always ends.

With --via lmtp the daemon also listens for LMTP ([lmtp]), and after the IMAP figures the
same number of mails is delivered over one LMTP connection, as an MTA does: for each, the
time from the client's DATA (the mail sent, its dot, the 250) to the sink accepting the
acknowledgement. Both lines are printed together.
"""

from __future__ import annotations

import argparse
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    REPO,
    SUPPORT,
    CountingSink,
    ImapServer,
    child_env,
    database,
    free_port,
    generate,
    imap_client,
    imap_server,
    mailbridge_command,
    tail,
    tickets_table,
    workdir,
    write_config,
)

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
GIVE_UP_AFTER = 3  # consecutive misses: the daemon has stopped answering, end the run


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def measure(
    server: ImapServer, sink: CountingSink, n: int, seed: int, timeout: float
) -> tuple[list[float], int]:
    """Append n + 1 mails (the first warms up and is not counted); latencies and misses."""
    latencies: list[float] = []
    misses = consecutive = 0
    client = imap_client(server)
    try:
        for index, raw in enumerate(generate(n + 1, seed)):
            expected = len(sink.arrivals) + 1
            client.append("INBOX", raw)
            appended = time.monotonic()
            wait = READY_TIMEOUT if index == 0 else timeout
            if not sink.wait_count(expected, wait):
                if index == 0:
                    raise TimeoutError(f"no acknowledgement within {wait:.0f} s of the first mail")
                misses += 1
                consecutive += 1
                if consecutive >= GIVE_UP_AFTER:
                    print(
                        f"{consecutive} acknowledgements in a row missing: giving up",
                        file=sys.stderr,
                    )
                    break
                # Let a late acknowledgement land before the next mail, so it is not
                # credited to the wrong one.
                sink.wait_count(expected, timeout)
                continue
            consecutive = 0
            if index:
                latencies.append(sink.arrivals[expected - 1] - appended)
    finally:
        client.logout()
    return latencies, misses


def measure_lmtp(
    port: int, sink: CountingSink, n: int, seed: int, timeout: float
) -> tuple[list[float], int]:
    """Deliver n + 1 mails over LMTP (the first warms up); latencies and misses."""
    latencies: list[float] = []
    misses = 0
    client = smtplib.LMTP("127.0.0.1", port, timeout=timeout)
    client.ehlo()  # LHLO: smtplib's mail() does not greet by itself
    try:
        for index, raw in enumerate(generate(n + 1, seed + 1)):
            expected = len(sink.arrivals) + 1
            client.mail("customer@customer.example")
            client.rcpt(SUPPORT)
            started = time.monotonic()
            code, answer = client.data(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
            if code != 250:
                raise TimeoutError(f"LMTP answered {code} {answer.decode(errors='replace')}")
            if not sink.wait_count(expected, READY_TIMEOUT if index == 0 else timeout):
                misses += 1
                sink.wait_count(expected, timeout)
                continue
            if index:
                latencies.append(sink.arrivals[expected - 1] - started)
    finally:
        client.quit()
    return latencies, misses


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(STOP_TIMEOUT)


def report(
    latencies: list[float], misses: int, n: int, via: str = "IMAP IDLE", targets: str = ""
) -> None:
    values = sorted(latencies)
    ms = [v * 1000 for v in values]
    print(f"{via}: measured {len(values)} of {n} mails, {misses} missed the timeout")
    if not ms:
        return
    print(
        f"{via} latency ms: p50 {percentile(ms, 0.50):.0f}  p90 {percentile(ms, 0.90):.0f}  "
        f"p99 {percentile(ms, 0.99):.0f}  max {ms[-1]:.0f}  "
        f"mean {statistics.fmean(ms):.0f}  min {ms[0]:.0f}"
    )
    print(f"{via} targets: {targets or 'p50 < 300 ms, p99 < 1000 ms'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="measured mails (default 200)")
    parser.add_argument("--server", choices=("dovecot", "pymap"), default="dovecot")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--via", choices=("imap", "lmtp"), default="imap")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for one acknowledgement (default 10)",
    )
    args = parser.parse_args(argv)

    with (
        workdir("mailbridge-latency-") as work,
        imap_server(args.server) as server,
        database(args.db, work) as db_url,
        CountingSink() as sink,
    ):
        # An empty INBOX must exist before the daemon selects it.
        client = imap_client(server)
        client.logout()
        lmtp_port = free_port() if args.via == "lmtp" else None
        lmtp = f'\n[lmtp]\nlisten = "127.0.0.1:{lmtp_port}"\n' if lmtp_port else ""
        config = write_config(work, server, sink.port, db_url, more=tickets_table() + lmtp)
        log_path: Path = work / "daemon.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                mailbridge_command(config, "run"),
                env=child_env(server),
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
            try:
                print(f"server {args.server}, database {args.db}, daemon pid {proc.pid}")
                latencies, misses = measure(server, sink, args.n, args.seed, args.timeout)
                pushed: tuple[list[float], int] | None = None
                if lmtp_port is not None:
                    pushed = measure_lmtp(lmtp_port, sink, args.n, args.seed, args.timeout)
            except TimeoutError as exc:
                print(f"{exc}\n{tail(log_path)}", file=sys.stderr)
                return 1
            finally:
                code = stop(proc)
        report(latencies, misses, args.n)
        if pushed is not None:
            report(*pushed, args.n, via="LMTP", targets="p50 < 50 ms, p99 < 200 ms")
            misses += pushed[1]
        print(f"daemon exit {code} after SIGTERM")
        if misses or code or os.environ.get("BENCH_SHOW_LOG"):
            print(tail(log_path, 40))
        return 0 if not misses and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
