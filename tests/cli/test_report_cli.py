"""`mailbridge report` as operators and scripts see it: the table, the JSON and CSV
contracts, hostile group names, no customer text, and the command in a process of its own."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from mailbridge.cli.report import print_table, write_csv
from mailbridge.core.report import CSV_FIELDS, FIGURE_FIELDS, report_json
from mailbridge.core.states import TicketStatus
from tests.support.builders import write_config_file
from tests.support.cli_process import mailbridge
from tests.support.report_world import THREE_WEEKS, Made, make_report_world, rome
from tests.support.sla_world import NOWHERE

pytestmark = pytest.mark.db

NOW = rome(20, 12, month=12)
SUBJECT = "Rimborso segreto di Zoë, IBAN IT60X0542811101000000123456"
HOSTILE_TAG = '=HYPERLINK("http://x"),\n"quoted"'
HOSTILE_QUEUE = 'refunds, "priority"\r\nsecond line'


def test_table_json_and_csv_carry_hostile_names_safely_and_no_subject(
    tmp_path: Path, database_url: str
) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        world.add(
            Made(created=rome(23, 10), queue=HOSTILE_QUEUE, tags=(HOSTILE_TAG,), subject=SUBJECT,
                 responded=rome(23, 11), first_due=rome(23, 18)),
            Made(created=rome(24, 10), subject=SUBJECT, status=TicketStatus.RESOLVED,
                 resolved=rome(24, 12)),
        )  # fmt: skip
        by_tag, by_queue = world.report(THREE_WEEKS, "tag"), world.report(THREE_WEEKS, "queue")
    finally:
        world.app.close()

    for report in (by_tag, by_queue):
        text, sheet = io.StringIO(), io.StringIO()
        print_table(report, "Europe/Rome", text)
        write_csv(report, sheet)
        document = json.dumps(report_json(report), ensure_ascii=False)
        for output in (text.getvalue(), sheet.getvalue(), document):
            assert "Rimborso" not in output and "IBAN" not in output

        rows = list(csv.reader(io.StringIO(sheet.getvalue())))
        assert tuple(rows[0]) == CSV_FIELDS
        assert [len(row) for row in rows] == [len(CSV_FIELDS)] * 4  # header, two groups, total
        assert rows[-1][:2] == ["total", ""] and rows[-1][CSV_FIELDS.index("tickets_in")] == "2"
        lines = text.getvalue().splitlines()
        # one line per group: a name's line break or carriage return stays in its cell
        assert len(lines) == 2 + 1 + 3 + 3
        assert all("\r" not in line for line in lines)

    tag_rows = list(csv.reader(io.StringIO(_csv(by_tag))))
    # the name round-trips whole, made inert for a spreadsheet by a leading quote
    assert [row[1] for row in tag_rows[1:3]] == ["'" + HOSTILE_TAG, ""]
    queue_rows = list(csv.reader(io.StringIO(_csv(by_queue))))
    assert [row[1] for row in queue_rows[1:3]] == ["default", HOSTILE_QUEUE]
    document = report_json(by_queue)
    assert [g["group"] for g in document["groups"]] == ["default", HOSTILE_QUEUE]  # type: ignore[index]
    assert set(document["total"]) == set(FIGURE_FIELDS)  # type: ignore[arg-type]


def _csv(report: object) -> str:
    out = io.StringIO()
    write_csv(report, out)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_command_reports_a_period_of_days_and_refuses_bad_periods(
    tmp_path: Path, database_url: str
) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        world.add(
            Made(created=rome(23, 10), responded=rome(23, 12), first_due=rome(23, 18)),
            Made(created=rome(1, 10, month=12), queue="billing"),
            Made(created=rome(14, 10, month=12)),  # the day after the period
        )
    finally:
        world.app.close()
    config = write_config_file(
        tmp_path, NOWHERE, NOWHERE, database_url, password_env="MB_CLI_IMAP_PASSWORD"
    )
    period = ("--from", "2026-11-23", "--to", "2026-12-13")

    shown = mailbridge(config, "report", *period, "--by", "queue", "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    # the configuration's calendar is UTC: its midnights
    assert (document["from"], document["to"]) == (
        "2026-11-23T00:00:00+00:00",
        "2026-12-14T00:00:00+00:00",
    )
    assert [(g["group"], g["tickets_in"]) for g in document["groups"]] == [
        ("billing", 1),
        ("default", 1),
    ]
    assert document["total"]["first_response_p50_seconds"] == 7200

    table = mailbridge(config, "report", *period).stdout.decode()
    assert table.splitlines()[2].split()[:3] == ["week", "in", "acked"]
    assert "2026-11-23" in table and "total" in table

    for wrong in (("--to", "2026-12-13"), ("--since", "7d", "--from", "2026-11-23"),
                  ("--from", "2026-12-13", "--to", "2026-11-23"), ("--by", "subject"),
                  ("--json", "--csv")):  # fmt: skip
        refused = mailbridge(config, "report", *wrong)
        assert refused.returncode == 2, wrong


def test_the_command_writes_the_pictures_as_one_page(tmp_path: Path, database_url: str) -> None:
    world = make_report_world(tmp_path, database_url, NOW)
    try:
        world.add(
            Made(created=rome(23, 10), subject=SUBJECT, responded=rome(23, 12),
                 first_due=rome(23, 18)),
            Made(created=rome(1, 10, month=12), queue=HOSTILE_QUEUE, subject="<b>Help</b>"),
        )  # fmt: skip
    finally:
        world.app.close()
    config = write_config_file(
        tmp_path, NOWHERE, NOWHERE, database_url, password_env="MB_CLI_IMAP_PASSWORD"
    )
    period = ("--from", "2026-11-23", "--to", "2026-12-13")
    page = tmp_path / "report.html"

    made = mailbridge(config, "report", *period, "--html", str(page), "--language", "it")
    assert made.returncode == 0, made.stderr
    html = page.read_text(encoding="utf-8")
    assert html.startswith('<!DOCTYPE html>\n<html lang="it">')
    assert "settimana del 23 nov 2026" in html and "settimana del 7 dic 2026" in html
    assert "&lt;b&gt;Help&lt;/b&gt;" in html and "Rimborso segreto" in html  # subjects, escaped
    assert "customer.example" not in html and "<b>Help" not in html
    assert not list(tmp_path.glob(".report.html*")), "no partial file left behind"
    english = mailbridge(config, "report", "--since", "30d", "--html", str(page))
    assert english.returncode == 0 and 'lang="en"' in page.read_text(encoding="utf-8")

    for wrong in (("--html", str(page), "--by", "queue"), ("--language", "it"),
                  ("--html", str(page), "--json")):  # fmt: skip
        assert mailbridge(config, "report", *wrong).returncode == 2, wrong
    nowhere = mailbridge(config, "report", "--html", str(tmp_path / "missing" / "r.html"))
    assert nowhere.returncode == 1
    assert f"cannot write {tmp_path / 'missing' / 'r.html'}" in nowhere.stderr.decode()
