"""What the database needs so that erased data leaves no trace in its files either.

SQLite keeps deleted content in free pages and in the free space of pages, unless
`secure_delete` is on, which overwrites it with zeros: the erasing transactions turn it on
for their connection (`overwrite_deleted`). Its FTS5 index keeps an updated row's old words
in older segments until they are merged: `compact` merges them all ('optimize') and then
checkpoints the write-ahead log, whose old frames would still hold the pages as they were.
PostgreSQL keeps old row versions until VACUUM reclaims them (autovacuum does, in time);
its search index rows are replaced whole, so neither step applies there.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mailbridge.db.search_index import INDEX_TABLE


def overwrite_deleted(session: Session) -> None:
    """On SQLite, what this connection deletes or overwrites from now is zeroed on disk."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("PRAGMA secure_delete = ON")


def compact(engine: Engine) -> None:
    """On SQLite, merge the search index's segments (dropping the words of erased
    articles) with secure_delete on, then empty the write-ahead log if no reader holds it
    (a busy log is emptied by a later checkpoint)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA secure_delete = ON")
        connection.exec_driver_sql(f"INSERT INTO {INDEX_TABLE}({INDEX_TABLE}) VALUES ('optimize')")
        connection.commit()
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.commit()
