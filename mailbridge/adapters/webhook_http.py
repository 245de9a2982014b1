"""One HTTP(S) request to a webhook, with the standard library: blocking (run it in a
thread), bounded by a total deadline, TLS certificates verified, redirects never followed
(they would carry the signature and a Matrix token elsewhere), no proxy.

The answer is classified once, here (errors.py): 2xx is delivered; 408, 429, 5xx, a
timeout and every network or TLS failure are `TransientError` (`RetryLater` carries a
`Retry-After` in seconds); any other status is a `PermanentError`. `.code` is the HTTP
status. No message repeats the URL, which may hold a token.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mailbridge.adapters.tls import verifying_context
from mailbridge.errors import PermanentError, TransientError, one_line

__all__ = ["HttpAnswer", "HttpRequest", "RetryLater", "send_request"]

SNIPPET = 200  # characters of an error answer's body kept (Slack says "invalid_payload")
LONGEST_RETRY_AFTER = 3600.0


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str  # POST, or PUT (Matrix)
    url: str = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    timeout: float  # seconds, for the whole exchange
    ca_file: Path | None = None  # None: the system's trusted CAs


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    reason: str


class RetryLater(TransientError):
    """408, 429 or 5xx: try again, not before `retry_after` seconds when the server said."""

    def __init__(self, message: str, *, code: int, retry_after: float | None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


def send_request(request: HttpRequest) -> HttpAnswer:
    """Send `request`; its answer when 2xx, else raises as the module docstring says."""
    parts = urlsplit(request.url)
    host, port = parts.hostname or "", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = verifying_context(request.ca_file)
        connection = http.client.HTTPSConnection(
            host, port, timeout=request.timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=request.timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = _Deadline(connection, request.timeout)
    try:
        connection.request(request.method, target, body=request.body, headers=dict(request.headers))
        response = connection.getresponse()
        text = response.read(SNIPPET * 4)
    except ssl.SSLCertVerificationError as exc:
        raise TransientError(
            f"TLS: the server's certificate is not trusted: {exc.verify_message}"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired or isinstance(exc, TimeoutError | socket.timeout):
            raise TransientError(f"no answer within {request.timeout:g} s") from None
        raise TransientError(f"connection failed: {_described(exc)}") from None
    finally:
        deadline.cancel()
        connection.close()
    if deadline.expired:  # the answer was cut short: what was read of it proves nothing
        raise TransientError(f"no answer within {request.timeout:g} s")
    return _classified(response, text)


def _classified(response: http.client.HTTPResponse, text: bytes) -> HttpAnswer:
    status, reason = response.status, one_line(response.reason or "", 80)
    if 200 <= status < 300:
        return HttpAnswer(status, reason)
    said = one_line(text.decode("utf-8", "replace"), SNIPPET)
    message = f"HTTP {status} {reason}".rstrip() + (f": {said}" if said else "")
    if status in (408, 429) or status >= 500:
        retry_after = _seconds(response.getheader("Retry-After"))
        raise RetryLater(message, code=status, retry_after=retry_after)
    if 300 <= status < 400:
        message += " (redirects are not followed: set the webhook's url to where it points)"
    raise PermanentError(message, code=status)


def _seconds(value: str | None) -> float | None:
    """A Retry-After of delay-seconds (an HTTP date is left to our own backoff)."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), LONGEST_RETRY_AFTER)


def _described(exc: BaseException) -> str:
    text = one_line(str(exc), 200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Deadline:
    """Ends the exchange after `seconds` in all: the socket timeout alone bounds each read,
    and a server that answers a byte at a time would never meet it."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self.expired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.expired = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # closed already
                sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
