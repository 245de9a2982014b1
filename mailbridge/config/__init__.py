"""The configuration file: one TOML document validated by pydantic, read once and passed down.

Errors name the file, the key path and what was expected. Secrets are resolved here from
`password_env` / `password_file` into `SecretStr`, so they never print by accident.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailbridge.core.business_hours import BusinessCalendar
from mailbridge.core.faq import SOLVED_PHRASES
from mailbridge.core.rules import Rule, RuleError, compile_rules
from mailbridge.core.sla import DURATION_UNITS, Step, number_steps, parse_duration
from mailbridge.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CONFIG_NAME = "mailbridge.toml"
CONFIG_ENV = "MAILBRIDGE_CONFIG"

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def parse_size(value: object) -> int:
    """'25MB', '500KB', '2GB' (or a number of bytes) as bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").upper()]
    raise ValueError("a size like 500KB, 25MB or 1GB")


ByteSize = Annotated[int, BeforeValidator(parse_size)]
Security = Literal["tls", "starttls", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Credentials(_Section):
    """A login whose password comes from an environment variable or a file, never inline;
    or, with auth = "oauth2", an OAuth2 sign-in described by its `oauth2` table."""

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Config | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "no inline password: use password_env or password_file (inline secrets leak "
                "through backups and version control)"
            )
        return data

    @model_validator(mode="after")
    def _one_secret_source(self) -> _Credentials:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        if self.auth == "oauth2":
            if self.oauth2 is None:
                raise ValueError('an oauth2 table (provider, client_id, ...) with auth = "oauth2"')
            if self.password_env or self.password_file:
                raise ValueError(
                    'no password_env or password_file with auth = "oauth2": it '
                    "signs in without a password"
                )
        elif self.oauth2 is not None:
            raise ValueError(
                'auth = "oauth2" with an oauth2 table (or no oauth2 table, to '
                "log in with a password)"
            )
        return self


class DatabaseConfig(_Section):
    url: str | None = None  # None: a SQLite file in service.data_dir
    auto_migrate: bool | None = None  # None: true for SQLite, false otherwise
    echo: bool = False


_LOOPBACK_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$)")
_TENANTS_FOR_PEOPLE = ("common", "organizations", "consumers")


def _endpoint_url(value: str | None) -> str | None:
    if value is not None and not (value.startswith("https://") or _LOOPBACK_HTTP.match(value)):
        raise ValueError("an https:// URL (plain http:// only to 127.0.0.1 or localhost)")
    return value


EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]


class OAuth2Config(_Section):
    """How a mailbox, or the SMTP login, signs in with OAuth2 (auth = "oauth2").

    The refresh token lives in the data directory (`mailbridge oauth login`), never here.
    [smtp.oauth2] may instead name a mailbox (`mailbox = "support"`) whose sign-in it
    shares: one consent then covers IMAP and SMTP.
    """

    provider: Literal["microsoft", "google", "generic"] | None = None
    client_id: str | None = Field(default=None, min_length=1)
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    client_secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    tenant: str | None = None  # Microsoft: the directory (tenant id or domain)
    # None: authorization_code for Google (its device flow refuses the Gmail scope), else
    # device. client_credentials: the app's own permission, no person signs in.
    flow: Literal["device", "authorization_code", "client_credentials"] | None = None
    scopes: tuple[str, ...] | None = None  # None: what IMAP and SMTP need at this provider
    token_url: EndpointUrl | None = None  # required for generic; overrides for the others
    device_authorization_url: EndpointUrl | None = None
    authorization_url: EndpointUrl | None = None
    # Where the browser is sent back after an authorization-code sign-in; nothing needs to
    # listen there: the operator pastes the address the browser ends up at.
    redirect_uri: str = "http://127.0.0.1:8400/"
    mailbox: str | None = None  # [smtp.oauth2] only: share this mailbox's sign-in

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_secret" in data:
            raise ValueError("no inline client_secret: use client_secret_env or client_secret_file")
        return data

    @model_validator(mode="after")
    def _complete(self) -> OAuth2Config:
        if self.mailbox is not None:
            extra = sorted(self.model_fields_set - {"mailbox"})
            if extra:
                raise ValueError(
                    f"no other key beside mailbox = {self.mailbox!r} (the "
                    f"sign-in is that mailbox's): leave out {', '.join(extra)}"
                )
            return self
        if self.provider is None or self.client_id is None:
            raise ValueError("provider (microsoft, google or generic) and client_id")
        if self.client_secret_env and self.client_secret_file:
            raise ValueError("give client_secret_env or client_secret_file, not both")
        if self.tenant is not None and self.provider != "microsoft":
            raise ValueError('no tenant: it is for provider = "microsoft" only')
        self._check_flow()
        return self

    def _check_flow(self) -> None:
        flow, has_secret = (
            self.effective_flow,
            bool(self.client_secret_env or self.client_secret_file),
        )
        if self.provider == "generic":
            if self.token_url is None:
                raise ValueError('token_url for provider = "generic"')
            needed = {
                "device": "device_authorization_url",
                "authorization_code": "authorization_url",
            }.get(flow)
            if needed and getattr(self, needed) is None:
                raise ValueError(f'{needed} for provider = "generic" with flow = "{flow}"')
        if self.provider == "google":
            if flow == "client_credentials":
                raise ValueError(
                    'flow "authorization_code" for Google: it has no client credentials for Gmail'
                )
            if not has_secret:
                raise ValueError(
                    "client_secret_env or client_secret_file: Google's token "
                    "endpoint wants the client's secret even for installed apps"
                )
        if flow == "client_credentials":
            if not has_secret:
                raise ValueError(
                    'client_secret_env or client_secret_file with flow = "client_credentials"'
                )
            if self.provider == "microsoft" and self.effective_tenant in _TENANTS_FOR_PEOPLE:
                raise ValueError(
                    "tenant set to the directory's id or domain with flow = "
                    '"client_credentials" (not common or organizations)'
                )

    @property
    def effective_flow(self) -> Literal["device", "authorization_code", "client_credentials"]:
        if self.flow is not None:
            return self.flow
        return "authorization_code" if self.provider == "google" else "device"

    @property
    def effective_tenant(self) -> str:
        return self.tenant or "organizations"


