"""`mailbridge parse`: the parsed and classified message(s) as JSON, for people and scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from mailbridge.config import Config, config_path, load_config
from mailbridge.core.classify import Identity, classify
from mailbridge.core.parse import parse_message
from mailbridge.core.serialize import parsed_to_json

NO_IDENTITY = Identity(own_addresses=frozenset(), own_domains=frozenset(), loop_token="")


def parse_files(files: Sequence[str], config: Config | None, out: TextIO) -> int:
    """One JSON object for one file; JSON Lines (each with `file`) for several.

    Keeps going past unreadable files; exits 1 only when a file could not be read at all.
    """
    if config is not None:
        from mailbridge.app import identity_for

        identity = identity_for(config)
    else:
        identity = NO_IDENTITY
    inputs = MailFiles(files)
    for name, raw in inputs:
        parsed = parse_message(raw)
        document = parsed_to_json(parsed, classify(parsed, identity))
        if len(files) == 1:
            out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        else:
            out.write(json.dumps({"file": name, **document}, ensure_ascii=False) + "\n")
    return inputs.status


class MailFiles:
    """The raw bytes of each file named ("-": standard input), in order. A file that cannot
    be read is reported on stderr and skipped, and `status` becomes 1."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.status = 0

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for name in self.names:
            try:
                raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                print(f"mailbridge: {name}: {exc.strerror}", file=sys.stderr)
                self.status = 1
                continue
            yield name, raw


def configure(parse: argparse.ArgumentParser) -> None:
    parse.add_argument("files", nargs="+", metavar="FILE", help="email files, or - for stdin")
    parse.set_defaults(handler=_parse)


def _parse(args: argparse.Namespace) -> int:
    config = load_config(config_path(args.config)) if args.config else None
    return parse_files(args.files, config, sys.stdout)
