"""Run the parser over every mail corpus and check what each file must give, and the facts
the corpora's EXPECTED.json files assert.

    python bench/corpus_check.py [DIR]          # per-corpus table + facts, default ../shared/corpus
    python bench/corpus_check.py --trim [DIR]   # reply trimming: plain N/64, HTML replies N/9
    python bench/corpus_check.py --speed DIR    # parse throughput (msg/s) over DIR/*.eml
    python bench/corpus_check.py -v ...         # also list each fact that does not hold

DIR holds one folder per corpus. For each corpus the table gives its files; crashes
(parse_message raised: it must never raise); senders found against senders named (From,
Sender, Reply-To or Return-Path with an address or MAILER-DAEMON, read from the raw bytes
by tests/support/corpus.py without mailbridge's parser); subjects with U+FFFD, C1 controls or
mojibake ("Ã©", "â€", "¦®"); attachments without a name; attachment names with U+FFFD, C1
controls or mojibake. Below it, each file behind a figure. Body-only fixtures (not whole
mails) are parsed inside a minimal mail: the header checks skip them. The exit code is 1
when a figure is not 0, or a named sender was not found.

Facts are other projects' views of their own fixtures (see the corpus README): a
missed fact is a hint to look, not proof of a bug.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailbridge.core.classify import Identity, classify
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.parse import parse_message
from mailbridge.core.reply_trim import trim_reply
from tests.support.corpus import (
    CORPUS,
    FileCheck,
    check_file,
    corpus_files,
    folders,
    garbled,
    wrap_body,
)

DEFAULT_CORPUS = CORPUS
AUTOMATED = frozenset({"auto_reply", "bulk", "bounce"})

Checker = Callable[[ParsedMessage, Verdict, Any], bool]


def normalize_ws(text: str) -> str:
    """Trailing spaces off, runs of blank lines to one, ends stripped."""
    lines = "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", lines).strip()


def _loose(text: str) -> str:
    # Discourse's expected texts are Markdown: compare without emphasis and spacing.
    return re.sub(r"[\s*_]+", "", text)


def _addresses(values: Any) -> list[str]:
    if isinstance(values, str):
        values = json.loads(values) if values.startswith("[") else re.split(r"[;,]", values)
    return [str(v).strip().lower() for v in values]


def _filenames_match(msg: ParsedMessage, verdict: Verdict, expected: list[Any]) -> bool:
    names = [a.filename for a in msg.attachments]
    wanted = [e["filename"] if isinstance(e, dict) else e for e in expected]
    return all(name in names for name in wanted)


def _has_defects(msg: ParsedMessage, verdict: Verdict, names: list[str]) -> bool:
    return all(any(d.startswith(name) for d in msg.defects) for name in names)


FACT_CHECKS: dict[str, Checker] = {
    "auto_generated": lambda m, v, x: (v.kind in AUTOMATED) == x,
    "is_bounce": lambda m, v, x: (v.kind == "bounce") == x,
    "is_dsn": lambda m, v, x: (v.kind == "bounce") == x,
    "is_mailing_list": lambda m, v, x: (v.kind == "bulk") == x,
    "subject": lambda m, v, x: m.subject == x,
    "subject_contains": lambda m, v, x: x.lower() in m.subject.lower(),
    "subject_missing": lambda m, v, x: (m.subject == "") == x,
    "from_email": lambda m, v, x: m.from_ is not None and m.from_.address == x.lower(),
    "from": lambda m, v, x: m.from_ is not None and m.from_.address == x.lower(),
    "from_name": lambda m, v, x: m.from_ is not None and m.from_.name == x,
    "from_display_name": lambda m, v, x: m.from_ is not None and m.from_.name == x,
    "sender": lambda m, v, x: m.from_ is not None and m.from_.address in x.lower(),
    "to": lambda m, v, x: set(_addresses(x)) <= {a.address for a in m.to},
    "to_addresses": lambda m, v, x: set(_addresses(x)) <= {a.address for a in m.to},
    "cc_addresses": lambda m, v, x: set(_addresses(x)) <= {a.address for a in m.cc},
    "get_all_cc": lambda m, v, x: set(_addresses(x)) <= {a.address for a in m.cc},
    "message_id": lambda m, v, x: m.message_id == x,
    "has_message_id": lambda m, v, x: (m.message_id is not None) == x,
    "in_reply_to_message_id": lambda m, v, x: m.in_reply_to == x,
    "attachments_count": lambda m, v, x: len(m.attachments) == x,
    "attachments": _filenames_match,
    "part_filenames": _filenames_match,
    "part1_filename": lambda m, v, x: _filenames_match(m, v, [x]),
    "inner_subject": lambda m, v, x: _filenames_match(m, v, [f"{x}.eml"]),
    "has_inline_image": lambda m, v, x: (
        any(a.inline and a.content_type.startswith("image/") for a in m.attachments) == x
    ),
    "attachment_is_inline_jpeg": lambda m, v, x: (
        any(a.inline and a.content_type == "image/jpeg" for a in m.attachments) == x
    ),
    "body_text": lambda m, v, x: _loose(x) in (_loose(m.reply_text), _loose(m.text)),
    "body_text_empty": lambda m, v, x: (m.reply_text.strip() == "") == x,
    "body_contains": lambda m, v, x: x in m.text,
    "forwarded_body_contains": lambda m, v, x: x in m.text,
    "forwarder_text_contains": lambda m, v, x: x in m.text,
    "forwarded_part_contains": lambda m, v, x: x in m.text,
    "html_part_contains": lambda m, v, x: _loose(x) in _loose(m.html or ""),
    "reply_text": lambda m, v, x: _loose(m.reply_text) == _loose(x),
    "reply_text_markdown": lambda m, v, x: _loose(m.reply_text) == _loose(x),
    "reply_text_from_text_part": lambda m, v, x: _loose(m.reply_text) == _loose(x),
    "reply_text_whitespace_insensitive": lambda m, v, x: _loose(m.reply_text) == _loose(x),
    "reply_text_trimmed": lambda m, v, x: normalize_ws(m.reply_text) == normalize_ws(x),
    "reply_text_contains": lambda m, v, x: all(s in m.text for s in x),
    "reply_non_empty": lambda m, v, x: bool(m.reply_text.strip()) == x,
    "reply_not_contains": lambda m, v, x: x not in m.reply_text,
    "defects": _has_defects,
    "nested_part_defects": _has_defects,
}


def check_facts(
    root: Path, results: dict[Path, tuple[ParsedMessage, Verdict]], verbose: bool
) -> tuple[int, int, int]:
    held = checked = unchecked = 0
    for expected_file in sorted(root.glob("*/EXPECTED.json")):
        folder = expected_file.parent
        for name, entries in json.loads(expected_file.read_text()).items():
            result = results.get(folder / name)
            for entry in entries:
                for key, value in entry["facts"].items():
                    checker = FACT_CHECKS.get(key)
                    if checker is None or result is None:
                        unchecked += 1
                        continue
                    checked += 1
                    ok = _run_check(checker, result, value)
                    held += ok
                    if not ok and verbose:
                        print(f"  fact not held: {folder.name}/{name} {key} = {value!r:.80}")
    return held, checked, unchecked


def _run_check(checker: Checker, result: tuple[ParsedMessage, Verdict], value: Any) -> bool:
    try:
        return bool(checker(result[0], result[1], value))
    except Exception:  # noqa: BLE001 - a malformed fact counts as not held; the run goes on
        return False


@dataclass
class Tally:
    """The figures of one corpus (or of all of them)."""

    files: int = 0
    whole_mails: int = 0  # the files the header checks apply to
    crashes: int = 0
    named: int = 0  # mails naming a sender in their raw headers
    found: int = 0  # of those, the mails mailbridge found a sender in
    garbled_subjects: int = 0
    nameless: int = 0  # attachments without a name
    garbled_names: int = 0  # attachment names with U+FFFD, C1 controls or mojibake

    def add(self, check: FileCheck) -> None:
        self.files += 1
        self.whole_mails += check.whole_mail
        self.crashes += check.crash is not None
        if check.whole_mail and check.named and check.parsed is not None:
            self.named += 1
            self.found += not check.sender_missing
        self.garbled_subjects += garbled(check.subject)
        self.nameless += check.nameless
        self.garbled_names += len(check.garbled_names)

    def add_all(self, other: Tally) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    @property
    def failing(self) -> bool:
        return bool(
            self.crashes
            or self.found < self.named
            or self.garbled_subjects
            or self.nameless
            or self.garbled_names
        )

    def row(self, name: str) -> list[str]:
        headers = self.whole_mails > 0
        return [
            name,
            str(self.files),
            str(self.crashes),
            f"{self.found} / {self.named}" if headers else "–",
            str(self.garbled_subjects) if headers else "–",
            str(self.nameless),
            str(self.garbled_names),
        ]


TABLE_HEADER = [
    "corpus",
    "files",
    "crashes",
    "senders found / named",
    "subjects: U+FFFD, mojibake",
    "nameless attachments",
    "names: U+FFFD, mojibake",
]


def print_table(rows: list[list[str]]) -> None:
    """A Markdown table, its columns aligned, as the README shows it."""
    widths = [max(len(row[i]) for row in [TABLE_HEADER, *rows]) for i in range(len(TABLE_HEADER))]

    def line(cells: list[str]) -> str:
        figures = zip(cells[1:], widths[1:], strict=True)
        padded = [cells[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in figures]
        return "| " + " | ".join(padded) + " |"

    print(line(TABLE_HEADER))
    print("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    for row in rows:
        print(line(row))


def problems(check: FileCheck, root: Path) -> list[str]:
    """What is wrong with one file, a line each."""
    name = check.path.relative_to(root)
    found = []
    if check.crash is not None:
        found.append(f"crash: {name}: {check.crash}")
    if check.sender_missing:
        found.append(f"no sender: {name} (names {', '.join(dict.fromkeys(check.named))})")
    if garbled(check.subject):
        found.append(f"garbled subject: {name}: {check.subject!r:.120}")
    if check.nameless:
        found.append(f"attachments without a name: {name}: {check.nameless}")
    found += [
        f"garbled attachment name: {name}: {filename!r:.120}" for filename in check.garbled_names
    ]
    return found


def run_corpus(root: Path, verbose: bool) -> int:
    identity = Identity()
    results: dict[Path, tuple[ParsedMessage, Verdict]] = {}
    kinds: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    rows: list[list[str]] = []
    lines: list[str] = []
    body_only: list[str] = []
    total = Tally()
    started = time.perf_counter()
    for folder in folders(root):
        tally = Tally()
        for path in corpus_files(root, folder):
            check = check_file(path, folder)
            tally.add(check)
            lines += problems(check, root)
            if check.parsed is None:
                continue
            verdict = classify(check.parsed, identity)
            results[path] = (check.parsed, verdict)
            kinds[verdict.kind] += 1
            defects.update(d.split(":")[0] for d in check.parsed.defects)
        rows.append(tally.row(folder))
        total.add_all(tally)
        if tally.whole_mails < tally.files:
            body_only.append(
                folder
                if not tally.whole_mails
                else f"{folder} ({tally.files - tally.whole_mails} of {tally.files} files)"
            )
    elapsed = time.perf_counter() - started
    print_table([*rows, total.row("total")])
    print(
        f"\nBody-only fixtures, not whole mails, skip the header checks (senders, subjects): "
        f"{', '.join(body_only) or 'none'}."
    )
    print(
        f"{total.files} files in {elapsed:.1f} s ({total.files / elapsed:.0f} msg/s incl. classify)"
    )
    for line in lines:
        print(f"  {line}")
    print("kinds:", dict(kinds.most_common()))
    print("defects:", dict(defects.most_common(12)))
    held, checked, unchecked = check_facts(root, results, verbose)
    print(
        f"facts held: {held}/{checked} = {100 * held / max(checked, 1):.1f}%"
        f"  (not checkable here: {unchecked})"
    )
    return 1 if total.failing else 0


def run_trim(root: Path, verbose: bool) -> int:
    folder = root / "email_reply_trimmer"
    exact = 0
    emails = sorted(folder.glob("*.txt"))
    for path in emails:
        expected = (folder / "_expected" / "trimmed" / path.name).read_text()
        got = trim_reply(path.read_text())
        if normalize_ws(got) == normalize_ws(expected):
            exact += 1
        elif verbose:
            print(f"  differs: {path.name}")
    print(f"reply trimming exact after whitespace normalisation: {exact}/{len(emails)}")
    html_held = html_total = 0
    html_folder = root / "talon" / "html_replies"
    facts = json.loads((root / "talon" / "EXPECTED.json").read_text())
    for path in sorted(html_folder.glob("*.html")):
        for entry in facts.get(f"html_replies/{path.name}", []):
            expected = entry["facts"].get("reply_text_whitespace_insensitive")
            if expected is None:
                continue
            msg = parse_message(wrap_body(path.read_bytes(), "html"))
            html_total += 1
            html_held += _loose(msg.reply_text) == _loose(expected)
            if verbose and _loose(msg.reply_text) != _loose(expected):
                print(f"  differs: html_replies/{path.name}")
    print(f"HTML-only replies trimmed exactly (ignoring whitespace): {html_held}/{html_total}")
    return 0


def run_speed(folder: Path, seconds: float = 3.0) -> int:
    """Parse every .eml in `folder` round after round for about `seconds`; print msg/s."""
    mails = [path.read_bytes() for path in sorted(folder.glob("*.eml"))]
    if not mails:
        print(f"no .eml files in {folder}", file=sys.stderr)
        return 2
    for raw in mails:  # warm caches and lazily loaded models first
        parse_message(raw)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for raw in mails:
            parse_message(raw)
        count += len(mails)
    elapsed = time.perf_counter() - started
    print(
        f"parsed {count} messages ({len(mails)} files) in {elapsed:.2f} s: "
        f"{count / elapsed:.0f} msg/s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--trim", action="store_true", help="measure reply trimming only")
    parser.add_argument("--speed", action="store_true", help="measure parse throughput only")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    if args.speed:
        return run_speed(args.corpus)
    if args.trim:
        return run_trim(args.corpus, args.verbose)
    return run_corpus(args.corpus, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
