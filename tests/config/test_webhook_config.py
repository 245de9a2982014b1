"""[[webhook]] in the configuration: what it takes, errors that name the file and the key,
and secrets (the URL's token, the signing key, Matrix's access token) that come only from
the environment or a file and never print."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.config import Config, load_config
from mailbridge.errors import ConfigError
from tests.support.config_files import EXAMPLE

pytestmark = pytest.mark.unit

BASE = """
[[mailbox]]
name = "support"
address = "support@shop.example"
host = "imap.shop.example"
username = "support"
password_env = "IMAP_PASSWORD"

[smtp]
host = "smtp.shop.example"
from = "Support <support@shop.example>"

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"
"""
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
KEY = "9f1c0e4b7a2d8c6e5f3a1b0d9c8e7f6a"
ENV = {"IMAP_PASSWORD": "imap-pw", "HOOK_URL": SLACK_URL, "HOOK_KEY": KEY, "MX_TOKEN": "syt_tok"}


def load(tmp_path: Path, *webhooks: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "mailbridge.toml"
    tables = "".join(f"\n[[webhook]]\n{table}\n" for table in webhooks)
    path.write_text(BASE + tables, encoding="utf-8")
    return load_config(path, ENV if env is None else env)


def problem(tmp_path: Path, *webhooks: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, *webhooks, env=env)
    return str(raised.value)


def test_a_webhook_with_its_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, f'url = "{SLACK_URL}"\nevents = ["escalated", "resolved"]')
    [hook] = config.webhook
    assert (hook.name, hook.label, hook.format, hook.include_text) == (
        "hooks.slack.com",
        "hooks.slack.com",
        "json",
        False,
    )
    assert (hook.events, hook.timeout, hook.max_attempts) == (
        ("escalated", "resolved"),
        timedelta(seconds=10),
        10,
    )
    assert hook.secret is None and hook.give_up_after == timedelta(days=1)
    assert load(tmp_path).webhook == (), "no [[webhook]], none"


def test_the_url_token_and_keys_come_from_the_environment_or_files_and_never_print(
    tmp_path: Path,
) -> None:
    (tmp_path / "hook.key").write_text(KEY + "\n", encoding="utf-8")
    os.chmod(tmp_path / "hook.key", 0o600)
    config = load(
        tmp_path,
        'name = "team-chat"\nurl_env = "HOOK_URL"\nsecret_env = "HOOK_KEY"\n'
        'events = ["ticket_created"]\nformat = "slack"',
        'name = "ops-room"\nurl = "https://matrix.shop.example/_matrix/client/v3/rooms/'
        '%21abc%3Ashop.example/send/m.room.message"\ntoken_env = "MX_TOKEN"\n'
        'secret_file = "hook.key"\nevents = ["escalated"]\nformat = "matrix"',
    )
    chat, room = config.webhook
    assert chat.url == SLACK_URL and chat.secret is not None
    assert chat.secret.get_secret_value() == KEY
    assert room.token is not None and room.token.get_secret_value() == "syt_tok"
    assert room.secret is not None and room.secret.get_secret_value() == KEY, "file, trimmed"
    printed = f"{config!r} {config} {config.webhook!r} {config.model_dump()}"
    for secret in (KEY, "syt_tok", "XXXXsecretXXXX"):
        assert secret not in printed


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('url = "ftp://hooks.example/x"', "webhook[0].url: expected an https:// URL"),
        ('url = "http://hooks.example/x"', "plain http:// only to 127.0.0.1"),
        ('url = "javascript:alert(1)"', "webhook[0].url: expected an https:// URL"),
        ('url = "https://user:pw@hooks.example/x"', "without a user name or password"),
        ('url = "https://hooks.example:99999/x"', "webhook[0].url: expected a URL like"),
        ('url = "https://a.example/x"\nurl_env = "HOOK_URL"', "one of url, url_env or url_file"),
        ('events = ["escalated"]', "webhook[0]: expected one of url, url_env or url_file"),
        ('secret = "inline-key-0123456789"', "no inline secret: use secret_env or secret_file"),
        ('token = "syt_inline"', "no inline token: use token_env or token_file"),
        ('format = "matrix"', 'token_env or token_file with format = "matrix"'),
        ('token_env = "MX_TOKEN"', 'the token is for format = "matrix"'),
        ('format = "discord"', "webhook[0].format: expected"),
        ('timeout = "5m"', "webhook[0].timeout: expected a duration from 1s to 60s"),
        ('name = "team chat!"', "webhook[0].name: expected a name of letters"),
        ("max_attempts = 0", "webhook[0].max_attempts: expected"),
        ("colour = 1", "webhook[0].colour: unknown key"),
    ],
)
def test_a_bad_webhook_is_refused_naming_the_key(tmp_path: Path, table: str, expected: str) -> None:
    keys = dict(line.split(" = ", 1) for line in table.splitlines())
    lines = [table]
    if not {"url", "url_env", "events"} & keys.keys():
        lines.append('url = "https://hooks.example/x"')
    if "events" not in keys:
        lines.append('events = ["escalated"]')
    message = problem(tmp_path, "\n".join(lines))
    assert expected in message
    assert str(tmp_path / "mailbridge.toml") in message


def test_an_unknown_event_is_named_with_the_allowed_ones(tmp_path: Path) -> None:
    message = problem(tmp_path, 'url = "https://h.example/x"\nevents = ["created", "resolved"]')
    assert "webhook[0].events[0]: expected" in message
    assert "'ticket_created', 'escalated', 'sla_breached', 'unhappy' or 'resolved'" in message
    assert "webhook[0].events: expected" in problem(
        tmp_path, 'url = "https://h.example/x"\nevents = []'
    )


def test_plain_http_is_for_this_machine_only(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/h"):
        [hook] = load(tmp_path, f'url = "{url}"\nevents = ["resolved"]').webhook
        assert hook.url == url


def test_a_url_from_the_environment_is_checked_without_being_repeated(tmp_path: Path) -> None:
    env = {**ENV, "HOOK_URL": "http://hooks.example/services/T/B/topsecret"}
    message = problem(tmp_path, 'url_env = "HOOK_URL"\nevents = ["resolved"]', env=env)
    assert "webhook[0].url_env: expected an https:// URL" in message
    assert "topsecret" not in message
    missing = problem(tmp_path, 'url_env = "NOPE"\nevents = ["resolved"]')
    assert "webhook[0].url_env: expected the environment variable NOPE to be set" in missing


def test_a_short_signing_key_is_refused(tmp_path: Path) -> None:
    env = {**ENV, "HOOK_KEY": "short"}
    message = problem(
        tmp_path,
        'url = "https://h.example/x"\nevents = ["resolved"]\nsecret_env = "HOOK_KEY"',
        env=env,
    )
    assert "webhook[0].secret_env: expected a key of at least 16 bytes" in message
    assert "short" not in message.split("secret_env")[1].replace("shorter", "")


def test_names_are_each_webhooks_own(tmp_path: Path) -> None:
    same_host = 'url = "https://hooks.slack.com/services/A"\nevents = ["resolved"]'
    message = problem(tmp_path, same_host, same_host.replace("/A", "/B"))
    assert "webhook[1].name: expected a name no other [[webhook]] has" in message
    named = load(tmp_path, same_host, 'name = "second"\n' + same_host.replace("/A", "/B"))
    assert [hook.label for hook in named.webhook] == ["hooks.slack.com", "second"]


def test_a_secret_file_others_can_read_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "hook.key").write_text(KEY, encoding="utf-8")
    os.chmod(tmp_path / "hook.key", 0o644)
    with caplog.at_level(logging.WARNING, logger="mailbridge.config"):
        load(
            tmp_path, 'url = "https://h.example/x"\nevents = ["resolved"]\nsecret_file = "hook.key"'
        )
    assert "webhook[0].secret_file" in caplog.text and KEY not in caplog.text


def test_a_ca_file_is_read_relative_to_the_configuration(tmp_path: Path) -> None:
    table = 'url = "https://chat.internal/x"\nevents = ["resolved"]\nca_file = "ca.pem"'
    assert "webhook[0].ca_file: expected a PEM file" in problem(tmp_path, table)
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    [hook] = load(tmp_path, table).webhook
    assert hook.ca_file == tmp_path / "ca.pem"


def test_the_examples_webhooks_load_as_written(tmp_path: Path) -> None:
    """The commented [[webhook]] tables of config.example.toml, uncommented, are valid."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    tables: list[str] = []
    for index, line in enumerate(lines):
        if line == "# [[webhook]]":
            table = []
            for following in lines[index + 1 :]:
                if not following.startswith("# ") or following.startswith("# [["):
                    break
                table.append(following.removeprefix("# "))
            tables.append("\n".join(table))
    assert len(tables) == 2
    (tmp_path / "matrix-token").write_text("syt_example", encoding="utf-8")
    os.chmod(tmp_path / "matrix-token", 0o600)
    tables = [t.replace("/etc/mailbridge/matrix-token", "matrix-token") for t in tables]
    env = {**ENV, "MAILBRIDGE_SLACK_URL": SLACK_URL, "MAILBRIDGE_HOOK_KEY": KEY}
    chat, room = load(tmp_path, *tables, env=env).webhook
    assert (chat.label, chat.format, room.label, room.format) == (
        "team-chat",
        "slack",
        "ops-room",
        "matrix",
    )
