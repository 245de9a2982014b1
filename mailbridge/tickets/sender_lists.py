"""The allow and block lists a spam decision reads: `[spam] allow` and `block` from the
configuration, then the `sender_rule` table's rows (core/spam.py ranks them).

For one sender (`address`), the table is asked only for the patterns that could name it,
by one look-up on its primary key: the address itself, its domain and each parent domain,
and the globs `*@DOMAIN`, `*@*.PARENT`, `*.PARENT` and `LOCAL@*`. The commands that write
the table store addresses, domains and those globs; any other glob belongs in the
configuration's lists, which are matched whole. Nothing is cached: a row added by a staff
`#spam block` counts from the next mail on.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailbridge.config import Config
from mailbridge.db.models import SenderRule

__all__ = ["sender_lists", "table_candidates"]

# The longest parent domain looked up, in labels: a sender who makes up a hundred labels
# ("a.a.….spam.example") still meets "spam.example", not a hundred look-ups.
MAX_LABELS = 8


def sender_lists(
    session: Session, config: Config, address: str | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(allow, block): the configuration's patterns, then the table's. With an address,
    only the table's rows that could name it (one indexed query; none for "")."""
    allow, block = list(config.spam.allow), list(config.spam.block)
    if address is None:
        rows = session.execute(_ROWS)
    else:
        candidates = table_candidates(address)
        if not candidates:
            return tuple(allow), tuple(block)
        rows = session.execute(_ROWS_NAMING, {"candidates": candidates})
    for pattern, kind in rows:
        (allow if kind == "allow" else block).append(pattern)
    return tuple(allow), tuple(block)


# Built once: composing the statement anew cost more than running it (about 0.3 ms a mail).
_ROWS = select(SenderRule.pattern, SenderRule.kind).order_by(SenderRule.pattern)
_ROWS_NAMING = _ROWS.where(SenderRule.pattern.in_(bindparam("candidates", expanding=True)))


def table_candidates(address: str) -> tuple[str, ...]:
    """The stored patterns that could name `address` (see the module's docstring)."""
    local, at, domain = address.lower().rpartition("@")
    if not at or not local or not domain:
        return ()
    labels = domain.split(".")
    parents = [".".join(labels[-n:]) for n in range(min(len(labels) - 1, MAX_LABELS), 0, -1)]
    domains = [domain, *parents]
    return (
        f"{local}@{domain}",
        f"{local}@*",
        *domains,
        *(f"*@{d}" for d in domains),
        *(f"*@*.{p}" for p in parents),
        *(f"*.{p}" for p in parents),
    )
