"""[storage]: where attachments and raw mail go, with clear errors, and a restart to change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.config import load_config
from mailbridge.service.reload import keep_restart_only
from tests.support.config_files import MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit


def test_defaults_keep_everything_in_the_database(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), SECRETS)
    assert (config.storage.attachments, config.storage.raw) == ("database", "database")
    assert config.blob_dir == config.data_dir / "blobs"
    assert config.storage.orphan_grace == timedelta(hours=1)


def test_files_with_a_directory_relative_to_the_file(tmp_path: Path) -> None:
    text = MINIMAL + '\n[storage]\nattachments = "files"\nraw = "files"\ndir = "store"\n'
    config = load_config(write(tmp_path, text), SECRETS)
    assert (config.storage.attachments, config.storage.raw) == ("files", "files")
    assert config.blob_dir == tmp_path / "store"


@pytest.mark.parametrize(
    ("setting", "placed"),
    [
        ('attachments = "files"', ("files", "files")),  # raw mail carries them again
        ('attachments = "files"\nraw = "database"', ("files", "database")),
        ('raw = "files"', ("database", "files")),
    ],
)
def test_raw_mail_follows_the_attachments_unless_told(
    tmp_path: Path, setting: str, placed: tuple[str, str]
) -> None:
    config = load_config(write(tmp_path, MINIMAL + f"\n[storage]\n{setting}\n"), SECRETS)
    assert (config.storage.attachments, config.storage.raw) == placed


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'attachments = "s3"',
            "storage.attachments: expected Input should be 'database' or 'files'",
        ),
        ('raw = "../files"', "storage.raw: expected Input should be 'database' or 'files'"),
        ('orphan_grace = "5s"', "storage.orphan_grace: expected a duration of at least 1m"),
        ('bucket = "x"', "storage.bucket: unknown key"),
    ],
)
def test_wrong_values_name_the_key(tmp_path: Path, setting: str, expected: str) -> None:
    assert expected in problem(tmp_path, MINIMAL + f"\n[storage]\n{setting}\n")


def test_a_reload_keeps_the_running_placement(tmp_path: Path) -> None:
    running = load_config(write(tmp_path, MINIMAL), SECRETS)
    changed = load_config(write(tmp_path, MINIMAL + '\n[storage]\nraw = "files"\n'), SECRETS)
    kept, waiting = keep_restart_only(running, changed)
    assert kept.storage.raw == "database" and waiting == ["storage"]
