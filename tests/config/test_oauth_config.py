"""auth = "oauth2" in the configuration: what it needs, what it forbids, and errors that
name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.config import Config, load_config
from mailbridge.errors import ConfigError
from mailbridge.oauth.accounts import sign_in_for_mailbox, sign_in_for_smtp, sign_ins

pytestmark = pytest.mark.unit

ENV = {"MAILBRIDGE_SMTP_PASSWORD": "smtp-s3cret!", "MS_SECRET": "client-s3cret!"}

MAILBOX = """
[[mailbox]]
name = "support"
address = "support@contoso.com"
host = "outlook.office365.com"
username = "support@contoso.com"
auth = "oauth2"
{mailbox_extra}
[mailbox.oauth2]
{oauth2}
"""

REST = """
[smtp]
host = "smtp.office365.com"
from = "Support <support@contoso.com>"
{smtp}

[[sla]]
name = "standard"
first_response = "8h"
resolution = "5d"
"""

MICROSOFT = 'provider = "microsoft"\nclient_id = "11111111-2222"\ntenant = "contoso.com"'
SMTP_PASSWORD = 'username = "support@contoso.com"\npassword_env = "MAILBRIDGE_SMTP_PASSWORD"'
SMTP_SHARED = (
    'username = "support@contoso.com"\nauth = "oauth2"\n[smtp.oauth2]\nmailbox = "support"'
)


def load(
    tmp_path: Path,
    *,
    oauth2: str = MICROSOFT,
    smtp: str = SMTP_PASSWORD,
    mailbox_extra: str = "",
    more: str = "",
) -> Config:
    path = tmp_path / "mailbridge.toml"
    path.write_text(
        MAILBOX.format(oauth2=oauth2, mailbox_extra=mailbox_extra) + more + REST.format(smtp=smtp),
        encoding="utf-8",
    )
    return load_config(path, ENV)


def problem(tmp_path: Path, **parts: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **parts)
    return str(caught.value)


def test_a_microsoft_mailbox_signs_in_for_imap_by_device_code(tmp_path: Path) -> None:
    config = load(tmp_path)
    sign_in = sign_in_for_mailbox(config, config.mailbox[0])
    assert sign_in is not None
    assert sign_in.flow == "device"
    assert sign_in.username == "support@contoso.com"
    assert sign_in.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access")
    assert sign_in.endpoints.token_url == (
        "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    )
    assert sign_in.login_command == "mailbridge oauth login --mailbox support"
    assert sign_in_for_smtp(config) is None  # SMTP keeps its password


def test_smtp_sharing_the_mailbox_sign_in_widens_its_scopes(tmp_path: Path) -> None:
    config = load(tmp_path, smtp=SMTP_SHARED)
    mailbox = sign_in_for_mailbox(config, config.mailbox[0])
    assert mailbox is not None and sign_in_for_smtp(config) == mailbox
    assert "https://outlook.office.com/SMTP.Send" in mailbox.scopes
    assert [s.account for s in sign_ins(config)] == ["support"]  # one sign-in for both


def test_smtp_with_a_sign_in_of_its_own(tmp_path: Path) -> None:
    smtp = (
        'username = "noreply@contoso.com"\nauth = "oauth2"\n[smtp.oauth2]\n'
        'provider = "microsoft"\nclient_id = "abc"'
    )
    config = load(tmp_path, smtp=smtp)
    sign_in = sign_in_for_smtp(config)
    assert sign_in is not None and sign_in.is_smtp and sign_in.username == "noreply@contoso.com"
    assert sign_in.scopes == ("https://outlook.office.com/SMTP.Send", "offline_access")
    assert sign_in.login_command == "mailbridge oauth login --smtp"
    assert sorted(s.account for s in sign_ins(config)) == ["smtp", "support"]


def test_the_client_secret_is_read_and_never_shown(tmp_path: Path) -> None:
    config = load(tmp_path, oauth2=MICROSOFT + '\nclient_secret_env = "MS_SECRET"')
    oauth2 = config.mailbox[0].oauth2
    assert oauth2 is not None and oauth2.client_secret is not None
    assert oauth2.client_secret.get_secret_value() == "client-s3cret!"
    assert "client-s3cret!" not in repr(config)
    assert "client-s3cret!" not in config.model_dump_json()


def test_google_defaults_to_the_browser_flow_with_the_gmail_scope(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        oauth2='provider = "google"\nclient_id = "x.apps.googleusercontent'
        '.com"\nclient_secret_env = "MS_SECRET"',
    )
    sign_in = sign_in_for_mailbox(config, config.mailbox[0])
    assert sign_in is not None
    assert (sign_in.flow, sign_in.scopes) == ("authorization_code", ("https://mail.google.com/",))


def test_generic_with_its_urls_and_scopes(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        oauth2='provider = "generic"\nclient_id = "c"\n'
        'token_url = "http://127.0.0.1:8080/token"\n'
        'device_authorization_url = "http://127.0.0.1:8080/device"\nscopes = ["mail"]',
    )
    sign_in = sign_in_for_mailbox(config, config.mailbox[0])
    assert sign_in is not None and sign_in.scopes == ("mail",)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (
            {"oauth2": 'provider = "microsoft"'},
            "mailbox[0].oauth2: expected provider (microsoft, google or generic) and client_id",
        ),
        (
            {"oauth2": 'provider = "generic"\nclient_id = "c"'},
            'mailbox[0].oauth2: expected token_url for provider = "generic"',
        ),
        (
            {"oauth2": 'provider = "generic"\nclient_id = "c"\ntoken_url = "https://idp/token"'},
            "mailbox[0].oauth2: expected device_authorization_url for provider",
        ),
        (
            {"oauth2": 'provider = "google"\nclient_id = "c"'},
            "mailbox[0].oauth2: expected client_secret_env or client_secret_file",
        ),
        (
            {
                "oauth2": 'provider = "google"\nclient_id = "c"\nclient_secret_env = "MS_SECRET"\n'
                'flow = "client_credentials"'
            },
            "it has no client credentials for Gmail",
        ),
        (
            {
                "oauth2": 'provider = "microsoft"\nclient_id = "c"\nflow = "client_credentials"\n'
                'client_secret_env = "MS_SECRET"'
            },
            "tenant set to the directory's id",
        ),
        (
            {
                "oauth2": 'provider = "microsoft"\nclient_id = "c"\nflow = "client_credentials"\n'
                'tenant = "contoso.com"'
            },
            "client_secret_env or client_secret_file with flow",
        ),
        (
            {"oauth2": 'provider = "google"\nclient_id = "c"\ntenant = "x"'},
            "mailbox[0].oauth2: expected no tenant",
        ),
        ({"oauth2": MICROSOFT + '\nclient_secret = "inline"'}, "no inline client_secret"),
        (
            {"oauth2": MICROSOFT + '\ntoken_url = "http://idp.example.com/token"'},
            "mailbox[0].oauth2.token_url: expected an https:// URL",
        ),
        ({"oauth2": MICROSOFT + "\nscope = []"}, "mailbox[0].oauth2.scope: unknown key"),
        (
            {"oauth2": MICROSOFT, "mailbox_extra": 'password_env = "MAILBRIDGE_SMTP_PASSWORD"'},
            'mailbox[0]: expected no password_env or password_file with auth = "oauth2"',
        ),
        (
            {"oauth2": MICROSOFT + '\nmailbox = "support"'},
            "no other key beside mailbox = 'support'",
        ),
        (
            {"oauth2": MICROSOFT + '\nclient_secret_env = "UNSET"'},
            "mailbox[0].oauth2.client_secret_env: expected the environment variable UNSET "
            "to be set",
        ),
        (
            {"smtp": 'username = "s@contoso.com"\nauth = "oauth2"'},
            'smtp: expected an oauth2 table (provider, client_id, ...) with auth = "oauth2"',
        ),
        (
            {"smtp": 'auth = "oauth2"\n[smtp.oauth2]\nprovider = "microsoft"\nclient_id = "c"'},
            "smtp: expected username (the account that signs in)",
        ),
        (
            {"smtp": SMTP_SHARED.replace('"support"', '"sales"')},
            "smtp.oauth2.mailbox: expected the name of a [[mailbox]] (support), not 'sales'",
        ),
        (
            {"smtp": 'username = "s@contoso.com"\n[smtp.oauth2]\nmailbox = "support"'},
            'smtp: expected auth = "oauth2" with an oauth2 table',
        ),
    ],
)
def test_mistakes_name_the_file_and_key(
    tmp_path: Path, parts: dict[str, str], expected: str
) -> None:
    message = problem(tmp_path, **parts)
    assert str(tmp_path / "mailbridge.toml") in message
    assert expected in message


def test_sharing_a_mailbox_that_uses_a_password_is_refused(tmp_path: Path) -> None:
    password_box = """
