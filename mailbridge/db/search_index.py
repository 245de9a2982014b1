"""The full-text index of articles: its tables and the triggers that keep it.

The database keeps the index itself, with triggers on `article` and `attachment`, so every
way an article is written (the unit of work, `queries.insert_now`, a bulk insert, a
retention purge) updates it in the same transaction, and a rolled-back article leaves no
index row (docs/architecture.md, "Full-text search"). It is indexed by article id and
joined to the ticket when searched, so a merge or split that moves articles needs nothing.

SQLite: an FTS5 table `article_fts(subject, body, filenames)`, rowid = article id, with the
`unicode61 remove_diacritics 2` tokenizer. PostgreSQL: a table `article_fts(article_id,
document)` whose tsvector joins the Italian and English configurations over accent-folded
text, with a GIN index. Its trigger makes the document from the row being written and
folds each text once (migration 0013): folding with translate() twice per text had been
nine tenths of the upkeep's 1.3 ms per article.

The index is not a model: the migrations own it and the schema comparison skips it
(`not_search_index`). A later migration that rebuilds `article` or `attachment` in SQLite
batch mode drops their triggers and must call `create(connection)` again.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import Connection

INDEX_TABLE = "article_fts"


def _fold_table() -> tuple[str, str]:
    """The accented Latin letters and the plain letter each folds to, for `translate()`:
    the same folding SQLite's remove_diacritics gives, without the unaccent extension."""
    accented, plain = [], []
    for code in range(0xC0, 0x250):
        char = chr(code)
        base = unicodedata.normalize("NFKD", char)[0]
        if base != char and base.isascii() and base.isalpha():
            accented.append(char)
            plain.append(base)
    return "".join(accented), "".join(plain)


_ACCENTED, _PLAIN = _fold_table()

SQLITE_CREATE = (
    f"CREATE VIRTUAL TABLE {INDEX_TABLE} USING fts5("
    "subject, body, filenames, tokenize = 'unicode61 remove_diacritics 2')",
    f"""CREATE TRIGGER {INDEX_TABLE}_article_insert AFTER INSERT ON article BEGIN
        INSERT INTO {INDEX_TABLE}(rowid, subject, body, filenames)
        VALUES (new.id, new.subject, new.text_body, '');
    END""",
    f"""CREATE TRIGGER {INDEX_TABLE}_article_update AFTER UPDATE OF subject, text_body
    ON article BEGIN
        UPDATE {INDEX_TABLE} SET subject = new.subject, body = new.text_body
        WHERE rowid = new.id;
    END""",
    f"""CREATE TRIGGER {INDEX_TABLE}_article_delete AFTER DELETE ON article BEGIN
        DELETE FROM {INDEX_TABLE} WHERE rowid = old.id;
    END""",
    f"""CREATE TRIGGER {INDEX_TABLE}_attachment_insert AFTER INSERT ON attachment BEGIN
        UPDATE {INDEX_TABLE} SET filenames = filenames || ' ' || coalesce(new.filename, '')
        WHERE rowid = new.article_id;
    END""",
    *(
        f"""CREATE TRIGGER {INDEX_TABLE}_attachment_{when} AFTER {event} ON attachment BEGIN
        UPDATE {INDEX_TABLE} SET filenames = (
            SELECT coalesce(group_concat(filename, ' '), '') FROM attachment
            WHERE article_id = {INDEX_TABLE}.rowid)
        WHERE rowid IN ({rows});
    END"""
        for when, event, rows in (
            ("update", "UPDATE OF filename, article_id", "old.article_id, new.article_id"),
            ("delete", "DELETE", "old.article_id"),
        )
    ),
)

SQLITE_BACKFILL = (
    f"""INSERT INTO {INDEX_TABLE}(rowid, subject, body, filenames)
    SELECT a.id, a.subject, a.text_body,
           coalesce((SELECT group_concat(filename, ' ') FROM attachment
                     WHERE article_id = a.id), '')
    FROM article a""",
)

SQLITE_DROP = (
    *(
        f"DROP TRIGGER IF EXISTS {INDEX_TABLE}_{name}"
        for name in (
            "article_insert",
            "article_update",
            "article_delete",
            "attachment_insert",
            "attachment_update",
            "attachment_delete",
        )
    ),
    f"DROP TABLE IF EXISTS {INDEX_TABLE}",
)

POSTGRES_FOLD_UTF8 = r"""normalize(regexp_replace(normalize(value, NFD),
    '([A-Za-z])[\u0300-\u036f]+', '\1', 'g'), NFC)"""
"""Accents off Latin letters: decomposed, the marks after a Latin letter dropped, the rest
composed again. Ten times cheaper than translate(), which scans its whole table for each
character; it needs a UTF8 database, else `create` folds with translate()."""

POSTGRES_FOLD_TRANSLATE = f"translate(value, '{_ACCENTED}', '{_PLAIN}')"

