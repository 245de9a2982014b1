"""[storage] files on both databases: raw mail and attachments stored as files named by
their hash, read back by every reader, let go by erasure and retention (a file two
tickets share stays while one names it), moved by `storage migrate` both ways, checked
by `storage check`; and a crash between the file and its row leaves only an orphan."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailbridge.app import App
from mailbridge.core.states import TicketStatus
from mailbridge.db.blobs import TEMP_PREFIX, BlobStore, sha256_of
from mailbridge.db.models import AttachmentRecord, InboundMessage, Ticket
from mailbridge.db.storage_upkeep import _raw_batch, check, migrate
from mailbridge.faults import CRASH_ENV, CRASH_EXIT
from mailbridge.inbound.process import process_pending
from mailbridge.service.daemon import Daemon
from mailbridge.tickets.customer_erasure import erase_customer
from mailbridge.tickets.customer_export import export_customer
from mailbridge.tickets.retention import purge
from mailbridge.tickets.spam_purge import purge_spam
from tests.support.files_world import PDF, letter, receive
from tests.support.sla_world import World, make_world
from tests.support.spam import mark_spam

pytestmark = pytest.mark.db

FILES = {"attachments": "files", "raw": "files"}


def store_of(app: App) -> BlobStore:
    return BlobStore(app.config.blob_dir)


def on_disk(app: App) -> set[str]:
    return {f.sha256 or f.path.name for f in store_of(app).files()}


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, storage=FILES)
    yield made
    made.app.close()


def test_bytes_live_in_files_and_every_reader_finds_them(world: World, tmp_path: Path) -> None:
    ada, bob = letter("ada@customer.example", "Invoice"), letter("bob@other.example", "Bill")
    receive(world, ada)
    receive(world, bob)
    with world.session() as session:
        messages = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        attachments = session.scalars(select(AttachmentRecord)).all()
        assert [(m.raw, m.raw_sha256) for m in messages] == [
            (b"", sha256_of(ada)),
            (b"", sha256_of(bob)),
        ]
        assert [(a.storage, a.data, a.sha256) for a in attachments] == [
            ("file", None, sha256_of(PDF))
        ] * 2
    # One file for the invoice both sent, one per mail; nothing at ../../etc/passwd.
    assert on_disk(world.app) == {sha256_of(ada), sha256_of(bob), sha256_of(PDF)}
    assert not (tmp_path / "etc").exists()
    out = tmp_path / "ada.zip"
    export_customer(world.app, "ada@customer.example", out)
    with zipfile.ZipFile(out) as archive:
        held = {name: archive.read(name) for name in archive.namelist()}
    assert PDF in held.values() and ada in held.values()
    report = check(world.app.sessions, store_of(world.app), world.now, timedelta(hours=1))
    assert (report.rows, report.problems, report.orphans) == (4, [], 0)


def test_erasure_removes_files_no_other_ticket_names(world: World) -> None:
    ada, bob = letter("ada@customer.example", "Invoice"), letter("bob@other.example", "Bill")
    receive(world, ada)
    receive(world, bob)
    erase_customer(world.app, "ada@customer.example")
    assert on_disk(world.app) == {sha256_of(bob), sha256_of(PDF)}  # Bob's row names the PDF
    erase_customer(world.app, "bob@other.example")
    assert on_disk(world.app) == set()
    report = check(world.app.sessions, store_of(world.app), world.now, timedelta(hours=1))
    assert (report.rows, report.problems, report.orphans) == (0, [], 0)


def test_retention_purge_removes_the_files(tmp_path: Path, database_url: str) -> None:
    retention = {"purge_after": "30d"}
    world = make_world(tmp_path, database_url, storage=FILES, retention=retention)
    try:
        receive(world, letter("ada@customer.example", "Invoice", b"only hers"))
        with world.session() as session:
            closed = {"status": TicketStatus.CLOSED, "resolved_at": world.now}
            session.execute(update(Ticket).values(closed))
        purged = purge(world.app, now=world.now + timedelta(days=40))
        assert (purged.raw, purged.attachments) == (1, 1)
        assert purged.raw_bytes > 0 and purged.attachments_bytes == len(b"only hers")
        assert on_disk(world.app) == set()
    finally:
        world.app.close()


def test_a_missing_file_is_an_error_naming_the_row(world: World, tmp_path: Path) -> None:
    receive(world, letter("ada@customer.example", "Invoice"))
    store_of(world.app).path(sha256_of(PDF)).unlink()
    report = check(world.app.sessions, store_of(world.app), world.now, timedelta(hours=1))
    assert report.problems == [
        f"attachment 1 of ticket #1000: file {store_of(world.app).relative(sha256_of(PDF))} missing"
    ]
    with pytest.raises(Exception, match="attachment 1: its file .* is missing"):
        export_customer(world.app, "ada@customer.example", tmp_path / "ada.zip")


def test_migrate_both_ways_resumably(tmp_path: Path, database_url: str) -> None:
    before = make_world(tmp_path, database_url)  # everything in the database
    mails = [
        letter(f"c{i}@customer.example", f"Question {i}", b"attachment %d" % i) for i in range(3)
    ]
    for raw in mails:
        receive(before, raw)
    before.app.close()
    world = make_world(tmp_path, database_url, storage=FILES)
    try:
        with world.session() as session:  # a first batch, then a crash: the rest waits
            from mailbridge.db.storage_upkeep import MigrateReport

            _raw_batch(session, "files", 0, 1, MigrateReport())
        assert len(on_disk(world.app)) == 1
        moved = migrate(world.app.sessions, "files", batch=2)
        assert (moved.raw, moved.attachments, moved.problems) == (2, 3, [])
        with world.session() as session:
            assert session.scalars(select(InboundMessage.raw)).all() == [b""] * 3
            assert session.scalars(select(AttachmentRecord.data)).all() == [None] * 3
        assert len(on_disk(world.app)) == 6
        export_customer(world.app, "c1@customer.example", tmp_path / "c1.zip")
        back = migrate(world.app.sessions, "database")
        assert (back.raw, back.attachments) == (3, 3)
        assert on_disk(world.app) == set()  # no row names them any more
        with world.session() as session:
            assert (
                session.scalars(select(InboundMessage.raw).order_by(InboundMessage.id)).all()
                == mails
            )
    finally:
        world.app.close()


def crash(script: str, point: str, tmp_path: Path, database_url: str) -> None:
    """Run `script` (its arguments: the data directory and the database) in a process of
    its own, which dies at the crash point `point`."""
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), database_url],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == CRASH_EXIT, done.stderr.decode()[-2000:]


CRASHING = """
import sys
from pathlib import Path
from tests.support.sla_world import make_world
from tests.support.files_world import letter, receive
placed = {"attachments": "files", "raw": "database"}
world = make_world(Path(sys.argv[1]), sys.argv[2], storage=placed)
receive(world, letter("ada@customer.example", "Invoice"))
"""


def test_a_crash_between_file_and_row_leaves_an_orphan_that_check_removes(
    tmp_path: Path, database_url: str
) -> None:
    crash(CRASHING, "after_blob_write", tmp_path, database_url)
    world = make_world(tmp_path, database_url, storage={"attachments": "files", "raw": "database"})
    try:
        store = store_of(world.app)
        assert on_disk(world.app) == {sha256_of(PDF)}  # the file, durable; its row never was
        with world.session() as session:
            assert session.scalars(select(AttachmentRecord)).all() == []
        # File times are the file system's: the grace is counted from the orphan's own.
        written = datetime.fromtimestamp(store.path(sha256_of(PDF)).stat().st_mtime, UTC)
        hour = timedelta(hours=1)
        young = check(world.app.sessions, store, written + hour / 2, hour, fix=True)
        assert (young.orphans, young.young, young.removed) == (1, 1, 0)  # may be in flight
        fixed = check(world.app.sessions, store, written + 2 * hour, hour, fix=True)
        assert (fixed.orphans, fixed.young, fixed.removed) == (1, 0, 1)
        assert on_disk(world.app) == set()
        assert process_pending(world.app).created == 1  # the retry stores file and row
        with world.session() as session:
            assert session.scalars(select(AttachmentRecord.storage)).all() == ["file"]
        after = check(world.app.sessions, store, world.now, timedelta(0))
        assert (after.rows, after.problems, after.orphans) == (1, [], 0)
    finally:
        world.app.close()


ERASING = """
import sys
from pathlib import Path
from tests.support.sla_world import make_world
from tests.support.files_world import letter, receive
from mailbridge.tickets.customer_erasure import erase_customer
world = make_world(Path(sys.argv[1]), sys.argv[2], storage={"attachments": "files", "raw": "files"})
receive(world, letter("ada@customer.example", "Invoice"))
receive(world, letter("bob@other.example", "Bill"))
erase_customer(world.app, "ada@customer.example")
"""


def test_files_an_erasure_left_at_a_crash_go_with_the_daemons_next_purge(
    tmp_path: Path, database_url: str
) -> None:
    crash(ERASING, "before_files_released", tmp_path, database_url)
    world = make_world(tmp_path, database_url, storage=FILES)
    try:
        # The erasure committed (only Bob's mail names a file now), then the process died.
        with world.session() as session:
            raws = session.scalars(select(InboundMessage.raw_sha256)).all()
            files = session.scalars(select(AttachmentRecord.sha256)).all()
        named = {h for h in [*raws, *files] if h}
        assert len(named) == 2 and len(on_disk(world.app) - named) == 1  # Ada's mail, kept
        store = store_of(world.app)
        for sha256 in on_disk(world.app):  # written before the grace, by the world's clock
            old = (world.now - timedelta(hours=2)).timestamp()
            os.utime(store.path(sha256), (old, old))

        asyncio.run(Daemon(world.app)._purge())

        assert on_disk(world.app) == named  # the PDF stays: Bob's mail names it too
    finally:
        world.app.close()


def test_the_storage_commands_as_an_operator_runs_them(
    tmp_path: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mailbridge.cli.main import main
    from tests.support.builders import write_config_file
    from tests.support.sla_world import NOWHERE

    world = make_world(tmp_path, database_url, storage=FILES)
    try:
        receive(world, letter("ada@customer.example", "Invoice"))
    finally:
        world.app.close()
    config = write_config_file(
        tmp_path, NOWHERE, NOWHERE, database_url, password_env="MB_TEST_IMAP"
    )
    monkeypatch.setenv("MB_TEST_IMAP", "unused")
    with config.open("a", encoding="utf-8") as file:
        file.write('\n[storage]\nattachments = "files"\nraw = "files"\n')
    store = BlobStore(tmp_path / "blobs")
    stray = store.put(b"written by a transaction that never committed")
    writing = store.path(stray).parent / f"{TEMP_PREFIX}being-written"  # another's, mid-write
    writing.write_bytes(b"half")

    def run(*args: str) -> tuple[int, str]:
        code = main(["--config", str(config), "storage", *args])
        captured = capsys.readouterr()
        assert code != 2, captured.err
        return code, captured.out

    code, out = run("check")
    assert code == 0 and "2 row(s) keep their bytes as files" in out
    assert "1 orphan file(s)" in out and store.path(stray).exists()  # no --fix: kept
    code, out = run("check", "--fix", "--grace", "0")
    assert code == 0 and not store.path(stray).exists()
    assert writing.exists()  # a temporary file young enough to be in use: never removed
    writing.unlink()

    code, out = run("migrate", "--to", "database")
    assert code == 0 and "1 raw message(s), 1 attachment(s)" in out
    assert list(store.files()) == []
    code, out = run("migrate", "--to", "files")
    assert code == 0 and len(list(store.files())) == 2

    store.path(sha256_of(PDF)).unlink()  # lost: the command says which ticket is hurt
    code, out = run("check")
    assert code == 1 and "attachment 1 of ticket #1000" in out and "missing" in out


def test_the_spam_purge_removes_the_files_only_spam_named(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(tmp_path, database_url, storage=FILES)
    try:
        receive(world, letter("ada@customer.example", "Invoice"))
        receive(world, letter("deals@bulk.example", "Cheap watches", b"only the spammer's"))
        receive(world, letter("bob@other.example", "Invoice too"))
        kept = on_disk(world.app)
        mark_spam(world, 1001)
        spam_files = {sha256_of(b"only the spammer's")}
        with world.session() as session:
            spam_files |= set(
                session.scalars(
                    select(InboundMessage.raw_sha256)
                    .join(Ticket, Ticket.id == InboundMessage.ticket_id)
                    .where(Ticket.number == 1001)
                )
            )
        assert len(spam_files) == 2 and spam_files <= kept

        world.advance(timedelta(days=31))  # past [spam] purge_after, 30 days
        assert purge_spam(world.app).tickets == 1

        # The PDF stays: Ada's and Bob's mails name it too.
        assert on_disk(world.app) == kept - spam_files
        report = check(world.app.sessions, store_of(world.app), world.now, timedelta(0))
        assert (report.problems, report.orphans) == ([], 0)
    finally:
        world.app.close()