[[mailbox]]
name = "sales"
address = "sales@contoso.com"
host = "imap.contoso.com"
username = "sales@contoso.com"
password_env = "MAILBRIDGE_SMTP_PASSWORD"
"""
    message = problem(tmp_path, more=password_box, smtp=SMTP_SHARED.replace('"support"', '"sales"'))
    assert "smtp.oauth2.mailbox: expected a mailbox with auth = \"oauth2\", but 'sales'" in message


def test_a_mailbox_called_smtp_and_the_smtp_login_keep_apart(tmp_path: Path) -> None:
    smtp = (
        'username = "noreply@contoso.com"\nauth = "oauth2"\n[smtp.oauth2]\n'
        'provider = "microsoft"\nclient_id = "abc"'
    )
    config = load(tmp_path, smtp=smtp, more="").model_copy()
    box = config.mailbox[0].model_copy(update={"name": "smtp"})
    config = config.model_copy(update={"mailbox": (box,)})
    mailbox, own = sign_in_for_mailbox(config, box), sign_in_for_smtp(config)
    assert mailbox is not None and own is not None
    assert (mailbox.file_name, mailbox.login_command) == (
        "mailbox-smtp.json",
        "mailbridge oauth login --mailbox smtp",
    )
    assert (own.file_name, own.login_command) == ("smtp.json", "mailbridge oauth login --smtp")
