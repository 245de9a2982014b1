"""The configuration file: one TOML document validated by pydantic, read once and passed down.

Errors name the file, the key path and what was expected. Secrets are resolved here from
`password_env` / `password_file` into `SecretStr`, so they never print by accident.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mailbridge.errors import ConfigError

DEFAULT_CONFIG_NAME = "mailbridge.toml"
CONFIG_ENV = "MAILBRIDGE_CONFIG"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: object) -> timedelta:
    """'30s', '45m', '8h', '3d', '2w' (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    raise ValueError("a duration like 30s, 45m, 8h, 3d or 2w")


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
    """A login whose password comes from an environment variable or a file, never inline."""

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)

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
        return self


class DatabaseConfig(_Section):
    url: str | None = None  # None: a SQLite file in service.data_dir
    auto_migrate: bool | None = None  # None: true for SQLite, false otherwise
    echo: bool = False


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

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "tls" else 143)

    @property
    def effective_queue(self) -> str:
        return self.queue or self.name


class SmtpConfig(_Credentials):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Security = "starttls"
    from_: str = Field(alias="from")
    timeout: Duration = timedelta(seconds=30)
    max_attempts: int = Field(default=10, ge=1)

    @property
    def effective_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587, "none": 25}[self.security]


class TemplatesConfig(_Section):
    dir: Path | None = None  # None: the templates shipped with mailbridge
    language: str = Field(default="en", pattern=r"^[a-z]{2}$")
    company: str = "Support"


class SlaPolicy(_Section):
    name: str
    first_response: Duration
    resolution: Duration
    business_hours: bool = False
    mailboxes: tuple[str, ...] = ()  # match keys: empty matches every mailbox
    priorities: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return not self.mailboxes and not self.priorities


class CalendarConfig(_Section):
    timezone: str = "UTC"
    holidays: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"an IANA time zone like Europe/Rome, not {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StaffConfig(_Section):
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    team_address: str | None = None
    escalation_address: str | None = None


class TicketsConfig(_Section):
    tag_prefix: str = Field(default="#", pattern=r"^[A-Za-z#-]{1,16}$")
    number_start: int = Field(default=1000, ge=1)
    message_id_domain: str | None = None  # None: the domain of smtp.from
    ack_limit_per_hour: int = Field(default=5, ge=0)
    max_attempts: int = Field(default=5, ge=1)  # processing attempts before quarantine
    # A customer writing to a resolved or closed ticket reopens it within this window;
    # later mail starts a new ticket that links the old one.
    reopen_window: Duration = timedelta(days=30)
    # Parts over these sizes are listed on the ticket as skipped, never silently dropped;
    # the raw message keeps every byte either way.
    max_attachment_size: ByteSize | None = 25_000_000
    max_message_size: ByteSize | None = 50_000_000


class ServiceConfig(_Section):
    data_dir: Path | None = None  # None: $STATE_DIRECTORY under systemd, else ./var
    listen: str | None = None
    log_format: Literal["text", "json"] = "text"
    sweep_interval: Duration = timedelta(seconds=30)
    outbox_interval: Duration = timedelta(seconds=10)


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
    source: Path = Field(default=Path("<memory>"), exclude=True)

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
    return _with_secrets(config, path, environ)


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file, as operators expect."""
    data = dict(data)
    for section, key in (("templates", "dir"), ("service", "data_dir")):
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            data[section] = {**block, key: str(base / block[key])}
    return data


def _describe(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem(s)"]
    for error in exc.errors(include_input=False, include_url=False):
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
        m.model_copy(update={"password": _secret(m, f"mailbox[{i}]", path, environ)})
        for i, m in enumerate(config.mailbox)
    )
    smtp = config.smtp.model_copy(update={"password": _secret(config.smtp, "smtp", path, environ)})
    return config.model_copy(update={"mailbox": mailboxes, "smtp": smtp})


def _secret(
    section: _Credentials, key: str, path: Path, environ: os._Environ[str] | dict[str, str]
) -> SecretStr | None:
    if section.password_env:
        value = environ.get(section.password_env)
        if value is None:
            raise ConfigError(
                f"{path}: {key}.password_env: expected the environment variable "
                f"{section.password_env} to be set"
            )
        return SecretStr(value)
    if section.password_file:
        secret_path = section.password_file
        if not secret_path.is_absolute():
            secret_path = path.parent / secret_path
        try:
            return SecretStr(secret_path.read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise ConfigError(
                f"{path}: {key}.password_file: expected a readable file at {secret_path} "
                f"({exc.strerror})"
            ) from None
    return None
