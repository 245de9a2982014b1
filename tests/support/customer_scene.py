"""A customer, Zelda, whose address and words are everywhere a database can hold them, for
the export and erasure tests; and a search of every column of every table the database
itself lists (its own catalogue, not the models: the search index's tables too) for what
she left.

Her address is written in mixed case and her name RFC 2047-encoded; her one unusual word,
ZORBULAX, is in her subjects, texts, HTML, an attachment's name and bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from mailbridge.core.compose import Outgoing, build_message
from mailbridge.core.message import Address
from mailbridge.db import queries
from mailbridge.db.models import AddressState, Outbox, StaffState
from mailbridge.tickets.sender_lists import block_sender
from tests.support.builders import stored
from tests.support.sla_world import World
from tests.support.staff_world import staff_answer

ZELDA = "zelda.q@example.com"
WRITTEN = "Zelda.Q@Example.COM"  # as her mail client writes it
NAME = "Zelda Quixotéwright"
ENCODED_NAME = "=?utf-8?q?Zelda_Quixot=C3=A9wright?="
WORD = "XORBULAX"
# What must be gone after her erasure, lower-cased: the address, her word, her name
# (decoded, and as its encoded form spells it).
NEEDLES = (ZELDA, WORD.lower(), "quixot")
CAROL_WORD = "Carolinian"  # in Carol's mail, which names Zelda: it stays

H = timedelta(hours=1)


def zelda_mail(subject: str, *, cc: str | None = None, n: int = 1) -> bytes:
    message = EmailMessage()
    message["From"] = f"{ENCODED_NAME} <{WRITTEN}>"
    message["To"] = "support@shop.example"
    if cc:
        message["Cc"] = cc
    message["Subject"] = f"{WORD} {subject}"
    message["Message-ID"] = f"<{n}.{WRITTEN}@mua.example>"
    message.set_content(f"Hello, the {WORD} plan failed again.\nZelda\n")
    message.add_alternative(f"<p>Hello, the <b>{WORD}</b> plan failed.</p>", subtype="html")
    message.add_attachment(
        f"%PDF-1.4 {WORD} secret plan".encode(),
        maintype="application",
        subtype="pdf",
        filename=f"{WORD.lower()}-plan.pdf",
    )
    return message.as_bytes()


def plain_mail(sender: str, subject: str, body: str, *, cc: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "support@shop.example", subject
    if cc:
        message["Cc"] = cc
    message["Message-ID"] = f"<{hashlib.sha1(subject.encode()).hexdigest()}@mua.example>"
    message.set_content(body)
    return message.as_bytes()


def build_scene(world: World) -> None:
    """1000 Zelda's (answered by staff, rated); 1001 Bob's, Zelda copied; 1002 Carol's,
    naming Zelda's address in its text; 1003 Dan's, whose requester was Zelda once (an
    event). Outside tickets: her autoreply (ignored) and a quarantined mail, a staff
    digest listing her ticket, her bounce record, a blocklist row, a staff record. Last, a
    second staff answer, held as a draft: the warning to its author waits in the outbox."""
    world.receive(zelda_mail("order 17"))
    world.advance(H)
    notification = world.mails("notification")[-1]
    world.receive(staff_answer(world, 1000, "Hello Zelda, we are on it.", answered=notification))
    world.receive(plain_mail("Bob <bob@customer.example>", "Bob's issue", "Hi.\n", cc=WRITTEN))
    world.receive(
        plain_mail(
            "Carol <carol@customer.example>",
            "Carol's question",
            f"A {CAROL_WORD} question: my colleague {WRITTEN} told me to write.\n",
        )
    )
    world.receive(plain_mail("Dan <dan@customer.example>", "Dan's own", "Dan here.\n"))
    tickets = {t.number: t.id for t in world.tickets()}
    with world.session() as session:
        _records(world, session, tickets)
    with world.session() as session:
        for row in session.scalars(select(Outbox)):
            row.state, row.sent_at = "sent", world.now
    world.advance(H)
    world.receive(staff_answer(world, 1000, f"One more thing about {WORD}.", answered=notification))


def _records(world: World, session: Session, tickets: dict[int | None, int]) -> None:
    now = world.now
    queries.insert_event(
        session, tickets[1000], now, "rated", {"verdict": "good", "how": "text", "by": ZELDA}
    )
    queries.insert_event(
        session,
        tickets[1003],
        now,
        "requester_changed",
        {"by": "command line", "old": ZELDA, "new": "dan@customer.example", "name": NAME},
    )
    block_sender(session, ZELDA, "alice@shop.example", f"{WRITTEN} kept writing", now)
    session.add(
        AddressState(
            address=ZELDA, bounce_count=1, last_diagnostic=f"550 {WRITTEN} unknown", updated_at=now
        )
    )
    session.add(StaffState(address=ZELDA, updated_at=now))
    autoreply = zelda_mail("Out of office", n=2)
    session.add(stored(autoreply, uid=900, at=now, state="ignored"))
    session.add(stored(zelda_mail("Broken", n=3), uid=901, at=now, state="quarantined"))
    session.add(_digest(world))


def _digest(world: World) -> Outbox:
    """A staff member's daily digest naming ticket 1000, quoted-printable."""
    text = (
        "These are the open tickets assigned to you, Alice:\n\n"
        f"  [#1000] {NAME} | {WORD} order 17 | 1h | due in 7h" + " " * 40 + "\n"
    )
    raw = build_message(
        Outgoing(
            from_=Address("Shop Support", "support@shop.example"),
            to=(Address("Alice", "alice@shop.example"),),
            cc=(),
            subject="Your tickets: 1 open",
            text=text,
            html=None,
            message_id="mb.digest.1@shop.example",
            in_reply_to=None,
            references=(),
            auto_submitted="auto-generated",
            reply_to=(),
            attachments=(),
            extra_headers=(),
            date=world.now,
        )
    )
    return Outbox(
        ticket_id=None,
        kind="digest",
        envelope_from="support@shop.example",
        envelope_to=["alice@shop.example"],
        message_id="mb.digest.1@shop.example",
        raw=raw,
        state="sent",
        attempts=1,
        next_attempt_at=world.now,
        created_at=world.now,
        sent_at=world.now,
    )


