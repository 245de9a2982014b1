"""The smaller sections of the configuration file: [database], [faq], [rules], [templates],
[staff], [digest], [reports], [tickets], [service], [retention] and [spam].
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailbridge.config.values import ByteSize, Duration, _Section, is_loopback, parse_listen
from mailbridge.core.compose import can_write_address
from mailbridge.core.faq import SOLVED_PHRASES
from mailbridge.core.sla import parse_duration
from mailbridge.core.spam import normalize_pattern
from mailbridge.core.spam_headers import normalize_host
from mailbridge.core.weekly_report import WeeklyMoment, parse_weekly_on


class DatabaseConfig(_Section):
    url: str | None = None  # None: a SQLite file in service.data_dir
    auto_migrate: bool | None = None  # None: true for SQLite, false otherwise
    echo: bool = False
    # PostgreSQL: "narrow" turns per mailbox and conversation (db/turn.py); "single", one
    # processing batch at a time in the whole cluster, as before (for comparison).
    processing_turn: Literal["narrow", "single"] = "narrow"


class FaqConfig(_Section):
    """Answers offered in the acknowledgement: one Markdown file per entry in `dir`."""

    dir: Path | None = None  # None: no suggestions; relative paths: to the config file
    suggestions: int = Field(default=3, ge=1, le=3)  # at most this many in one reply
    threshold: float | None = Field(default=None, gt=0, lt=1)  # None: the tuned default
    # A question sharing no word with any entry is ranked on meaning: "lexicon" (concepts
    # shipped with mailbridge), "model" (a sentence-embedding model at `model`) or "off".
    semantic: Literal["off", "lexicon", "model"] = "lexicon"
    model: Path | None = None  # a sentence-transformers model folder; relative: to the file
    # A short customer reply saying one of these (not negated) resolves the ticket.
    solved_phrases: tuple[str, ...] = SOLVED_PHRASES
    # Where `#faq save "Title"` puts the draft entries staff make from their answers, for
    # an operator to review and move into `dir`. None: <service.data_dir>/faq-drafts, which
    # the daemon may write under systemd (the configuration's folder is read-only there).
    # Relative paths: to the config file.
    drafts_dir: Path | None = None


class RulesConfig(_Section):
    """Rule files evaluated before the configuration's own [[rule]] tables."""

    include: tuple[Path, ...] = ()  # relative paths: to the config file


class TemplatesConfig(_Section):
    dir: Path | None = None  # None: the templates shipped with mailbridge
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    company: str = "Support"


class StaffConfig(_Section):
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    team_address: str | None = None
    escalation_address: str | None = None
    # Key of the reply tokens in notification Reply-To addresses. None: a random key kept
    # in service.data_dir (set one here when several instances share a database).
    secret_env: str | None = None
    secret_file: Path | None = None
    secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    # authserv-id of the MTA whose Authentication-Results header is trusted as proof.
    trusted_authserv_id: str | None = None
    # How long the reply address of a notification stays good for its ticket.
    token_lifetime: Duration = timedelta(days=30)
    # Lines that open a staff signature (regular expressions); "-- " always does.
    signature_patterns: tuple[str, ...] = ()
    # Customer attachments ride along in notifications up to this total; larger ones are
    # listed with their size instead.
    notification_attachment_limit: ByteSize = 10_000_000
    digest_articles: int = Field(default=3, ge=0, le=20)
    # A staff reply to a ticket that changed after the mail it answers (another staff
    # answer, a newer customer message): "hold" keeps it as a draft and asks, "warn"
    # relays it and says what changed, "off" relays it (core/collision.py).
    collision: Literal["hold", "warn", "off"] = "hold"

    @field_validator("addresses", "domains")
    @classmethod
    def _lower(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().lower() for v in values)

    @field_validator("signature_patterns")
    @classmethod
    def _patterns_compile(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"a regular expression; {value!r}: {exc}") from None
        return values

    @model_validator(mode="after")
    def _one_secret_source(self) -> StaffConfig:
        if self.secret_env and self.secret_file:
            raise ValueError("give secret_env or secret_file, not both")
        return self


