"""`mailbridge staff`: who is on the team, who is away until when, who gets the daily
digest; mark someone away or back (tickets/absence.py).

The JSON of `staff list --json` is a contract: a list of {"address", "role" ("staff" or
"team"), "away_until" (ISO 8601 or null), "digest" (bool)}.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from mailbridge.cli.common import command_config, iso, open_app, print_json, table
from mailbridge.errors import MailbridgeError

if TYPE_CHECKING:
    from mailbridge.app import App

BY = "command line"


def configure(staff: argparse.ArgumentParser) -> None:
    actions = staff.add_subparsers(dest="staff_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="staff addresses, who is away, who gets digests")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    away = actions.add_parser(
        "away", help="mark a staff member away: their mail goes to the team address"
    )
    away.add_argument("address")
    away.add_argument(
        "--until",
        type=date.fromisoformat,
        required=True,
        metavar="YYYY-MM-DD",
        help="their last day away ([calendar] timezone)",
    )
    back = actions.add_parser("back", help="mark a staff member back")
    back.add_argument("address")
    staff.set_defaults(handler=_staff)


def _staff(args: argparse.Namespace) -> int:
    with open_app(command_config(args)) as app:
        if args.staff_command == "list":
            return list_staff(app, sys.stdout, as_json=args.json)
        if args.staff_command == "away":
            return mark_away(app, args.address, args.until, sys.stdout)
        return mark_back(app, args.address, sys.stdout)


def list_staff(app: App, out: TextIO, *, as_json: bool) -> int:
    from sqlalchemy import select

    from mailbridge.db.models import StaffState
    from mailbridge.tickets.absence import away_map

    staff = app.config.staff
    people = [(a, "staff") for a in staff.addresses]
    if staff.team_address:
        people.append((staff.team_address.lower(), "team"))
    now = app.clock.now()
    with app.sessions() as session:
        away = away_map(session, now)
        digests = {s.address: s.digest_enabled for s in session.scalars(select(StaffState))}
    rows = [
        {
            "address": address,
            "role": role,
            "away_until": iso(away.get(address)),
            "digest": digests.get(address, True),
        }
        for address, role in people
    ]
    if as_json:
        print_json(rows, out)
        return 0
    zone = app.config.calendar.zone
    table(
        ["ADDRESS", "ROLE", "AWAY UNTIL", "DIGEST"],
        [
            [
                str(r["address"]),
                str(r["role"]),
                _local(away.get(str(r["address"])), zone),
                "on" if r["digest"] else "off",
            ]
            for r in rows
        ],
        out,
    )
    return 0


def mark_away(app: App, address: str, last_day: date, out: TextIO) -> int:
    from mailbridge.app import Step
    from mailbridge.tickets.absence import end_of_day, set_away

    address = _staff_address(app, address)
    until = end_of_day(last_day, app.config.calendar.zone)
    now = app.clock.now()
    if until <= now:
        raise MailbridgeError(f"{last_day.isoformat()} has passed: nobody can be away until then")
    with app.transaction() as session:
        set_away(Step(session, app, now), address, until, source="command line", by=BY)
    out.write(f"{address} is away until the end of {last_day.isoformat()}\n")
    return 0


def mark_back(app: App, address: str, out: TextIO) -> int:
    from mailbridge.app import Step
    from mailbridge.tickets.absence import set_back

    address = _staff_address(app, address)
    with app.transaction() as session:
        was_away = set_back(
            Step(session, app, app.clock.now()), address, source="command line", by=BY
        )
    out.write(f"{address} is back\n" if was_away else f"{address} was not away\n")
    return 0


def _staff_address(app: App, address: str) -> str:
    from mailbridge.core.staff import is_staff_address

    staff = app.config.staff
    address = address.strip().lower()
    if not is_staff_address(address, staff.addresses, staff.domains):
        known = ", ".join(staff.addresses) or "none"
        raise MailbridgeError(f"{address} is not a staff address (known: {known})")
    return address


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="minutes") if moment else "-"
