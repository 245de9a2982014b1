"""The configuration file: errors name the file, the key and the expectation; secrets
never show."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from mailbridge.app import SECRET_FILE, reply_secret
from mailbridge.config import Config, load_config, parse_duration, parse_size
from mailbridge.core.spam_headers import VerdictSettings
from mailbridge.errors import ConfigError
from tests.support.config_files import EXAMPLE, MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit


def test_the_example_configuration_loads() -> None:
    config = load_config(EXAMPLE, SECRETS)
    assert config.mailbox[0].address == "support@example.com"
    assert config.mailbox[0].password is not None
    assert config.mailbox[0].password.get_secret_value() == "imap-s3cret!"
    assert config.smtp.from_ == "Example Support <support@example.com>"
    assert [p.name for p in config.sla] == ["urgent-billing", "standard"]
    assert config.calendar.timezone == "Europe/Rome"


def test_defaults_fill_what_a_minimal_file_leaves_out(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), SECRETS)
    assert config.mailbox[0].effective_port == 993
    assert config.smtp.effective_port == 587
    assert config.sla[0].first_response == timedelta(hours=8)
    assert config.auto_migrate is True
    assert config.database_url.startswith("sqlite:///")


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    text = MINIMAL.replace('folder = "INBOX"', "").replace(
        'host = "imap.example.com"', 'host = "imap.example.com"\nfolderr = "INBOX"'
    )
    message = problem(tmp_path, text)
    assert str(tmp_path / "mailbridge.toml") in message
    assert "mailbox[0].folderr: unknown key" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    message = problem(
        tmp_path,
        MINIMAL.replace('host = "imap.example.com"', 'host = "imap.example.com"\nport = "nine"'),
    )
    assert "mailbox[0].port: expected" in message and "integer" in message


def test_a_wrong_only_mailbox_is_one_problem_not_also_an_empty_list(tmp_path: Path) -> None:
    message = problem(
        tmp_path,
        MINIMAL.replace('host = "imap.example.com"', 'host = "imap.example.com"\nport = 99999'),
    )
    assert message.splitlines() == [
        f"{tmp_path / 'mailbridge.toml'}: 1 problem(s)",
        f"{tmp_path / 'mailbridge.toml'}: mailbox[0].port: expected Input should be less than "
        "or equal to 65535",
    ]


def test_bad_duration_and_time_zone_are_explained(tmp_path: Path) -> None:
    text = MINIMAL.replace('"8h"', '"8 hours"') + '\n[calendar]\ntimezone = "Mars/Olympus"\n'
    message = problem(tmp_path, text)
    assert "sla[0].first_response: expected a duration like 30s" in message
    assert "calendar.timezone: expected an IANA time zone" in message


def test_missing_required_key(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL.replace('host = "smtp.example.com"\n', ""))
    assert "smtp.host: required key is missing" in message


def test_a_default_sla_policy_is_required(tmp_path: Path) -> None:
    message = problem(
        tmp_path, MINIMAL.replace('resolution = "5d"', 'resolution = "5d"\npriorities = ["high"]')
    )
    assert "default" in message


def test_inline_passwords_are_refused_without_echoing_them(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'password_env = "MAILBRIDGE_IMAP_PASSWORD"', 'password = "hunter2-inline"'
    )
    message = problem(tmp_path, text)
    assert "password_env or password_file" in message
    assert "hunter2-inline" not in message


def test_missing_password_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILBRIDGE_IMAP_PASSWORD to be set"):
        load_config(write(tmp_path, MINIMAL), {})


def test_password_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "imap.secret").write_text("from-a-file\n", encoding="utf-8")
    config = load_config(
        write(
            tmp_path,
            MINIMAL.replace(
                'password_env = "MAILBRIDGE_IMAP_PASSWORD"', 'password_file = "imap.secret"'
            ),
        ),
        {},
    )
    assert config.mailbox[0].password is not None
    assert config.mailbox[0].password.get_secret_value() == "from-a-file"


def test_secrets_do_not_show_in_repr_or_dump() -> None:
    config = load_config(EXAMPLE, SECRETS)
    shown = repr(config) + str(config.model_dump()) + config.model_dump_json()
    for secret in SECRETS.values():
        assert secret not in shown


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = problem(tmp_path, "[database\nurl = 1")
    assert "mailbridge.toml: not valid TOML" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("45m", timedelta(minutes=45)),
        ("8h", timedelta(hours=8)),
        ("3d", timedelta(days=3)),
        ("2w", timedelta(weeks=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500KB", 500_000),
        ("25MB", 25_000_000),
        ("1 gb", 10**9),
        (4096, 4096),
        ("12", 12),
    ],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-5MB", "1.5MB", "25 MiB", 0, False])
def test_bad_sizes(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "8", "h8", "-1h", "1.5h", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_config_check_exits_2_and_names_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL.replace('host = "imap.example.com"', 'host = "imap.example.com"\nsecurity = "ssl"'),
    )
    result = subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(path), "config", "check"],
        capture_output=True,
        text=True,
        env={"MAILBRIDGE_IMAP_PASSWORD": "x", "PATH": ""},
        check=False,
    )
    assert result.returncode == 2
    assert "mailbox[0].security" in result.stderr and "'tls', 'starttls' or 'none'" in result.stderr


def test_example_passes_config_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(EXAMPLE), "config", "check"],
        capture_output=True,
        text=True,
        env={**SECRETS, "PATH": ""},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(Config, type)


def test_smtp_retry_and_bounce_settings(tmp_path: Path) -> None:
    defaults = load_config(write(tmp_path, MINIMAL), SECRETS).smtp
    assert (defaults.give_up_after, defaults.max_attempts) == (timedelta(days=2), None)
    assert (defaults.bounce_address, defaults.verp) == (None, True)

    text = MINIMAL.replace(
        'from = "Support <support@example.com>"',
        'from = "Support <support@example.com>"\ngive_up_after = "6h"\n'
        'max_attempts = 20\nbounce_address = "bounces@example.com"\n'
        "verp = false",
    )
    smtp = load_config(write(tmp_path, text), SECRETS).smtp
    assert (smtp.give_up_after, smtp.max_attempts) == (timedelta(hours=6), 20)
    assert (smtp.bounce_address, smtp.verp) == ("bounces@example.com", False)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('give_up_after = "soon"', "smtp.give_up_after: expected a duration"),
        ("max_attempts = 0", "smtp.max_attempts: expected"),
        ('bounce_address = "Bounces <b@example.com>"', "smtp.bounce_address: expected"),
    ],
)
def test_bad_smtp_retry_and_bounce_settings_name_the_key(
    tmp_path: Path, line: str, key: str
) -> None:
    text = MINIMAL.replace(
        'from = "Support <support@example.com>"', f'from = "Support <support@example.com>"\n{line}'
    )
    assert key in problem(tmp_path, text)


def test_a_bad_staff_signature_pattern_names_the_key(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL + '\n[staff]\nsignature_patterns = ["(unclosed"]\n')
    assert "staff.signature_patterns: expected a regular expression; '(unclosed'" in message


STAFF_KEY = "k3y-" + "0123456789abcdef" * 2  # 36 bytes


def test_the_staff_secret_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    missing = problem(tmp_path, MINIMAL + '\n[staff]\nsecret_env = "MB_STAFF_KEY"\n')
    assert "staff.secret_env: expected the environment variable MB_STAFF_KEY to be set" in missing
    config = load_config(
        write(tmp_path, MINIMAL + '\n[staff]\nsecret_env = "MB_STAFF_KEY"\n'),
        {**SECRETS, "MB_STAFF_KEY": STAFF_KEY},
    )
    assert config.staff.secret is not None
    assert config.staff.secret.get_secret_value() == STAFF_KEY
    assert STAFF_KEY not in repr(config)
    (tmp_path / "key").write_text("from-a-file-" + "f" * 32 + "\n")
    config = load_config(write(tmp_path, MINIMAL + '\n[staff]\nsecret_file = "key"\n'), SECRETS)
    assert config.staff.secret is not None
    assert config.staff.secret.get_secret_value() == "from-a-file-" + "f" * 32
    assert "not both" in problem(
        tmp_path, MINIMAL + '\n[staff]\nsecret_env = "A"\nsecret_file = "key"\n'
    )


def test_a_staff_secret_shorter_than_32_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mailbridge.toml"
    env = MINIMAL + '\n[staff]\nsecret_env = "MB_STAFF_KEY"\n'
    for value, size in (("k3y", 3), ("é" * 15 + "x", 31)):
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, env), {**SECRETS, "MB_STAFF_KEY": value})
        assert str(caught.value) == (
            f"{path}: staff.secret_env: expected a key of at least 32 bytes, not {size} "
            "(make one with: openssl rand -hex 32)"
        )
        assert value not in str(caught.value)
    (tmp_path / "key").write_text("x" * 31 + "\n")
    message = problem(tmp_path, MINIMAL + '\n[staff]\nsecret_file = "key"\n')
    assert message == (
        f"{path}: staff.secret_file: expected a key of at least 32 bytes, not "
        "31 (make one with: openssl rand -hex 32)"
    )
    (tmp_path / "key").write_text("é" * 16 + "\n")  # 32 bytes in UTF-8
    assert (
        load_config(
            write(tmp_path, MINIMAL + '\n[staff]\nsecret_file = "key"\n'), SECRETS
        ).staff.secret
        is not None
    )


@pytest.mark.parametrize(
    "listen",
    ["0.0.0.0:9187", "[::]:9187", "192.0.2.10:9187", "[2001:db8::1]:9187", "monitor.example:9187"],
)
def test_listening_where_other_hosts_reach_it_must_be_said_explicitly(
    tmp_path: Path, listen: str
) -> None:
    text = MINIMAL + f'\n[service]\nlisten = "{listen}"\n'
    message = problem(tmp_path, text)
    host = listen.rpartition(":")[0].strip("[]")
    assert (
        f"{tmp_path / 'mailbridge.toml'}: service.listen: expected a loopback address like "
        f'"127.0.0.1:9187" or "[::1]:9187": other hosts can reach {host}, so serving '
        f"/healthz and /metrics there needs listen_public = true as well"
    ) in message
    public = load_config(write(tmp_path, text + "listen_public = true\n"), SECRETS)
    assert public.service.listen == listen and public.service.listen_public


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:9187", "127.0.0.53:1", "[::1]:9187", "localhost:9187"]
)
def test_a_loopback_listen_address_needs_nothing_more(tmp_path: Path, listen: str) -> None:
    config = load_config(write(tmp_path, MINIMAL + f'\n[service]\nlisten = "{listen}"\n'), SECRETS)
    assert config.service.listen == listen and not config.service.listen_public


def test_a_secret_file_other_users_can_read_or_write_is_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = tmp_path / "imap.key"
    key.write_text("imap-s3cret!\n")
    path = write(
        tmp_path,
        MINIMAL.replace('password_env = "MAILBRIDGE_IMAP_PASSWORD"', 'password_file = "imap.key"'),
    )
    for mode, said in ((0o600, None), (0o640, None), (0o644, "readable"), (0o602, "writable")):
        key.chmod(mode)
        caplog.clear()
        with caplog.at_level("WARNING", logger="mailbridge.config"):
            load_config(path, SECRETS)
        warnings = [r.getMessage() for r in caplog.records]
        if said is None:
            assert warnings == [], oct(mode)
        else:
            assert warnings == [
                f"{path}: mailbox[0].password_file: {key} is {said} by other users of this "
                f"machine (mode {mode:04o}); let only mailbridge's user (and group) read it: "
                f"chmod o-rwx {key}"
            ]
            assert "imap-s3cret!" not in warnings[0]


def test_without_a_staff_secret_one_is_made_once_and_kept(tmp_path: Path) -> None:
    text = MINIMAL + f'\n[service]\ndata_dir = "{tmp_path / "state"}"\n'
    config = load_config(write(tmp_path, text), SECRETS)
    first = reply_secret(config)
    assert len(first) == 64 and reply_secret(config) == first
    key_file = tmp_path / "state" / SECRET_FILE
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert [p.name for p in (tmp_path / "state").iterdir()] == [SECRET_FILE]


def test_a_damaged_key_file_is_replaced_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A power cut before the key reached the disk can leave its name on an empty file; an
    empty (or short) HMAC key would let anyone forge reply addresses, so a new key is made
    and the operator told. A good key is kept as it is."""
    text = MINIMAL + f'\n[service]\ndata_dir = "{tmp_path / "state"}"\n'
    config = load_config(write(tmp_path, text), SECRETS)
    key_file = tmp_path / "state" / SECRET_FILE
    key_file.parent.mkdir()
    for damaged in (b"", b"\n", b"0123456789abcdef\n"):
        key_file.write_bytes(damaged)
        key = reply_secret(config)
        assert len(key) == 64 and key_file.read_bytes() == key + b"\n"
        assert "is damaged" in caplog.text
        caplog.clear()
        assert reply_secret(config) == key and caplog.text == ""
    assert key_file.stat().st_mode & 0o077 == 0
    assert [p.name for p in key_file.parent.iterdir()] == [SECRET_FILE]  # no draft, no lock


