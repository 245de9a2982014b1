"""The counters the database keeps as things happen, for /metrics: their names, the label
each carries, the buckets of the first-response histogram, and the rule that keeps every
label value to a name the configuration holds.

A label value that came from anywhere else (a queue a staff member typed, a mailbox since
removed) is counted under OTHER, so no mail can add a series. Stored by db/tally.py,
written by tickets/tallies.py (and outbound/send.py, below it), read by
service/metric_families.py.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from typing import Final

__all__ = [
    "COUNTERS",
    "FIRST_RESPONSE",
    "FIRST_RESPONSE_BUCKETS",
    "OTHER",
    "Labels",
    "bounded",
    "bucket_bound",
    "labels",
    "le_label",
    "observation",
]

OTHER: Final = "other"

# Label sets, sorted by name: the key of a counter's row.
Labels = tuple[tuple[str, str], ...]

TICKETS_CREATED: Final = "tickets_created"
SLA_MET: Final = "sla_met"
SLA_BREACHED: Final = "sla_breached"
TICKETS_REOPENED: Final = "tickets_reopened"
TICKETS_MARKED_SPAM: Final = "tickets_marked_spam"
MESSAGES_INGESTED: Final = "messages_ingested"
ACKNOWLEDGEMENTS_SENT: Final = "acknowledgements_sent"
ACKNOWLEDGEMENTS_SUPPRESSED: Final = "acknowledgements_suppressed"
ESCALATIONS: Final = "escalations"
RATINGS: Final = "ratings"
FIRST_RESPONSE: Final = "first_response_seconds"

# Each counter: its labels and what it counts (the metric's help text).
COUNTERS: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    TICKETS_CREATED: (
        ("mailbox", "queue", "policy"),
        "Tickets opened (spam included), by mailbox, and queue and SLA policy at opening",
    ),
    SLA_MET: (
        ("deadline", "policy"),
        "Deadlines kept: a first response (at the first staff answer) or a resolution (at "
        "each resolve or close) by its due time, by deadline and SLA policy",
    ),
    SLA_BREACHED: (
        ("deadline", "policy"),
        "Deadlines missed: a first response or a resolution that came after its due time, "
        "by deadline and SLA policy",
    ),
    TICKETS_REOPENED: (
        ("mailbox", "queue"),
        "Resolved or closed tickets opened again by the customer's mail",
    ),
    TICKETS_MARKED_SPAM: (
        ("mailbox",),
        "Tickets that became spam: opened as spam by processing, or marked by staff",
    ),
    MESSAGES_INGESTED: (
        ("mailbox", "kind"),
        "Messages from IMAP processing settled, by mailbox and kind: the classification of "
        "the article each made (customer, auto_reply, ...), else processed or ignored "
        "(automated mail, a rule, a sender list: stored, no ticket)",
    ),
    ACKNOWLEDGEMENTS_SENT: ((), "Acknowledgements the SMTP server accepted (bounced later or not)"),
    ACKNOWLEDGEMENTS_SUPPRESSED: (
        ("limit",),
        "Acknowledgements withheld by an hourly limit, by limit (address, domain, mailbox)",
    ),
    ESCALATIONS: (
        ("level",),
        "Escalations fired, by level (negative: a warning before the deadline)",
    ),
    RATINGS: (
        ("verdict",),
        "Satisfaction ratings customers gave by mail, by verdict (good, bad)",
    ),
}
FIRST_RESPONSE_LABELS: Final = ("mailbox", "queue", "policy")
FIRST_RESPONSE_HELP: Final = (
    "Seconds from a ticket's opening to its first staff answer, on the wall clock, by "
    "mailbox, and queue and SLA policy at the answer"
)
# Five minutes to a week: where a first response falls, from a chat-like answer to a lost
# ticket found again.
FIRST_RESPONSE_BUCKETS: Final = (
    300.0,
    900.0,
    1800.0,
    3600.0,
    2 * 3600.0,
    4 * 3600.0,
    8 * 3600.0,
    86400.0,
    2 * 86400.0,
    3 * 86400.0,
    7 * 86400.0,
)
BUCKET: Final = "_bucket"  # a histogram's rows: one per bucket (not cumulative), and its sum
SUM: Final = "_sum"


def bounded(value: str | None, known: Collection[str]) -> str:
    """`value` when the configuration names it, else OTHER."""
    return value if value is not None and value in known else OTHER


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


def bucket_bound(seconds: float) -> float:
    """The upper bound of the smallest bucket holding `seconds` (inf past the last)."""
    return next((bound for bound in FIRST_RESPONSE_BUCKETS if seconds <= bound), math.inf)


def le_label(bound: float) -> str:
    """A bucket's upper bound as its `le` label: "300.0", "+Inf"."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def observation(
    name: str, key: Mapping[str, str], seconds: float
) -> Iterator[tuple[str, Labels, float]]:
    """The rows one histogram observation adds: its bucket's count and its sum."""
    seconds = max(seconds, 0.0)
    yield name + BUCKET, labels(**key, le=le_label(bucket_bound(seconds))), 1.0
    yield name + SUM, labels(**key), seconds
