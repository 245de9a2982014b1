"""A brand's templates: its directory over the shared one, one file at a time; its signature
rendered in the sandbox and added to mails to customers; its language; and the checks that
keep a broken or escaping brand template from going live."""

from __future__ import annotations

import io
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.adapters.template_context import sample_context
from mailbridge.adapters.templates import TemplateSet
from mailbridge.app import open_templates
from mailbridge.cli.templates import check_templates, preview_template
from mailbridge.config import Config
from mailbridge.config.brands import brand_of
from mailbridge.core.clip import clip_context
from mailbridge.core.compose import Outgoing, build_message
from mailbridge.core.message import Address
from mailbridge.core.parse import normalize_subject
from mailbridge.errors import TemplateError
from mailbridge.service.reload import load_templates
from tests.support.builders import make_config

pytestmark = pytest.mark.unit

ACK = "Subject: Re: {{ ticket_tag }}\n\nThank you for writing to {{ company_name }}.\n"
HTML = "<html><body><p>Thank you, {{ requester_name }}.</p></body></html>\n"
CLOSED = "Subject: Closed {{ ticket_tag }}\n\nWe closed {{ ticket_tag }}.\n"
SIGNATURE = "{{ company_name }} support\nticket {{ ticket_tag }}"
SHIPPED = Path(__file__).resolve().parents[2] / "templates"
SERVERS = SimpleNamespace(host="127.0.0.1", port=1, username="support", password="unused")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    files = {
        "en/ack.txt.j2": ACK,
        "en/ack.html.j2": HTML,
        "en/closed.txt.j2": CLOSED,
        "it/ack.txt.j2": ACK.replace("Thank you", "Grazie"),
    }
    return write(tmp_path / "shared", files)


def brand_set(shared: Path, overrides: Path | None = None, **keys: Any) -> TemplateSet:
    return TemplateSet.load(
        shared, keys.pop("language", "en"), required=(), overrides=overrides, **keys
    )


def test_a_brand_file_replaces_the_shared_one_and_the_others_fall_back(
    shared: Path, tmp_path: Path
) -> None:
    own = write(tmp_path / "beta", {"en/ack.txt.j2": ACK.replace("Thank you", "Cheers")})
    templates = brand_set(shared, own)
    context = sample_context("en")
    assert templates.render("ack", context).text.startswith("Cheers for writing to Example Ltd")
    assert templates.render("closed", context).text == "We closed [#1042].\n"
    # The shared set itself is untouched.
    assert brand_set(shared).render("ack", context).text.startswith("Thank you")


def test_the_signature_is_rendered_with_the_mail_and_added_to_both_bodies(shared: Path) -> None:
    templates = brand_set(shared, signature=SIGNATURE + " <b>&</b>")
    context = sample_context("en")
    signed = templates.render("ack", context, signed=True)
    assert signed.text.endswith(
        "Example Ltd.\n\n-- \nExample Ltd support\nticket [#1042] <b>&</b>\n"
    )
    assert signed.html is not None
    assert "ticket [#1042] &lt;b&gt;&amp;&lt;/b&gt;</p>\n</body>" in signed.html
    # Staff mail is not signed: only what a customer gets carries the brand's signature.
    unsigned = templates.render("ack", context)
    assert "-- " not in unsigned.text and "support\nticket" not in (unsigned.html or "")


def test_a_template_that_places_the_signature_gets_it_once_where_it_put_it(
    shared: Path, tmp_path: Path
) -> None:
    placed = "Subject: Hi\n\nHello.\n{{ signature }}\nBye.\n"
    own = write(tmp_path / "beta", {"en/closed.txt.j2": placed})
    text = brand_set(shared, own, signature="Beta").render(
        "closed", sample_context("en"), signed=True
    )
    assert text.text == "Hello.\nBeta\nBye.\n"


@pytest.mark.parametrize(
    ("closed", "partial"),
    [
        ('{% include "en/_sign.txt.j2" %}', "Subject: Hi\n\nHello.\n{{ signature }}\n"),
        (
            '{% extends "en/_layout.txt.j2" %}{% block body %}Hello.{% endblock %}',
            "Subject: Hi\n\n{% block body %}{% endblock %}\n{{ signature }}\n",
        ),
    ],
    ids=["include", "extends"],
)
def test_a_signature_placed_by_a_partial_or_layout_is_not_added_again(
    shared: Path, tmp_path: Path, closed: str, partial: str
) -> None:
    name = "_sign" if "include" in closed else "_layout"
    own = write(tmp_path / "beta", {"en/closed.txt.j2": closed, f"en/{name}.txt.j2": partial})
    text = brand_set(shared, own, signature="Beta").render(
        "closed", sample_context("en"), signed=True
    )
    assert text.text.count("Beta") == 1 and "-- " not in text.text


def test_a_brand_answers_in_its_language_when_the_customer_s_has_no_templates(
    shared: Path,
) -> None:
    write(shared, {"it/closed.txt.j2": CLOSED})
    assert brand_set(shared, language="it").pick_language("ack", "de") == "it"
    assert brand_set(shared, language="it").pick_language("ack", "en-GB") == "en"
    assert brand_set(shared).pick_language("ack", "de") == "en"


