"""`mailbridge demo` keeps working: it is the first thing a newcomer runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailbridge.demo.run import run_demo

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_shows_tickets_acknowledgements_and_an_escalation(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(tmp_path, out=out) == 0
    shown = out.getvalue()

    assert "● ticket #1000 created for giulia.rossi@example.it" in shown
    assert "● ticket #1001 created for tom.baker@example.co.uk" in shown
    assert "✉ sent to giulia.rossi@example.it" in shown
    assert "Gentile Giulia Rossi" in shown, "Italian mail is answered in Italian"
    assert "✉ sent to tom.baker@example.co.uk" in shown
    assert "first response overdue, escalation level 1" in shown
    assert (
        "◆ ticket #1001: rule 'unhappy: repeated chaser' matched: priority high; "
        "tags unhappy, chaser; respond_within 2 hours"
    ) in shown
    assert "✉ sent to lead@demo.example" in shown

    engine = create_engine(f"sqlite:///{tmp_path / 'mailbridge.db'}")
    with engine.connect() as connection:
        tickets = connection.execute(text("SELECT count(*) FROM ticket")).scalar()
        acks = connection.execute(text("SELECT count(*) FROM outbox WHERE kind = 'ack'")).scalar()
        articles = connection.execute(text("SELECT count(*) FROM article")).scalar()
        copied = connection.execute(
            text("SELECT address, added_by FROM ticket_participant WHERE removed_at IS NULL")
        ).all()
        staff = connection.execute(
            text(
                "SELECT t.number, t.status, t.priority, t.first_responded_at IS NOT NULL "
                "FROM article a JOIN ticket t ON t.id = a.ticket_id "
                "WHERE a.author_kind = 'staff'"
            )
        ).all()
    engine.dispose()
    # Two customer mails, a follow-up, an out-of-office and Alice's answer.
    assert (tickets, acks, articles) == (2, 2, 5), "follow-ups joined, without a second ack"
    assert [tuple(row) for row in staff] == [(1000, "waiting", "high", 1)]
    assert [tuple(row) for row in copied] == [("marco.rossi@example.it", "giulia.rossi@example.it")]
    assert "Alice (staff) answers Giulia" in shown
    assert "può chiudere il conto online" in shown
    relayed = shown[shown.index("Alice (staff) answers Giulia") :]
    # Giulia copied Marco: the answer reached both, To her and Cc him, and him only once.
    assert "✉ sent to giulia.rossi@example.it, marco.rossi@example.it" in relayed
    assert "✔ Alice's answer reached both: To Giulia Rossi <giulia.rossi@example.it>, " in relayed
    assert "Cc Marco Rossi <marco.rossi@example.it>" in relayed
    # Alice's answer, and later the reminder (Giulia stays silent), each once.
    assert shown.count("✉ sent to giulia.rossi@example.it, marco.rossi@example.it") == 2
    # The reminder (printed as it arrives: on a busy machine before the step that waits
    # for it), and no escalation for it: Giulia's ticket was answered in time.
    assert shown.count("attendiamo ancora una sua risposta") == 1
    assert "✔ reminder sent to Giulia" in shown[shown.index("→ Giulia has not answered") :]
    assert "▲ ticket #1000" not in shown
    assert "alice@demo.example" not in relayed.split("→ Tom replies")[0].split("✉ sent to")[1]
    # The daily digest: the team's unassigned tickets, each with a reply link.
    digest = shown[shown.index("the daily digest") :]
    assert "✉ sent to team@demo.example: Unassigned tickets: " in digest
    assert "[#1001] Tom Baker | " in digest
    assert "Reply: <mailto:support%2Bt1001-" in digest
