"""Brands: a [[mailbox]]'s own `from`, `company`, `signature`, `language`, `templates` and
`bounce_address`, what each defaults to, and the errors a wrong one gives (file, key,
expectation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.app import identity_for
from mailbridge.config import load_config
from mailbridge.config.brands import brand_of, house_brand
from mailbridge.core.message import Address
from tests.support.config_files import MINIMAL, SECRETS, problem, write

pytestmark = pytest.mark.unit

BETA = """
[[mailbox]]
name = "beta"
address = "inbox@beta.example"
host = "imap.beta.example"
username = "inbox@beta.example"
password_env = "MAILBRIDGE_IMAP_PASSWORD"
from = "Beta Help <help@beta.example>"
company = "Beta Bikes"
language = "it"
templates = "beta-templates"
signature = '''
Beta Bikes, via Roma 1, Milano'''
"""


def two_brands(tmp_path: Path, beta: str = BETA) -> str:
    (tmp_path / "beta-templates").mkdir(exist_ok=True)
    head, sep, rest = MINIMAL.partition("[smtp]")
    return head + beta + sep + rest


def test_a_mailbox_with_its_own_keys_is_a_brand_and_one_without_is_the_house(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, two_brands(tmp_path)), SECRETS)
    support, beta = config.mailbox

    house = brand_of(config, support)
    assert house == house_brand(config)
    assert house.sender == Address("Support", "support@example.com")
    assert (house.company, house.language) == ("Support", "en")
    assert (house.bounce_address, house.message_id_domain) == ("support@example.com", "example.com")

    brand = brand_of(config, beta)
    assert brand.sender == Address("Beta Help", "help@beta.example")
    assert (brand.company, brand.language) == ("Beta Bikes", "it")
    # Bounces come back to the brand's own watched address, in its domain.
    assert brand.bounce_address == "inbox@beta.example"
    assert brand.message_id_domain == "beta.example"
    assert brand.loop_token == "mailbridge@beta.example"
    # A relative templates directory is relative to the configuration file.
    assert beta.templates == tmp_path / "beta-templates"
    assert beta.signature == "Beta Bikes, via Roma 1, Milano"


def test_bounce_address_and_message_id_domain_may_be_set(tmp_path: Path) -> None:
    text = two_brands(tmp_path, BETA + 'bounce_address = "bounces@beta.example"\n')
    text = text.replace("[[sla]]", '[tickets]\nmessage_id_domain = "t.example"\n\n[[sla]]')
    config = load_config(write(tmp_path, text), SECRETS)
    brand = brand_of(config, config.mailbox[1])
    assert (brand.bounce_address, brand.message_id_domain) == ("bounces@beta.example", "t.example")


def test_every_brand_is_known_as_our_own_when_its_mail_comes_back(tmp_path: Path) -> None:
    identity = identity_for(load_config(write(tmp_path, two_brands(tmp_path)), SECRETS))
    assert {"help@beta.example", "inbox@beta.example", "support@example.com"} <= (
        identity.own_addresses
    )
    assert identity.own_domains == {"example.com", "beta.example"}
    assert identity.loop_token == "mailbridge@example.com"
    assert "mailbridge@beta.example" in identity.loop_tokens


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ('from = "Beta Help"', "mailbox[1].from", "one sender like"),
        ('from = "a@beta.example, b@beta.example"', "mailbox[1].from", "one sender like"),
        ('from = "Beta <help@x.example>\\r\\nBcc: a@x.example"', "mailbox[1].from", "one line"),
        ('company = "Beta\\nBcc: all@x.example"', "mailbox[1].company", "a name on one line"),
        ('templates = "no-such-dir"', "mailbox[1].templates", "a directory of templates"),
        ('bounce_address = "bounces"', "mailbox[1].bounce_address", "expected"),
        ('language = "Italian"', "mailbox[1].language", "expected"),
    ],
)
def test_a_wrong_brand_key_names_the_file_the_key_and_the_expectation(
    tmp_path: Path, line: str, key: str, expected: str
) -> None:
    field = line.split(" = ")[0]
    beta = "\n".join(
        ln
        for ln in BETA.replace(
            "signature = '''\nBeta Bikes, via Roma 1, Milano'''", ""
        ).splitlines()
        if not ln.startswith(f"{field} =")
    )
    message = problem(tmp_path, two_brands(tmp_path, beta + "\n" + line + "\n"))
    assert f"{tmp_path / 'mailbridge.toml'}: {key}: " in message
    assert expected in message


def test_the_smtp_from_is_checked_the_same_way(tmp_path: Path) -> None:
    message = problem(tmp_path, MINIMAL.replace("Support <support@example.com>", "Support"))
    assert "smtp.from: expected one sender like" in message
