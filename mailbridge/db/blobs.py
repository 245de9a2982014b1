"""The files store: attachment bytes and raw mail kept as files named by their sha256.

A file's path comes from its hash alone (`ab/cd/abcd…`), never from anything a mail says,
so a filename like "../../etc/passwd" cannot reach it. The same bytes are stored once.
A file is written whole or not at all: into a temporary file opened with O_EXCL, synced,
then linked to its name (which fails if another writer got there first: the loser checks
the file that is there) and the directory synced, so that a name that exists names
durable, complete bytes. Reading checks the hash: a missing or damaged file is an error
that names the row, never an empty attachment.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailbridge.durable import sync_directory, write_new
from mailbridge.errors import MailbridgeError

__all__ = ["BlobError", "BlobStore", "StoredFile", "is_hash", "sha256_of"]

FILE_MODE = 0o640
DIRECTORY_MODE = 0o750
TEMP_PREFIX = ".tmp-"
_HASH = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class BlobError(MailbridgeError):
    """A stored file is missing or does not hold the bytes its row names."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_hash(name: str) -> bool:
    return bool(_HASH.match(name))


@dataclass(frozen=True)
class StoredFile:
    """One file found in the store: a content file (`sha256` set) or a leftover
    temporary or foreign file (`sha256` None)."""

    path: Path
    sha256: str | None
    mtime: float
    size: int


@dataclass(frozen=True)
class BlobStore:
    root: Path

    def path(self, sha256: str) -> Path:
        if not is_hash(sha256):  # never a path from anything but a hash we computed
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def relative(self, sha256: str) -> str:
        return str(self.path(sha256).relative_to(self.root))

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` (whose hash is `sha256`, when the caller has it) durably; returns
        its hash. A file already there with these bytes is kept as it is."""
        sha256 = sha256 or sha256_of(data)
        target = self.path(sha256)
        if self._holds(target, sha256, len(data)):
            return sha256
        self._directory(target.parent)
        temp = target.parent / f"{TEMP_PREFIX}{sha256[:16]}.{os.getpid()}.{secrets.token_hex(4)}"
        write_new(temp, data, FILE_MODE)
        try:
            self._place(temp, target, sha256, len(data))
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        sync_directory(target.parent)
        return sha256

    def _place(self, temp: Path, target: Path, sha256: str, size: int) -> None:
        try:
            os.link(temp, target)  # fails when the name exists: no writer replaces another
        except FileExistsError:
            # Another writer stored the same bytes meanwhile; a damaged file is replaced.
            if not self._holds(target, sha256, size):
                os.replace(temp, target)
        except OSError as exc:  # a file system without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            os.replace(temp, target)

    def _directory(self, directory: Path) -> None:
        if directory.is_dir():
            return
        made = [d for d in (directory.parent.parent, directory.parent, directory) if not d.exists()]
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        for created in made:  # each new directory's entry made durable in its parent
            sync_directory(created.parent)

    def _holds(self, path: Path, sha256: str, size: int) -> bool:
        try:
            return path.stat().st_size == size and _file_hash(path) == sha256
        except FileNotFoundError:
            return False

    def read(self, sha256: str, what: str) -> bytes:
        """The bytes of `sha256`, checked; BlobError names `what` (the row) otherwise."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"{what}: its file {self.relative(sha256)} is missing") from None
        except OSError as exc:
            raise BlobError(
                f"{what}: its file {self.relative(sha256)} cannot be read ({exc.strerror})"
            ) from None
        if sha256_of(data) != sha256:
            raise BlobError(f"{what}: its file {self.relative(sha256)} is damaged (sha256 differs)")
        return data

    def verify(self, sha256: str) -> str | None:
        """None when the file is there and whole, else what is wrong with it."""
        path = self.path(sha256)
        try:
            return None if _file_hash(path) == sha256 else "damaged"
        except FileNotFoundError:
            return "missing"

    def remove(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        sync_directory(self.path(sha256).parent)
        return True

    def files(self) -> Iterator[StoredFile]:
        """Every file under the root's two levels of fan-out, content or not."""
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            for second in sorted(first.iterdir()) if first.is_dir() else ():
                for path in sorted(second.iterdir()) if second.is_dir() else ():
                    try:
                        status = path.stat()
                    except FileNotFoundError:  # removed since listed (a purge running)
                        continue
                    named = is_hash(path.name) and path.name.startswith(first.name + second.name)
                    yield StoredFile(
                        path, path.name if named else None, status.st_mtime, status.st_size
                    )


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
