"""The whole configuration: the Config model of the file, where the file is found, and how it
is read, validated and described when it is wrong (file, key path, what was expected).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator

from mailbridge.config.lmtp import LmtpConfig
from mailbridge.config.mail import MailboxConfig, SmtpConfig
from mailbridge.config.secret_sources import with_secrets
from mailbridge.config.sections import (
    DatabaseConfig,
    DigestConfig,
    FaqConfig,
    ReportsConfig,
    RetentionConfig,
    RulesConfig,
    SenderListFile,
    ServiceConfig,
    SpamConfig,
    StaffConfig,
    TemplatesConfig,
    TicketsConfig,
)
from mailbridge.config.sla import (
    CalendarConfig,
    CalendarTables,
    SlaPolicy,
    calendar_list,
    default_calendar,
    duplicate_calendar,
)
from mailbridge.config.storage import DEFAULT_BLOB_DIR, StorageConfig
from mailbridge.config.values import _Section
from mailbridge.config.webhooks import WebhookConfig
from mailbridge.core.rules import Rule, RuleError, compile_rules
from mailbridge.core.sla import calendar_name
from mailbridge.errors import ConfigError

DEFAULT_CONFIG_NAME = "mailbridge.toml"
DEFAULT_FAQ_DRAFTS_DIR = "faq-drafts"  # under service.data_dir
CONFIG_ENV = "MAILBRIDGE_CONFIG"


class Config(_Section):
    database: DatabaseConfig = DatabaseConfig()
    mailbox: tuple[MailboxConfig, ...] = Field(min_length=1)
    smtp: SmtpConfig
    templates: TemplatesConfig = TemplatesConfig()
    sla: tuple[SlaPolicy, ...] = Field(min_length=1)
    # [calendar] or [[calendar]]: read through `calendars` and `calendar` (the default one).
    calendar_tables: CalendarTables = Field(default=CalendarConfig(), alias="calendar")
    staff: StaffConfig = StaffConfig()
    digest: DigestConfig | None = None  # None: no daily digest
    reports: ReportsConfig = ReportsConfig()
    tickets: TicketsConfig = TicketsConfig()
    service: ServiceConfig = ServiceConfig()
    retention: RetentionConfig = RetentionConfig()
    faq: FaqConfig = FaqConfig()
    rules: RulesConfig = RulesConfig()
    spam: SpamConfig = SpamConfig()
    storage: StorageConfig = StorageConfig()
    webhook: tuple[WebhookConfig, ...] = ()  # chat and HTTP notifications of ticket events
    lmtp: LmtpConfig | None = None  # None: mail arrives over IMAP only
    # Routing rules as written; compiled (and checked) into `routing` by config_from_dict.
    rule: tuple[dict[str, Any], ...] = ()
    source: Path = Field(default=Path("<memory>"), exclude=True)
    _routing: tuple[Rule, ...] = PrivateAttr(default=())
    _included_senders: tuple[tuple[Path, SenderListFile], ...] = PrivateAttr(default=())

    @property
    def routing(self) -> tuple[Rule, ...]:
        """The compiled rules: those of `[rules] include` files first, then `[[rule]]`."""
        return self._routing

    @property
    def included_senders(self) -> tuple[tuple[Path, SenderListFile], ...]:
        """Each `[spam] include` file with the block and allow patterns it holds, read (and
        checked) with the configuration, so a reload reads them again."""
        return self._included_senders

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        names = [m.name for m in self.mailbox]
        if len(set(names)) != len(names):
            raise ValueError("mailbox names must be unique")
        if not any(policy.is_default for policy in self.sla):
            raise ValueError("one [[sla]] policy must have no match keys: it is the default")
        return self

    @property
    def calendars(self) -> tuple[CalendarConfig, ...]:
        return calendar_list(self.calendar_tables)

    @property
    def calendar(self) -> CalendarConfig:
        """The default calendar: the [calendar] table, or the [[calendar]] named "default",
        else the first. The digest hour, the weekly report and the reports count in it."""
        return default_calendar(self.calendars)

    def calendar_named(self, name: str) -> CalendarConfig:
        for calendar in self.calendars:
            if calendar.name == name:
                return calendar
        raise KeyError(name)

    def ticket_calendar(self, mailbox: str, queue: str | None) -> CalendarConfig:
        """The calendar of a ticket in `mailbox` and `queue`: the queue's, else the
        mailbox's, else the default. A mailbox no longer configured has none of its own."""
        own = self.tickets.queues.get(queue) if queue else None
        box = next((m for m in self.mailbox if m.name == mailbox), None)
        name = calendar_name(
            own.calendar if own else None, box.calendar if box else None, self.calendar.name
        )
        return self.calendar_named(name)

    def mailbox_sla(self, mailbox: str) -> str | None:
        """The name of the mailbox's own default policy (`[[mailbox]] sla`), if any."""
        return next((m.sla for m in self.mailbox if m.name == mailbox), None)

    @property
    def report_language(self) -> str:
        """The language of the report's pictures: [reports] language, else [templates]
        language where the pictures have words for it, else English."""
        if self.reports.language is not None:
            return self.reports.language
        return self.templates.language if self.templates.language in ("en", "it") else "en"

    @property
    def data_dir(self) -> Path:
        if self.service.data_dir is not None:
            return self.service.data_dir
        state = os.environ.get("STATE_DIRECTORY")
        return Path(state.split(":")[0]) if state else Path("var")

    @property
    def blob_dir(self) -> Path:
        """Where attachments and raw mail stored as files live."""
        return self.storage.dir or self.data_dir / DEFAULT_BLOB_DIR

    @property
    def faq_drafts_dir(self) -> Path:
        """Where `#faq save` writes draft FAQ entries."""
        return self.faq.drafts_dir or self.data_dir / DEFAULT_FAQ_DRAFTS_DIR

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'mailbridge.db'}"

    @property
    def auto_migrate(self) -> bool:
        if self.database.auto_migrate is not None:
            return self.database.auto_migrate
        return self.database_url.startswith("sqlite")

    @property
    def queue_names(self) -> frozenset[str]:
        """Every queue the configuration names: a mailbox's, one with its own [tickets]
        settings, one an SLA policy matches and one a routing rule sends mail to."""
        named = {mailbox.effective_queue for mailbox in self.mailbox} | set(self.tickets.queues)
        named.update(queue for policy in self.sla for queue in policy.queues)
        named.update(rule.then.queue for rule in self.routing if rule.then.queue)
        return frozenset(named)

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
    _check_names(config, path)
    config = with_secrets(config, path, environ)
    config._routing = _compile_routing(config, path)
    config._included_senders = tuple(
        (included, _sender_list(included, path)) for included in config.spam.include
    )
    return config


