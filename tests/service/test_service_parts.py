"""The pieces of the service that need no servers: health bookkeeping, noticing template
edits, what a reload may change live, and the [service]/[retention] settings."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailbridge.clock import FrozenClock
from mailbridge.errors import ConfigError
from mailbridge.service.health import Health
from mailbridge.service.reload import TemplateWatcher, keep_restart_only
from tests.support.builders import make_config

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NOWHERE = SimpleNamespace(host="127.0.0.1", port=9, username="support", password="unused")


def test_health_names_what_is_failing_and_since_when() -> None:
    clock = FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    health = Health(clock)
    health.set("mailbox:support", "idle")
    health.set("mailbox:sales", "idle")
    health.set("smtp", "sending")
    assert health.healthy and health.mailbox_summary() == "2 mailboxes idle"

    health.failing("mailbox:sales", "connection lost: timed out")
    clock.advance(timedelta(minutes=5))
    health.failing("mailbox:sales", "connection refused: [Errno 111]")
    assert not health.healthy
    assert health.problems() == {"mailbox:sales": "failing: connection refused: [Errno 111]"}
    assert health.get("mailbox:sales").since == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # type: ignore[union-attr]
    assert health.mailbox_summary() == "1 mailbox failing, 1 idle"
    document = health.as_json()
    assert document["status"] == "unhealthy"
    assert document["components"]["smtp"]["ok"] is True

    health.set("mailbox:sales", "idle")
    assert health.healthy and health.as_json()["failing"] == {}


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(REPO / "templates", target)
    return target


def touch(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_template_edit_is_reported_once_it_has_settled(tmp_path: Path) -> None:
    directory = copy_templates(tmp_path)
    watcher = TemplateWatcher(directory)
    assert not watcher.poll()
    ack = directory / "en" / "acknowledgement.txt.j2"
    source = ack.read_text(encoding="utf-8")

    touch(ack, source[: len(source) // 2], 1_000_000_000_000_000_000)  # caught half written
    assert not watcher.poll()
    touch(ack, source + "\n", 1_000_000_000_500_000_000)  # still being written
    assert not watcher.poll()
    assert watcher.poll(), "unchanged for a whole poll: now it is loaded"
    assert not watcher.poll(), "reported once"

    (directory / "it" / "acknowledgement.txt.j2").unlink()
    assert not watcher.poll()
    assert watcher.poll(), "a removed file is a change too"


def test_keys_only_a_restart_can_change_keep_their_running_values(tmp_path: Path) -> None:
    running = make_config(
        tmp_path,
        database_url="sqlite:///one.db",
        imap=NOWHERE,
        smtp=NOWHERE,
        service={"listen": "127.0.0.1:9187"},
    )
    new = make_config(
        tmp_path,
        database_url="sqlite:///two.db",
        imap=NOWHERE,
        smtp=NOWHERE,
        service={"listen": "127.0.0.1:9999", "outbox_interval": "1s"},
        templates={"language": "it"},
    )
    kept, waiting = keep_restart_only(running, new)
    assert sorted(waiting) == ["database", "service.listen"]
    assert kept.database_url == "sqlite:///one.db" and kept.service.listen == "127.0.0.1:9187"
    assert kept.service.outbox_interval == timedelta(seconds=1)
    assert kept.templates.language == "it"
    assert keep_restart_only(running, running)[1] == []


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("127.0.0.1:9187", ("127.0.0.1", 9187)),
        ("[::1]:9187", ("::1", 9187)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_listen_addresses(tmp_path: Path, listen: str, expected: tuple[str, int]) -> None:
    config = make_config(
        tmp_path, database_url="sqlite://", imap=NOWHERE, smtp=NOWHERE, service={"listen": listen}
    )
    assert config.service.listen_address == expected


@pytest.mark.parametrize(
    "section, expected",
    [
        (
            {"service": {"listen": "9187"}},
            'service.listen: expected an address like "127.0.0.1:9187"',
        ),
        ({"service": {"listen": "127.0.0.1:99999"}}, "service.listen: expected an address like"),
        (
            {"retention": {"purge_after": "2h"}},
            "retention.purge_after: expected a duration of at least 1d",
        ),
        (
            {"retention": {"erase_content_after": "23h"}},
            "retention.erase_content_after: expected a duration of at least 1d",
        ),
        (
            {"retention": {"purge": ["raw", "everything"]}},
            "retention.purge[1]: expected Input should be 'raw', 'attachments'",
        ),
    ],
)
def test_bad_service_and_retention_settings_are_named(
    tmp_path: Path, section: dict[str, dict[str, object]], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(tmp_path, database_url="sqlite://", imap=NOWHERE, smtp=NOWHERE, **section)
    assert expected in str(caught.value)
