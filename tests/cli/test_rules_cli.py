"""`mailbridge rules test FILE.eml`: which rules a mail matches and what they would do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.adapters.templates import default_templates_dir
from tests.support.builders import mail, write_config_file

pytestmark = pytest.mark.integration

PASSWORD_ENV = "MB_RULES_CLI_IMAP_PASSWORD"
UNHAPPY = default_templates_dir() / "rules" / "unhappy-customers.toml"
VIP = """
[[rule]]
name = "vip"
when.from_domain = "bigclient.example"
then = { queue = "vip", assignee = "anna@shop.example", tags = ["vip"] }
"""


def write_config(tmp_path: Path, rules: str) -> Path:
    """A configuration file whose servers are never contacted: `rules test` needs none."""
    server = SimpleNamespace(host="127.0.0.1", port=1, username="support")
    path = write_config_file(
        tmp_path, server, server, f"sqlite:///{tmp_path / 'mb.db'}", password_env=PASSWORD_ENV
    )
    with path.open("a", encoding="utf-8") as file:
        file.write(f'\n[rules]\ninclude = ["{UNHAPPY}"]\n{rules}')
    return path


def rules_test(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, PASSWORD_ENV: "not-used"}
    return subprocess.run(
        [sys.executable, "-m", "mailbridge", "--config", str(config), "rules", "test", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def eml(tmp_path: Path, name: str, sender: str, subject: str, body: str) -> str:
    path = tmp_path / name
    path.write_bytes(mail(sender, subject, body))
    return str(path)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, VIP)


def test_json_names_each_matching_rule_and_the_combined_actions(
    tmp_path: Path,
    config: Path,
) -> None:
    angry = eml(
        tmp_path,
        "angry.eml",
        "Boss <boss@bigclient.example>",
        "Double charge",
        "This is unacceptable. I want my money back or I call my lawyer.",
    )
    result = rules_test(config, angry, "--json")

    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert [m["rule"] for m in report["matched"]] == [
        "unhappy: complaint",
        "unhappy: refund demand",
        "unhappy: legal threat",
        "vip",
    ]
    assert report["matched"][3]["actions"] == {
        "queue": "vip",
        "assignee": "anna@shop.example",
        "tags": ["vip"],
    }
    assert report["actions"] == {
        "queue": "vip",
        "priority": "urgent",
        "assignee": "anna@shop.example",
        "respond_within": "2 hours",
        "tags": ["unhappy", "complaint", "refund", "legal", "vip"],
    }
    assert (report["kind"], report["language"], report["mailbox"]) == ("customer", "en", "support")


def test_text_output_and_a_mail_no_rule_matches(tmp_path: Path, config: Path) -> None:
    calm = eml(
        tmp_path,
        "calm.eml",
        "Giulia <giulia@cliente.example>",
        "Chiudere il conto",
        "Buongiorno, come posso chiudere il mio conto corrente?",
    )
    angry = eml(
        tmp_path,
        "angry.eml",
        "Carla <carla@cliente.example>",
        "Sollecito",
        "È la terza volta che scrivo e ancora nessuna risposta.",
    )
    result = rules_test(config, calm, angry)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{calm}: 0 of 6 rule(s) match (mailbox support, language it)"
    assert lines[1] == "  spam: no; becomes a ticket"
    assert lines[2] == f"{angry}: 1 of 6 rule(s) match (mailbox support, language it)"
    assert lines[3] == (
        "  1. unhappy: repeated chaser: priority high; tags unhappy, chaser; respond_within 2 hours"
    )
    assert "the database does not exist" in result.stderr  # the lists of the file still judge


def test_followup_counts_the_unanswered_mails(tmp_path: Path, config: Path) -> None:
    polite = eml(
        tmp_path, "polite.eml", "Dan <dan@customer.example>", "Re: Card", "Any news about my card?"
    )

    def matched(*args: str) -> list[str]:
        result = rules_test(config, polite, "--json", *args)
        assert result.returncode == 0, result.stderr
        return [m["rule"] for m in json.loads(result.stdout)["matched"]]

    assert matched() == []
    assert matched("--followup", "--unanswered", "2") == []
    assert matched("--followup", "--unanswered", "3") == ["unhappy: repeated chaser"]


def test_open_tickets_are_taken_as_given(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[[rule]]\nname = "many open"\nwhen.open_tickets_at_least = 3\nthen.priority = "high"\n',
    )
    hours = eml(tmp_path, "hours.eml", "Dan <dan@customer.example>", "Hours", "Open today?")

    def matched(*args: str) -> list[str]:
        result = rules_test(config, hours, "--json", *args)
        assert result.returncode == 0, result.stderr
        return [m["rule"] for m in json.loads(result.stdout)["matched"]]

    assert matched() == [] and matched("--open-tickets", "2") == []
    assert matched("--open-tickets", "3") == ["many open"]


def test_a_bad_rule_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[[rule]]\nname = "broken"\nwhen.subject.regex = "(x"\n')
    result = rules_test(config, "-")

    assert result.returncode == 2
    assert f'{config}: rule "broken": when.subject.regex: expected a regular expression' in (
        result.stderr
    )


def test_an_unreadable_file_exits_1_after_the_others(tmp_path: Path, config: Path) -> None:
    calm = eml(tmp_path, "calm.eml", "Ada <ada@customer.example>", "Hi", "A question.")
    result = rules_test(config, str(tmp_path / "missing.eml"), calm)

    assert result.returncode == 1
    assert "missing.eml: No such file or directory" in result.stderr
    assert result.stdout.startswith(f"{calm}: 0 of 6 rule(s) match")


SPAM_RULES = """
[spam]
block = ["*@spam.example"]
allow = ["friend@spam.example"]

[[rule]]
name = "bulk mailers"
when.header = { name = "X-Mailer", matches = "blast ?mailer" }
then.ignore = true

[[rule]]
name = "suspects"
when.spam = true
then.tags = ["suspect"]
"""


def test_the_spam_judgement_and_what_becomes_of_the_mail(tmp_path: Path) -> None:
    config = write_config(tmp_path, SPAM_RULES)
    pills = eml(tmp_path, "pills.eml", "P <pills@spam.example>", "Pills", "Cheap.")
    friend = eml(tmp_path, "friend.eml", "F <friend@spam.example>", "Lunch", "Today?")
    bulk = tmp_path / "bulk.eml"
    bulk.write_bytes(b"X-Mailer: BlastMailer 2\n" + mail("N <n@news.example>", "Deals", "Hi"))

    result = rules_test(config, pills, friend, str(bulk))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  spam: yes (blocklist: *@spam.example); becomes a spam ticket" in lines
    assert "  spam: no (allowlist: friend@spam.example); becomes a ticket" in lines
    assert '  spam: no; becomes ignored, no ticket by rule "bulk mailers"' in lines
    assert "  1. suspects: tags suspect" in lines

    report = json.loads(rules_test(config, pills, "--json").stdout)
    assert report["judgement"]["spam"] is True
    assert report["outcome"] == {"outcome": "spam", "reason": "blocklist: *@spam.example"}
    followup = json.loads(rules_test(config, pills, "--json", "--followup").stdout)
    assert followup["judgement"] is None and followup["outcome"]["outcome"] == "followup"
