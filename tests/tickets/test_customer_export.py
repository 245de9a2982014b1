"""`customer export` on both databases: the zip holds Zelda's tickets (hers, and Bob's that
copied her) with their articles as text, raw mail, attachments, events and the mail sent
to her; her ratings; her mail that made no ticket; the records outside tickets that name
her; and an index.json describing every file. Carol's and Dan's tickets are not in it.
No name in it leaves the folder it is unpacked in, whatever an attachment was called, and
exporting changes nothing in the database."""

from __future__ import annotations

import json
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from sqlalchemy import select

from mailbridge.db.models import Article, AttachmentRecord, Ticket
from mailbridge.errors import MailbridgeError
from mailbridge.tickets.customer_export import export_customer
from tests.support.customer_scene import WORD, ZELDA, build_scene, dump
from tests.support.sla_world import World, make_world, policy
from tests.support.staff_world import STAFF, STEPS

pytestmark = pytest.mark.db

HOSTILE_NAMES = ("../../../etc/passwd", "..\\..\\boot.ini", "/abs/olute.txt", "..", " . ")


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    made = make_world(tmp_path, database_url, sla=[policy(levels=STEPS)], staff=STAFF)
    yield made
    made.app.close()


def hostile_attachments(world: World) -> None:
    """Names no parser would store, written straight into the table."""
    with world.session() as session:
        first = session.scalars(
            select(Article.id)
            .join(Ticket, Ticket.id == Article.ticket_id)
            .where(Ticket.number == 1000)
            .order_by(Article.id)
        ).first()
        assert first is not None
        for name in HOSTILE_NAMES:
            session.add(
                AttachmentRecord(
                    article_id=first,
                    filename=name,
                    content_type="text/plain",
                    size=4,
                    sha256="0" * 64,
                    data=b"evil",
                )
            )


def test_the_export_holds_her_data_with_an_index_and_safe_names(
    world: World, tmp_path: Path
) -> None:
    build_scene(world)
    hostile_attachments(world)
    before = dump(world.app.engine)
    out = tmp_path / "zelda.zip"
    done = export_customer(world.app, ZELDA, out)

    assert dump(world.app.engine) == before, "exporting changes nothing"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        index = json.loads(archive.read("index.json"))
        files = {name: archive.read(name) for name in names}
    assert sorted(names) == sorted([*(f["path"] for f in index["files"]), "index.json"])
    for name in names:
        path = PurePosixPath(name)
        assert not path.is_absolute() and ".." not in path.parts and "\\" not in name, name
    assert index["address"] == ZELDA and index["tickets"] == [1000, 1001] == done.tickets
    for entry in index["files"]:
        assert entry["bytes"] == len(files[entry["path"]])
    kinds = {(f["path"].split("/")[0], f["kind"]) for f in index["files"]}
    assert {("tickets", k) for k in ("ticket", "events", "article", "attachment")} <= kinds
    assert {("tickets", "raw_mail"), ("tickets", "sent_mail"), ("mail", "raw_mail")} <= kinds
    assert not any(n.startswith(("tickets/1002/", "tickets/1003/")) for n in names)

    ticket = json.loads(files["tickets/1000/ticket.json"])
    assert ticket["requester_address"] == ZELDA and ticket["number"] == 1000
    texts = [files[n].decode() for n in names if n.startswith("tickets/1000/article-")]
    assert any(f"{WORD} plan failed again" in t for t in texts)
    pdf = [n for n in names if n.endswith(f"-{WORD.lower()}-plan.pdf")]
    assert len(pdf) == 1 and files[pdf[0]].startswith(b"%PDF-1.4")
    evil = [n for n in names if files[n] == b"evil"]
    assert len(evil) == len(HOSTILE_NAMES)
    assert all(n.startswith("tickets/1000/attachments/") for n in evil)
    assert any(n.endswith("-passwd") for n in evil) and any(n.endswith("-boot.ini") for n in evil)
    sent = [n for n in names if n.startswith("tickets/1000/sent-")]
    assert len(sent) == 2  # the acknowledgement and the staff answer; not the team's mail
    assert all(b"zelda.q@example.com" in files[n].lower() for n in sent)
    assert len([n for n in names if n.startswith("mail/")]) == 2  # autoreply, quarantined

    (rated,) = world.events("rated")
    assert json.loads(files["ratings.json"]) == [
        {"ticket": 1000, "at": rated.at.isoformat(), "verdict": "good", "how": "text"}
    ]
    records = json.loads(files["records.json"])
    assert records["bounces"]["bounce_count"] == 1
    assert [r["kind"] for r in records["sender_rules"]] == ["block"]
    assert len(records["acknowledgements"]) == 1  # to her; Bob's went to Bob
    assert [e["type"] for e in records["other_events"]] == ["requester_changed", "sender_blocked"]


def test_an_existing_file_is_never_replaced(world: World, tmp_path: Path) -> None:
    out = tmp_path / "taken.zip"
    out.write_bytes(b"someone's")
    with pytest.raises(MailbridgeError, match="exists"):
        export_customer(world.app, ZELDA, out)
    assert out.read_bytes() == b"someone's"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".part") == []


def test_a_folder_that_is_not_there_is_a_clear_error(world: World, tmp_path: Path) -> None:
    with pytest.raises(MailbridgeError, match="cannot write .*: No such file or directory"):
        export_customer(world.app, ZELDA, tmp_path / "missing" / "zelda.zip")