def _wait_duration(value: object) -> timedelta:
    """A duration, or 0 ("0") for off."""
    return timedelta(0) if value in (0, "0") else parse_duration(value)


WaitDuration = Annotated[timedelta, BeforeValidator(_wait_duration)]


class QueueTickets(_Section):
    """[tickets.queues.NAME]: what differs for the tickets of one queue; a key left out
    keeps the [tickets] value, 0 turns it off."""

    remind_after: WaitDuration | None = None
    close_after: WaitDuration | None = None
    # The named [[calendar]] of this queue's tickets, before their mailbox's; None: theirs.
    calendar: str | None = None


class DigestConfig(_Section):
    """The daily digest of each staff member's queue (inbound/digest.py). Without a
    [digest] section nobody gets one; with it, each staff address and the team address get
    theirs at `hour` (local time in [calendar] timezone) on business days."""

    hour: int = Field(default=8, ge=0, le=23)


class ReportsConfig(_Section):
    """[reports]: the weekly report by mail (reports/weekly.py), sent to `weekly_to` each
    week at `weekly_on` (in [calendar] timezone), in `language` (default: [templates]
    language when it is en or it, else en); also the language of `report --html`."""

    weekly_to: tuple[str, ...] = ()  # empty: no weekly mail
    weekly_on: str = "mon 08:00"
    language: Literal["en", "it"] | None = None

    @field_validator("weekly_to", mode="before")
    @classmethod
    def _listed(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("weekly_to")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if "@" not in value or not can_write_address(value.strip()):
                raise ValueError(f"addresses like lead@example.com, not {value!r}")
        return tuple(dict.fromkeys(v.strip().lower() for v in values))

    @field_validator("weekly_on")
    @classmethod
    def _moment(cls, value: str) -> str:
        parse_weekly_on(value)
        return value

    @property
    def weekly_moment(self) -> WeeklyMoment:
        return parse_weekly_on(self.weekly_on)


PARSE_TIMEOUT_FLOOR, PARSE_TIMEOUT_CEILING = timedelta(seconds=1), timedelta(seconds=60)
PARSE_MEMORY_FLOOR = 100_000_000  # the parser's own structures for a large mail need this
PARSE_WORKERS_CEILING = 32


def _parse_workers(value: object) -> object:
    if value == "auto" or (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value <= PARSE_WORKERS_CEILING
    ):
        return value
    raise ValueError(f'"auto" or a number of processes from 1 to {PARSE_WORKERS_CEILING}')


ParseWorkers = Annotated[int | Literal["auto"], BeforeValidator(_parse_workers)]


class TicketsConfig(_Section):
    tag_prefix: str = Field(default="#", pattern=r"^[A-Za-z#-]{1,16}$")
    number_start: int = Field(default=1000, ge=1)
    message_id_domain: str | None = None  # None: the domain of smtp.from
    ack_limit_per_hour: int = Field(default=5, ge=0)  # per exact address
    ack_domain_limit_per_hour: int = Field(default=20, ge=0)  # per domain of the address
    ack_mailbox_limit_per_hour: int = Field(default=200, ge=0)  # per mailbox, all senders
    # To an address the trusted MTA did not authenticate: "minimal" repeats nothing the
    # sender wrote (no subject, excerpt, FAQ answers or name); "full" is the whole template.
    ack_unauthenticated: Literal["minimal", "full"] = "minimal"
    max_attempts: int = Field(default=5, ge=1)  # processing attempts before quarantine
    # A customer writing to a resolved or closed ticket reopens it within this window;
    # later mail starts a new ticket that links the old one.
    reopen_window: Duration = timedelta(days=30)
    # How long the "solved? yes / no" links of a resolution mail work (core/rating.py);
    # `close_after`, when configured, takes its place (tickets/rating.py).
    rating_lifetime: Duration = timedelta(days=7)
    # Parts over these sizes are listed on the ticket as skipped, never silently dropped;
    # the raw message keeps every byte either way.
    max_attachment_size: ByteSize | None = 25_000_000
    max_message_size: ByteSize | None = 50_000_000
    # Each message is parsed in a worker process under this budget; one over it is stopped
    # and quarantined at once. It holds the processing turn meanwhile, so the ceiling keeps
    # a hostile message from holding up the rest for long.
    parse_timeout: Duration = timedelta(seconds=10)
    parse_memory: ByteSize = 1_000_000_000  # beyond what the worker holds before a message
    # Worker processes parsing a backlog at once (each under the budget above); "auto": one
    # per processor this process may use, at most 8. A few messages at a time go to one.
    parse_workers: ParseWorkers = "auto"
    # A ticket waiting on the customer gets a reminder this long after the staff answer,
    # then closes itself this long after the reminder (business days on a business-hours
    # policy; 0: off). core/waiting.py, tickets/waiting.py.
    remind_after: WaitDuration = timedelta(0)
    close_after: WaitDuration = timedelta(0)
    # Only an answer whose last line asks a question leaves the ticket waiting on the
    # customer; any other answer leaves it open (for us to resolve or #pending).
    wait_after_question: bool = False
    queues: dict[str, QueueTickets] = Field(default_factory=dict)

    def waiting_times(self, queue: str) -> tuple[timedelta, timedelta]:
        """(remind_after, close_after) for a ticket in `queue`; zero means off."""
        own = self.queues.get(queue, QueueTickets())
        remind = self.remind_after if own.remind_after is None else own.remind_after
        close = self.close_after if own.close_after is None else own.close_after
        return remind, close

    @field_validator("parse_timeout")
    @classmethod
    def _parse_timeout_range(cls, value: timedelta) -> timedelta:
        if not PARSE_TIMEOUT_FLOOR <= value <= PARSE_TIMEOUT_CEILING:
            raise ValueError("a duration from 1s to 60s")
        return value

    @field_validator("parse_memory")
    @classmethod
    def _parse_memory_floor(cls, value: int) -> int:
        if value < PARSE_MEMORY_FLOOR:
            raise ValueError("a size of at least 100MB")
        return value


TAKEOVER_FLOOR = timedelta(seconds=3)


class ServiceConfig(_Section):
    data_dir: Path | None = None  # None: $STATE_DIRECTORY under systemd, else ./var
    # /healthz and /metrics answer whoever reaches them (mailbox names, counts, errors): an
    # address other hosts can reach needs this said explicitly. Before listen, which reads it.
    listen_public: bool = False
    listen: str | None = None  # "127.0.0.1:9187": serve /healthz and /metrics there
    log_format: Literal["text", "json"] = "text"
    sweep_interval: Duration = timedelta(seconds=30)
    outbox_interval: Duration = timedelta(seconds=10)
    # Several instances on one database: how long a mailbox stays with an instance that
    # stopped renewing its lease before another takes it over. Renewed every third of it.
    takeover_after: Duration = timedelta(seconds=30)

    @field_validator("takeover_after")
    @classmethod
    def _takeover_floor(cls, value: timedelta) -> timedelta:
        # Below this, a database that answers slowly for a moment would move mailboxes.
        if value < TAKEOVER_FLOOR:
            raise ValueError("a duration of at least 3s")
        return value

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        host, _port = parse_listen(value)
        if not is_loopback(host) and info.data.get("listen_public") is not True:
            raise ValueError(
                f'a loopback address like "127.0.0.1:9187" or "[::1]:9187": other hosts can '
                f"reach {host}, so serving /healthz and /metrics there needs listen_public = "
                f"true as well"
            )
        return value

    @property
    def listen_address(self) -> tuple[str, int] | None:
        return parse_listen(self.listen) if self.listen else None


PurgeKind = Literal["raw", "attachments", "outbox", "html", "text"]


class RetentionConfig(_Section):
    """What is removed from tickets closed longer ago than purge_after, and whose whole
    content goes after erase_content_after; the ticket, its articles' metadata and its
    audit events always stay."""

    purge_after: Duration | None = None  # None: keep everything
    # raw: received mail as it arrived; attachments: their bytes (name, size and hash stay);
    # outbox: sent mail as it was sent; html: articles' HTML bodies; text: articles' text.
    purge: tuple[PurgeKind, ...] = ("raw", "attachments", "outbox")
    # Subjects, texts, attachments (names too), raw and sent mail, the text of audit
    # events: all of it, as a customer erasure does, but who wrote stays (tickets/erasure.py).
    erase_content_after: Duration | None = None  # None: keep the content
    interval: Duration = timedelta(hours=6)  # how often the daemon purges

    @field_validator("purge_after", "erase_content_after")
    @classmethod
    def _at_least_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(days=1):
            raise ValueError("a duration of at least 1d (or none, to keep everything)")
        return value

    @property
    def anything(self) -> bool:
        """Whether the policy removes anything at all."""
        return self.purge_after is not None or self.erase_content_after is not None

    @field_validator("interval")
    @classmethod
    def _sensible_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a duration of at least 1m")
        return value


SpamAction = Literal["spam", "ignore"]


def _pattern(value: object) -> object:
    """A block or allow pattern, normalized as core/spam.py compares them."""
    if not isinstance(value, str):
        return value
    try:
        return normalize_pattern(value)
    except ValueError as exc:  # its message says "expected …"; the error report says it too
        raise ValueError(str(exc).removeprefix("expected ")) from None


def _listed(value: object) -> object:
    return [value] if isinstance(value, str) else value


SenderPatterns = Annotated[
    tuple[Annotated[str, BeforeValidator(_pattern)], ...], BeforeValidator(_listed)
]


class SpamConfig(_Section):
    """[spam]: which mail is spam and what becomes of it (core/spam.py, docs/architecture.md
    "Spam"). The allowlist beats the blocklist, which beats the filter's verdict."""

    # Read the verdict the mail server's filter wrote (SpamAssassin, rspamd, Microsoft 365)
    # from its headers; only headers above the trusted hop count (core/spam_headers.py).
    headers: bool = False
    # The host names our own MTA writes as `by` in its Received header ("*.example.org":
    # any subdomain): the topmost Received naming one is the trusted hop.
    trusted_hosts: tuple[str, ...] = Field(default=(), validate_default=True)
    # Our MTA removes the filters' headers from arriving mail (Postfix header_checks,
    # Exchange's header firewall): then a copy below the trusted hop counts too, as a
    # filter that appends its headers at the end (a Postfix milter) writes them there.
    foreign_removed: bool = False
    # A score at or above this is spam; None: the filter's own yes or no.
    score_threshold: float | None = Field(default=None, allow_inf_nan=False)
    scl_threshold: int = Field(default=5, ge=0, le=9)  # Microsoft's spam confidence level
    block: SenderPatterns = ()
    allow: SenderPatterns = ()
    # Files of more `block` and `allow` (SenderListFile); relative: to the config file.
    include: tuple[Path, ...] = ()
    # What becomes of spam: a `spam` ticket (no acknowledgement, notification or deadline,
    # purged after purge_after), or stored and ignored (`ignored list`).
    action: SpamAction = "spam"
    purge_after: Duration = timedelta(days=30)

    @field_validator("purge_after")
    @classmethod
    def _at_least_a_day(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=1):
            raise ValueError("a duration of at least 1d")
        return value

    @field_validator("trusted_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(normalize_host(v) if isinstance(v, str) else v for v in value)
        return value

    @field_validator("trusted_hosts")
    @classmethod
    def _hosts_for_headers(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("headers") and not value:
            raise ValueError(
                "at least one host name when headers = true: the host our MTA writes after "
                '"by" in its Received header, such as ["mx.example.org"]; only verdict '
                'headers above that hop are trusted (README, "Spam")'
            )
        return value


class SenderListFile(_Section):
    """A file `[spam] include` names: more `block` and `allow` patterns, and nothing else."""

    block: SenderPatterns = ()
    allow: SenderPatterns = ()
