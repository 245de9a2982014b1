"""Certificate-verifying TLS contexts, made once per process and shared by every
connection (SMTP, IMAP, webhooks).

`ssl.create_default_context()` reads the system's CA bundle each time it is called: about
15 ms here, and SMTP connects on the event loop, so making one per connection held up
every mail sent after an acknowledgement (docs/architecture.md, "7. Send"). A context is
safe to share between connections and threads; its settings are the defaults: protocol,
certificate and host name verified. A CA bundle changed on disk is read at the next start.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path

__all__ = ["verifying_context"]


@lru_cache(maxsize=8)
def verifying_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The default verifying context, trusting `ca_file` instead of the system's CAs when
    given; the same object for the same argument."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
