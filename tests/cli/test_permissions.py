"""Files mailbridge creates are its own user's (and group's), whatever umask it was started
with: every command runs here as a process started with the permissive umask 022."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from mailbridge.demo.imap_server import EmbeddedImapServer
from mailbridge.demo.smtp_sink import SmtpSink
from tests.support.builders import mail
from tests.support.daemon_process import Daemon, imap_server, mailbridge, start, write_config

pytestmark = pytest.mark.integration

__all__ = ["imap_server", "start"]  # fixtures: the password these configurations use, the daemon

PERMISSIVE = 0o022


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_and_shm_files_are_not_for_other_users(
    tmp_path: Path,
    imap_server: EmbeddedImapServer,
    smtp_sink: SmtpSink,
    start: Callable[..., Daemon],
) -> None:
    database = tmp_path / "state" / "mailbridge.db"
    config = write_config(tmp_path, imap_server, smtp_sink, f"sqlite:///{database}")
    upgraded = mailbridge(config, "db", "upgrade", umask=PERMISSIVE)
    assert upgraded.returncode == 0, upgraded.stderr
    assert mode(database) == 0o640
    assert mode(database.parent) == 0o750

    imap_server.append(mail())
    daemon = start(config, umask=PERMISSIVE)
    daemon.wait_for_notice("READY=1")
    smtp_sink.wait_for(1)  # the acknowledgement went out: the database was written to
    files = {path.name: mode(path) for path in database.parent.iterdir()}
    assert daemon.stop() == 0
    assert files == {"mailbridge.db": 0o640, "mailbridge.db-wal": 0o640, "mailbridge.db-shm": 0o640}


def test_a_backup_is_readable_by_its_owner_only(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url)
    assert mailbridge(config, "db", "upgrade", umask=PERMISSIVE).returncode == 0
    target = tmp_path / "backup.db"
    result = mailbridge(config, "db", "backup", str(target), umask=PERMISSIVE)
    assert result.returncode == 0, result.stderr
    assert mode(target) == 0o600


def test_a_secret_file_other_users_can_read_is_named_in_a_warning(
    tmp_path: Path, imap_server: EmbeddedImapServer, smtp_sink: SmtpSink, sqlite_url: str
) -> None:
    config = write_config(tmp_path, imap_server, smtp_sink, sqlite_url, smtp_login=True)
    secret = tmp_path / "smtp.secret"
    secret.chmod(0o644)
    shared = mailbridge(config, "config", "check", umask=PERMISSIVE)
    assert shared.returncode == 0, shared.stderr
    assert (
        f"{config}: smtp.password_file: {secret} is readable by other users of this "
        f"machine (mode 0644)"
    ) in shared.stderr

    secret.chmod(0o640)
    private = mailbridge(config, "config", "check", umask=PERMISSIVE)
    assert private.returncode == 0 and "other users" not in private.stderr
