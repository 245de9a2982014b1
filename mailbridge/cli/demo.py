"""`mailbridge demo`: the real daemon on embedded servers, from the `demo` extra."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailbridge.cli.common import EXIT_FAILURE


def configure(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--dir", type=Path, help="keep the demo's database here (default: temporary)")
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the demo daemon running after the tour, until Ctrl-C",
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from mailbridge.demo import EXTRA_MODULES, INSTALL

    try:  # here, not at the top: the daemon runs without the demo extra
        from mailbridge.demo.run import run_demo
    except ModuleNotFoundError as exc:
        package = (exc.name or "").partition(".")[0]
        if package not in EXTRA_MODULES:
            raise
        print(
            f"mailbridge: the demo needs pymap and aiosmtpd, from the demo extra ({package} is "
            f"missing): {INSTALL}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return run_demo(args.dir, keep_running=args.keep_running)
