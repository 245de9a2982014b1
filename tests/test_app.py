"""App.reconfigure: a new configuration and what is derived from it go live together, or
not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from mailbridge.app import App, build_app, open_templates
from mailbridge.config import Config
from mailbridge.errors import ConfigError
from tests.support.builders import make_config

pytestmark = pytest.mark.db

CLOSE = """---
title: Closing your account
keywords: [close, account]
language: en
---
Go to Settings, then Close account.
"""
NOWHERE = SimpleNamespace(host="127.0.0.1", port=9, username="support", password="unused")


def config(tmp_path: Path, sqlite_url: str, secret: str = "first", **sections: object) -> Config:
    path = tmp_path / f"{secret}.key"
    path.write_text(secret * 8)
    staff = {"secret_file": str(path)}
    return make_config(
        tmp_path, database_url=sqlite_url, imap=NOWHERE, smtp=NOWHERE, staff=staff, **sections
    )


@pytest.fixture
def app(tmp_path: Path, sqlite_url: str) -> Iterator[App]:
    app = build_app(config(tmp_path, sqlite_url))
    yield app
    app.close()


def test_reconfigure_swaps_the_configuration_and_what_is_derived_from_it(
    app: App, tmp_path: Path, sqlite_url: str
) -> None:
    assert app.reply_secret == b"first" * 8
    assert app.message_id_domain == "shop.example"
    faq = tmp_path / "faq"
    faq.mkdir()
    (faq / "close.md").write_text(CLOSE)
    new = config(
        tmp_path,
        sqlite_url,
        secret="second",
        faq={"dir": str(faq)},
        tickets={"message_id_domain": "tickets.shop.example"},
    )
    smtp = new.smtp.model_copy(update={"from_": "Help <help@shop.example>"})
    new = new.model_copy(update={"smtp": smtp})
    templates = open_templates(new)

    app.reconfigure(new, templates)

    assert app.config is new and app.templates is templates
    assert app.identity.own_domains == frozenset({"tickets.shop.example"})
    assert app.reply_secret == b"second" * 8
    assert app.sender.address == "help@shop.example"
    assert app.message_id_domain == "tickets.shop.example"
    assert app.faq is not None  # loaded from the new configuration's folder


def test_a_configuration_that_fails_to_load_changes_nothing(
    app: App, tmp_path: Path, sqlite_url: str
) -> None:
    running, templates, identity = app.config, app.templates, app.identity
    broken = config(tmp_path, sqlite_url, faq={"dir": str(tmp_path / "missing")})

    with pytest.raises(ConfigError, match="faq.dir"):
        app.reconfigure(broken, open_templates(broken))

    assert (app.config, app.templates, app.identity) == (running, templates, identity)
    assert app.faq is None and app.reply_secret == b"first" * 8
