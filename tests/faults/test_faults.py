"""The fault suite at CI size: kill -9 twenty times, stop the IMAP server mid-IDLE and
mid-FETCH, make the SMTP server refuse and cut connections, and on PostgreSQL stop the
database and kill the instance that owns the mailbox, all while customer mail arrives.
Afterwards no mail is lost, no ticket duplicated, every acknowledgement delivered, and an
acknowledgement is repeated only when a kill fell between SMTP acceptance and marking.

Each test takes about two minutes; bench/faults.py runs the same at full size. The table
is printed (shown on failure, or with -s).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.faults.cluster import PrivatePostgres
from tests.faults.harness import Outcome, Plan, run
from tests.support.required import unavailable

pytestmark = pytest.mark.integration

CI_SIZE = Plan(
    kills=20,
    imap_outage=4.0,
    smtp_refusal=8.0,
    smtp_drops=3,
    pg_outage=4.0,
    instances=3,
    takeover_after=4.0,
    recovery_timeout=90.0,
)


def check(outcome: Outcome) -> None:
    print(outcome.table)
    total = outcome.rows[-1]
    report = outcome.explain()
    assert total.mails > 0 and total.tickets > 0, report
    assert total.lost == 0, report
    assert total.duplicated == 0, report
    assert total.acks_delivered == total.tickets, report
    allowed = sum(p.between_accept_and_mark for p in outcome.phases)
    assert total.duplicate_acks <= allowed, report
    assert total.kills >= outcome.plan.kills, report
    assert outcome.problems == [], report


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_sqlite_single_instance_through_kills_and_server_outages(tmp_path: Path) -> None:
    outcome = run(replace(CI_SIZE, database="sqlite"), tmp_path)
    check(outcome)
    assert [p.label for p in outcome.phases] == [
        "steady flow",
        "kill -9 x20",
        "IMAP down 4 s mid-IDLE",
        "IMAP down 4 s mid-FETCH",
        "SMTP 451 for 8 s, 3 cut mid-DATA",
    ]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgresql_through_kills_outages_and_the_owner_dying(tmp_path: Path) -> None:
    problem = PrivatePostgres.problem()
    if problem is not None:
        unavailable(problem, "private PostgreSQL clusters (for stopping the database)")
    outcome = run(replace(CI_SIZE, database="postgresql"), tmp_path)
    check(outcome)
    takeover = outcome.phases[-1]
    assert takeover.label == "3 instances, owner killed", outcome.explain()
    assert takeover.takeover is not None, outcome.explain()
