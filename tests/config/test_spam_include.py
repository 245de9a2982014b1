"""`[spam] include`: files of more `block` and `allow` patterns, relative to the configuration
file, read with it (and again on reload); a bad one names the file, the key and what was
expected (config/loading.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.config import load_config
from mailbridge.service.reload import load_candidate
from tests.support.config_files import MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit

INCLUDE = '\n[spam]\nblock = ["*@spam.example"]\ninclude = ["lists/senders.toml"]\n'


def lists(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lists" / "senders.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_included_lists_load_normalized_next_to_the_configuration(tmp_path: Path) -> None:
    included = lists(
        tmp_path, 'block = ["Noreply@*", "Bulk.Example"]\nallow = "VIP@bulk.example"\n'
    )
    config = load_config(write(tmp_path, MINIMAL + INCLUDE), SECRETS)
    assert config.spam.block == ("*@spam.example",)
    ((path, senders),) = config.included_senders
    assert path == included
    assert senders.block == ("noreply@*", "bulk.example")
    assert senders.allow == ("vip@bulk.example",)


def test_a_reload_reads_the_included_lists_again(tmp_path: Path) -> None:
    lists(tmp_path, 'block = ["one.example"]\n')
    path = write(tmp_path, MINIMAL + INCLUDE)
    assert load_config(path, SECRETS).included_senders[0][1].block == ("one.example",)
    lists(tmp_path, 'block = ["two.example"]\n')
    candidate = load_candidate(path, SECRETS)
    assert candidate.config.included_senders[0][1].block == ("two.example",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('block = ["spam example"]\n', "senders.toml: block[0]: expected an address, a domain"),
        ('allow = ["a@b@c.example"]\n', "senders.toml: allow[0]: expected at most one @"),
        ('block = ["localhost"]\n', "senders.toml: block[0]: expected a domain with a dot"),
        ("block = 3\n", "senders.toml: block: expected"),
        ('[[rule]]\nname = "x"\n', "senders.toml: rule: unknown key"),
        ("block = [\n", "senders.toml: not valid TOML"),
        (b"block = ['\xff']\n", "senders.toml: not valid TOML"),
    ],
)
def test_a_bad_included_file_names_the_file_the_key_and_the_expectation(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    path = lists(tmp_path, "")
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    message = problem(tmp_path, MINIMAL + INCLUDE)
    assert expected in message
    assert str(path) in message


def test_a_missing_included_file_names_the_configuration_key(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL + INCLUDE)
    assert "mailbridge.toml: spam.include: expected a readable file of block and allow" in message
    assert str(tmp_path / "lists" / "senders.toml") in message
