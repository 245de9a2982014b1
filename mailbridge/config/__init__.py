"""The configuration file: one TOML document validated by pydantic, read once and passed down.

Errors name the file, the key path and what was expected. Secrets are resolved from
`password_env` / `password_file` into `SecretStr`, so they never print by accident.

Where each part lives:

- `loading`: the whole `Config`, `config_path`, `load_config`, `config_from_dict`, and the
  description of a file that does not validate;
- `mail`: [[mailbox]], [smtp] and their OAuth2 sign-in ([...oauth2]);
- `sla`: [[sla]] policies with their levels and chaser rule, and the [calendar] or named
  [[calendar]] tables;
- `sections`: [database], [faq], [rules], [templates], [staff], [digest], [reports],
  [tickets], [service], [retention], [spam];
- `lmtp`: [lmtp], the listener an MTA delivers mail to;
- `storage`: [storage], where attachments and raw mail are kept;
- `webhooks`: [[webhook]], the chat rooms and endpoints told of ticket events;
- `secret_sources`: passwords, client secrets, the staff key and the webhooks' secrets read
  from the environment or files;
- `values`: durations, sizes, offsets, listen addresses and the base of every section.
"""

from mailbridge.config.lmtp import LmtpConfig
from mailbridge.config.loading import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    Config,
    config_from_dict,
    config_path,
    load_config,
)
from mailbridge.config.mail import MailboxConfig, OAuth2Config, SmtpConfig
from mailbridge.config.secret_sources import STAFF_KEY_MIN_BYTES
from mailbridge.config.sections import (
    DatabaseConfig,
    DigestConfig,
    FaqConfig,
    PurgeKind,
    ReportsConfig,
    RetentionConfig,
    RulesConfig,
    ServiceConfig,
    SpamConfig,
    StaffConfig,
    TemplatesConfig,
    TicketsConfig,
)
from mailbridge.config.sla import CalendarConfig, ChaserPolicy, EscalationLevel, SlaPolicy
from mailbridge.config.storage import StorageConfig
from mailbridge.config.values import (
    ByteSize,
    Duration,
    EmailAddress,
    Offset,
    Priority,
    Security,
    is_loopback,
    parse_listen,
    parse_offset,
    parse_size,
)
from mailbridge.config.webhooks import WebhookConfig
from mailbridge.core.sla import parse_duration

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "STAFF_KEY_MIN_BYTES",
    "ByteSize",
    "CalendarConfig",
    "ChaserPolicy",
    "Config",
    "DatabaseConfig",
    "DigestConfig",
    "Duration",
    "EmailAddress",
    "EscalationLevel",
    "FaqConfig",
    "LmtpConfig",
    "MailboxConfig",
    "OAuth2Config",
    "Offset",
    "Priority",
    "PurgeKind",
    "ReportsConfig",
    "RetentionConfig",
    "SpamConfig",
    "RulesConfig",
    "Security",
    "ServiceConfig",
    "SlaPolicy",
    "SmtpConfig",
    "StaffConfig",
    "StorageConfig",
    "TemplatesConfig",
    "TicketsConfig",
    "WebhookConfig",
    "config_from_dict",
    "config_path",
    "is_loopback",
    "load_config",
    "parse_duration",
    "parse_listen",
    "parse_offset",
    "parse_size",
]
