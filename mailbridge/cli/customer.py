"""`mailbridge customer export ADDRESS` and `customer erase ADDRESS`: a customer's right of
access and right to erasure (GDPR Art. 15 and 17), over everything the database holds
about one address (tickets/customer_export.py, tickets/customer_erasure.py).

The address is read as staff `#requester` reads one (a display name around it is allowed)
and matched as the project stores addresses: lower-cased.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mailbridge.cli.common import EXIT_OK, address, command_config, open_app, table
from mailbridge.core.message import Address

if TYPE_CHECKING:
    from mailbridge.app import App


def configure(customer: argparse.ArgumentParser) -> None:
    actions = customer.add_subparsers(dest="customer_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write everything held about an address to a zip file with an index.json (access)",
    )
    export.add_argument("address", type=address, metavar="ADDRESS")
    export.add_argument(
        "--out",
        type=Path,
        metavar="FILE.zip",
        help="where to write it (default: customer-export-<date>.zip here); never replaced",
    )
    erase = actions.add_parser(
        "erase",
        help="erase everything held about an address; ticket numbers and times stay (erasure)",
    )
    erase.add_argument("address", type=address, metavar="ADDRESS")
    erase.add_argument(
        "--dry-run", action="store_true", help="count what would change per table, change nothing"
    )
    customer.set_defaults(handler=_customer)


def _customer(args: argparse.Namespace) -> int:
    who: Address = args.address
    with open_app(command_config(args)) as app:
        if args.customer_command == "export":
            from mailbridge.tickets.customer_export import export_customer

            out = args.out or Path(f"customer-export-{app.clock.now():%Y%m%d-%H%M%S}.zip")
            done = export_customer(app, who.address, out)
            print(f"wrote {out}: {len(done.tickets)} ticket(s), {len(done.files)} file(s)")
            return EXIT_OK
        return erase(app, who.address, sys.stdout, dry_run=args.dry_run)


def erase(app: App, address_: str, out: TextIO, *, dry_run: bool) -> int:
    """Erase what is held about the address (or count it), and say what changed."""
    from mailbridge.tickets.customer_erasure import erase_customer

    done = erase_customer(app, address_, dry_run=dry_run)
    if not done.anything:
        out.write(f"nothing held about {address_}: nothing changed\n")
        return EXIT_OK
    verb = "would change" if dry_run else "changed"
    out.write(
        f"{verb}: {done.tickets} ticket(s) erased whole, the address "
        f"{'would become' if dry_run else 'is now'} erased-{done.pseudonym_id}@invalid\n"
    )
    rows = [(name, str(count)) for name, count in sorted(done.rows.items()) if count]
    table(("table", "rows"), rows, out, right={1})
    if dry_run:
        out.write("dry run: nothing was changed\n")
    return EXIT_OK
