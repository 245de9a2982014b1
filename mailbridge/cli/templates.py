"""`mailbridge templates`: check every reply template, or preview one (with a ticket's
values, or the sample context)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from mailbridge.adapters.template_context import SAMPLE_CONTEXT
from mailbridge.adapters.templates import TemplateSet, default_templates_dir
from mailbridge.cli.common import command_config, open_app, ticket_numbered
from mailbridge.config import Config
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
    preview.add_argument("--lang", help="language (default: templates.language)")
    templates.set_defaults(handler=_templates)


def _templates(args: argparse.Namespace) -> int:

    config = command_config(args)
    if args.templates_command == "check":
        return check_templates(config, sys.stdout)
    return preview_template(config, args.name, args.ticket, args.lang, sys.stdout)


def _load_templates(config: Config) -> TemplateSet:
    return TemplateSet.load(
        config.templates.dir or default_templates_dir(), config.templates.language
    )


def check_templates(config: Config, out: TextIO) -> int:
    templates = _load_templates(config)
    problems = templates.check()
    for problem in problems:
        out.write(problem + "\n")
    if problems:
        return 2
    out.write(
        f"{len(templates.names())} templates in {len(templates.languages())} language(s): ok\n"
    )
    return 0


def preview_template(
    config: Config, name: str, ticket_number: int | None, language: str | None, out: TextIO
) -> int:
    templates = _load_templates(config)
    context: dict[str, object] = dict(SAMPLE_CONTEXT)
    if ticket_number is not None:
        from mailbridge.outbound.queue import ticket_context

        with open_app(config) as app, app.sessions() as session:
            ticket = ticket_numbered(session, ticket_number)
            context.update(ticket_context(app, ticket, language or config.templates.language))
    if name not in templates.names():
        raise TemplateError(
            f"no template named {name!r}; known: {', '.join(sorted(templates.names()))}"
        )
    rendered = templates.render(
        name, clip_context(context, language or config.templates.language), language
    )
    out.write(f"Subject: {rendered.subject}\n\n{rendered.text.rstrip()}\n")
    if rendered.html:
        out.write(f"\n--- HTML ---\n{rendered.html.rstrip()}\n")
    return 0
