"""Secrets are resolved here from `password_env` / `password_file` (and the OAuth2 client
secret, the staff key and the webhooks' URLs, signing keys and tokens likewise) into
`SecretStr`, so they never print by accident.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from mailbridge.config.mail import _Credentials
from mailbridge.config.sections import StaffConfig
from mailbridge.config.webhooks import SECRET_MIN_BYTES, WebhookConfig, check_url, host_of
from mailbridge.errors import ConfigError

if TYPE_CHECKING:
    from mailbridge.config.loading import Config

# Named for the package, as before the configuration was split into modules: operators'
# logging setups and the tests select these warnings by it.
log = logging.getLogger("mailbridge.config")


def with_secrets(config: Config, path: Path, environ: os._Environ[str] | dict[str, str]) -> Config:
    """The configuration with the logins' passwords and client secrets and the staff key
    read from where the file says they are."""
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
    webhooks = _webhook_secrets(config.webhook, path, environ)
    return config.model_copy(
        update={"mailbox": mailboxes, "smtp": smtp, "staff": staff, "webhook": webhooks}
    )


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


def _webhook_secrets(
    webhooks: tuple[WebhookConfig, ...], path: Path, environ: os._Environ[str] | dict[str, str]
) -> tuple[WebhookConfig, ...]:
    """Each [[webhook]] with its URL, signing secret and Matrix token read, and its name
    (default: the URL's host), which must be its own: rows name the webhook they are for."""
    resolved: list[WebhookConfig] = []
    for index, hook in enumerate(webhooks):
        key = f"webhook[{index}]"
        url = hook.url
        if url is None:
            read = _read_secret(hook.url_env, hook.url_file, f"{key}.url", path, environ)
            where = f"{key}.url_env" if hook.url_env else f"{key}.url_file"
            try:
                url = check_url(read.get_secret_value() if read else "")
            except ValueError as exc:
                raise ConfigError(f"{path}: {where}: expected {exc}") from None
        secret = _read_secret(hook.secret_env, hook.secret_file, f"{key}.secret", path, environ)
        if secret is not None and len(secret.get_secret_value().encode()) < SECRET_MIN_BYTES:
            where = f"{key}.secret_env" if hook.secret_env else f"{key}.secret_file"
            raise ConfigError(
                f"{path}: {where}: expected a key of at least {SECRET_MIN_BYTES} bytes "
                "(make one with: openssl rand -hex 32)"
            )
        token = _read_secret(hook.token_env, hook.token_file, f"{key}.token", path, environ)
        name = hook.name or host_of(url)
        if name in {other.name for other in resolved}:
            raise ConfigError(
                f"{path}: {key}.name: expected a name no other [[webhook]] has "
                f"({name!r} is taken; the default is the URL's host)"
            )
        update = {
            "url": url,
            "secret": secret,
            "token": token,
            "name": name,
            "ca_file": _ca_file(hook.ca_file, f"{key}.ca_file", path),
        }
        resolved.append(hook.model_copy(update=update))
    return tuple(resolved)


def _ca_file(ca_file: Path | None, key: str, path: Path) -> Path | None:
    """The CA file, relative to the configuration, which must be there to be trusted."""
    if ca_file is None:
        return None
    found = ca_file if ca_file.is_absolute() else path.parent / ca_file
    if not found.is_file():
        raise ConfigError(f"{path}: {key}: expected a PEM file of CA certificates at {found}")
    return found


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