class MailboxConfig(_Credentials):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "tls"
    username: str
    folder: str = "INBOX"
    after: Literal["move", "flag", "delete", "keep"] = "move"
    processed_folder: str = "Processed"
    poll_interval: Duration = timedelta(seconds=60)
    batch_size: int = Field(default=200, ge=1, le=1000)
    # Mail already waiting at the first connection: acknowledge it all, import it without
    # acknowledging what is older than backlog_age, or skip it and start from the newest.
    backlog: Literal["acknowledge", "import", "skip"] = "import"
    backlog_age: Duration = timedelta(hours=24)
    language: str | None = None  # default language of replies; None: templates.language
    queue: str | None = None  # None: the mailbox name
    # How staff answer: "relay" (they reply to notifications, mailbridge sends to the
    # customer) or "observe" (they answer from this account; its sent_folder is watched).
    staff_mode: Literal["relay", "observe"] = "relay"
    sent_folder: str = "Sent"
    _sent_view: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _own_sign_in(self) -> MailboxConfig:
        if self.oauth2 is not None and self.oauth2.mailbox is not None:
            raise ValueError("oauth2.mailbox only in [smtp.oauth2]: a mailbox signs in itself")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @property
    def effective_queue(self) -> str:
        return self.queue or self.name

    def sources(self) -> list[MailboxConfig]:
        """The folders to watch: the inbox, and in observe mode the Sent folder as a
        read-only source (never moved or flagged; only mail sent after the first look)."""
        if self.staff_mode != "observe" or self.sent_folder == self.folder:
            return [self]
        view = self.model_copy(
            update={"folder": self.sent_folder, "after": "keep", "backlog": "skip"}
        )
        view._sent_view = True
        return [self, view]

    @property
    def source_name(self) -> str:
        """Names a watched folder in logs and health: "support", "support (Sent)"."""
        return f"{self.name} ({self.folder})" if self._sent_view else self.name

    def observes_sent(self, folder: str) -> bool:
        return self.staff_mode == "observe" and folder == self.sent_folder != self.folder


