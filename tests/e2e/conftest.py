"""The end-to-end suite runs each test against both IMAP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer


@pytest.fixture(params=["pymap", "dovecot"])
def imap_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedImapServer]:
    """Each end-to-end test runs against both servers (same surface)."""
    if request.param == "pymap":
        with EmbeddedImapServer() as server:
            yield server
        return
    yield request.getfixturevalue("dovecot_server")
