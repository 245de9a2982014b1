"""Configuration files for load_config: the example shipped with mailbridge, a minimal file,
the secrets both read from the environment, and the error a broken file gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.config import load_config
from mailbridge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"
SECRETS = {"MAILBRIDGE_IMAP_PASSWORD": "imap-s3cret!", "MAILBRIDGE_SMTP_PASSWORD": "smtp-s3cret!"}

MINIMAL = """
[[mailbox]]
name = "support"
address = "support@example.com"
host = "imap.example.com"
username = "support@example.com"
password_env = "MAILBRIDGE_IMAP_PASSWORD"

[smtp]
host = "smtp.example.com"
from = "Support <support@example.com>"

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), SECRETS)
    return str(caught.value)