class SmtpConfig(_Credentials):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "starttls"
    from_: str = Field(alias="from")
    timeout: Duration = timedelta(seconds=30)
    # Temporary failures are retried with growing, jittered pauses until the mail is this
    # old (or has had max_attempts tries, when set); then it is `failed`.
    give_up_after: Duration = timedelta(days=2)
    max_attempts: int | None = Field(default=None, ge=1)
    # The envelope sender, where bounces go; None: the address of `from`. It must lead to
    # one of the [[mailbox]] folders, or bounces are never seen.
    bounce_address: str | None = Field(default=None, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # A per-mail envelope sender, bounce_address with "+b<outbox id>-<check>", so a bounce
    # names the exact mail; the mail server must deliver plus-addresses to the base one.
    verp: bool = True

    @model_validator(mode="after")
    def _oauth_user(self) -> SmtpConfig:
        if self.oauth2 is not None and self.oauth2.mailbox is None and not self.username:
            raise ValueError('username (the account that signs in) with auth = "oauth2"')
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class FaqConfig(_Section):
    """Answers offered in the acknowledgement: one Markdown file per entry in `dir`."""

    dir: Path | None = None  # None: no suggestions; relative paths: to the config file
    suggestions: int = Field(default=3, ge=1, le=3)  # at most this many in one reply
    threshold: float | None = Field(default=None, gt=0, lt=1)  # None: the tuned default
    # A short customer reply saying one of these (not negated) resolves the ticket.
    solved_phrases: tuple[str, ...] = SOLVED_PHRASES


class RulesConfig(_Section):
    """Rule files evaluated before the configuration's own [[rule]] tables."""

    include: tuple[Path, ...] = ()  # relative paths: to the config file


class TemplatesConfig(_Section):
    dir: Path | None = None  # None: the templates shipped with mailbridge
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    company: str = "Support"


_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d+)\s*(s|m|h|d|w)?\s*$")


