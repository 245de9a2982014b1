"""The command line loads only the command it runs, and says the same as when it loads all."""

from __future__ import annotations

import ast
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest

from mailbridge.cli.main import COMMANDS, build_parser, command_named, main

pytestmark = pytest.mark.unit

EML = Path(__file__).resolve().parents[1] / "data" / "eml" / "plain.eml"


def help_of(argv: list[str], only: tuple[str, ...] | None) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser(only).parse_args([*argv, "--help"])
    return out.getvalue()


def test_the_command_list_is_the_same_when_no_command_is_loaded() -> None:
    assert help_of([], only=()) == help_of([], only=None)


@pytest.mark.parametrize("name", [name for name, _module, _line in COMMANDS])
def test_each_command_alone_is_the_command_in_full(name: str) -> None:
    assert help_of([name], only=(name,)) == help_of([name], only=None)


@pytest.mark.parametrize(
    "argv, named",
    [
        (["tickets", "list"], "tickets"),
        (["--config", "tickets", "parse", "x.eml"], "parse"),  # a path named like a command
        (["-v", "--log-format", "json", "status"], "status"),
        (["--log-format=json", "run", "--once"], "run"),
        (["--help"], None),
        ([], None),
        (["--log-format", "bogus", "run"], None),  # the whole parser says what is wrong
    ],
)
def test_the_command_is_read_past_the_global_options(argv: list[str], named: str | None) -> None:
    assert command_named(argv) == named


def test_a_bad_global_option_is_reported_by_the_whole_parser() -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        main(["--log-format", "bogus", "run"])
    assert exit_.value.code == 2
    assert err.getvalue().count("usage: mailbridge") == 1
    assert "invalid choice: 'bogus'" in err.getvalue()


def loaded(script: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `script`."""
    script += f"\nimport sys\nprint('LOADED', [m for m in {modules!r} if m in sys.modules])\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LOADED"))
    return list(ast.literal_eval(line.removeprefix("LOADED ")))


@pytest.mark.parametrize("argv", [["--help"], ["parse", str(EML)]])
def test_help_and_parse_start_without_the_database_libraries(argv: list[str]) -> None:
    script = (
        "from mailbridge.cli.main import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    heavy = ("sqlalchemy", "alembic", "authlib", "imapclient", "aiosmtplib")
    assert loaded(script, heavy) == []


def test_a_daemon_that_signs_in_with_passwords_does_not_load_the_oauth_libraries() -> None:
    """authlib and requests are 31 MB of the daemon's memory (mailbridge/oauth/endpoint.py)."""
    script = "import mailbridge.service.daemon, mailbridge.cli.status\n"
    assert loaded(script, ("authlib", "requests")) == []
    assert loaded(script + "import mailbridge.cli.oauth\n", ("authlib",)) == [], "no login yet"


def test_tnefparse_loads_with_the_first_winmail_dat_not_at_start() -> None:
    """Its property tables cost every command, daemon and parse worker 50 ms at start."""
    data = EML.parent
    script = (
        "import mailbridge.service.daemon, mailbridge.cli.tickets\n"
        "from pathlib import Path\n"
        "from mailbridge.core.parse import parse_message\n"
        f"parse_message(Path({str(data / 'plain.eml')!r}).read_bytes())\n"
    )
    assert loaded(script, ("tnefparse",)) == []
    tnef = f"parse_message(Path({str(data / 'winmail.eml')!r}).read_bytes())\n"
    assert loaded(script + tnef, ("tnefparse",)) == ["tnefparse"]


def test_a_start_on_a_database_at_the_newest_revision_does_not_load_alembic(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    """Alembic (with mako and pygments, 7 MB) only when there is a migration to run
    (mailbridge/db/revision.py)."""

    def start(url: str) -> str:
        data = {
            "database": {"url": url, "auto_migrate": True},
            "mailbox": [
                {"name": "support", "address": "s@shop.example", "host": "h", "username": "s"}
            ],
            "smtp": {"host": "127.0.0.1", "from": "Shop <s@shop.example>"},
            "sla": [{"name": "standard", "first_response": "8h", "resolution": "5d"}],
            "service": {"data_dir": str(tmp_path)},
        }
        path = str(tmp_path / "c.toml")
        return (
            "from pathlib import Path\n"
            "from mailbridge.app import build_app\n"
            "from mailbridge.config import config_from_dict\n"
            f"build_app(config_from_dict({data!r}, Path({path!r}), {{}})).close()\n"
        )

    assert loaded(start(migrated_sqlite_url), ("alembic", "mako", "pygments")) == []
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert loaded(start(empty), ("alembic",)) == ["alembic"], "an empty one is migrated"


def test_a_command_walks_its_start_up_heap_neither_while_loading_nor_at_exit(
    tmp_path: Path, migrated_sqlite_url: str
) -> None:
    """mailbridge/heap.py: the collector paused while a command loads, what it loaded frozen
    (the interpreter's last collection at exit then has nothing to walk)."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'[database]\nurl = "{migrated_sqlite_url}"\n'
        '[[mailbox]]\nname = "support"\naddress = "s@shop.example"\nhost = "h"\n'
        'username = "s"\n[smtp]\nhost = "127.0.0.1"\nfrom = "Shop <s@shop.example>"\n'
        '[[sla]]\nname = "standard"\nfirst_response = "8h"\nresolution = "5d"\n'
        f'[service]\ndata_dir = "{tmp_path}"\n'
    )
    script = (
        "import gc, sys\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: full.append(info['generation'] == 2))\n"
        "from mailbridge.cli.main import main\n"
        f"code = main(['--config', {str(config)!r}, 'tickets', 'list'])\n"
        "print('RESULT', code, sum(full) // 2, gc.get_freeze_count() > 100_000)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    assert result == "RESULT 0 0 True", done.stdout
