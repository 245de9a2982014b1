"""Full-text search over tickets: `mailbridge tickets search` and `#search` by mail.

The index (`db/search_index.py`) holds one document per article: its subject, its text
(quoted text included) and its attachments' names. A search finds the articles holding
every word, joins them to their tickets as they are now (so a merged article is found
under the ticket it moved to, and merged tickets, which hold no articles, never show),
keeps each ticket's best article, and ranks the tickets by it: SQLite's bm25 or
PostgreSQL's ts_rank, the subject weighing most, then the file names, then the text.
Spam tickets are found only when asked for by status (`--status spam`); `#search` by mail
never asks, so spam stays out of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from mailbridge.core.search_text import fts5_match, search_words, snippet
from mailbridge.core.states import TicketStatus
from mailbridge.db.models import Article, AttachmentRecord

MAX_LIMIT = 100
SNIPPET_SOURCE_CHARS = 32_000  # of each hit's text read to find the snippet's match

EMPTY_QUERY = "nothing to search for: give at least one word of letters or digits"


@dataclass(frozen=True)
class SearchHit:
    """One ticket found: the ticket as it is now, and its best matching article's snippet
    and rank (higher is better; comparable only within one search)."""

    number: int
    subject: str
    status: str
    requester: str
    snippet: str
    rank: float


def search_tickets(
    session: Session, words: str, *, status: str | None = None, limit: int = 20
) -> list[SearchHit]:
    """The tickets whose subject, articles or attachment names hold every word, best
    first, at most `limit` (capped at MAX_LIMIT). Words are data, never query syntax; a
    query with no letter or digit finds nothing (EMPTY_QUERY says why)."""
    terms = search_words(words)
    if not terms or limit <= 0 or status == TicketStatus.MERGED:
        return []
    limit = min(limit, MAX_LIMIT)
    if session.get_bind().dialect.name == "postgresql":
        rows = _postgres_best(session, terms, status, limit)
    else:
        rows = _sqlite_best(session, terms, status, limit)
    texts = _texts(session, [row.article_id for row in rows])
    return [
        SearchHit(
            number=row.number,
            subject=row.subject,
            status=str(row.status),
            requester=row.requester_address,
            snippet=snippet(texts.get(row.article_id, ()), terms),
            rank=float(row.rank),
        )
        for row in rows
    ]


_FILTER = f"""
    t.status <> 'merged' AND t.number IS NOT NULL
    AND (t.status = :status
         OR (CAST(:status AS VARCHAR) IS NULL AND t.status <> '{TicketStatus.SPAM.value}'))"""

_SQLITE = text(f"""
    WITH m AS MATERIALIZED (
        SELECT rowid AS article_id, -bm25(article_fts, 4.0, 1.0, 2.0) AS rank
        FROM article_fts WHERE article_fts MATCH :match)
    SELECT t.number, t.subject, t.status, t.requester_address,
           m.article_id, max(m.rank) AS rank
    FROM m
    JOIN article a ON a.id = m.article_id
    JOIN ticket t ON t.id = a.ticket_id
    WHERE {_FILTER}
    GROUP BY t.id
    ORDER BY rank DESC, t.number DESC
    LIMIT :limit""")


def _sqlite_best(session: Session, terms: Sequence[str], status: str | None, limit: int) -> Any:
    """Each ticket's best article; SQLite takes the bare columns from the row of max().
    The matches are a materialized CTE: bm25() works only in the full-text query itself."""
    parameters = {"match": fts5_match(terms), "status": status, "limit": limit}
    return session.execute(_SQLITE, parameters).all()


def _postgres_best(session: Session, terms: Sequence[str], status: str | None, limit: int) -> Any:
    """Each ticket's best article: the query is each word's Italian or English lexemes,
    all words required; plainto_tsquery reads each word as plain text."""
    query = " && ".join(f"mailbridge_search_query(:w{i})" for i in range(len(terms)))
    statement = text(f"""
        SELECT number, subject, status, requester_address, article_id, rank FROM (
            SELECT DISTINCT ON (t.id) t.number, t.subject, t.status, t.requester_address,
                   f.article_id, ts_rank(f.document, q.query) AS rank
            FROM (SELECT {query} AS query) AS q
            JOIN article_fts f ON f.document @@ q.query
            JOIN article a ON a.id = f.article_id
            JOIN ticket t ON t.id = a.ticket_id
            WHERE {_FILTER}
            ORDER BY t.id, rank DESC
        ) AS best
        ORDER BY rank DESC, number DESC
        LIMIT :limit""")
    parameters: dict[str, Any] = {f"w{i}": term for i, term in enumerate(terms)}
    parameters |= {"status": status, "limit": limit}
    return session.execute(statement, parameters).all()


def _texts(session: Session, article_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """What each hit's snippet is cut from: its text (the start of it), subject and
    attachment names, in that order of preference."""
    if not article_ids:
        return {}
    names: defaultdict[int, list[str]] = defaultdict(list)
    for article_id, filename in session.execute(
        select(AttachmentRecord.article_id, AttachmentRecord.filename).where(
            AttachmentRecord.article_id.in_(article_ids)
        )
    ):
        if filename:
            names[article_id].append(filename)
    rows = session.execute(
        select(
            Article.id, func.substr(Article.text_body, 1, SNIPPET_SOURCE_CHARS), Article.subject
        ).where(Article.id.in_(article_ids))
    )
    return {
        article_id: (body or "", subject or "", " ".join(names[article_id]))
        for article_id, body, subject in rows
    }
