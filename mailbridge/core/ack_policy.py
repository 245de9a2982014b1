"""Acknowledgement policy, pure: the hourly limits, whether the trusted MTA vouches for
the address an acknowledgement goes to, and what a minimal acknowledgement may carry.

An acknowledgement goes to whatever address the mail names (Reply-To, else From), and
anyone can write any address there. Unless the trusted MTA authenticated that address's
domain, the acknowledgement may be going to a stranger the sender chose: then it carries
only what we wrote (ticket number, promised time, our name), never the sender's words or
the display name they picked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailbridge.core.authres import authenticates, trusted_results

# The limits in the order they are checked: the narrowest first, so the log and the
# event name the sender's own limit before the ones it shares with others.
LIMITS = ("address", "domain", "mailbox")

# What a minimal acknowledgement keeps: values mailbridge or the operator wrote. Every
# other value is blanked, so a custom template cannot show the sender's text either.
MINIMAL_KEEPS = frozenset(
    {
        "ticket_number",
        "ticket_tag",
        "promised_reply",
        "due_at_iso",
        "support_address",
        "company_name",
        "requester_address",
        "queue",
        "priority",
        "escalation_level",
    }
)


@dataclass(frozen=True, slots=True)
class LimitKey:
    """One limit as it applies to one acknowledgement: which, counting what, how many."""

    limit: str  # one of LIMITS
    key: str  # the address, its domain, or the mailbox name
    per_hour: int


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


def limit_keys(
    address: str,
    mailbox: str,
    per_address: int,
    per_domain: int,
    per_mailbox: int,
    *,
    authenticated: bool,
) -> tuple[LimitKey, ...]:
    """The limits for an acknowledgement to `address` from `mailbox`, in LIMITS order.

    The domain limit stops a sender who forges many addresses of one victim domain; it does
    not apply when the trusted MTA authenticated that domain, so the customers of one big
    provider (gmail.com, outlook.com) never share a limit with each other.
    """
    keys = [LimitKey("address", address, per_address)]
    if not authenticated:
        keys.append(LimitKey("domain", domain_of(address), per_domain))
    keys.append(LimitKey("mailbox", mailbox, per_mailbox))
    return tuple(keys)


def authenticated_by(
    headers: Mapping[str, Iterable[str]], authserv_id: str | None, address: str
) -> str | None:
    """How the trusted MTA authenticated mail from `address`'s domain ("dkim", "dmarc",
    "spf"), or None: no trusted header, or nothing passed for that domain."""
    results = trusted_results(headers.get("authentication-results", ()), authserv_id)
    return authenticates(results, domain_of(address))


def minimal_context(context: Mapping[str, object]) -> dict[str, object]:
    """The context with every value the sender could have chosen blanked (kept as the same
    type, so templates that loop or test them still render), and `minimal` set."""
    blanked = {
        key: value if key in MINIMAL_KEEPS else _blank(value) for key, value in context.items()
    }
    blanked["minimal"] = True
    return blanked


def _blank(value: object) -> object:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    if isinstance(value, list | tuple):
        return []
    if isinstance(value, dict):
        return {}
    return ""