def parse_offset(value: object) -> timedelta:
    """'-1h' (before), '0' (at), '+4h' (after) a deadline, as a signed timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _OFFSET.match(value)
        if match and (match.group(3) or int(match.group(2)) == 0):
            size = timedelta(**{DURATION_UNITS[match.group(3) or "s"]: int(match.group(2))})
            return -size if match.group(1) == "-" else size
    raise ValueError("an offset from the deadline like -1h (before), 0 (at) or +4h (after)")


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]
Priority = Literal["low", "normal", "high", "urgent"]  # lowest first, as core.sla.PRIORITIES
EmailAddress = Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]


class EscalationLevel(_Section):
    """A warning (before the deadline) or an escalation level (at or after it)."""

    at: Offset = timedelta(0)
    deadline: Literal["first_response", "resolution"] = "first_response"
    # None: staff.team_address for a warning, staff.escalation_address for a level.
    notify: EmailAddress | None = None
    raise_priority: Priority | None = None


class ChaserPolicy(_Section):
    """What a customer writing again to a ticket still waiting for us does."""

    raise_priority: Priority | None = None
    # The pending deadline moves to at most this far from the chaser (same clock as the
    # policy); None leaves it where it is.
    shorten_to: Duration | None = None


# Without levels, a policy escalates once, when the first response is late.
DEFAULT_LEVELS = (EscalationLevel(),)


class SlaPolicy(_Section):
    name: str
    first_response: Duration
    resolution: Duration
    business_hours: bool = False
    mailboxes: tuple[str, ...] = ()  # match keys: empty matches every mailbox
    queues: tuple[str, ...] = ()
    priorities: tuple[Priority, ...] = ()
    levels: tuple[EscalationLevel, ...] = ()
    chaser: ChaserPolicy = ChaserPolicy()

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, levels: tuple[EscalationLevel, ...]) -> tuple[EscalationLevel, ...]:
        seen = set()
        for level in levels:
            if (level.deadline, level.at) in seen:
                sign = "-" if level.at < timedelta(0) else "+"
                raise ValueError(
                    f"one level per moment, but two are at {sign}{abs(level.at)} "
                    f"from {level.deadline}"
                )
            seen.add((level.deadline, level.at))
        return levels

    @property
    def is_default(self) -> bool:
        return not self.mailboxes and not self.priorities and not self.queues

    @property
    def steps(self) -> tuple[Step, ...]:
        return number_steps(self.levels or DEFAULT_LEVELS)


WEEKDAY_HOURS: dict[str, tuple[str, ...]] = {
    day: ("09:00-18:00",) for day in ("mon", "tue", "wed", "thu", "fri")
}
HOLIDAY_YEARS_BEFORE, HOLIDAY_YEARS_AFTER = 1, 3  # around the year a deadline starts in


class CalendarConfig(_Section):
    timezone: str = "UTC"
    # Opening hours per weekday, several intervals a day; days not named are closed.
    hours: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(WEEKDAY_HOURS))
    holidays: str | None = None  # country code of the `holidays` package, e.g. "IT"
    subdivision: str | None = None  # e.g. a province ("RM") with its own patron saint day
    closed: tuple[date, ...] = ()  # extra closed dates
    _calendars: dict[int, BusinessCalendar] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"an IANA time zone like Europe/Rome, not {value!r}") from None
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        try:
            BusinessCalendar.parse("UTC", value)
        except ValueError as exc:
            raise ValueError(
                f'opening hours like mon = ["09:00-13:00", "14:00-18:00"] ({exc})'
            ) from None
        return value

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value.upper() not in holidays.list_supported_countries():
            raise ValueError(
                f"a country code of the holidays package, like IT, DE or US, not {value!r}"
            )
        return value.upper() if value else None

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        country = info.data.get("holidays")
        if not country:
            raise ValueError("no subdivision without a holidays country")
        known = holidays.list_supported_countries()[country]
        if value.upper() not in known:
            raise ValueError(
                f"a subdivision of {country} ({', '.join(known[:8])}, …), not {value!r}"
            )
        return value.upper()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def business_calendar(self, year: int) -> BusinessCalendar:
        """Opening hours, closed on public holidays and the extra dates, good for deadlines
        that start in `year` (holidays from the year before to three years after)."""
        calendar = self._calendars.get(year)
        if calendar is None:
            closed = set(self.closed)
            if self.holidays:
                years = range(year - HOLIDAY_YEARS_BEFORE, year + HOLIDAY_YEARS_AFTER + 1)
                closed.update(
                    holidays.country_holidays(self.holidays, subdiv=self.subdivision, years=years)
                )
            calendar = BusinessCalendar.parse(self.timezone, self.hours, closed)
            self._calendars[year] = calendar
        return calendar


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


PARSE_TIMEOUT_FLOOR, PARSE_TIMEOUT_CEILING = timedelta(seconds=1), timedelta(seconds=60)
PARSE_MEMORY_FLOOR = 100_000_000  # the parser's own structures for a large mail need this


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
    # Parts over these sizes are listed on the ticket as skipped, never silently dropped;
    # the raw message keeps every byte either way.
    max_attachment_size: ByteSize | None = 25_000_000
    max_message_size: ByteSize | None = 50_000_000
    # Each message is parsed in a worker process under this budget; one over it is stopped
    # and quarantined at once. It holds the processing turn meanwhile, so the ceiling keeps
    # a hostile message from holding up the rest for long.
    parse_timeout: Duration = timedelta(seconds=10)
    parse_memory: ByteSize = 1_000_000_000  # beyond what the worker holds before a message

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


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})$")


def is_loopback(host: str) -> bool:
    """Only this machine can reach host: localhost or a loopback IP (127.0.0.0/8, ::1).
    A host name other than localhost may resolve to anything, so it is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9187" or "[::1]:9187" as (host, port)."""
    match = _LISTEN.match(value.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError('an address like "127.0.0.1:9187" or "[::1]:9187"')
    return match["v6"] or match["host"], int(match["port"])


PurgeKind = Literal["raw", "attachments", "outbox", "html", "text"]


class RetentionConfig(_Section):
    """What is removed from tickets closed longer ago than purge_after; the ticket, its
    articles' metadata and its audit events always stay."""

    purge_after: Duration | None = None  # None: keep everything
    # raw: received mail as it arrived; attachments: their bytes (name, size and hash stay);
    # outbox: sent mail as it was sent; html: articles' HTML bodies; text: articles' text.
    purge: tuple[PurgeKind, ...] = ("raw", "attachments", "outbox")
    interval: Duration = timedelta(hours=6)  # how often the daemon purges

    @field_validator("purge_after")
    @classmethod
    def _at_least_a_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(days=1):
            raise ValueError("a duration of at least 1d (or no purge_after, to keep everything)")
        return value

    @field_validator("interval")
    @classmethod
    def _sensible_interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("a duration of at least 1m")
        return value


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    mailbox: tuple[MailboxConfig, ...] = Field(min_length=1)
    smtp: SmtpConfig
    templates: TemplatesConfig = TemplatesConfig()
    sla: tuple[SlaPolicy, ...] = Field(min_length=1)
    calendar: CalendarConfig = CalendarConfig()
    staff: StaffConfig = StaffConfig()
    tickets: TicketsConfig = TicketsConfig()
    service: ServiceConfig = ServiceConfig()
    retention: RetentionConfig = RetentionConfig()
    faq: FaqConfig = FaqConfig()
    rules: RulesConfig = RulesConfig()
    # Routing rules as written; compiled (and checked) into `routing` by config_from_dict.
    rule: tuple[dict[str, Any], ...] = ()
    source: Path = Field(default=Path("<memory>"), exclude=True)
    _routing: tuple[Rule, ...] = PrivateAttr(default=())

    @property
    def routing(self) -> tuple[Rule, ...]:
        """The compiled rules: those of `[rules] include` files first, then `[[rule]]`."""
        return self._routing

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [m.name for m in self.mailbox]
        if len(set(names)) != len(names):
            raise ValueError("mailbox names must be unique")
        if not any(policy.is_default for policy in self.sla):
            raise ValueError("one [[sla]] policy must have no match keys: it is the default")
        return self

    @property
    def data_dir(self) -> Path:
        if self.service.data_dir is not None:
            return self.service.data_dir
        state = os.environ.get("STATE_DIRECTORY")
        return Path(state.split(":")[0]) if state else Path("var")

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'mailbridge.db'}"

    @property
    def auto_migrate(self) -> bool:
        if self.database.auto_migrate is not None:
            return self.database.auto_migrate
        return self.database_url.startswith("sqlite")

    def mailbox_named(self, name: str) -> MailboxConfig:
        for mailbox in self.mailbox:
            if mailbox.name == name:
                return mailbox
        raise KeyError(name)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, else $MAILBRIDGE_CONFIG, else ./mailbridge.toml."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def load_config(path: Path, environ: os._Environ[str] | dict[str, str] | None = None) -> Config:
    """Read, validate and resolve secrets; raises ConfigError naming file, key and expectation."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, path, env)


def config_from_dict(
    data: dict[str, Any], path: Path, environ: os._Environ[str] | dict[str, str]
) -> Config:
    data = _resolve_paths(data, path.parent)
    try:
        config = Config.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    config = _with_secrets(config, path, environ)
    config._routing = _compile_routing(config, path)
    return config


def _compile_routing(config: Config, path: Path) -> tuple[Rule, ...]:
    """The included rule files' [[rule]] tables, then the configuration's, compiled once;
    a bad rule is a ConfigError naming the file, the rule and the key."""
    sources: list[tuple[Path, list[Any]]] = []
    for included in config.rules.include:
        sources.append((included, _rule_tables(included, path)))
    sources.append((path, list(config.rule)))
    rules: list[Rule] = []
    for source, tables in sources:
        try:
            compiled = compile_rules(tables)
        except RuleError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        rules.extend(compiled)
    policies = [policy.name for policy in config.sla]
    names: set[str] = set()
    for rule in rules:
        if rule.name in names:
            raise ConfigError(
                f'{path}: rule "{rule.name}": name: expected a name no other '
                "rule has (included files count too)"
            )
        names.add(rule.name)
        if rule.then.sla_policy is not None and rule.then.sla_policy not in policies:
            raise ConfigError(
                f'{path}: rule "{rule.name}": then.sla_policy: expected one of '
                f"the [[sla]] policy names ({', '.join(policies)})"
            )
    return tuple(rules)


def _rule_tables(included: Path, path: Path) -> list[Any]:
    try:
        data = tomllib.loads(included.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{path}: rules.include: expected a readable rule file at {included} ({exc.strerror})"
        ) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{included}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise ConfigError(
            f"{included}: {unknown[0]}: unknown key; a rule file holds only [[rule]] tables"
        )
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{included}: rule: expected [[rule]] tables")
    return tables


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file, as operators expect."""
    data = dict(data)
    for section, key in (("templates", "dir"), ("service", "data_dir"), ("faq", "dir")):
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            data[section] = {**block, key: str(base / block[key])}
    rules = data.get("rules")
    if isinstance(rules, dict) and isinstance(rules.get("include"), list):
        data["rules"] = {
            **rules,
            "include": [
                str(base / item) if isinstance(item, str) else item for item in rules["include"]
            ],
        }
    return data


