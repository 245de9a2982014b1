"""OAuth2 access tokens for IMAP and SMTP at run time: the token files in the data directory,
and one TokenProvider per account that hands out a valid access token, refreshed before it
runs out and once more after a server refused it. Tokens never reach the log. The first
sign-in is oauth/signin.py's; the token endpoint, oauth/endpoint.py's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from mailbridge import logs
from mailbridge.clock import Clock
from mailbridge.config import Config, MailboxConfig
from mailbridge.core.oauth import TokenRecord
from mailbridge.durable import replace_file
from mailbridge.errors import TransientError
from mailbridge.oauth.accounts import SignIn, sign_ins
from mailbridge.oauth.endpoint import (
    SignInRequired,
    client_credentials_token,
    keep_out_of_logs,
    refresh,
)

__all__ = [
    "TokenProvider",
    "TokenProviders",
    "TokenStore",
]

log = logging.getLogger(__name__)

TOKEN_DIR = "oauth"


# -- token files --


class TokenStore:
    """One JSON file per signed-in account under <data_dir>/oauth, readable by the owner
    only, replaced atomically so a crash never leaves half a refresh token."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / TOKEN_DIR

    def path(self, sign_in: SignIn) -> Path:
        return self.directory / sign_in.file_name

    def signature(self, sign_in: SignIn) -> tuple[int, int, int] | None:
        """Changes whenever the file is replaced (a new sign-in, a refresh elsewhere)."""
        try:
            status = self.path(sign_in).stat()
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def load(self, sign_in: SignIn) -> TokenRecord | None:
        path = self.path(sign_in)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return TokenRecord.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            # The message of a JSON error quotes no content; ours name only keys.
            raise SignInRequired(
                f"{sign_in.label}: the token file {path} is unusable "
                f"({_reason(exc)}): run {sign_in.login_command}"
            ) from None

    @contextlib.contextmanager
    def locked(self, sign_in: SignIn) -> Iterator[None]:
        """An exclusive lock on a file beside the account's token file, held while it is read,
        refreshed and written back: two processes (the daemon and `mailbridge oauth test`,
        or two instances) never spend the same refresh token. Where no lock file can be made
        (a read-only folder) it goes on without one."""
        fd: int | None = None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.directory / f".{sign_in.file_name}.lock", os.O_RDWR | os.O_CREAT, 0o600
            )
        except OSError as exc:
            log.debug("%s: no lock file in %s (%s)", sign_in.label, self.directory, _reason(exc))
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # lets go of the lock

    def save(self, sign_in: SignIn, record: TokenRecord) -> Path:
        path = self.path(sign_in)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_file(path, json.dumps(record.as_json(), indent=2).encode("utf-8"), 0o600)
        return path


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# -- the provider the adapters use --


