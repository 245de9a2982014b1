"""The shared corpus of real-world mail (`../shared/corpus`, beside the repository): its
files, and what parsing each must give. Used by the corpus tests and bench/corpus_check.py.

Whether a mail names a sender is read from its raw bytes with the standard library alone,
independently of mailbridge's parser, so a header block the parser loses still counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from mailbridge.core.message import ParsedMessage
from mailbridge.core.parse import parse_message

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
# Fixtures that are message bodies, not mails: each is wrapped in a minimal mail of ours,
# whose headers say nothing about the fixture.
BODY_ONLY_FOLDERS = frozenset({"email_reply_parser_github", "email_reply_trimmer"})
NOT_MAIL = frozenset({"EXPECTED.json", "LICENSE.upstream", "README.md", "SOURCE.md"})
SENDER_FIELDS = frozenset({"from", "sender", "reply-to", "return-path"})
# U+FFFD (bytes that were not decoded) and C1 controls (bytes decoded as latin-1).
_UNREADABLE = re.compile("[\ufffd\u0080-\u009f]")
# UTF-8 read as latin-1 or cp1252: "Ã©" for "é", "Â " for a no-break space, "â€™" for "’";
# and two latin-1 symbols in a row ("¦®", "»¡"), which Big5 or GB2312 read as latin-1 gives
# and words in a Latin script do not.
_MOJIBAKE = re.compile(
    "\u00c3[\u00a0-\u00ff]|\u00c2[\u00a0-\u00bf]|\u00e2\u20ac|[\u00a1-\u00bf]{2}"
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_WORD_BREAKS = re.compile(r"[<>,;]")


def folders(root: Path = CORPUS) -> list[str]:
    """The corpora: each folder of `root`."""
    return sorted(path.name for path in root.iterdir() if path.is_dir())


def corpus_files(root: Path, folder: str) -> list[Path]:
    """Every fixture of one corpus, expected results and licences left out."""
    base = root / folder
    return [
        path for path in sorted(base.rglob("*"))
        if path.is_file() and path.name not in NOT_MAIL
        and not any(part.startswith("_expected") for part in path.relative_to(base).parts)
    ]  # fmt: skip


def is_body_only(folder: str, path: Path) -> bool:
    """A fixture that is a body (plain text or HTML), not a whole mail."""
    return folder in BODY_ONLY_FOLDERS or path.suffix == ".html"


def wrap_body(body: bytes, subtype: str) -> bytes:
    """A minimal mail around a body-only fixture."""
    msg = EmailMessage()
    msg["From"] = "fixture@example.org"
    msg["Subject"] = "fixture"
    msg.set_content(body.decode("utf-8", "replace"), subtype=subtype, cte="8bit")
    return msg.as_bytes()


def load(path: Path, folder: str) -> bytes:
    """The bytes to parse: the fixture itself, or a mail around a body-only fixture."""
    raw = path.read_bytes()
    if not is_body_only(folder, path):
        return raw
    return wrap_body(raw, "html" if path.suffix == ".html" else "plain")


def named_senders(raw: bytes) -> tuple[str, ...]:
    """The senders the header block names: each address in From, Sender, Reply-To or
    Return-Path that has an "@" between a local part and a domain, or is MAILER-DAEMON.

    Read line by line up to the first empty line: a field after a continuation line that
    lost its leading whitespace still counts. Addresses are what the standard library's
    getaddresses finds, and each word that is an address by itself, for values it cannot
    split ("a@example.org b@example.org").
    """
    end = _HEADER_END.search(raw)
    head = (raw[: end.start()] if end else raw).decode("utf-8", "surrogateescape")
    fields: list[list[str]] = []
    for line in head.split("\n"):
        line = line.rstrip("\r")
        if line[:1] in (" ", "\t"):
            if fields:
                fields[-1][1] += line
            continue
        name, colon, value = line.partition(":")
        if colon:
            fields.append([name.strip().lower(), value])
    values = [value for name, value in fields if name in SENDER_FIELDS]
    found = [address for _, address in getaddresses(values)]
    words = _WORD_BREAKS.sub(" ", " ".join(values)).split()
    found += [word.strip("\"'().") for word in words]
    return tuple(dict.fromkeys(address for address in found if _is_sender(address)))


def _is_sender(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) or address.strip().lower() == "mailer-daemon"


def sender_found(msg: ParsedMessage) -> bool:
    """Whether mailbridge found someone to answer."""
    return msg.from_ is not None and bool(msg.from_.address)


def unreadable(text: str) -> bool:
    """Text with U+FFFD or C1 control characters: bytes decoded wrongly or not at all."""
    return _UNREADABLE.search(text) is not None


def garbled(text: str) -> bool:
    """Unreadable, or with the marks UTF-8 leaves when read as latin-1 or cp1252."""
    return unreadable(text) or _MOJIBAKE.search(text) is not None


@dataclass(frozen=True)
class FileCheck:
    """What parsing one corpus file gave, against what its raw bytes name."""

    path: Path
    whole_mail: bool  # False for body-only fixtures: the header checks do not apply
    parsed: ParsedMessage | None  # None when parse_message raised
    crash: str | None = None
    named: tuple[str, ...] = ()  # senders named in the raw header block

    @property
    def sender_missing(self) -> bool:
        return (
            self.whole_mail
            and bool(self.named)
            and self.parsed is not None
            and not sender_found(self.parsed)
        )

    @property
    def subject(self) -> str:
        return self.parsed.subject if self.parsed is not None and self.whole_mail else ""

    @property
    def nameless(self) -> int:
        return sum(not a.filename for a in self.parsed.attachments) if self.parsed else 0

    @property
    def garbled_names(self) -> list[str]:
        names = [a.filename for a in self.parsed.attachments] if self.parsed else []
        return [name for name in names if name and garbled(name)]


def check_file(path: Path, folder: str) -> FileCheck:
    whole_mail = not is_body_only(folder, path)
    raw = load(path, folder)
    named = named_senders(raw) if whole_mail else ()
    try:
        parsed = parse_message(raw)
    except Exception as exc:  # noqa: BLE001 - the check's point: parse_message never raises
        return FileCheck(path, whole_mail, None, repr(exc), named)
    return FileCheck(path, whole_mail, parsed, None, named)
