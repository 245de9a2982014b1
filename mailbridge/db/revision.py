"""The schema revision, read without alembic.

Every start asks whether the database is at the newest migration (auto-migration, the
service's preflight). Answering that through alembic imported it with mako and pygments,
7 MB that stayed in the daemon's memory, and took 0.17 s of every command's start. The
answer needs neither: the revision is a row of `alembic_version`, and the newest one is
`HEAD`, which `tests/db/test_schema.py` holds equal to what alembic finds in migrations/.
Only a database that is not at `HEAD` loads alembic (`db/migrate.py`) to upgrade it.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

__all__ = ["HEAD", "current_revision"]

HEAD = "0022"  # the newest migration's revision: update it with each new migration

_VERSION_TABLE = "alembic_version"


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has none (empty, never migrated) or
    several (branches, which this project's history never has)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(_VERSION_TABLE):
            return None
        found = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).all()
    return str(found[0][0]) if len(found) == 1 else None