def test_processes_starting_together_make_one_key(tmp_path: Path) -> None:
    text = MINIMAL + f'\n[service]\ndata_dir = "{tmp_path / "state"}"\n'
    path = write(tmp_path, text)
    script = (
        "import os, sys; from pathlib import Path; from mailbridge.config import load_config; "
        "from mailbridge.app import reply_secret; "
        "sys.stdout.write(reply_secret(load_config(Path(sys.argv[1]), os.environ)).decode())"
    )
    env = {**os.environ, **SECRETS}
    started = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, env=env, text=True
        )
        for _ in range(4)
    ]
    keys = {process.communicate(timeout=60)[0] for process in started}
    assert len(keys) == 1 and len(keys.pop()) == 64


def test_acknowledgement_limits_and_form_default_to_the_safe_side(tmp_path: Path) -> None:
    tickets = load_config(write(tmp_path, MINIMAL), SECRETS).tickets
    assert (
        tickets.ack_limit_per_hour,
        tickets.ack_domain_limit_per_hour,
        tickets.ack_mailbox_limit_per_hour,
    ) == (5, 20, 200)
    assert tickets.ack_unauthenticated == "minimal"
    message = problem(tmp_path, MINIMAL + '\n[tickets]\nack_unauthenticated = "quoted"\n')
    assert "tickets.ack_unauthenticated" in message


