"""The verdict the mail server's spam filter wrote into a mail's headers, believed only where
our own MTA put it. Pure functions.

SpamAssassin (`X-Spam-Flag`, `X-Spam-Status`), rspamd (`X-Spamd-Result`, `X-Rspamd-Action`,
`X-Spam`, `X-Rspamd-Score`) and Microsoft 365 (`X-MS-Exchange-Organization-SCL`,
`X-Forefront-Antispam-Report`) write their verdicts as plain header fields, and anyone can
write the same fields into a mail before sending it. What a sender writes lies below every
Received line our MTA added, since each hop puts its Received line on top of what it got.

So the trusted hop is the topmost Received field that names one of `[spam] trusted_hosts`
after `by`: that line is ours whatever the sender wrote, as any copy of it the sender
planted lies below it. Every field above it was added after our MTA had the mail. A
verdict field counts when it lies above the trusted hop; of several, the topmost (the
last hop's word). A filter that appends its fields at the end of the header block (a
Postfix milter calling smfi_addheader: rspamd's default, spamass-milter; Exchange Online)
writes below the trusted hop, where position cannot tell its copy from a planted one;
such copies count only with `foreign_removed`, the operator's word that the MTA removes
these fields from arriving mail (Postfix `header_checks`, Exchange's header firewall).
Then the bottom-most copy below the hop counts, as what was appended last. Without a
trusted hop nothing counts. docs/architecture.md, "Spam", and the README say which hop
to name for Postfix with rspamd, spamass-milter or amavis.

Values are read by their grammar, never RFC 2047-decoded, each cut at MAX_VALUE
characters; numbers are plain decimals (no NaN, infinity or exponent). A value that does
not parse proves nothing: garbage is never spam.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from mailbridge.core.message import ParsedMessage
from mailbridge.core.spam import FilterVerdict

__all__ = [
    "VERDICT_HEADERS",
    "VerdictSettings",
    "by_hosts",
    "host_trusted",
    "normalize_host",
    "trusted_hop",
    "trusted_verdict",
]

MAX_VALUE = 4096  # characters of one field read; real verdicts are far shorter
VERDICT_HEADERS = frozenset(
    {
        "x-spam-flag",
        "x-spam-status",
        "x-spam-score",
        "x-spamd-result",
        "x-rspamd-action",
        "x-rspamd-score",
        "x-spam",
        "x-ms-exchange-organization-scl",
        "x-forefront-antispam-report",
    }
)
# rspamd's actions (rspamd.com/doc/configuration/metrics.html); greylist and soft reject
# ask the sender to try again, which says nothing about spam.
SPAM_ACTIONS = frozenset({"add header", "rewrite subject", "reject"})
CLEAN_ACTIONS = frozenset({"no action", "greylist", "soft reject"})
SCL_BYPASSED = -1  # Microsoft: the mail skipped filtering (a transport rule, a safe sender)

_NUMBER = re.compile(r"[+-]?[0-9]{1,9}(?:\.[0-9]{1,9})?")  # ASCII digits; used with fullmatch
_SCL = re.compile(r"-1|[0-9]")
# "default: False [0.84 / 15.00]": the head of X-Spamd-Result, before its first ";".
_SPAMD_HEAD = re.compile(
    r"default\s*:\s*(true|false)\s*\[\s*([^\s/\]]{1,24})\s*/\s*([^\s\]]{1,24})\s*\]", re.I
)
_HOST_STRIP = "()[]<>;,\"'"


class VerdictSettings(Protocol):
    """What trusted_verdict needs of `[spam]`; config.SpamConfig has these attributes."""

    @property
    def headers(self) -> bool: ...
    @property
    def trusted_hosts(self) -> Sequence[str]: ...
    @property
    def score_threshold(self) -> float | None: ...
    @property
    def scl_threshold(self) -> int: ...
    @property
    def foreign_removed(self) -> bool: ...


def trusted_verdict(parsed: ParsedMessage, settings: VerdictSettings) -> FilterVerdict | None:
    """What our filter said of this mail, from the copies of its fields we can trust; None
    when `headers` is off, no trusted hop is found, or no trusted field says anything.
    A source saying spam wins over one saying not (SpamAssassin, rspamd, then Microsoft)."""
    if not settings.headers:
        return None
    fields = list(_fields(parsed))
    hop = trusted_hop(fields, settings.trusted_hosts)
    if hop is None:
        return None
    found = _trusted_copies(fields, hop, below=settings.foreign_removed)
    verdicts = [
        verdict
        for verdict in (
            _spamassassin(found, settings.score_threshold),
            _rspamd(found, settings.score_threshold),
            _exchange(found, settings.scl_threshold),
        )
        if verdict is not None
    ]
    return next((v for v in verdicts if v.spam), verdicts[0] if verdicts else None)


# --- where: the trusted hop ------------------------------------------------------------


def normalize_host(text: str) -> str:
    """A trusted host as compared: "mx.example.org", or "*.example.org" for its subdomains;
    ValueError says what was expected."""
    host = text.strip().lower().rstrip(".")
    name = host.removeprefix("*.")
    if not name or any(c.isspace() or c in _HOST_STRIP or c == "*" for c in name):
        raise ValueError(
            'a host name as our MTA writes it after "by" in its Received header, such as '
            f'"mx.example.org" or "*.prod.outlook.com", not {text!r}'
        )
    return host


def host_trusted(host: str, trusted: Iterable[str]) -> bool:
    """Whether a `by` host is one of the trusted hosts (normalized by normalize_host)."""
    for entry in trusted:
        if entry.startswith("*.") and host.endswith(entry[1:]) or host == entry:
            return True
    return False


def by_hosts(received: str) -> Iterator[str]:
    """Every host a Received value names after the word "by". Each, not just the first:
    a sender's HELO name lands in our MTA's own line before its "by", and a HELO must not
    hide our host. A word in a comment may name a host that is not ours; that only ever
    makes a sender's own line look trusted, and the topmost one is still our MTA's."""
    words = received[:MAX_VALUE].split()
    for word, following in zip(words, words[1:], strict=False):
        if word.lower() == "by":
            host = following.strip(_HOST_STRIP).lower().rstrip(".")
            if host:
                yield host


def trusted_hop(
    fields: Sequence[tuple[str, str | None]], trusted_hosts: Iterable[str]
) -> int | None:
    """The index of the topmost Received field naming a trusted host after "by"."""
    trusted = list(_valid_hosts(trusted_hosts))
    if not trusted:
        return None
    for index, (name, value) in enumerate(fields):
        if name != "received" or value is None:
            continue
        if any(host_trusted(host, trusted) for host in by_hosts(value)):
            return index
    return None


def _valid_hosts(hosts: Iterable[str]) -> Iterator[str]:
    """The hosts normalized; one that is no host name names nothing (config refuses it)."""
    for host in hosts:
        try:
            yield normalize_host(host)
        except ValueError:
            continue


def _fields(parsed: ParsedMessage) -> Iterator[tuple[str, str | None]]:
    """(name, value) top to bottom; value None where parse kept no more values of a name."""
    seen: dict[str, int] = {}
    for name in parsed.header_order:
        count = seen.get(name, 0)
        seen[name] = count + 1
        values = parsed.headers.get(name, ())
        yield name, values[count] if count < len(values) else None


def _trusted_copies(
    fields: Sequence[tuple[str, str | None]], hop: int, *, below: bool
) -> dict[str, str]:
    """Per verdict field, the copy that counts: the topmost above the hop; else, with
    `below`, the bottom-most below it (unread, as past parse's caps: none)."""
    chosen: dict[str, str | None] = {}
    for name, value in fields[:hop]:
        if name in VERDICT_HEADERS and name not in chosen:
            chosen[name] = value
    if below:
        last: dict[str, str | None] = {}
        for name, value in fields[hop + 1 :]:
            if name in VERDICT_HEADERS:
                last[name] = value
        for name, value in last.items():
            chosen.setdefault(name, value)
    return {name: value[:MAX_VALUE] for name, value in chosen.items() if value is not None}


# --- what: each filter's grammar -------------------------------------------------------


def _number(text: str) -> float | None:
    """A plain decimal such as "-1.9" or "12.40"; None for anything else ("nan", "inf",
    "1e999", "7,2", a thousand digits)."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def _pairs(text: str) -> dict[str, str]:
    """The `key=value` words of a value, the first of each key."""
    pairs: dict[str, str] = {}
    for word in text.split():
        key, sign, value = word.partition("=")
        if sign:
            pairs.setdefault(key.lower(), value)
    return pairs


def _yes_no(text: str) -> bool | None:
    word = text.strip().lower()
    return True if word == "yes" else False if word == "no" else None


def _decide(
    said: bool | None, score: float | None, threshold: float | None
) -> tuple[bool, str] | None:
    """(spam, on what it rests): the score against our threshold when both are known,
    else the filter's own yes or no; None when neither is known."""
    if threshold is not None and score is not None:
        return score >= threshold, f"threshold={threshold:g}"
    if said is not None:
        return said, "says spam" if said else "says not spam"
    return None


def _verdict(
    source: str, said: bool | None, score: float | None, threshold: float | None, more: str = ""
) -> FilterVerdict | None:
    decided = _decide(said, score, threshold)
    if decided is None:
        return None
    spam, basis = decided
    scored = f"score={score:g} " if score is not None else ""
    return FilterVerdict(source, spam, score, f"{scored}{more}{basis}")


def _any_yes(*signals: bool | None) -> bool | None:
    """True if any signal says yes, False if some say no and none yes, None if none spoke."""
    known = [s for s in signals if s is not None]
    return any(known) if known else None


def _spamassassin(found: Mapping[str, str], threshold: float | None) -> FilterVerdict | None:
    """`X-Spam-Flag: YES` and `X-Spam-Status: Yes, score=7.2 required=5.0 tests=...`
    (amavis: `tagged_above=... required=6.31 tests=[...]`, `X-Spam-Score: 7.2`)."""
    status_said, score, required = None, None, None
    status = found.get("x-spam-status")
    if status is not None:
        head, _, rest = status.partition(",")
        status_said = _yes_no(head)
        pairs = _pairs(rest)
        score = _number(pairs.get("score", pairs.get("hits", "")))
        required = _number(pairs.get("required", ""))
    if score is None:
        score = _number(found.get("x-spam-score", ""))
    said = _any_yes(status_said, _yes_no(found.get("x-spam-flag", "")))
    more = f"required={required:g} " if required is not None else ""
    return _verdict("spamassassin", said, score, threshold, more)


def _rspamd(found: Mapping[str, str], threshold: float | None) -> FilterVerdict | None:
    """`X-Spamd-Result: default: False [12.40 / 15.00]; SYMBOL(1.00)[...]; ...` (True only
    when the action is reject), `X-Rspamd-Action: add header`, `X-Spam: Yes` (written
    only for spam), `X-Rspamd-Score: 12.4`."""
    result_said, score, rejects_at = None, None, None
    result = found.get("x-spamd-result")
    if result is not None:
        head = _SPAMD_HEAD.fullmatch(result.partition(";")[0].strip())
        if head is not None:
            result_said = head[1].lower() == "true" or None  # False: below reject only
            score, rejects_at = _number(head[2]), _number(head[3])
    if score is None:
        score = _number(found.get("x-rspamd-score", ""))
    action = " ".join(found.get("x-rspamd-action", "").lower().split())
    action_said = True if action in SPAM_ACTIONS else False if action in CLEAN_ACTIONS else None
    flag_said = True if _yes_no(found.get("x-spam", "")) else None
    said = _any_yes(result_said, action_said, flag_said)
    more = f"action={action} " if action_said is not None else ""
    more += f"reject={rejects_at:g} " if rejects_at is not None else ""
    return _verdict("rspamd", said, score, threshold, more)


def _scl(text: str) -> int | None:
    text = text.strip()
    return int(text) if _SCL.fullmatch(text) else None


def _exchange(found: Mapping[str, str], scl_threshold: int) -> FilterVerdict | None:
    """`X-MS-Exchange-Organization-SCL: 5`, else the `SCL:` item of
    `X-Forefront-Antispam-Report: CIP:...;CTRY:...;SCL:5;SRV:;...`. SCL -1 means the mail
    bypassed filtering (a transport rule or a safe sender): never spam."""
    scl = _scl(found.get("x-ms-exchange-organization-scl", ""))
    if scl is None:
        for item in found.get("x-forefront-antispam-report", "").split(";"):
            key, _, value = item.partition(":")
            if key.strip().upper() == "SCL":
                scl = _scl(value)
                break
    if scl is None:
        return None
    if scl == SCL_BYPASSED:
        return FilterVerdict("exchange", False, float(scl), "SCL=-1 bypassed filtering")
    return FilterVerdict(
        "exchange", scl >= scl_threshold, float(scl), f"SCL={scl} threshold={scl_threshold}"
    )
