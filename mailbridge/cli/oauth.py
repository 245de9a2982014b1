"""`mailbridge oauth login` and `mailbridge oauth test`: the first sign-in of a mailbox (or
of the SMTP login), and a check that says which step fails: the token endpoint, the IMAP
AUTHENTICATE, or the SMTP AUTH."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import TextIO

from mailbridge.adapters.imap import ImapMailbox, imap_settings
from mailbridge.adapters.smtp import SmtpConnection, SmtpSettings
from mailbridge.cli.common import command_config
from mailbridge.clock import Clock, SystemClock
from mailbridge.config import Config
from mailbridge.errors import ConfigError, DeliveryError
from mailbridge.oauth.accounts import SignIn, sign_in_for_mailbox, sign_in_for_smtp
from mailbridge.oauth.endpoint import client_credentials_token
from mailbridge.oauth.signin import (
    finish_browser_login,
    finish_device_login,
    start_browser_login,
    start_device_login,
    store_sign_in,
)
from mailbridge.oauth.tokens import TokenProvider, TokenStore

__all__ = ["oauth_login", "oauth_test", "configure"]


def chosen_sign_in(config: Config, mailbox: str | None) -> SignIn:
    """The sign-in of `--mailbox NAME`, or of the SMTP login when `mailbox` is None."""
    if mailbox is None:
        sign_in = sign_in_for_smtp(config)
        if sign_in is None:
            raise ConfigError(
                f'{config.source}: smtp.auth: expected "oauth2" for --smtp (the '
                "SMTP login uses a password)"
            )
        return sign_in
    try:
        box = config.mailbox_named(mailbox)
    except KeyError:
        names = ", ".join(m.name for m in config.mailbox)
        raise ConfigError(
            f"{config.source}: no [[mailbox]] named {mailbox!r} (there are: {names})"
        ) from None
    found = sign_in_for_mailbox(config, box)
    if found is None:
        raise ConfigError(
            f'{config.source}: mailbox {mailbox!r}: expected auth = "oauth2" with '
            "an [mailbox.oauth2] table (it logs in with a password)"
        )
    return found


def oauth_login(
    config: Config,
    mailbox: str | None,
    out: TextIO,
    answers: TextIO,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Sign in once, as the configured flow says, and keep the refresh token."""
    clock = clock or SystemClock()
    sign_in = chosen_sign_in(config, mailbox)
    if mailbox is None and not sign_in.is_smtp:
        _say(
            out,
            f"the SMTP login shares the sign-in of mailbox {sign_in.account}: signing "
            "that in (IMAP and SMTP)",
        )
    if sign_in.flow == "client_credentials":
        record = client_credentials_token(sign_in, clock)
        valid = _minutes(record.seconds_left(clock.now()))
        _say(
            out,
            f"{sign_in.label}: {sign_in.endpoints.token_url} accepted the client "
            f"credentials: an app token valid for {valid}. Nothing is kept: mailbridge "
            "asks for a new token whenever it needs one.",
        )
        return 0
    if sign_in.flow == "device":
        code = start_device_login(sign_in)
        _say(
            out,
            f"To sign in {sign_in.label} as {sign_in.username}, open "
            f"{code.verification_uri} and enter the code {code.user_code}",
        )
        if code.verification_uri_complete:
            _say(out, f"(or open {code.verification_uri_complete})")
        _say(out, f"Waiting for the sign-in; the code is valid for {_minutes(code.expires_in)}.")
        record = finish_device_login(sign_in, code, clock, sleep=sleep)
    else:
        pending = start_browser_login(sign_in)
        _say(
            out,
            f"To sign in {sign_in.label} as {sign_in.username}, open this address in a "
            f"browser, sign in and allow access:\n\n  {pending.url}\n",
        )
        _say(
            out,
            f"The browser is then sent to {sign_in.redirect_uri}… and may show an error "
            "page: copy the whole address from its address bar and paste it here:",
        )
        record = finish_browser_login(sign_in, pending, answers.readline(), clock)
    path = store_sign_in(sign_in, record, TokenStore(config.data_dir))
    _say(
        out,
        f"signed in: {sign_in.label} (scopes: {' '.join(record.scopes) or '-'}). The "
        f"refresh token is kept in {path}, readable by this user only; a running "
        "mailbridge uses it at its next connection.",
    )
    return 0


