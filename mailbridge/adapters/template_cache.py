"""Compiled templates kept between loads.

Compiling the shipped set takes about 0.4 s, and every start, reload, brand and command
compiles it again. The same source under the same name and file compiles to the same code
in every Sandbox, so the code is kept: in memory for the life of the process (a reload with
unchanged files, or a brand that shares most files, compiles nothing again), and in the
data directory for the next process (a command's start). An edited file has another
checksum and is compiled again.

The checks templates.py runs on a compiled template (unknown variables, escaping, includes)
took most of the rest of a load (80 ms of a command's start). A template that passed them
leaves a mark named by its text, its file, the checks' own code and Jinja's version, so
the next process that loads the very same template need not ask again. A template that
failed leaves none and is checked on every load, so a bad template never goes live from
the cache.

The files hold code this process runs, so they live only in the data directory, which is
the daemon's own (its reply-token key lives there too); a directory that cannot be written
leaves the cache in memory only.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from types import CodeType

import jinja2
from jinja2.bccache import Bucket, BytecodeCache, FileSystemBytecodeCache

from mailbridge.adapters import template_sandbox

CACHE_DIR = Path("cache") / "templates"  # under the data directory
_MEMORY_LIMIT = 4096  # compiled templates kept per process


def _generator_stamp() -> str:
    """What else the code depends on: Jinja's version and the sandbox's code generation."""
    sandbox = Path(template_sandbox.__file__).read_bytes()
    return f"{jinja2.__version__}:{hashlib.sha256(sandbox).hexdigest()}"


_STAMP = _generator_stamp()
_memory: OrderedDict[tuple[str, str], CodeType] = OrderedDict()
_memory_lock = threading.Lock()
_passed: set[str] = set()  # marks of templates that passed the checks, in this process


class CompiledTemplates(BytecodeCache):
    """The process's compiled templates, backed by files under `data_dir` when given."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._disk = _open_directory(data_dir) if data_dir is not None else None

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        return hashlib.sha256(f"{_STAMP}|{name}|{filename}".encode()).hexdigest()

    @staticmethod
    def passed_mark(rules: str, name: str, filename: str, source: str) -> str:
        """The mark of a template that passed the checks whose code `rules` identifies."""
        text = f"{_STAMP}|{rules}|{name}|{filename}|{source}"
        return hashlib.sha256(text.encode()).hexdigest()

    def has_passed(self, mark: str) -> bool:
        """Whether the template `mark` names passed the checks, here or in a process before."""
        with _memory_lock:
            if mark in _passed:
                return True
        if self._disk is None or not Path(self._disk.directory, f"{mark}.passed").is_file():
            return False
        with _memory_lock:
            _passed.add(mark)
        return True

    def record_pass(self, mark: str) -> None:
        with _memory_lock:
            if len(_passed) >= _MEMORY_LIMIT:
                _passed.clear()
            _passed.add(mark)
        if self._disk is not None:
            try:
                Path(self._disk.directory, f"{mark}.passed").touch(mode=0o600)
            except OSError:
                self._disk = None  # read-only: memory only from now on

    def load_bytecode(self, bucket: Bucket) -> None:
        with _memory_lock:
            code = _memory.get((bucket.key, bucket.checksum))
            if code is not None:
                _memory.move_to_end((bucket.key, bucket.checksum))
        if code is not None:
            bucket.code = code
            return
        if self._disk is not None:
            try:
                self._disk.load_bytecode(bucket)  # a stale file leaves the bucket empty
            except Exception:  # noqa: BLE001 - a damaged one (pickle, marshal, IO): compile
                bucket.reset()
            if bucket.code is not None:
                _remember(bucket)

    def dump_bytecode(self, bucket: Bucket) -> None:
        _remember(bucket)
        if self._disk is not None:
            try:
                self._disk.dump_bytecode(bucket)
            except OSError:
                self._disk = None  # read-only: memory only from now on


def _remember(bucket: Bucket) -> None:
    if bucket.code is None:
        return
    with _memory_lock:
        _memory[(bucket.key, bucket.checksum)] = bucket.code
        _memory.move_to_end((bucket.key, bucket.checksum))
        while len(_memory) > _MEMORY_LIMIT:
            _memory.popitem(last=False)


def _open_directory(data_dir: Path) -> FileSystemBytecodeCache | None:
    """The file cache under an existing `data_dir`, or None: a missing data directory is
    not made for it, and a directory another user could write to is not trusted."""
    if not data_dir.is_dir():
        return None
    directory = data_dir / CACHE_DIR
    try:
        for place in (directory.parent, directory):
            place.mkdir(mode=0o700, exist_ok=True)
            status = place.stat()
            if status.st_uid != os.getuid() or status.st_mode & 0o022:
                return None
    except OSError:
        return None
    return FileSystemBytecodeCache(str(directory), "%s.code")
