"""Acknowledgement policy, pure: the named checks that may withhold an acknowledgement
(in order, a table as CHECKS), the hourly limits, whether the trusted MTA vouches for
the address an acknowledgement goes to, and what a minimal acknowledgement may carry.

An acknowledgement goes to whatever address the mail names (Reply-To, else From), and
anyone can write any address there. Unless the trusted MTA authenticated that address's
domain, the acknowledgement may be going to a stranger the sender chose: then it carries
only what we wrote (ticket number, promised time, our name), never the sender's words or
the display name they picked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mailbridge.core.authres import authenticates, trusted_results
from mailbridge.core.compose import can_write_address
from mailbridge.core.sender import NO_SENDER

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


# --- the decision --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckFacts:
    """What the decision looks at, gathered for one new ticket and the mail that opened it
    (inbound/acknowledge.ack_facts); plain values only."""

    kind: str  # the verdict's kind
    rules: tuple[str, ...]  # the classification rules that matched
    automated: bool  # the verdict says automated mail
    withheld_by: tuple[str, ...]  # classification rules that withhold an acknowledgement
    address: str  # where the acknowledgement would go: the ticket's requester
    own_addresses: frozenset[str]
    bouncing: str  # why the address gets no automatic mail (it bounces), or ""
    backlog_age: timedelta | None  # mailbox imports old backlog mail unacknowledged: its age
    arrived: datetime  # when the mail arrived (for the backlog check)
    now: datetime
    no_ack_rule: str  # the routing rules that set no_ack, named, or ""
    limits: tuple[tuple[LimitKey, int], ...]  # each limit (limit_keys), with its hour's count
    authenticated: str | None  # how the trusted MTA authenticated the address's domain
    unauthenticated_form: str  # tickets.ack_unauthenticated: "minimal" | "full"


@dataclass(frozen=True, slots=True)
class AckDecision:
    """Send the acknowledgement in full, send it minimal, or skip it: `check` names the
    check that withheld it and `reason` says why, for the ticket's record."""

    form: Literal["full", "minimal", "skip"]
    check: str = ""
    reason: str = ""
    data: Mapping[str, object] = field(default_factory=dict)
    limit: LimitKey | None = None  # the hourly limit that withheld it
    recent: int = 0  # acknowledgements counted under that limit in the last hour
    authenticated: str | None = None  # sent: how the address was authenticated, if it was


AckCheck = Callable[[AckFacts], AckDecision | None]


def decide(facts: AckFacts) -> AckDecision:
    """The first check that withholds the acknowledgement decides; else it is sent, in full
    when the address is authenticated (or the operator chose full for all), else minimal."""
    for check in CHECKS:
        withheld = check(facts)
        if withheld is not None:
            return withheld
    if facts.authenticated is not None:
        return AckDecision(
            "full",
            reason=f"address authenticated by {facts.authenticated}",
            authenticated=facts.authenticated,
        )
    if facts.unauthenticated_form == "full":
        return AckDecision("full", reason="address not authenticated; ack_unauthenticated = full")
    return AckDecision("minimal", reason="address not authenticated")


def _skip(check: str, reason: str, **data: object) -> AckDecision:
    return AckDecision("skip", check, reason, data)


def automated(facts: AckFacts) -> AckDecision | None:
    if facts.automated:
        rules = list(facts.rules)
        return _skip("automated", f"automated mail ({facts.kind}: {', '.join(rules)})", rules=rules)
    if facts.withheld_by:
        rules = list(facts.withheld_by)
        return _skip("classified", f"looks like bulk mail ({', '.join(rules)})", rules=rules)
    return None


def unusable_address(facts: AckFacts) -> AckDecision | None:
    problem = address_problem(facts.address, facts.own_addresses)
    return _skip("unusable_address", problem) if problem else None


def address_problem(address: str, own_addresses: frozenset[str]) -> str:
    """Why no acknowledgement can go to `address` ("" when it can); the database is asked
    about an address (bounces, the ledger) only when it can."""
    if not address:
        return f"no sender address: {NO_SENDER}"
    if "@" not in address:
        return "no usable sender address"
    if address in own_addresses:
        return "sender is one of our own addresses"
    if not can_write_address(address):
        return f"an address no mail can be written to: {address!r}"
    return ""


def bouncing(facts: AckFacts) -> AckDecision | None:
    return _skip("bouncing", facts.bouncing) if facts.bouncing else None


def backlog(facts: AckFacts) -> AckDecision | None:
    """backlog = "import": old mail found at the first connection gets a ticket, no ack."""
    if facts.backlog_age is None or facts.now - facts.arrived <= facts.backlog_age:
        return None
    return _skip(
        "backlog",
        f"backlog: arrived {facts.arrived.isoformat(timespec='minutes')}, "
        f"before the first connection and more than {facts.backlog_age} ago",
    )


def routing_rule(facts: AckFacts) -> AckDecision | None:
    return _skip("rule", f"no_ack: {facts.no_ack_rule}") if facts.no_ack_rule else None


def rate_limits(facts: AckFacts) -> AckDecision | None:
    """The hourly limits, narrowest first: the first one reached withholds it."""
    for key, recent in facts.limits:
        if recent >= key.per_hour:
            return AckDecision(
                "skip",
                "rate_limit",
                f"rate limit: {recent} acknowledgements to this {key.limit} in the last hour",
                {"limit": key.limit, "key": key.key},
                limit=key,
                recent=recent,
            )
    return None


CHECKS: tuple[AckCheck, ...] = (
    automated,
    unusable_address,
    bouncing,
    backlog,
    routing_rule,
    rate_limits,
)
