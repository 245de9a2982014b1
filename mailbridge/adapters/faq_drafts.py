"""Draft FAQ entries on disk, in `[faq] drafts_dir`: each written whole or not at all, under
a name no other file has, and read back for review (`mailbridge faq drafts`).

A draft is written while the staff reply that asked for it is applied, inside a transaction
that may still roll back and be retried: the same draft found under one of its names is
taken as written, so a retry leaves one file, not two.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from mailbridge.core.faq import FaqEntry, parse_entry
from mailbridge.core.faq_drafts import Draft, draft_text, file_names
from mailbridge.durable import sync_directory, write_new
from mailbridge.errors import MailbridgeError

__all__ = ["DraftFile", "DraftNotSaved", "read_drafts", "save_draft"]

DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
NAMES_TRIED = 100  # drafts of one title waiting for review before the next is refused
TEMP_PREFIX = ".draft-"
_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*-[a-z]{2}\.md")
_SAVED_LINE = re.compile(r"^saved: .*$", re.MULTILINE)


class DraftNotSaved(MailbridgeError):
    """The draft could not be written; the message says why, without the folder's path
    (it reaches the ticket's events, which a customer's data export holds)."""


@dataclass(frozen=True, slots=True)
class DraftFile:
    """A file of the drafts folder: its entry, or why it cannot be read."""

    file: str
    entry: FaqEntry | None
    problem: str = ""


def save_draft(folder: Path, draft: Draft, stem: str) -> str:
    """Write `draft` into `folder` (made when missing) as `stem-xx.md`, or the first of
    `stem-2-xx.md`, `stem-3-xx.md`, … not taken; its file name. DraftNotSaved otherwise."""
    text = draft_text(draft)
    try:
        _directory(folder)
        for name in islice(file_names(stem, draft.language), NAMES_TRIED):
            if not _SAFE_NAME.fullmatch(name):  # core.faq_drafts.slug makes no other
                raise DraftNotSaved(f"{name!r} is not a draft file name")
            target = folder / name
            if target.exists():
                if _same_draft(target, text):
                    return name
                continue
            if _write_new(folder, target, text):
                return name
    except OSError as exc:
        raise DraftNotSaved(
            f"the draft could not be written into the drafts folder ([faq] drafts_dir): "
            f"{exc.strerror or exc}"
        ) from None
    raise DraftNotSaved(
        f"{NAMES_TRIED} drafts named {stem}-… wait in the drafts folder: review those first"
    )


def _directory(folder: Path) -> None:
    if folder.is_dir():
        return
    folder.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    sync_directory(folder.parent)


def _same_draft(path: Path, text: str) -> bool:
    """The same draft, whichever day it was saved: the one a retried reply wrote."""
    try:
        found = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return _SAVED_LINE.sub("", found) == _SAVED_LINE.sub("", text)


def _write_new(folder: Path, target: Path, text: str) -> bool:
    """Write `text` to a file beside `target`, then give it the name `target`, unless a
    file has that name by then (False)."""
    temp = folder / f"{TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}.tmp"
    write_new(temp, text.encode("utf-8"), FILE_MODE)
    try:
        if not _place(temp, target):
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    sync_directory(folder)
    return True


def _place(temp: Path, target: Path) -> bool:
    try:
        os.link(temp, target)  # fails when the name exists: no draft replaces another
    except FileExistsError:
        return False
    except OSError as exc:  # a file system without hard links
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        if target.exists():
            return False
        os.replace(temp, target)
    return True


def read_drafts(folder: Path) -> list[DraftFile]:
    """Every *.md file in `folder`, by name; none when the folder is not there yet."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.md")):
        try:
            found.append(DraftFile(path.name, parse_entry(path.name, path.read_text("utf-8"))))
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            found.append(DraftFile(path.name, None, str(exc)))
    return found