class TokenProvider:
    """A valid access token for one account, from any thread.

    Reads the token file when it changes (a new `mailbridge oauth login` is picked up at
    the next connection), refreshes when less than refresh_margin() is left or after
    invalidate(), under a lock file shared with other processes, and writes every new
    refresh token back (kept in memory, and written again at the next use, when the disk
    refuses). A refused refresh token is recorded in the file and not offered again until
    the file changes.
    """

    def __init__(self, sign_in: SignIn, store: TokenStore, clock: Clock) -> None:
        self.sign_in = sign_in
        self._store, self._clock = store, clock
        self._lock = threading.Lock()
        self._record: TokenRecord | None = None
        self._seen: tuple[int, int, int] | None = None
        self._loaded = False
        self._stale = False
        self._unsaved = False  # the record in memory is newer than the file: write it
        self._told: str | None = None  # the problem someone already logged
        self.problem: str | None = None  # why no token can be had, for health and status
        logs.hide_secrets([sign_in.client_secret])

    def __repr__(self) -> str:
        return f"<TokenProvider {self.sign_in.label}>"

    def access_token(self) -> str:
        with self._lock:
            try:
                token = self._valid_token()
            except SignInRequired as exc:
                self.problem = str(exc)
                raise
            self.problem = self._told = None
            return token

    def invalidate(self, token: str | None = None) -> None:
        """A server refused `token`: the next access_token() refreshes, unless another
        session did so already (None: whatever the current token is)."""
        with self._lock:
            record = self._record
            if token is None or (record is not None and record.access_token == token):
                self._stale = True

    def tell_once(self, problem: str) -> bool:
        """True the first time a problem is to be logged (by a poller, the sender): a person
        reads it once however many parts wait for the same sign-in; again after a success."""
        with self._lock:
            first, self._told = self._told != problem, problem
            return first

    def expires_at(self) -> datetime | None:
        record = self._record
        return record.expires_at if record is not None and record.access_token else None

    def refresh_at(self, token: str) -> datetime | None:
        """When a session that logged in with `token` should log in again: shortly before it
        runs out, now when it has been replaced already; None if it is not known to end."""
        record = self._record
        if record is None or record.access_token != token:
            return self._clock.now()
        return record.refresh_at()

    def seconds_left(self) -> float | None:
        """Of the current access token (0 once expired); None before the first one."""
        record = self._record
        return record.seconds_left(self._clock.now()) if record is not None else None

    def granted_scopes(self) -> tuple[str, ...]:
        record = self._record
        return record.scopes if record is not None else ()

    def sign_in_problem(self) -> str | None:
        """Why no token can be had here without a person, from the token file alone (no
        sign-in yet, one the provider refused, another client's); None when it can try.
        Cheap and lock-free: lease rounds ask before they take the mailbox."""
        if self.sign_in.flow == "client_credentials":
            return None
        try:
            record = self._store.load(self.sign_in)
        except SignInRequired as exc:
            return str(exc)
        if record is None:
            return self.sign_in.not_signed_in
        return self._mismatch(record) or record.problem or None

    def _mismatch(self, record: TokenRecord) -> str | None:
        if (record.client_id, record.token_url) == (
            self.sign_in.client_id,
            self.sign_in.endpoints.token_url,
        ):
            return None
        return (
            f"{self.sign_in.label} was signed in with another client_id or token "
            f"endpoint: run {self.sign_in.login_command}"
        )

    def _valid_token(self) -> str:
        if self._unsaved:
            with self._store.locked(self.sign_in):
                self._save()
        record = self._current()
        if record is not None and not self._stale and record.usable(self._clock.now()):
            return record.access_token
        if self.sign_in.flow == "client_credentials":
            record = client_credentials_token(self.sign_in, self._clock)
            self._record, self._stale = record, False
            return record.access_token
        with self._store.locked(self.sign_in):
            # Another process may have refreshed while this one waited for the lock.
            record = self._current()
            if record is not None and not self._stale and record.usable(self._clock.now()):
                return record.access_token
            if record is None:
                raise SignInRequired(self.sign_in.not_signed_in)
            if record.problem:
                raise SignInRequired(record.problem)
            return self._refresh(record)

    def _refresh(self, record: TokenRecord, *, again: bool = True) -> str:
        try:
            fresh = refresh(self.sign_in, record, self._clock)
        except SignInRequired as exc:
            # A process that did not take the lock may have spent it and left a new one.
            newer = self._current()
            if (
                again
                and newer is not None
                and not newer.problem
                and newer.refresh_token != record.refresh_token
            ):
                if newer.usable(self._clock.now()):
                    self._stale = False
                    return newer.access_token
                return self._refresh(newer, again=False)
            self._keep(record.with_problem(str(exc)))
            raise
        except TransientError as exc:
            left = record.seconds_left(self._clock.now())
            if self._stale or left <= 0:
                raise
            log.warning(
                "%s: the access token could not be refreshed (%s); the current one is "
                "used for its last %d s",
                self.sign_in.label,
                exc,
                left,
            )
            return record.access_token
        self._keep(fresh)
        self._stale = False
        log.info(
            "%s: access token refreshed, valid until %s",
            self.sign_in.label,
            fresh.expires_at.isoformat(timespec="seconds") if fresh.expires_at else "-",
        )
        return fresh.access_token

    def _current(self) -> TokenRecord | None:
        """The record in memory, or the file's when it changed since it was read."""
        if self.sign_in.flow == "client_credentials":
            return self._record
        signature = self._store.signature(self.sign_in)
        if self._loaded and signature == self._seen:
            return self._record
        record = self._store.load(self.sign_in)
        if record is not None:
            if mismatch := self._mismatch(record):
                # Not remembered as read: the same answer every time until the file changes.
                raise SignInRequired(mismatch)
            keep_out_of_logs(self.sign_in, record)
        if self._loaded:  # a new sign-in or another process's refresh: a different token
            self._stale = False
        self._seen, self._loaded = signature, True
        self._record, self._unsaved = record, False
        return record

    def _keep(self, record: TokenRecord) -> None:
        """In memory first: a provider that rotated the refresh token has retired the old
        one, so the new one must not be lost because the disk is full or read-only."""
        self._record, self._unsaved = record, True
        self._save()

    def _save(self) -> None:
        record = self._record
        assert record is not None
        try:
            self._store.save(self.sign_in, record)
        except OSError as exc:
            log.error(
                "%s: could not write the token file %s (%s); the token is kept in memory "
                "and written at its next use",
                self.sign_in.label,
                self._store.path(self.sign_in),
                _reason(exc),
            )
            return
        self._unsaved, self._seen = False, self._store.signature(self.sign_in)


class TokenProviders:
    """The providers of every OAuth2 account in a configuration, kept across reloads for
    the accounts whose sign-in did not change."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self._clock = clock
        self._providers: dict[str, TokenProvider] = {}
        self._config = config
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self._config = config
        store = TokenStore(config.data_dir)
        kept = {}
        for sign_in in sign_ins(config):
            current = self._providers.get(sign_in.file_name)
            same = (
                current is not None
                and current.sign_in == sign_in
                and current._store.directory == store.directory
            )
            kept[sign_in.file_name] = (
                current if same and current else TokenProvider(sign_in, store, self._clock)
            )
        self._providers = kept

    def for_mailbox(self, mailbox: MailboxConfig) -> TokenProvider | None:
        if mailbox.auth != "oauth2":
            return None
        return self._providers.get(f"mailbox-{mailbox.name}.json")

    def for_smtp(self) -> TokenProvider | None:
        smtp = self._config.smtp.oauth2
        if smtp is None:
            return None
        return self._providers.get(f"mailbox-{smtp.mailbox}.json" if smtp.mailbox else "smtp.json")

    def all(self) -> dict[str, TokenProvider]:
        """By SignIn.key: the mailbox name, or "[smtp]" for [smtp]'s own sign-in."""
        return {provider.sign_in.key: provider for provider in self._providers.values()}
