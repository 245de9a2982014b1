"""Ordinary mail beside hostile mail: does one bad message slow everybody else down?

    python bench/hostile.py [--n 1000] [--hostile 50] [--rate 8] [--server dovecot|pymap]
                            [--db sqlite|postgresql]

Runs `mailbridge run` twice against a private IMAP server and a sink that notes which mail
each acknowledgement answers (its In-Reply-To). The first run gets --n ordinary generated
mails, appended at --rate per second; the second the same mails with --hostile hostile
ones spread among them (every class of the hostile-mail suite: forged staff proof, a TNEF
bomb, part and nesting bombs, deep HTML, a 60 KB From, over-long ids, NUL bytes, a UTF-8
address, a 2 MB subject, Mailsploit, a header flood, quote-heavy text). For each run it
prints the ordinary mails' arrival-to-acknowledgement p50 and p99, and the peak RSS of
mailbridge and its processes; then what became of each hostile mail.
Targets: p99 with hostile mail within 2x of the clean run; peak RSS under 400 MB.
"""

from __future__ import annotations

import argparse
import base64
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _common import (
    REPO,
    ImapServer,
    _TreeMemory,
    child_env,
    database,
    generate,
    imap_client,
    imap_server,
    mailbridge_command,
    tail,
    tickets_table,
    workdir,
    write_config,
)
from aiosmtpd.smtp import SMTP, Envelope, Session
from latency import percentile, stop

from mailbridge.demo.smtp_sink import SmtpSink

_IN_REPLY_TO = re.compile(rb"^In-Reply-To:\s*<([^>\r\n]{1,998})>", re.I | re.M)
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>\r\n]{1,998})>", re.I | re.M)
SETTLE = 60.0  # seconds to wait for the last acknowledgements after the last append


class AnsweringSink(SmtpSink):
    """Notes, for every accepted mail, the Message-ID it answers and when it arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, float] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        head = bytes(envelope.original_content or b"")[:8192]
        found = _IN_REPLY_TO.search(head)
        with self._arrived:
            if found:
                self.answers.setdefault(found.group(1).decode("ascii", "replace"), time.monotonic())
            self._arrived.notify_all()
        return "250 2.0.0 OK"


# --- hostile mail, one generator per class --------------------------------------------------


def _mail(head: str, body: str | bytes = "Hello\n", *, extra: bytes = b"") -> bytes:
    data = body if isinstance(body, bytes) else body.encode()
    return head.encode("utf-8", "surrogateescape") + extra + b"\r\n" + data


def _headers(
    index: int,
    sender: str = "Eve <eve@evil.example>",
    subject: str = "Hello",
    content_type: str = "text/plain; charset=utf-8",
) -> str:
    return (
        f"From: {sender}\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: <hostile.{index}@evil.example>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {content_type}\r\n"
    )


def forged_staff(i: int) -> bytes:
    return _mail(
        _headers(i, "Alice <alice@shop.example>", "Re: [#1000] x"),
        "#close\nDone.\n",
        extra=b"Authentication-Results: mx.shop.example; spf=pass "
        b'smtp.mailfrom="x;dkim=pass header.d=shop.example x"@evil.example\r\n',
    )


def tnef_bomb(i: int) -> bytes:
    blob = (
        struct.pack("<IH", 0x223E9F78, 1)
        + b"\x01"
        + struct.pack("<II", 0x00069003, 27)
        + struct.pack("<I", 0xFFFFFFFF)
        + b"\x00" * 23
        + b"\x00\x00"
    )
    part = base64.b64encode(blob).decode()
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
        "Content-Type: application/ms-tnef; name=winmail.dat\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + part + "\r\n--b--\r\n"
    )
    return _mail(_headers(i, content_type='multipart/mixed; boundary="b"'), body)


def part_bomb(i: int) -> bytes:
    body = "".join("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(30_000))
    return _mail(_headers(i, content_type='multipart/mixed; boundary="b"'), body + "--b--\r\n")


def nesting_bomb(i: int) -> bytes:
    depth = 3_000
    opening = "".join(
        f'--b{d}\r\nContent-Type: multipart/mixed; boundary="b{d + 1}"\r\n\r\n'
        for d in range(depth)
    )
    closing = "".join(f"--b{d}--\r\n" for d in range(depth, -1, -1))
    return _mail(
        _headers(i, content_type='multipart/mixed; boundary="b0"'),
        opening + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\nhello\r\n" + closing,
    )


def deep_html(i: int) -> bytes:
    html = "<div>" * 20_000 + "the printer is on fire" + "</div>" * 20_000
    return _mail(_headers(i, content_type="text/html; charset=utf-8"), html)


def long_from(i: int) -> bytes:
    return _mail(_headers(i, '"' + "a" * 60_000 + "@"))


def long_ids(i: int) -> bytes:
    head = _headers(i).replace(f"<hostile.{i}@evil.example>", f"<{'m' * 5_000}.{i}@evil>")
    refs = " ".join(f"<{'r' * 900}.{n}@x>" for n in range(300))
    return _mail(head, extra=f"In-Reply-To: <{'i' * 5_000}@x>\r\nReferences: {refs}\r\n".encode())


def nul_bytes(i: int) -> bytes:
    return _mail(_headers(i, "Eve\x00 <eve@evil.example>", "nul\x00subject"), "body\x00text\n")


def utf8_address(i: int) -> bytes:
    return _mail(_headers(i, "José <josé@exämple.de>", "Grüße"))


def huge_subject(i: int) -> bytes:
    return _mail(_headers(i, subject="x" * 2_000_000))


def mailsploit(i: int) -> bytes:
    return _mail(_headers(i, '"alice@shop.example" <eve@evil.example'))


def header_flood(i: int) -> bytes:
    return _mail(_headers(i), extra=b"".join(b"X-Flood: %d\r\n" % n for n in range(100_000)))


def quote_heavy(i: int) -> bytes:
    text = "".join(f"{'> ' * 200}On Mon, someone wrote:\n" for _ in range(5_000))
    return _mail(_headers(i), text)


HOSTILE: tuple[Callable[[int], bytes], ...] = (
    forged_staff,
    tnef_bomb,
    part_bomb,
    nesting_bomb,
    deep_html,
    long_from,
    long_ids,
    nul_bytes,
    utf8_address,
    huge_subject,
    mailsploit,
    header_flood,
    quote_heavy,
)


# --- the runs ------------------------------------------------------------------------------


def sequence(n: int, hostile: int, seed: int) -> Iterator[tuple[str | None, bytes]]:
    """(Message-ID of an ordinary mail or None for a hostile one, raw), interleaved evenly."""
    every = n // hostile if hostile else n + 1
    made = 0
    for index, raw in enumerate(generate(n, seed)):
        found = _MESSAGE_ID.search(raw)
        yield (found.group(1).decode() if found else None), raw
        if hostile and (index + 1) % every == 0 and made < hostile:
            yield None, HOSTILE[made % len(HOSTILE)](made)
            made += 1


def run(
    kind: str, server: ImapServer, db_url: str, work: Path, args: argparse.Namespace, hostile: int
) -> tuple[list[float], int, _TreeMemory]:
    """One daemon run: latencies of the ordinary mails (s), misses, the tree's memory."""
    sink = AnsweringSink()
    with sink:
        imap_client(server).logout()
        config = write_config(work, server, sink.port, db_url)
        _raise_limits(config)
        log_path = work / f"daemon-{kind}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                mailbridge_command(config, "run"),
                env=child_env(server),
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
            memory = _TreeMemory(proc.pid)
            memory.start()
            try:
                appended = _append(server, sequence(args.n, hostile, args.seed), args.rate)
                deadline = time.monotonic() + SETTLE
                while time.monotonic() < deadline and not appended.keys() <= sink.answers.keys():
                    time.sleep(0.2)
            finally:
                memory.stop()
                code = stop(proc)
        if code:
            print(tail(log_path, 30), file=sys.stderr)
        latencies = [sink.answers[mid] - at for mid, at in appended.items() if mid in sink.answers]
        return latencies, len(appended) - len(latencies), memory