def _describe(path: Path, exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    # A list whose only item is wrong is also "too short": the item's own error says it all.
    wrong_items = {error["loc"][:-1] for error in errors if len(error["loc"]) > 1}
    errors = [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(loc[: len(e["loc"])] == e["loc"] for loc in wrong_items)
        )
    ]
    lines = [f"{path}: {len(errors)} problem(s)"]
    for error in errors:
        key = _key_path(error["loc"])
        if error["type"] == "extra_forbidden":
            lines.append(f"{path}: {key}: unknown key")
        elif error["type"] == "missing":
            lines.append(f"{path}: {key}: required key is missing")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {key or '(top level)'}: expected {message}")
    return "\n".join(lines)


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        elif not item.startswith("function-"):
            parts.append(item)
    return ".".join(parts)


def _with_secrets(config: Config, path: Path, environ: os._Environ[str] | dict[str, str]) -> Config:
    mailboxes = tuple(
        m.model_copy(update=_login_secrets(m, f"mailbox[{i}]", path, environ))
        for i, m in enumerate(config.mailbox)
    )
    smtp = config.smtp.model_copy(update=_login_secrets(config.smtp, "smtp", path, environ))
    _check_shared_sign_in(config, path)
    secret = _read_secret(
        config.staff.secret_env, config.staff.secret_file, "staff.secret", path, environ
    )
    _check_staff_key(secret, config.staff, path)
    staff = config.staff.model_copy(update={"secret": secret})
    return config.model_copy(update={"mailbox": mailboxes, "smtp": smtp, "staff": staff})