def traces(engine: Engine, needles: Iterable[str] = NEEDLES) -> dict[str, int]:
    """{"table.column": rows} of every value, in every table of the database, that holds
    one of the needles in any case: text as text, JSON and tsvector as their text, blobs
    as bytes."""
    wanted = [n.lower() for n in needles]
    found: dict[str, int] = {}
    with engine.connect() as connection:
        for table, columns in _columns(connection):
            select_list = ", ".join(expression for _name, expression in columns)
            for row in connection.exec_driver_sql(f'SELECT {select_list} FROM "{table}"'):
                for (name, _expression), value in zip(columns, row, strict=True):
                    if _holds(value, wanted):
                        key = f"{table}.{name}"
                        found[key] = found.get(key, 0) + 1
    return found


def _columns(connection: Connection) -> list[tuple[str, list[tuple[str, str]]]]:
    if connection.dialect.name == "sqlite":
        names = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        ).scalars()
        return [
            (
                table,
                [
                    (c[1], f'"{c[1]}"')
                    for c in connection.exec_driver_sql(f'PRAGMA table_info("{table}")')
                ],
            )
            for table in list(names)
        ]
    rows = connection.exec_driver_sql(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ).all()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        expression = f'"{column}"' if kind == "bytea" else f'CAST("{column}" AS TEXT)'
        tables.setdefault(table, []).append((column, expression))
    return list(tables.items())


def _holds(value: object, needles: list[str]) -> bool:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        lowered = value.lower()
        return any(n.encode() in lowered for n in needles)
    if isinstance(value, str):
        lowered_text = value.lower()
        return any(n in lowered_text for n in needles)
    return False


def dump(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table the database lists, as text, in a stable order: two dumps
    are equal when nothing changed."""
    rows: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for table, columns in _columns(connection):
            select_list = ", ".join(expression for _name, expression in columns)
            found = connection.exec_driver_sql(f'SELECT {select_list} FROM "{table}"')
            rows[table] = sorted(repr(tuple(row)) for row in found)
    return rows
