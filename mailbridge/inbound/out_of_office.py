"""Out of office: a staff member's own auto-reply to one of our notifications marks them
away (tickets/absence.py), and their first real mail marks them back.

An auto-reply proves nothing by itself: it counts only when it answers a notification's
reply address (the token in `support+t1042-…@`) with the very From the token was issued
to (for a team token, any listed staff member), so a forged "I am away" from a customer, or
a staff From on a token of someone else, changes nothing. The auto-reply is never a staff
answer: apply.py asks for the staff claim of customer mail only, so nothing is relayed.

Runs inside the caller's transaction, like the rest of apply.
"""

from __future__ import annotations

import logging

from mailbridge.app import Step
from mailbridge.core.away import return_date
from mailbridge.core.message import ParsedMessage, Verdict
from mailbridge.core.staff import check_token, find_token, is_staff_address
from mailbridge.tickets import absence

log = logging.getLogger(__name__)

# Auto-reply rules that are no out-of-office: a read receipt says the mail was read.
_NOT_AWAY = frozenset({"read_receipt"})


def on_auto_reply(step: Step, parsed: ParsedMessage, verdict: Verdict) -> bool:
    """Mark the sender away when `parsed` is their out-of-office answer to a notification
    of theirs: until the end of the return day its text states, else for
    absence.DEFAULT_ABSENCE after it (never shortening an absence already known).
    True when they were marked away (or already were)."""
    if verdict.kind != "auto_reply" or _NOT_AWAY.intersection(verdict.rules):
        return False
    sender = _proven_sender(step, parsed)
    if sender is None:
        return False
    zone = step.app.config.calendar.zone
    day = return_date(
        f"{parsed.subject}\n{parsed.reply_text or parsed.text}", step.now.astimezone(zone).date()
    )
    until = absence.end_of_day(day, zone) if day else step.now + absence.DEFAULT_ABSENCE
    known = absence.away_until(step.session, sender, step.now)
    if known is not None and known > until:
        until = known
    absence.set_away(step, sender, until, source="auto_reply", by=sender)
    log.info("%s is away until %s (their auto-reply)", sender, until.isoformat())
    return True


def on_staff_mail(step: Step, address: str) -> None:
    """Proven staff mail that is no auto-reply: its writer is back. Called before the
    mail's commands are applied, so an `#away` in it still wins."""
    absence.set_back(step, address, source="mail", by=address)


def _proven_sender(step: Step, parsed: ParsedMessage) -> str | None:
    """The staff address a notification's token was issued to, when it is the From of
    `parsed`; None for anything else."""
    staff = step.app.config.staff
    sender = parsed.from_.address.lower() if parsed.from_ else ""
    if not sender or parsed.sender_header != "from" or sender in step.app.identity.own_addresses:
        return None
    if not is_staff_address(sender, staff.addresses, staff.domains):
        return None
    recipients = [a.address for a in (*parsed.to, *parsed.cc)]
    for header in ("delivered-to", "x-original-to"):
        recipients.extend(v.strip().strip("<>") for v in parsed.headers.get(header, ()))
    found = find_token(recipients, step.app.identity.own_addresses)
    if found is None:
        return None
    check = check_token(step.app.reply_secret, found, sender, staff.addresses, step.now)
    return sender if check.refusal is None else None
