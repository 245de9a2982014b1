"""A database that refuses rows: a trigger on a real SQLite or PostgreSQL table refuses
every row whose column holds a marker, as a constraint would. No mock: the error, its
class and its text are the database's own."""

from __future__ import annotations

import re

from sqlalchemy import Engine

REFUSAL = "refused by the test trigger"


def refuse_rows(
    engine: Engine, table: str, column: str, marker: str, *, binary: bool = False
) -> None:
    """Refuse inserting into `table` any row whose `column` contains `marker` (ASCII)."""
    assert re.fullmatch(r"[\w-]+", marker) and re.fullmatch(r"\w+", table + column)
    name = _name(table, column)
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
                f"WHEN instr(CAST(NEW.{column} AS TEXT), '{marker}') > 0 "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )
            return
        needle = f"'{marker}'::bytea" if binary else f"'{marker}'"
        connection.exec_driver_sql(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF position({needle} in NEW.{column}) > 0 THEN "
            f"RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'check_violation'; END IF; "
            f"RETURN NEW; END $$"
        )
        connection.exec_driver_sql(
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
        )


def allow_rows(engine: Engine, table: str, column: str) -> None:
    """Take back refuse_rows."""
    name = _name(table, column)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"DROP TRIGGER {name}"
            if connection.dialect.name == "sqlite"
            else f"DROP TRIGGER {name} ON {table}"
        )


def _name(table: str, column: str) -> str:
    return f"refuse_{table}_{column}"