def test_the_collision_check_holds_by_default_and_names_a_bad_mode(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), SECRETS).staff.collision == "hold"
    text = MINIMAL + '\n[staff]\ncollision = "warn"\n'
    assert load_config(write(tmp_path, text), SECRETS).staff.collision == "warn"
    message = problem(tmp_path, MINIMAL + '\n[staff]\ncollision = "ask"\n')
    assert "staff.collision" in message and "'hold', 'warn' or 'off'" in message


def test_the_parse_budget_has_defaults_and_bounds(tmp_path: Path) -> None:
    tickets = load_config(write(tmp_path, MINIMAL), SECRETS).tickets
    assert (tickets.parse_timeout, tickets.parse_memory) == (timedelta(seconds=10), 10**9)
    text = MINIMAL + '\n[tickets]\nparse_timeout = "3s"\nparse_memory = "500MB"\n'
    tickets = load_config(write(tmp_path, text), SECRETS).tickets
    assert (tickets.parse_timeout, tickets.parse_memory) == (timedelta(seconds=3), 5 * 10**8)
    assert tickets.parse_workers == "auto"
    text = MINIMAL + "\n[tickets]\nparse_workers = 3\n"
    assert load_config(write(tmp_path, text), SECRETS).tickets.parse_workers == 3


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('parse_timeout = "0s"', "tickets.parse_timeout: expected a duration from 1s to 60s"),
        ('parse_timeout = "500ms"', "tickets.parse_timeout: expected a duration like"),
        ('parse_timeout = "2m"', "tickets.parse_timeout: expected a duration from 1s to 60s"),
        ('parse_timeout = "soon"', "tickets.parse_timeout: expected a duration like"),
        ('parse_memory = "50MB"', "tickets.parse_memory: expected a size of at least 100MB"),
        ('parse_memory = "lots"', "tickets.parse_memory: expected a size like"),
        ("parse_workers = 0", 'tickets.parse_workers: expected "auto" or a number of processes'),
        ("parse_workers = 1000", 'tickets.parse_workers: expected "auto" or a number'),
        ('parse_workers = "all"', 'tickets.parse_workers: expected "auto" or a number'),
        ("parse_workers = true", 'tickets.parse_workers: expected "auto" or a number'),
    ],
)
def test_a_bad_parse_budget_names_the_key(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in problem(tmp_path, MINIMAL + f"\n[tickets]\n{line}\n")


def test_spam_patterns_load_normalized_and_a_bad_one_names_its_key(tmp_path: Path) -> None:
    spam = '\n[spam]\nblock = ["*@Spam.Example", "noreply@*"]\nallow = "partner.example"\n'
    config = load_config(write(tmp_path, MINIMAL + spam), SECRETS)
    assert config.spam.block == ("*@spam.example", "noreply@*")
    assert config.spam.allow == ("partner.example",)
    message = problem(tmp_path, MINIMAL + '\n[spam]\nblock = ["spam example"]\n')
    assert "spam.block" in message and "expected an address, a domain or a pattern" in message


def test_spam_headers_need_a_trusted_host(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL + "\n[spam]\nheaders = true\n")
    assert str(tmp_path / "mailbridge.toml") in message
    assert "spam.trusted_hosts: expected at least one host name when headers = true" in message
    text = (
        MINIMAL + '\n[spam]\nheaders = true\ntrusted_hosts = ["MX.Example.org.", "*.X.example"]\n'
    )
    config = load_config(write(tmp_path, text), SECRETS)
    assert config.spam.trusted_hosts == ("mx.example.org", "*.x.example")
    assert not config.spam.foreign_removed
    verdict_settings: VerdictSettings = config.spam  # the core reads [spam] as it is
    assert verdict_settings.headers
    message = problem(tmp_path, MINIMAL + '\n[spam]\ntrusted_hosts = ["mx example"]\n')
    assert "spam.trusted_hosts" in message and 'after "by"' in message


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf"])
def test_spam_score_threshold_is_a_finite_number(tmp_path: Path, threshold: str) -> None:
    message = problem(tmp_path, MINIMAL + f"\n[spam]\nscore_threshold = {threshold}\n")
    assert "spam.score_threshold: expected" in message


def test_the_weekly_report_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), SECRETS)
    assert config.reports.weekly_to == () and config.report_language == "en"
    text = MINIMAL + (
        '\n[templates]\nlanguage = "it"\n\n[reports]\nweekly_to = ["Lead@Example.com", '
        '"ops@example.com", "lead@example.com"]\nweekly_on = "fri 17:30"\n'
    )
    config = load_config(write(tmp_path, text), SECRETS)
    assert config.reports.weekly_to == ("lead@example.com", "ops@example.com")
    assert (config.reports.weekly_moment.weekday, str(config.reports.weekly_moment.at)) == (
        4,
        "17:30:00",
    )
    assert config.report_language == "it"  # the templates' language, as none is given
    german = MINIMAL + '\n[templates]\nlanguage = "de"\n'
    assert load_config(write(tmp_path, german), SECRETS).report_language == "en"
    chosen = german + '\n[reports]\nlanguage = "it"\n'
    assert load_config(write(tmp_path, chosen), SECRETS).report_language == "it"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('weekly_on = "monday 8am"',
         'reports.weekly_on: expected a weekday and a 24-hour time like "mon 08:00"'),
        ('weekly_on = "mon 25:00"', "reports.weekly_on: expected a weekday and a 24-hour time"),
        ('weekly_to = ["lead"]',
         "reports.weekly_to: expected addresses like lead@example.com, not 'lead'"),
        ('weekly_to = ["a@b.example\\r\\nBcc: x@y.example"]',
         "reports.weekly_to: expected addresses like"),
        ('weekly_to = ["Lead <lead@example.com>"]', "reports.weekly_to: expected addresses like"),
        ('language = "de"', "reports.language: expected"),
        ('weekly = "mon"', "reports.weekly: unknown key"),
    ],
)  # fmt: skip
def test_a_bad_weekly_report_setting_names_its_key(
    tmp_path: Path, section: str, expected: str
) -> None:
    assert expected in problem(tmp_path, MINIMAL + f"\n[reports]\n{section}\n")


def test_faq_drafts_go_under_the_data_dir_unless_a_folder_is_named(tmp_path: Path) -> None:
    state = f'\n[service]\ndata_dir = "{tmp_path / "state"}"\n'
    default = load_config(write(tmp_path, MINIMAL + state), SECRETS)
    assert default.faq_drafts_dir == tmp_path / "state" / "faq-drafts"

    named = load_config(
        write(tmp_path, MINIMAL + state + '[faq]\ndrafts_dir = "review"\n'), SECRETS
    )
    assert named.faq_drafts_dir == tmp_path / "review"  # relative: to the config file
