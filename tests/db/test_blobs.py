"""The files store on its own: a path comes from the hash alone, a file is whole or
absent, two writers of the same bytes both succeed, and reading checks the hash."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mailbridge.db.blobs import TEMP_PREFIX, BlobError, BlobStore, sha256_of

pytestmark = pytest.mark.unit


def test_the_same_bytes_are_one_file_fanned_out_by_hash(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    first = store.put(b"invoice")
    second = store.put(b"invoice")
    assert first == second == sha256_of(b"invoice")
    path = store.path(first)
    assert path == tmp_path / "blobs" / first[:2] / first[2:4] / first
    assert [f.path for f in store.files()] == [path]
    assert store.read(first, "attachment 1") == b"invoice"
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "ab/../../x", "A" * 64, "", "0" * 63 + "/"]
)
def test_no_path_from_anything_but_a_hash(tmp_path: Path, name: str) -> None:
    """Hostile: whatever a mail calls its attachment, only a sha256 we computed names a file."""
    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="sha256"):
        store.path(name)
    if name:
        with pytest.raises(ValueError):
            store.put(b"x", name)
    assert not (tmp_path / "blobs").exists() or not any(store.files())


def test_a_missing_or_damaged_file_is_an_error_naming_the_row(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put(b"payload")
    store.path(sha).write_bytes(b"payloaX")
    with pytest.raises(BlobError, match="attachment 7 of ticket #1001: its file .* damaged"):
        store.read(sha, "attachment 7 of ticket #1001")
    assert store.verify(sha) == "damaged"
    store.put(b"payload")  # a writer that finds it damaged puts it right
    assert store.read(sha, "attachment 7") == b"payload"
    store.path(sha).unlink()
    with pytest.raises(BlobError, match="inbound message 3: its file .* is missing"):
        store.read(sha, "inbound message 3")
    assert store.verify(sha) == "missing"


def test_two_writers_of_the_same_bytes_at_once_both_succeed(tmp_path: Path) -> None:
    """The loser of the race to the name finds the file there, checks it, and keeps it."""
    store = BlobStore(tmp_path)
    data = os.urandom(200_000)
    start = threading.Barrier(4)
    results: list[str] = []

    def write() -> None:
        start.wait()
        results.append(store.put(data))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [sha256_of(data)] * 4
    assert [f.sha256 for f in store.files()] == [sha256_of(data)]  # no temporary file left
    assert store.read(results[0], "x") == data


def test_leftovers_and_foreign_files_are_told_apart(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    sha = store.put(b"kept")
    folder = store.path(sha).parent
    (folder / f"{TEMP_PREFIX}{sha[:16]}.1.abcd").write_bytes(b"half")
    (folder / "notes.txt").write_text("mine")
    found = {f.path.name: f.sha256 for f in store.files()}
    assert found == {sha: sha, f"{TEMP_PREFIX}{sha[:16]}.1.abcd": None, "notes.txt": None}
