"""A private PostgreSQL cluster that the fault runs may stop and start at will.

initdb makes it in a temporary directory, with its own port and socket directory, so
stopping it never touches the shared server on 5432. As root, every server command runs as
the `postgres` user (the server refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import create_engine, text

DATABASE = "mailbridge"
SERVER_USER = "postgres"


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=10
        )
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(p) for p in versions)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """initdb on first start(); stop() and start() keep the data and the port."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.port = _free_port()
        self._root: Path | None = None
        self.running = False

    @staticmethod
    def problem() -> str | None:
        """Why a private cluster cannot be made here, or None."""
        if find_bindir() is None:
            return "initdb/pg_ctl not found (pg_config --bindir, /usr/lib/postgresql/*/bin)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                return f"running as root and there is no {SERVER_USER!r} user to run initdb as"
            if shutil.which("runuser") is None:
                return "running as root and runuser is missing"
        return None

    @property
    def data(self) -> Path:
        assert self._root is not None
        return self._root / "data"

    @property
    def log(self) -> Path:
        assert self._root is not None
        return self._root / "server.log"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _command(self, *args: str) -> list[str]:
        assert self.bindir is not None
        program = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            return ["runuser", "-u", SERVER_USER, "--", *program]
        return program

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            cwd="/",
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout}"
                f"{done.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def _create(self) -> None:
        # Not under pytest's tmp_path: that is private to root, and the server runs as
        # postgres.
        self._root = Path(tempfile.mkdtemp(prefix="mailbridge-faults-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self._root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SERVER_USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> Self:
        """Start (creating the cluster and its database the first time); waits until it
        accepts connections."""
        first = self._root is None
        if first:
            self._create()
        options = (
            f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        self.running = True
        if first:
            admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
            finally:
                admin.dispose()
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` disconnects every client and shuts down cleanly,
        `immediate` is a crash."""
        if self.running:
            self._run(
                "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=90
            )
            self.running = False

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