# The reply tokens are HMAC-SHA256 of the ticket number: a shorter key is easier to guess
# than the hash is to break, and whoever guesses it can answer customers as staff.
STAFF_KEY_MIN_BYTES = 32


def _check_staff_key(secret: SecretStr | None, staff: StaffConfig, path: Path) -> None:
    if secret is None:
        return
    size = len(secret.get_secret_value().encode("utf-8"))
    if size < STAFF_KEY_MIN_BYTES:
        key = "staff.secret_env" if staff.secret_env else "staff.secret_file"
        raise ConfigError(
            f"{path}: {key}: expected a key of at least {STAFF_KEY_MIN_BYTES} "
            f"bytes, not {size} (make one with: openssl rand -hex 32)"
        )


def _login_secrets(
    section: _Credentials, key: str, path: Path, environ: os._Environ[str] | dict[str, str]
) -> dict[str, Any]:
    """The password, or the OAuth2 client secret, of one login."""
    update: dict[str, Any] = {"password": _secret(section, key, path, environ)}
    oauth2 = section.oauth2
    if oauth2 is not None:
        secret = _read_secret(
            oauth2.client_secret_env,
            oauth2.client_secret_file,
            f"{key}.oauth2.client_secret",
            path,
            environ,
        )
        update["oauth2"] = oauth2.model_copy(update={"client_secret": secret})
    return update


def _check_shared_sign_in(config: Config, path: Path) -> None:
    """[smtp.oauth2] mailbox = "…" must name a mailbox that signs in with OAuth2."""
    shared = config.smtp.oauth2.mailbox if config.smtp.oauth2 is not None else None
    if shared is None:
        return
    names = {m.name: m for m in config.mailbox}
    if shared not in names:
        raise ConfigError(
            f"{path}: smtp.oauth2.mailbox: expected the name of a [[mailbox]] "
            f"({', '.join(sorted(names))}), not {shared!r}"
        )
    if names[shared].auth != "oauth2":
        raise ConfigError(
            f"{path}: smtp.oauth2.mailbox: expected a mailbox with auth = "
            f'"oauth2", but {shared!r} logs in with a password'
        )


def _secret(
    section: _Credentials, key: str, path: Path, environ: os._Environ[str] | dict[str, str]
) -> SecretStr | None:
    return _read_secret(
        section.password_env, section.password_file, f"{key}.password", path, environ
    )


def _read_secret(
    env: str | None,
    file: Path | None,
    key: str,
    path: Path,
    environ: os._Environ[str] | dict[str, str],
) -> SecretStr | None:
    """The value of `{key}_env` or `{key}_file`, or None when neither is set."""
    if env:
        value = environ.get(env)
        if value is None:
            raise ConfigError(
                f"{path}: {key}_env: expected the environment variable {env} to be set"
            )
        return SecretStr(value)
    if file:
        secret_path = file if file.is_absolute() else path.parent / file
        try:
            value = secret_path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"{path}: {key}_file: expected a readable file at {secret_path} ({exc.strerror})"
            ) from None
        _warn_if_others_can_read(secret_path, f"{path}: {key}_file")
        return SecretStr(value)
    return None


def _warn_if_others_can_read(secret_path: Path, where: str) -> None:
    """A secret every user of the machine can read (or replace) is no secret: say which."""
    try:
        mode = stat.S_IMODE(secret_path.stat().st_mode)
    except OSError:
        return
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        access = "readable" if mode & stat.S_IROTH else "writable"
        log.warning(
            "%s: %s is %s by other users of this machine (mode %04o); let only "
            "mailbridge's user (and group) read it: chmod o-rwx %s",
            where,
            secret_path,
            access,
            mode,
            secret_path,
        )
