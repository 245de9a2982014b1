"""`mailbridge report`: how fast and how well the tickets of a period were answered, per
week, day, queue, assignee, mailbox, language or tag.

The table is for people; `--json` and `--csv` are contracts for scripts (README,
"mailbridge report"): fields may be added, never renamed or removed. `--html FILE` writes
the pictures of the period, week by week, as one page (core/report_html.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mailbridge.cli.common import command_config, duration, open_app, print_json, table
from mailbridge.config import Config
from mailbridge.core.report import (
    CSV_FIELDS,
    GROUPINGS,
    TABLE_COLUMNS,
    Period,
    Report,
    period_of_dates,
    period_since,
    report_json,
    report_rows,
    table_rows,
)
from mailbridge.core.report_html import render_html
from mailbridge.core.safe_text import clean_header_text
from mailbridge.errors import MailbridgeError

if TYPE_CHECKING:
    from mailbridge.app import App

DEFAULT_SINCE = timedelta(days=30)
# A spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def day(text: str) -> date:
    """A day as YYYY-MM-DD (argparse names this function in its error)."""
    return date.fromisoformat(text)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="the period up to now, e.g. 30d (the default) or 12w",
    )
    parser.add_argument(
        "--from",
        dest="first",
        type=day,
        metavar="DATE",
        help="the period from this day (YYYY-MM-DD, in the calendar's time zone)",
    )
    parser.add_argument(
        "--to", dest="last", type=day, metavar="DATE", help="to this day, included (default: now)"
    )
    parser.add_argument("--by", choices=GROUPINGS, help="the groups (week)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON object")
    output.add_argument("--csv", action="store_true", help="print CSV, one row per group")
    output.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the pictures of the period, week by week, as one HTML page",
    )
    parser.add_argument(
        "--language",
        choices=("en", "it"),
        help="the language of the --html page (default: [reports] language)",
    )
    parser.set_defaults(handler=partial(run, parser))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.since is not None and (args.first or args.last):
        parser.error("give --since or --from/--to, not both")
    if args.last is not None and args.first is None:
        parser.error("--to needs --from")
    if args.first and args.last and args.last < args.first:
        parser.error("--to is before --from")
    if args.html is not None and args.by not in (None, "week"):
        parser.error("--html draws the period week by week: leave out --by")
    if args.language is not None and args.html is None:
        parser.error("--language is for --html")
    from mailbridge.reports import make_report  # the database: not for `--help`

    config = command_config(args)
    with open_app(config) as app:
        period = _period(args, config, app.clock.now())
        if args.html is not None:
            return write_html(app, period, args.html, args.language or config.report_language)
        report = make_report(app, period, args.by or "week")
    if args.json:
        print_json(report_json(report), sys.stdout)
    elif args.csv:
        write_csv(report, sys.stdout)
    else:
        print_table(report, config.calendar.timezone, sys.stdout)
    return 0


def _period(args: argparse.Namespace, config: Config, now: datetime) -> Period:
    if args.first is not None:
        zone = config.calendar.zone
        last = args.last or now.astimezone(zone).date()
        period = period_of_dates(args.first, last, zone)
        return period if args.last else Period(period.start, now)
    return period_since(now, args.since or DEFAULT_SINCE)


def write_html(app: App, period: Period, path: Path, language: str) -> int:
    """The page, written whole or not at all: to a file beside it, then renamed."""
    from mailbridge.reports.pictures import make_pictures

    page = render_html(make_pictures(app, period), language)
    partial_file = path.with_name(f".{path.name}.partial")
    try:
        partial_file.write_text(page, encoding="utf-8")
        partial_file.replace(path)
    except OSError as exc:
        partial_file.unlink(missing_ok=True)
        raise MailbridgeError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}", file=sys.stderr)
    return 0


def write_csv(report: Report, out: TextIO) -> None:
    """One row per group then the total; the group's name made inert for spreadsheets."""
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for row in report_rows(report):
        if row[1].startswith(FORMULA_STARTS):
            row[1] = "'" + row[1]
        writer.writerow(row)


def print_table(report: Report, zone_name: str, out: TextIO) -> None:
    period = report.period
    out.write(
        f"Tickets that came in from {period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M}"
        f" UTC, by {report.by} ({zone_name} weeks and days); spam and merged left out.\n\n"
    )
    headers = [report.by, *(header for header, _ in TABLE_COLUMNS)]
    table(
        headers,
        table_rows(report, clean_header_text),
        out,
        right=range(1, len(headers)),
    )
    out.write(
        "\n1st: first response (on the policy's clock), res: resolution, SLA: deadlines met, "
        "esc: escalations,\nbacklog and oldest: unresolved at the end, unh: unhappy-tagged, "
        "happy: ratings 'solved', faq: solved after an FAQ answer.\n"
    )
