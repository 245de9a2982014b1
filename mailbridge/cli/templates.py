"""`mailbridge templates`: check every reply template, the shared ones and each mailbox's
own (its brand), or preview one (with a ticket's values, or the sample context, and a
mailbox's brand)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from mailbridge.adapters.template_context import SAMPLE_CONTEXT
from mailbridge.adapters.templates import TemplateSet
from mailbridge.app import open_templates
from mailbridge.cli.common import command_config, open_app, ticket_numbered
from mailbridge.config import Config
from mailbridge.config.brands import brand_of
from mailbridge.core.clip import clip_context
from mailbridge.errors import TemplateError


def configure(templates: argparse.ArgumentParser) -> None:
    template_commands = templates.add_subparsers(
        dest="templates_command", metavar="ACTION", required=True
    )
    template_commands.add_parser("check", help="load and render every template")
    preview = template_commands.add_parser("preview", help="render one template")
    preview.add_argument("name")
    preview.add_argument("--ticket", type=int, help="use this ticket's values")
    preview.add_argument("--lang", help="language (default: the mailbox's, or templates.language)")
    preview.add_argument(
        "--mailbox", help="render as this mailbox's brand (default: the ticket's, or none)"
    )
    templates.set_defaults(handler=_templates)


def _templates(args: argparse.Namespace) -> int:

    config = command_config(args)
    if args.templates_command == "check":
        return check_templates(config, sys.stdout)
    return preview_template(
        config, args.name, args.ticket, args.lang, sys.stdout, mailbox=args.mailbox
    )


def check_templates(config: Config, out: TextIO) -> int:
    """Every template, and each brand's set, compiled in the sandbox and rendered with the
    sample; the problems and exit 2, or one line per set and 0."""
    templates = open_templates(config)
    problems = templates.check()
    for problem in problems:
        out.write(problem + "\n")
    if problems:
        return 2
    out.write(_summary("shared", templates))
    for mailbox in config.mailbox:
        brand = templates.for_mailbox(mailbox.name)
        if brand is not templates:
            out.write(_summary(f"mailbox {mailbox.name}", brand))
    return 0


def _summary(label: str, templates: TemplateSet) -> str:
    return (
        f"{label}: {len(templates.names())} templates in "
        f"{len(templates.languages())} language(s): ok\n"
    )


def preview_template(
    config: Config,
    name: str,
    ticket_number: int | None,
    language: str | None,
    out: TextIO,
    *,
    mailbox: str | None = None,
) -> int:
    """One template rendered as a mail: with the sample values, or a ticket's; signed and
    under the brand of `mailbox` (default: the ticket's mailbox) when there is one."""
    if mailbox is not None and mailbox not in {m.name for m in config.mailbox}:
        names = ", ".join(m.name for m in config.mailbox)
        raise TemplateError(f"no mailbox named {mailbox!r}; known: {names}")
    shared = open_templates(config)
    context: dict[str, object] = dict(SAMPLE_CONTEXT)
    if ticket_number is not None:
        from mailbridge.outbound.queue import ticket_context

        with open_app(config) as app, app.sessions() as session:
            ticket = ticket_numbered(session, ticket_number)
            # The ticket's mailbox, unless the configuration no longer has it: then, as
            # when its mail is sent, the house's identity.
            if mailbox is None and ticket.mailbox in app.brands:
                mailbox = ticket.mailbox
            brand = app.brand(mailbox) if mailbox else app.house
            context.update(ticket_context(app, ticket, language or brand.language))
    templates = shared.for_mailbox(mailbox) if mailbox else shared
    if mailbox is not None:
        context.update(_brand_values(config, mailbox))
    if name not in templates.names():
        raise TemplateError(
            f"no template named {name!r}; known: {', '.join(sorted(templates.names()))}"
        )
    language = language or templates.default_language
    rendered = templates.render(
        name, clip_context(context, language), language, signed=mailbox is not None
    )
    out.write(f"Subject: {rendered.subject}\n\n{rendered.text.rstrip()}\n")
    if rendered.html:
        out.write(f"\n--- HTML ---\n{rendered.html.rstrip()}\n")
    return 0


def _brand_values(config: Config, mailbox: str) -> dict[str, object]:
    """What of a mailbox's brand the templates show: its company and address."""
    brand = brand_of(config, config.mailbox_named(mailbox))
    return {"company_name": brand.company, "support_address": brand.sender.address}
