"""Making what was written to disk survive a crash: the ground the files store
(db/blobs.py), the FAQ drafts (adapters/faq_drafts.py), the reply-token key (app.py) and
the OAuth token files (oauth/tokens.py) stand on."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["locked", "replace_file", "sync_directory", "write_new"]


def sync_directory(directory: Path) -> None:
    """Make the directory's entries (a new name, a removed one) survive a crash."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Make the file `path`, which must not exist yet, holding `data` synced to disk; it
    is created with `mode`, so it is never readable by others even for a moment. Should
    writing fail, the file is removed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Give `path` the contents `data`, whole or not at all, as survives a crash: written
    to a new file beside it and synced (`write_new`), then renamed over it, the rename
    synced in turn. Without the syncs a power cut can leave the name on an empty file."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    write_new(draft, data, mode)
    try:
        os.replace(draft, path)
    except BaseException:
        with contextlib.suppress(OSError):
            draft.unlink()
        raise
    with contextlib.suppress(OSError):  # a folder that cannot be opened: the rename stands
        sync_directory(path.parent)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on a directory, held inside: processes that check and then write
    a file in it take turns. The lock is on the directory itself, so no lock file is left
    among what it holds."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # lets go of the lock
