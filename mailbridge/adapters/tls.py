"""Certificate-verifying TLS contexts, made once per process and shared by every
connection (SMTP, IMAP, webhooks).

`ssl.create_default_context()` reads the system's CA bundle each time it is called: about
15 ms here, and SMTP connects on the event loop, so making one per connection held up
every mail sent after an acknowledgement (docs/architecture.md, "7. Send"). A context is
safe to share between connections and threads; its settings are the defaults: protocol,
certificate and host name verified. A webhook's own CA file is read again when it changes
on disk (its modification time); the system's bundle is read at the next start.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path

__all__ = ["verifying_context"]


def verifying_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The default verifying context, trusting `ca_file` instead of the system's CAs when
    given; the same object while the file is unchanged."""
    if ca_file is None:
        return _context(None, 0)
    try:
        changed = ca_file.stat().st_mtime_ns
    except OSError:
        changed = 0  # loading it says what is wrong
    return _context(ca_file, changed)


@lru_cache(maxsize=8)
def _context(ca_file: Path | None, _changed: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
