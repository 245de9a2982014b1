"""`mailbridge config check`: validate the configuration and load its templates."""

from __future__ import annotations

import argparse

from mailbridge.cli.common import EXIT_OK, command_config


def configure(config: argparse.ArgumentParser) -> None:
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser("check", help="validate the configuration and templates")
    config.set_defaults(handler=_config_check)


def _config_check(args: argparse.Namespace) -> int:
    from mailbridge.service.reload import load_templates

    config = command_config(args)
    templates = load_templates(config)
    print(
        f"{config.source}: ok ({len(config.mailbox)} mailbox(es), {len(config.sla)} SLA "
        f"policies, calendars {', '.join(c.name for c in config.calendars)}, "
        f"templates in {', '.join(sorted(templates.languages()))})"
    )
    return EXIT_OK
