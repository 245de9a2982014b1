"""Which staff mail is a query (`#mine`, `#show 1042`, `#away`, …) rather than an answer
on a ticket, and what in it is wrong. Pure: reads a parsed `StaffMessage` (core.staff).

A mail with any personal command is a query, answered to its sender alone and never
relayed: words after the commands, or a ticket command beside them, refuse it whole, so
nothing in a mail meant for oneself reaches a customer or changes a ticket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbridge.core.staff import Command, StaffMessage

PERSONAL = frozenset(
    {"mine", "overdue", "unassigned", "waiting", "show", "search", "away", "digest"}
)
MAX_QUERIES = 3  # personal commands answered in one mail; each answer is bounded too
_ERROR_NAME = re.compile(r"#([A-Za-z]+)")


@dataclass(frozen=True, slots=True)
class Query:
    """The personal commands of a query mail, in order, and why it is refused (empty: it
    is answered)."""

    commands: tuple[Command, ...]
    problems: tuple[str, ...]


def query_of(message: StaffMessage) -> Query | None:
    """The query `message` asks; None when it has no personal command (a line that named
    one but failed to parse counts), so it is an answer on a ticket as before."""
    personal = tuple(c for c in message.commands if c.name in PERSONAL)
    if not personal and not any(_names_personal(e) for e in message.errors):
        return None
    problems = list(message.errors)
    others = sorted({f"#{c.name}" for c in message.commands if c.name not in PERSONAL})
    if others:
        problems.append(
            "questions (#mine, #show, #away, …) and ticket commands ("
            + ", ".join(others)
            + ") go in separate mails: nothing was applied"
        )
    if message.text.strip():
        problems.append(
            "a query is commands alone, one per line: the text after them was not sent to anyone"
        )
    if len(personal) > MAX_QUERIES:
        problems.append(f"at most {MAX_QUERIES} questions in one mail")
    return Query(personal, tuple(problems))


def _names_personal(error: str) -> bool:
    found = _ERROR_NAME.match(error)
    return found is not None and found.group(1).lower() in PERSONAL