def _raise_limits(config: Path) -> None:
    """Generated senders share five domains: lift the acknowledgement limits, which would
    otherwise (rightly) suppress acknowledgements and leave nothing to measure. No mail here
    is authenticated: ask for the full acknowledgement (the heavier one, with the excerpt and
    FAQ answers), whose In-Reply-To tells which mail it answers."""
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text + tickets_table('ack_unauthenticated = "full"\n'),
        encoding="utf-8",
    )


def _append(
    server: ImapServer, mails: Iterator[tuple[str | None, bytes]], per_second: float
) -> dict[str, float]:
    appended: dict[str, float] = {}
    client = imap_client(server)
    start = time.monotonic()
    try:
        for count, (message_id, raw) in enumerate(mails):
            delay = start + count / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.append("INBOX", raw)
            if message_id is not None:
                appended[message_id] = time.monotonic()
    finally:
        client.logout()
    return appended


def outcomes(db_url: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT message_id, state, ticket_id, last_error FROM inbound_message "
                "WHERE message_id LIKE 'hostile.%' OR message_id LIKE 'mmmm%' "
                "OR message_id IS NULL ORDER BY id"
            )
        ).all()
    engine.dispose()
    return [
        f"  {(mid or '(none)')[:28]:<28} {state:<12} ticket {ticket or '-':<5} {(error or '')[:60]}"
        for mid, state, ticket, error in rows
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--hostile", type=int, default=50)
    parser.add_argument("--rate", type=float, default=8.0, help="mails appended per second")
    parser.add_argument("--server", choices=("dovecot", "pymap"), default="dovecot")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    results = {}
    for kind, hostile in (("clean", 0), ("hostile", args.hostile)):
        with (
            workdir(f"mailbridge-hostile-{kind}-") as work,
            imap_server(args.server) as server,
            database(args.db, work) as db_url,
        ):
            latencies, misses, memory = run(kind, server, db_url, work, args, hostile)
            ms = sorted(v * 1000 for v in latencies)
            results[kind] = (percentile(ms, 0.5), percentile(ms, 0.99), misses, memory.tree_pss)
            print(
                f"{kind:>8}: {len(ms)} ordinary mails acknowledged, {misses} not; "
                f"p50 {results[kind][0]:.0f} ms  p99 {results[kind][1]:.0f} ms  "
                f"peak PSS {memory.tree_pss:.0f} MB (summed RSS {memory.tree_rss:.0f} MB, "
                f"largest process {max(memory.peaks.values(), default=0):.0f} MB)"
            )
            if hostile:
                print("hostile mails:\n" + "\n".join(outcomes(db_url)))
    ratio = results["hostile"][1] / results["clean"][1] if results["clean"][1] else float("nan")
    print(
        f"p99 ratio hostile/clean: {ratio:.2f} (target <= 2); peak PSS "
        f"{max(r[3] for r in results.values()):.0f} MB (target < 400)"
    )
    ok = (
        ratio <= 2
        and max(r[3] for r in results.values()) < 400
        and not any(r[2] for r in results.values())
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