def test_a_brand_language_without_templates_is_refused_naming_the_mailbox(
    tmp_path: Path,
) -> None:
    config = brand_config(tmp_path, SHIPPED, language="de")
    with pytest.raises(TemplateError, match=r"no templates for the default language.*'beta'"):
        open_templates(config)


# --- hostile ---------------------------------------------------------------------------------


def brand_config(tmp_path: Path, shared: Path, **beta: Any) -> Config:
    mailboxes = [
        {
            "name": "support",
            "address": "support@shop.example",
            "host": "127.0.0.1",
            "username": "support",
            "password_env": "MB_TEST_IMAP_PASSWORD",
        },
        {
            "name": "beta",
            "address": "inbox@beta.example",
            "host": "127.0.0.1",
            "username": "beta",
            "password_env": "MB_TEST_IMAP_PASSWORD",
            "from": "Beta Help <help@beta.example>",
            "company": "Beta Bikes",
            **beta,
        },
    ]
    return make_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        imap=SERVERS,
        smtp=SERVERS,
        mailbox=mailboxes,
        templates={"dir": str(shared), "language": "en"},
    )


@pytest.mark.parametrize(
    "escape",
    [
        "{{ company_name.__class__.__mro__[1].__subclasses__() }}",
        "{{ links.__init__.__globals__ }}",
        '{% include "../../../etc/passwd" %}',
    ],
)
def test_a_brand_template_that_escapes_the_sandbox_never_goes_live(
    tmp_path: Path, escape: str
) -> None:
    own = write(tmp_path / "beta", {"en/acknowledgement.txt.j2": ACK + escape + "\n"})
    config = brand_config(tmp_path, SHIPPED, templates=str(own))
    with pytest.raises(TemplateError) as caught:
        load_templates(config)  # what start, reload and the template watcher go through
    message = str(caught.value)
    assert f"{own / 'en' / 'acknowledgement.txt.j2'}:" in message
    assert "(mailbox 'beta')" in message
    assert "unsafe" in message or "include only fixed names" in message


def test_a_broken_brand_signature_is_refused_naming_the_configuration_and_key(
    tmp_path: Path,
) -> None:
    config = brand_config(tmp_path, SHIPPED, signature="{{ company_name.__class__ }}")
    with pytest.raises(TemplateError, match=r"mailbox\[1\]\.signature\):1: .*unsafe"):
        load_templates(config)
    config = brand_config(tmp_path, SHIPPED, signature="{{ password }}")
    with pytest.raises(TemplateError, match=r"signature\):1: unknown variable 'password'"):
        load_templates(config)


def headers(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_customer_text_and_a_multiline_signature_never_become_headers(tmp_path: Path) -> None:
    config = brand_config(tmp_path, SHIPPED, signature="Beta\r\nBcc: all@evil.example\r\n\r\nX")
    brand = brand_of(config, config.mailbox[1])
    templates = open_templates(config).for_mailbox("beta")
    subject = "Hi\r\nFrom: Evil <evil@evil.example>\r\nBcc: all@evil.example"
    name = "Eve\r\nFrom: evil@evil.example\r\nBcc: all@evil.example"
    context = {**sample_context("en"), "subject": subject, "requester_name": name}
    # A subject that is not one line never makes a mail at all...
    with pytest.raises(TemplateError, match="followed by a blank line"):
        templates.render("acknowledgement", clip_context(context, "en"), signed=True)
    # ...and ingest stores it as one (core.parse.normalize_subject); rendered as queue_mail
    # renders, the values shortened and made readable first.
    context["subject"] = normalize_subject(subject)
    rendered = templates.render("acknowledgement", clip_context(context, "en"), signed=True)
    raw = build_message(
        Outgoing(
            from_=brand.sender,
            to=(Address(name, "eve@customer.example"),),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id="mb.ack.1.abc@beta.example",
        )
    )
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert [line for line in head.split("\r\n") if line.lower().startswith("from:")] == [
        "From: Beta Help <help@beta.example>"
    ]
    assert not [line for line in head.split("\r\n") if line.lower().startswith("bcc")]
    mail = headers(raw)
    assert mail.get_all("From") == ["Beta Help <help@beta.example>"]
    assert mail["Bcc"] is None and len(mail.get_all("To") or []) == 1
    body = mail.get_body(("plain",))
    assert body is not None and "Bcc: all@evil.example" in body.get_content()


# --- the command -----------------------------------------------------------------------------


def test_templates_check_and_preview_cover_each_brand(tmp_path: Path) -> None:
    full = brand_config(tmp_path, SHIPPED)
    full = full.model_copy(
        update={
            "mailbox": (
                full.mailbox[0],
                full.mailbox[1].model_copy(update={"signature": SIGNATURE}),
            )
        }
    )
    out = io.StringIO()
    assert check_templates(full, out) == 0
    assert out.getvalue().splitlines()[1].startswith("mailbox beta: ")

    out = io.StringIO()
    assert preview_template(full, "closed", None, None, out, mailbox="beta") == 0
    assert "The Beta Bikes support team" in out.getvalue()
    assert "-- \nBeta Bikes support\nticket [#1042]" in out.getvalue()
    out = io.StringIO()
    preview_template(full, "closed", None, None, out)
    assert "Beta Bikes" not in out.getvalue()
    with pytest.raises(TemplateError, match="no mailbox named 'gamma'"):
        preview_template(full, "closed", None, None, out, mailbox="gamma")
