"""Run the parser over a mail corpus and check the facts its EXPECTED.json files assert.

    python bench/corpus_check.py [DIR]          # summary + facts held, default ../shared/corpus
    python bench/corpus_check.py --trim [DIR]   # reply trimming: plain N/64, HTML replies N/9
    python bench/corpus_check.py --speed DIR    # parse throughput (msg/s) over DIR/*.eml
    python bench/corpus_check.py -v ...         # also list each fact that does not hold

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
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailbridge.core.classify import Identity, classify  # noqa: E402
from mailbridge.core.message import ParsedMessage, Verdict  # noqa: E402
from mailbridge.core.parse import parse_message  # noqa: E402
from mailbridge.core.reply_trim import trim_reply  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
BODY_ONLY_FOLDERS = frozenset({"email_reply_parser_github", "email_reply_trimmer"})
SKIP_NAMES = frozenset({"EXPECTED.json", "LICENSE.upstream", "README.md"})
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


def wrap_body(body: bytes, subtype: str) -> bytes:
    """A minimal message around a body-only fixture."""
    msg = EmailMessage()
    msg["From"] = "fixture@example.org"
    msg["Subject"] = "fixture"
    msg.set_content(body.decode("utf-8", "replace"), subtype=subtype, cte="8bit")
    return msg.as_bytes()


def load(path: Path, folder: str) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".html":
        return wrap_body(raw, "html")
    if folder in BODY_ONLY_FOLDERS:
        return wrap_body(raw, "plain")
    return raw


def corpus_files(root: Path) -> list[tuple[Path, str]]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.name in SKIP_NAMES or rel.parts[1:2] == ("_expected",):
            continue
        if any(part.startswith("_expected") for part in rel.parts):
            continue
        files.append((path, rel.parts[0]))
    return files


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
    except Exception:  # a malformed fact counts as not held rather than stopping the run
        return False


def run_corpus(root: Path, verbose: bool) -> int:
    identity = Identity()
    results: dict[Path, tuple[ParsedMessage, Verdict]] = {}
    crashes: list[str] = []
    kinds: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    started = time.perf_counter()
    for path, folder in corpus_files(root):
        try:
            msg = parse_message(load(path, folder))
            verdict = classify(msg, identity)
        except Exception as exc:  # this is what the check is looking for
            crashes.append(f"{path.relative_to(root)}: {exc!r}")
            continue
        results[path] = (msg, verdict)
        kinds[verdict.kind] += 1
        defects.update(d.split(":")[0] for d in msg.defects)
    elapsed = time.perf_counter() - started
    total = len(results) + len(crashes)
    print(f"files: {total}  crashes: {len(crashes)}  ({total / elapsed:.0f} msg/s incl. classify)")
    for line in crashes:
        print(f"  crash: {line}")
    print("kinds:", dict(kinds.most_common()))
    print("defects:", dict(defects.most_common(12)))
    held, checked, unchecked = check_facts(root, results, verbose)
    print(
        f"facts held: {held}/{checked} = {100 * held / max(checked, 1):.1f}%"
        f"  (not checkable here: {unchecked})"
    )
    return 1 if crashes else 0


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
