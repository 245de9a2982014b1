"""One IMAP connection to one folder: fetch, flag, move, delete and wait with IDLE.

Synchronous (imapclient); callers run it in a thread. It moves bytes and decides,
in `_translate_errors` only, whether a failure is transient or permanent. It logs in with
a password, or with an OAuth2 access token (SASL XOAUTH2, else OAUTHBEARER).

It is longer than most modules because it is one thing: every command, the IDLE wait and
the error translation work on the same IMAPClient session and its state, and the functions
after the class are that session's private pieces (socket waits, SASL answers, teardown).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import imaplib
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from mailbridge.adapters.tls import verifying_context
from mailbridge.config import MailboxConfig
from mailbridge.core.oauth import (
    SaslFailure,
    TokenSource,
    choose_mechanism,
    describe_sasl_failure,
    oauthbearer_response,
    xoauth2_response,
)
from mailbridge.errors import PermanentError, TransientError

__all__ = ["FetchedMessage", "ImapMailbox", "ImapSettings", "imap_settings"]

log = logging.getLogger(__name__)

SECURITY_MODES = ("tls", "starttls", "none")
# RFC 2177: servers may drop an IDLE after 30 minutes, so never wait longer than this.
MAX_IDLE_SECONDS = 25 * 60.0
# RFC 5530 response codes that mean "try again later" rather than "this will never work".
_TRANSIENT_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str  # tls | starttls | none
    username: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout: float = 30.0
    # None means adapters/tls.py's shared context: certificates and host names are verified.
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    # Set: log in with its OAuth2 access token instead of the password.
    oauth: TokenSource | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(f"security must be one of {SECURITY_MODES}, not {self.security!r}")


def imap_settings(mailbox: MailboxConfig, oauth: TokenSource | None = None) -> ImapSettings:
    """How to reach a configured mailbox folder; `oauth` when it signs in with OAuth2."""
    return ImapSettings(
        host=mailbox.host,
        port=mailbox.effective_port,
        security=mailbox.security,
        username=mailbox.username,
        password=mailbox.password.get_secret_value() if mailbox.password else "",
        folder=mailbox.folder,
        oauth=oauth,
    )


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes = field(repr=False)
    internal_date: datetime | None  # aware, UTC


class ImapMailbox:
    """A connection to the folder of `settings`; use as a context manager or connect()/close()."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None
        # interrupt() writes to this pair to end an idle_wait early, from any thread, and
        # sets the flag for one that has not made the pair yet (the first on a connection).
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._interrupted = threading.Event()
        # When the access token this session logged in with is about to run out (servers
        # such as Exchange Online then end the session): log in again from then on.
        self.token_refresh_at: datetime | None = None

    def __repr__(self) -> str:
        s = self.settings
        state = "connected" if self._client is not None else "closed"
        return f"<ImapMailbox {s.username}@{s.host}:{s.port}/{s.folder} {state}>"

    def __enter__(self) -> Self:
        if self._client is None:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- connection --

    def connect(self) -> int:
        """Connect, log in and select the folder (which must exist); returns UIDVALIDITY."""
        self.close()
        s = self.settings
        # First, so that a token endpoint that fails is not reported as the IMAP server.
        token = s.oauth.access_token() if s.oauth is not None else None
        with self._translate_errors(f"connect to folder {s.folder!r}"):
            client = self._open()
            try:
                if token is None:
                    client.login(s.username, s.password)
                else:
                    token = self._bearer_login(client, token)
                info = client.select_folder(s.folder)
                _news_reported_earlier(client)  # SELECT's own counts are no news
            except BaseException as exc:
                _discard(client, exc)
                raise
        self._client = client
        self._uidvalidity = int(info[b"UIDVALIDITY"])
        self.token_refresh_at = (
            s.oauth.refresh_at(token) if s.oauth is not None and token is not None else None
        )
        log.debug(
            "selected %s on %s as %s, uidvalidity %d",
            s.folder,
            s.host,
            s.username,
            self._uidvalidity,
        )
        return self._uidvalidity

    def _open(self) -> IMAPClient:
        s = self.settings
        context = s.ssl_context or verifying_context()
        client = IMAPClient(
            s.host,
            s.port,
            ssl=s.security == "tls",
            ssl_context=context if s.security == "tls" else None,
            timeout=s.timeout,
        )
        # Aware datetimes; imapclient otherwise converts INTERNALDATE to naive local time.
        client.normalise_times = False
        if s.security == "starttls":
            try:
                client.starttls(context)
            except BaseException as exc:
                _discard(client, exc)
                raise
        return client

    def _bearer_login(self, client: IMAPClient, token: str) -> str:
        """AUTHENTICATE with the token; when refused, once more with a refreshed one.
        Returns the token the session logged in with."""
        s = self.settings
        assert s.oauth is not None
        offered = [
            c.decode()[5:]
            for c in client.capabilities()
            if isinstance(c, bytes) and c.upper().startswith(b"AUTH=")
        ]
        mechanism = choose_mechanism(offered)
        if mechanism is None:
            raise CapabilityError(
                f"no XOAUTH2 or OAUTHBEARER among the server's "
                f"mechanisms ({', '.join(offered) or 'none'})"
            )
        try:
            _authenticate(client, mechanism, s.username, token, s.host, s.port)
            return token
        except LoginError as exc:
            log.info(
                "IMAP %s refused the access token of %s (%s); refreshing it once",
                s.host,
                s.username,
                exc,
            )
        s.oauth.invalidate(token)
        token = s.oauth.access_token()
        try:
            _authenticate(client, mechanism, s.username, token, s.host, s.port)
            return token
        except LoginError as exc:
            raise LoginError(
                f"{exc}, again with a freshly refreshed token: check the "
                f"scopes the app was granted and that the sign-in was made as "
                f"{s.username}"
            ) from None

    def close(self) -> None:
        """Log out; never raises. The object cannot be reconnected afterwards."""
        client, self._client = self._client, None
        if client is not None:
            _quietly_logout(client)
        wakeup, self._wakeup = self._wakeup, None
        for end in wakeup or ():
            end.close()

    def interrupt(self) -> None:
        """End a running idle_wait early, or the next one at once (it returns False); safe
        from any thread."""
        self._interrupted.set()  # before looking for the pair: idle_wait makes it, then looks
        wakeup = self._wakeup
        if wakeup is not None:
            with contextlib.suppress(OSError):
                wakeup[1].send(b"!")

    def _wakeup_reader(self) -> socket.socket:
        if self._wakeup is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            self._wakeup = (reader, writer)
        return self._wakeup[0]

    def _drain_wakeup(self) -> bool:
        """Whether interrupt() was called since the last time; forgets that it was."""
        try:
            woken = bool(self._wakeup_reader().recv(64))
        except (BlockingIOError, OSError):
            woken = False
        interrupted = self._interrupted.is_set()
        self._interrupted.clear()
        return woken or interrupted

    # -- reading --

    def uidvalidity(self) -> int:
        """UIDVALIDITY of the folder as reported when it was selected."""
        self._connected()
        assert self._uidvalidity is not None
        return self._uidvalidity

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than last_uid, ascending."""
        client = self._connected()
        with self._translate_errors("search"):
            # Some servers (pymap) only let a session see mail that arrived since the
            # last command once a command like NOOP has reported it. Earlier notices are
            # covered by this search; one that comes with the search itself is kept.
            _news_reported_earlier(client)
            client.noop()
            found = client.search(["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each message, by UID: what fetching it will bring. UIDs that no
        longer exist are left out."""
        if not uids:
            return {}
        client = self._connected()
        with self._translate_errors("fetch sizes"):
            data = client.fetch(sorted(set(uids)), ["RFC822.SIZE"])
        return {
            uid: size
            for uid, item in data.items()
            if isinstance(size := item.get(b"RFC822.SIZE"), int)
        }

    def fetch(self, uids: Sequence[int], batch_size: int = 200) -> Iterator[FetchedMessage]:
        """Raw bytes and INTERNALDATE of each message, ascending UID, batch_size at a time.

        Without marking anything \\Seen. UIDs that no longer exist are skipped.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        ordered = sorted(set(uids))
        for start in range(0, len(ordered), batch_size):
            batch = ordered[start : start + batch_size]
            client = self._connected()
            with self._translate_errors("fetch"):
                data = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in batch:
                item = data.get(uid)
                if item is not None and b"BODY[]" in item:
                    yield FetchedMessage(
                        uid, bytes(item[b"BODY[]"]), _utc(item.get(b"INTERNALDATE"))
                    )

    # -- changing --

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            client = self._connected()
            with self._translate_errors("mark seen"):
                client.add_flags(list(uids), [b"\\Seen"], silent=True)

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move to folder, creating it if missing; MOVE when offered, else COPY + expunge."""
        if not uids:
            return
        client = self._connected()
        with self._translate_errors(f"move to {folder}"):
            if not client.folder_exists(folder):
                _create_folder(client, folder)
            if client.has_capability("MOVE"):
                client.move(list(uids), folder)
                return
            client.copy(list(uids), folder)
        self.delete(uids)

    def delete(self, uids: Sequence[int]) -> None:
        """Flag \\Deleted and expunge: only these UIDs with UIDPLUS, else the whole folder."""
        if not uids:
            return
        client = self._connected()
        with self._translate_errors("delete"):
            client.add_flags(list(uids), [b"\\Deleted"], silent=True)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(list(uids))
            else:
                client.expunge()

    # -- waiting --

    def supports_idle(self) -> bool:
        return bool(self._connected().has_capability("IDLE"))

    def idle_wait(self, timeout: float) -> bool:
        """IDLE until the server reports new mail or timeout (capped at 25 min) passes.

        True if EXISTS or RECENT arrived. Callers re-issue it in a loop.
        """
        client = self._connected()
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_IDLE_SECONDS)
        wakeup = self._wakeup_reader()
        with self._translate_errors("idle"):
            # EXISTS that came with an earlier command's answer (a SEARCH, FETCH or MOVE
            # while mail arrived) is news the pass that sent it may not have seen.
            if _news_reported_earlier(client):
                return True
            # Servers report mail that arrived between commands only at the next command,
            # not when IDLE starts (pymap and Dovecot both wait for DONE): ask first.
            _text, pending = client.noop()
            if _reports_new_mail(pending):
                return True
            while True:
                if self._interrupted.is_set():  # told to stop before the pair was made
                    self._drain_wakeup()
                    return False
                client.idle()
                # Wait for the socket ourselves and let idle_done() read the responses with
                # a blocking read: imapclient's idle_check() reads without blocking and
                # fails on a response line that arrives in two pieces.
                readable = _wait_readable(client, deadline - time.monotonic(), wakeup)
                _text, responses = client.idle_done()
                if _reports_new_mail(responses):
                    return True
                if self._drain_wakeup():
                    return False
                # Something else (a keep-alive, a flag change): IDLE again until the deadline.
                if not readable or time.monotonic() >= deadline:
                    return False

    # -- helpers --

    def _connected(self) -> IMAPClient:
        if self._client is None:
            raise TransientError(f"not connected to {self.settings.host}")
        return self._client

    @contextmanager
    def _translate_errors(self, action: str) -> Iterator[None]:
        """The one place where IMAP failures become TransientError or PermanentError."""
        s = self.settings
        where = f"IMAP {action} on {s.host}:{s.port}"
        try:
            yield
        except LoginError as exc:
            self._drop()
            reply = _redact(str(exc), s.password)
            raise PermanentError(
                f"{where}: login refused for user {s.username!r}: {reply}"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise PermanentError(
                f"{where}: certificate verification failed: {exc.verify_message}"
            ) from exc
        except CapabilityError as exc:
            raise PermanentError(f"{where}: server lacks a needed capability: {exc}") from exc
        except imaplib.IMAP4.readonly as exc:
            raise PermanentError(f"{where}: folder became read-only: {exc}") from exc
        except (imaplib.IMAP4.abort, OSError, EOFError) as exc:
            # OSError covers socket errors, refused/reset connections, timeouts and TLS.
            self._drop()
            raise TransientError(f"{where}: {_describe(exc)}") from exc
        except imaplib.IMAP4.error as exc:
            message = _redact(str(exc), s.password)
            if any(code in message for code in _TRANSIENT_CODES):
                raise TransientError(f"{where}: {message}") from exc
            raise PermanentError(f"{where}: {message}") from exc

    def _drop(self) -> None:
        # After a connection failure the session state is unknown; callers reconnect.
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # the connection is already gone
                log.debug("shutdown after failure raised", exc_info=True)


def _wait_readable(client: IMAPClient, timeout: float, wakeup: socket.socket) -> bool:
    """True when the server has said something; False on timeout or when woken."""
    sock = client.socket()
    if sock.fileno() < 0:
        raise ConnectionResetError("the IMAP connection was closed")
    if _buffered(client, sock):
        return True
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        selector.register(wakeup, selectors.EVENT_READ)
        ready = selector.select(max(timeout, 0.0))
        return any(key.fileobj is sock for key, _ in ready)


def _buffered(client: IMAPClient, sock: socket.socket) -> bool:
    """Whether imaplib already holds server data the socket will not signal again.

    News that came in the same packet as "+ idling" (Dovecot and Cyrus report what changed
    as IDLE starts) was read into imaplib's buffer with the continuation line; so was
    decrypted TLS data. Peek without blocking.
    """
    reader = getattr(client._imap, "file", None)
    if reader is None:
        return False
    previous = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return bool(reader.peek(1))
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(previous)


def _authenticate(
    client: IMAPClient, mechanism: str, user: str, token: str, host: str, port: int
) -> None:
    """One AUTHENTICATE; LoginError carries the server's answer and its JSON error."""
    if mechanism == "XOAUTH2":
        initial = xoauth2_response(user, token)
    else:
        initial = oauthbearer_response(user, token, host, port)
    failure: list[SaslFailure] = []

    def respond(challenge: bytes) -> bytes:
        if not failure and not challenge:
            failure.append(SaslFailure())  # the first, empty challenge: send the token
            return initial
        # A challenge after the token is the server's JSON error (RFC 7628 3.2.2); it
        # then wants a dummy answer (an empty line for XOAUTH2, ^A for OAUTHBEARER).
        failure[:] = [describe_sasl_failure(_decoded(challenge)) or SaslFailure()]
        return b"" if mechanism == "XOAUTH2" else b"\x01"

    try:
        client.sasl_login(mechanism, respond)
    except LoginError as exc:
        said = str(failure[0]) if failure and str(failure[0]) else ""
        raise LoginError(
            f"AUTHENTICATE {mechanism} answered: {exc}"
            + (f" (server said: {said})" if said else "")
        ) from None


def _create_folder(client: IMAPClient, folder: str) -> None:
    """Create `folder`. One that another connection created since we looked (two mailboxes
    of one account, or two instances, moving mail to the same folder at once: the server
    answers ALREADYEXISTS) is as good; any other refusal is raised."""
    try:
        client.create_folder(folder)
    except IMAPClientError:
        if not client.folder_exists(folder):
            raise


def _decoded(challenge: bytes) -> bytes:
    # imaplib hands the challenge over decoded; some servers send it base64 twice.
    try:
        return base64.b64decode(challenge, validate=True) if challenge[:1] != b"{" else challenge
    except (binascii.Error, ValueError):
        return challenge


def _reports_new_mail(responses: list[Any]) -> bool:
    for response in responses:
        if not (isinstance(response, tuple) and len(response) >= 2):
            continue
        count, kind = response[0], response[1]
        if isinstance(count, int) and (kind == b"EXISTS" or (kind == b"RECENT" and count > 0)):
            return True
    return False


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _discard(client: IMAPClient, failure: BaseException) -> None:
    """Get rid of a half-set-up connection after failure."""
    refused_politely = isinstance(failure, imaplib.IMAP4.error) and not isinstance(
        failure, imaplib.IMAP4.abort
    )
    if refused_politely:
        _quietly_logout(client)
        return
    # The session is broken (socket error, failed TLS handshake): a LOGOUT would only
    # wait out the timeout.
    try:
        client.shutdown()
    except Exception:  # nothing left to close
        log.debug("closing the IMAP connection raised", exc_info=True)


def _quietly_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - closing anyway: if LOGOUT fails, shut the socket
        try:
            client.shutdown()
        except Exception:  # nothing left to close
            log.debug("closing the IMAP connection raised", exc_info=True)


def _news_reported_earlier(client: IMAPClient) -> bool:
    """Pop EXISTS/RECENT that imaplib kept from answers no command asked about.

    imapclient reads NOOP and IDLE answers itself, but other commands go through imaplib,
    which files unrequested untagged responses in `untagged_responses` and leaves them there.
    """
    pending = getattr(getattr(client, "_imap", None), "untagged_responses", None)
    if not isinstance(pending, dict):
        return False
    found = [pending.pop(key, None) for key in ("EXISTS", "RECENT")]
    return any(found)