POSTGRES_CREATE = (
    f"""CREATE TABLE {INDEX_TABLE} (
        article_id integer PRIMARY KEY REFERENCES article(id) ON DELETE CASCADE,
        document tsvector NOT NULL
    )""",
    f"CREATE INDEX {INDEX_TABLE}_document ON {INDEX_TABLE} USING gin (document)",
    # {fold} is filled in by `create`, after the database's encoding
    """CREATE FUNCTION mailbridge_search_fold(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN {fold}""",
    # the folded text is an argument, so it is folded once for both configurations
    """CREATE FUNCTION mailbridge_search_stems(folded text, weight "char") RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN setweight(
        to_tsvector('italian'::regconfig, folded)
        || to_tsvector('english'::regconfig, folded), weight)""",
    """CREATE FUNCTION mailbridge_search_vector(value text, weight "char") RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN mailbridge_search_stems(mailbridge_search_fold(value), weight)""",
    """CREATE FUNCTION mailbridge_search_query(value text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN
        plainto_tsquery('italian'::regconfig, mailbridge_search_fold(value))
        || plainto_tsquery('english'::regconfig, mailbridge_search_fold(value))""",
    """CREATE FUNCTION mailbridge_search_filenames(names text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN mailbridge_search_vector(translate(coalesce(names, ''), '_.-', '   '), 'B')""",
    """CREATE FUNCTION mailbridge_search_row(subject text, body text, article integer)
    RETURNS tsvector LANGUAGE sql STABLE RETURN
        mailbridge_search_vector(subject, 'A')
        || mailbridge_search_filenames((SELECT string_agg(f.filename, ' ')
                                        FROM attachment f WHERE f.article_id = article))
        || mailbridge_search_vector(body, 'D')""",
    """CREATE FUNCTION mailbridge_search_document(article integer) RETURNS tsvector
    LANGUAGE sql STABLE RETURN (
        SELECT mailbridge_search_row(a.subject, a.text_body, a.id)
        FROM article a WHERE a.id = article)""",
    # the article's own row is NEW: the document is made from it, not read back
    f"""CREATE FUNCTION {INDEX_TABLE}_article() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {INDEX_TABLE}(article_id, document)
        VALUES (NEW.id, mailbridge_search_row(NEW.subject, NEW.text_body, NEW.id))
        ON CONFLICT (article_id) DO UPDATE SET document = EXCLUDED.document;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER {INDEX_TABLE}_article AFTER INSERT OR UPDATE OF subject, text_body
    ON article FOR EACH ROW EXECUTE FUNCTION {INDEX_TABLE}_article()""",
    f"""CREATE FUNCTION {INDEX_TABLE}_attachment() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE {INDEX_TABLE}
            SET document = document || mailbridge_search_filenames(NEW.filename)
            WHERE article_id = NEW.article_id;
        ELSE
            UPDATE {INDEX_TABLE} SET document = mailbridge_search_document(article_id)
            WHERE article_id = OLD.article_id
               OR (TG_OP = 'UPDATE' AND article_id = NEW.article_id);
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER {INDEX_TABLE}_attachment
    AFTER INSERT OR DELETE OR UPDATE OF filename, article_id
    ON attachment FOR EACH ROW EXECUTE FUNCTION {INDEX_TABLE}_attachment()""",
)

POSTGRES_BACKFILL = (
    f"""INSERT INTO {INDEX_TABLE}(article_id, document)
    SELECT id, mailbridge_search_document(id) FROM article""",
)

POSTGRES_DROP = (
    f"DROP TRIGGER IF EXISTS {INDEX_TABLE}_attachment ON attachment",
    f"DROP TRIGGER IF EXISTS {INDEX_TABLE}_article ON article",
    f"DROP FUNCTION IF EXISTS {INDEX_TABLE}_attachment()",
    f"DROP FUNCTION IF EXISTS {INDEX_TABLE}_article()",
    f"DROP TABLE IF EXISTS {INDEX_TABLE}",
    "DROP FUNCTION IF EXISTS mailbridge_search_document(integer)",
    "DROP FUNCTION IF EXISTS mailbridge_search_row(text, text, integer)",
    "DROP FUNCTION IF EXISTS mailbridge_search_filenames(text)",
    "DROP FUNCTION IF EXISTS mailbridge_search_query(text)",
    'DROP FUNCTION IF EXISTS mailbridge_search_vector(text, "char")',
    'DROP FUNCTION IF EXISTS mailbridge_search_stems(text, "char")',
    "DROP FUNCTION IF EXISTS mailbridge_search_fold(text)",
)


def create(connection: Connection, *, backfill: bool = True) -> None:
    """Create the index and its triggers, and index the articles already stored."""
    if connection.dialect.name == "postgresql":
        utf8 = connection.exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"
        fold = POSTGRES_FOLD_UTF8 if utf8 else POSTGRES_FOLD_TRANSLATE
        statements = tuple(s.replace("{fold}", fold) for s in POSTGRES_CREATE)
        statements += POSTGRES_BACKFILL if backfill else ()
    else:
        statements = SQLITE_CREATE + (SQLITE_BACKFILL if backfill else ())
    for statement in statements:
        connection.exec_driver_sql(statement)


def drop(connection: Connection) -> None:
    """Drop the index, its triggers and functions."""
    postgres = connection.dialect.name == "postgresql"
    for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
        connection.exec_driver_sql(statement)


def not_search_index(
    item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic's `include_object`: the index and SQLite's FTS5 shadow tables are no model,
    so comparing the models with the database leaves them out."""
    return name is None or not (name == INDEX_TABLE or name.startswith(f"{INDEX_TABLE}_"))
