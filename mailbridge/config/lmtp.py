"""[lmtp]: push delivery. An MTA (Postfix, Exim, Dovecot's LDA) hands mail straight to
the daemon over LMTP instead of it being fetched over IMAP (service/lmtp_server.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from mailbridge.config.values import Duration, _Section, is_loopback, parse_listen

UNIX_PREFIX = "unix:"


class LmtpConfig(_Section):
    # LMTP has no authentication: whoever reaches the listener can hand in mail as anyone.
    # An address other hosts can reach needs this said explicitly. Before listen.
    listen_public: bool = False
    # "127.0.0.1:24", "[::1]:24", or "unix:/run/mailbridge/lmtp.sock".
    listen: str
    # The socket file's permissions: the MTA's delivery agent must be able to connect.
    socket_mode: int = Field(default=0o660, ge=0, le=0o777)
    # Bounded work per client: connections at once (each holds at most one message of
    # [tickets] max_message_size), recipients per message, and how long a silent client
    # keeps its connection.
    max_connections: int = Field(default=20, ge=1, le=1000)
    max_recipients: int = Field(default=100, ge=1, le=1000)
    timeout: Duration = timedelta(minutes=5)

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _octal(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return int(value, 8)
            except ValueError:
                raise ValueError('permissions in octal, like "0660"') from None
        return value

    @field_validator("listen")
    @classmethod
    def _where(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(UNIX_PREFIX):
            path = Path(value.removeprefix(UNIX_PREFIX))
            if not path.is_absolute():
                raise ValueError('an absolute socket path, like "unix:/run/mailbridge/lmtp.sock"')
            return value
        try:
            host, _port = parse_listen(value)
        except ValueError:
            raise ValueError(
                'an address like "127.0.0.1:24" or "[::1]:24", or a socket like '
                '"unix:/run/mailbridge/lmtp.sock"'
            ) from None
        if not is_loopback(host) and info.data.get("listen_public") is not True:
            raise ValueError(
                f"a loopback address or a socket: LMTP has no authentication, so whoever "
                f"reaches {host} could hand in mail as anyone; listening there needs "
                f"listen_public = true as well (and a firewall)"
            )
        return value

    @property
    def socket_path(self) -> Path | None:
        """The UNIX socket to listen on; None for a TCP address."""
        if self.listen.startswith(UNIX_PREFIX):
            return Path(self.listen.removeprefix(UNIX_PREFIX))
        return None

    @property
    def tcp_address(self) -> tuple[str, int] | None:
        return None if self.socket_path is not None else parse_listen(self.listen)