def _check_names(config: Config, path: Path) -> None:
    """Every calendar and policy a mailbox or queue names exists, and no two calendars
    share a name; each error names the key."""
    calendars = [calendar.name for calendar in config.calendars]
    twice = duplicate_calendar(config.calendars)
    if twice is not None:
        raise ConfigError(
            f'{path}: calendar: expected a different name for each calendar, but "{twice}" '
            'names two (a [[calendar]] without a name is "default")'
        )
    known = ", ".join(calendars)
    policies = [policy.name for policy in config.sla]
    for index, mailbox in enumerate(config.mailbox):
        if mailbox.calendar is not None and mailbox.calendar not in calendars:
            raise ConfigError(
                f"{path}: mailbox[{index}].calendar: expected one of the calendar names "
                f"({known}), not {mailbox.calendar!r}"
            )
        if mailbox.sla is not None and mailbox.sla not in policies:
            raise ConfigError(
                f"{path}: mailbox[{index}].sla: expected one of the [[sla]] policy names "
                f"({', '.join(policies)}), not {mailbox.sla!r}"
            )
    for queue, settings in config.tickets.queues.items():
        if settings.calendar is not None and settings.calendar not in calendars:
            raise ConfigError(
                f"{path}: tickets.queues.{queue}.calendar: expected one of the calendar "
                f"names ({known}), not {settings.calendar!r}"
            )


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
    data = _included_file(included, path, "rules.include", "rule file")
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise ConfigError(
            f"{included}: {unknown[0]}: unknown key; a rule file holds only [[rule]] tables"
        )
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        raise ConfigError(f"{included}: rule: expected [[rule]] tables")
    return tables


def _sender_list(included: Path, path: Path) -> SenderListFile:
    """A `[spam] include` file: `block` and `allow` lists; a bad one names its file."""
    data = _included_file(included, path, "spam.include", "file of block and allow lists")
    try:
        return SenderListFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(included, exc)) from None


def _included_file(included: Path, path: Path, key: str, what: str) -> dict[str, Any]:
    """The TOML of a file the configuration at `path` includes under `key`."""
    try:
        return tomllib.loads(included.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{path}: {key}: expected a readable {what} at {included} ({exc.strerror})"
        ) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{included}: not valid TOML: {exc}") from None


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file, as operators expect."""
    data = dict(data)
    for section, key in (
        ("templates", "dir"),
        ("service", "data_dir"),
        ("faq", "dir"),
        ("faq", "model"),
        ("faq", "drafts_dir"),
        ("storage", "dir"),
    ):
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get(key), str):
            data[section] = {**block, key: str(base / block[key])}
    for section in ("rules", "spam"):
        block = data.get(section)
        if isinstance(block, dict) and isinstance(block.get("include"), list):
            included = [str(base / i) if isinstance(i, str) else i for i in block["include"]]
            data[section] = {**block, "include": included}
    if isinstance(data.get("mailbox"), list):
        data["mailbox"] = [
            {**m, "templates": str(base / m["templates"])}
            if isinstance(m, dict) and isinstance(m.get("templates"), str)
            else m
            for m in data["mailbox"]
        ]
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
        elif not item.startswith(("function-", "[")):  # "[": [calendar] or [[calendar]]
            parts.append(item)
    return ".".join(parts)