def oauth_test(
    config: Config, mailbox: str | None, out: TextIO, *, clock: Clock | None = None
) -> int:
    """Token endpoint, then IMAP, then SMTP (when it uses this sign-in): each step's result,
    and exit 1 at the first that fails."""
    sign_in = chosen_sign_in(config, mailbox)
    clock = clock or SystemClock()
    provider = TokenProvider(sign_in, TokenStore(config.data_dir), clock)
    provider.invalidate()  # a new token: the refresh token and the endpoint are tried now
    try:
        provider.access_token()
    except DeliveryError as exc:  # OAuthError, SignInRequired, an unreachable endpoint
        _say(out, f"token: FAILED: {exc}")
        return 1
    left = provider.seconds_left() or 0.0
    _say(out, f"token: ok from {sign_in.endpoints.token_url}, valid for {_minutes(left)}")
    missing = sorted(set(sign_in.scopes) - set(provider.granted_scopes()) - {"offline_access"})
    if missing:
        _say(
            out,
            f"scopes: the token lacks {' '.join(missing)} (granted: "
            f"{' '.join(provider.granted_scopes()) or 'none said'}); the servers may "
            "refuse it: grant these to the app, then sign in again",
        )
    if not sign_in.is_smtp:
        box = config.mailbox_named(sign_in.account)
        settings = imap_settings(box, oauth=provider)
        where = f"IMAP {box.host}:{box.effective_port} as {box.username}"
        try:
            with ImapMailbox(settings):
                pass
        except DeliveryError as exc:
            _say(out, f"{where}: FAILED: {exc}")
            return 1
        _say(out, f"{where}: ok, signed in and folder {box.folder!r} selected")
    shared = config.smtp.oauth2
    if shared is not None and (sign_in.is_smtp or shared.mailbox == sign_in.account):
        smtp = config.smtp
        where = f"SMTP {smtp.host}:{smtp.effective_port} as {smtp.username or sign_in.username}"
        settings_smtp = SmtpSettings(
            host=smtp.host,
            port=smtp.effective_port,
            security=smtp.security,
            username=smtp.username or sign_in.username,
            timeout=smtp.timeout.total_seconds(),
            oauth=provider,
        )
        try:
            asyncio.run(_smtp_login(settings_smtp))
        except DeliveryError as exc:
            _say(out, f"{where}: FAILED: {exc}")
            return 1
        _say(out, f"{where}: ok, signed in")
    return 0


async def _smtp_login(settings: SmtpSettings) -> None:
    async with SmtpConnection(settings):
        pass


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()  # someone (or a script) is waiting for the code


def configure(oauth: argparse.ArgumentParser) -> None:
    oauth_commands = oauth.add_subparsers(dest="oauth_command", metavar="ACTION", required=True)
    for action, text in (
        (
            "login",
            "sign in (device code, browser or client credentials) and keep the refresh "
            "token in the data directory",
        ),
        (
            "test",
            "sign in to IMAP (and SMTP, when it shares the sign-in) now and say exactly "
            "what failed",
        ),
    ):
        oauth_action = oauth_commands.add_parser(action, help=text)
        which = oauth_action.add_mutually_exclusive_group(required=True)
        which.add_argument("--mailbox", metavar="NAME", help="the [[mailbox]] with this name")
        which.add_argument(
            "--smtp",
            action="store_true",
            help="the [smtp] login (when it has a sign-in of its own)",
        )
    oauth.set_defaults(handler=_oauth)


def _oauth(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.oauth_command == "login":
        return oauth_login(config, args.mailbox, sys.stdout, sys.stdin)
    return oauth_test(config, args.mailbox, sys.stdout)
