"""Shared fixtures."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailbridge import heap
from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink

# The helpers in tests/support and tests/hostile assert too: rewritten like a test module's,
# their failures show the values compared. Registered before the plugins below import them.
pytest.register_assert_rewrite("tests.support", "tests.hostile")


@pytest.fixture(autouse=True)
def _umask_restored() -> Iterator[None]:
    """mailbridge's main() sets the umask for its whole process; a test that calls it
    in-process must not change the permissions of the files the next test writes."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture(autouse=True)
def _log_handlers_restored() -> Iterator[None]:
    """main() points the root logger at the sys.stderr of the test that calls it, which
    pytest closes afterwards: a daemon thread of a later test would log into a closed
    file ("Logging error") instead of into that test's captured output."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# The test process's own long-lived heap (modules, the collected tests, caches: some 380,000
# objects) is kept out of the collector's reach as mailbridge/heap.py does for the daemon:
# a full collection walked it in 0.23 s, once after every PostgreSQL test
# (tests/support/dbfixtures.py) and at each automatic one. Settled once the tests are
# collected, and again every SETTLE_EVERY tests: what is loaded later joins it, and what was
# frozen and has become garbage since is freed (main() and `mailbridge run` in-process
# freeze the heap too). Not after each test that froze: gc.get_freeze_count() walks the
# whole frozen list: asked after every test, it made test_tnef_caps take 4.5 s, not 0.1.
SETTLE_EVERY = 100
_tests_since_settled = [0]


def _settle() -> None:
    with warnings.catch_warnings():  # what earlier tests left open is closed here, in silence
        warnings.simplefilter("ignore", ResourceWarning)
        heap.settle()
    _tests_since_settled[0] = 0


def pytest_collection_finish() -> None:
    _settle()


@pytest.fixture(autouse=True)
def _heap_settled() -> Iterator[None]:
    yield
    _tests_since_settled[0] += 1
    if _tests_since_settled[0] >= SETTLE_EVERY:
        _settle()


# --- Mail servers: embedded IMAP (pymap) and SMTP sink (aiosmtpd) -------------------------


@pytest.fixture
def imap_server() -> Iterator[EmbeddedImapServer]:
    """A fresh, empty IMAP server on 127.0.0.1 (user "support", password "secret")."""
    with EmbeddedImapServer() as server:
        yield server


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain-text SMTP sink on 127.0.0.1 that accepts everything until told otherwise."""
    with SmtpSink() as sink:
        yield sink


@dataclass(frozen=True)
class SelfSignedCertificate:
    cert: Path  # PEM certificate for CN=localhost, IP:127.0.0.1
    key: Path


@pytest.fixture(scope="session")
def self_signed_certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    """A throwaway self-signed certificate, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return SelfSignedCertificate(cert, key)


# --- end of mail server fixtures ----------------------------------------------------------


# --- Databases: SQLite and PostgreSQL ------------------------------------------------------

pytest_plugins = ["tests.support.dbfixtures", "tests.support.engine", "tests.support.dovecot"]


# The longest files go first: `make test` runs each file whole in one pytest process
# (--dist loadfile), and a long file handed out last would run alone at the end.
LONGEST_FIRST = (
    "tests/faults/test_faults.py",
    "tests/inbound/test_ingest.py",
    "tests/cli/test_merge_cli.py",
    "tests/cli/test_cli.py",
    "tests/inbound/test_crash.py",
    "tests/oauth/test_oauth_run.py",
    "tests/hostile/test_render_limits.py",
    "tests/cli/test_service_cli.py",
    "tests/cli/test_staff_cli.py",
    "tests/cli/test_search_cli.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: place for place, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
