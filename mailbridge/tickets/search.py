"""Full-text search over tickets: `mailbridge tickets search` and `#search` by mail.

The index (`db/search_index.py`) holds one document per article: its subject, its text
(quoted text included) and its attachments' names. A search finds the articles holding
every word, joins them to their tickets as they are now (so a merged article is found
under the ticket it moved to, and merged tickets, which hold no articles, never show),
keeps each ticket's best article, and ranks the tickets by it, the subject weighing most,
then the file names, then the text: on SQLite by how often the words occur (highlight()),
on PostgreSQL by ts_rank.

The ranking contract: only the newest CANDIDATES matching articles (of tickets the status
filter keeps) are ranked. A helpdesk looks for recent tickets, and a common word matches
most articles: ranking them all made a search take seconds. An older ticket is still found
whenever its words match fewer articles than that; otherwise a more precise query finds it.
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
CANDIDATES = 1_000  # the newest matching articles ranked; see search_tickets
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
    first among the newest CANDIDATES matching articles, at most `limit` (capped at
    MAX_LIMIT). Words are data, never query syntax; a
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


def _hits(column: str, weight: float) -> str:
    """A column's share of the rank: its matches, as marked by highlight() (which needs no
    statistics of the whole index, unlike bm25), saturating as in BM25: 2 hits weigh 1.6
    times 1 hit, 10 hits 2.1 times."""
    hits = f"(length({column}) - length(replace({column}, char(1), '')))"
    return f"{weight} * {hits} / ({hits} + 1.2)"


_SQLITE = text(f"""
    WITH m AS MATERIALIZED (
        SELECT f.rowid AS article_id, a.ticket_id,
               highlight(article_fts, 0, char(1), '') AS subject,
               highlight(article_fts, 1, char(1), '') AS body,
               highlight(article_fts, 2, char(1), '') AS filenames
        FROM article_fts AS f
        JOIN article a ON a.id = f.rowid
        JOIN ticket t ON t.id = a.ticket_id
        WHERE article_fts MATCH :match AND {_FILTER}
        ORDER BY f.rowid DESC
        LIMIT :candidates)
    SELECT t.number, t.subject, t.status, t.requester_address, m.article_id,
           max({_hits("m.subject", 4.0)} + {_hits("m.filenames", 2.0)}
               + {_hits("m.body", 1.0)}) AS rank
    FROM m JOIN ticket t ON t.id = m.ticket_id
    GROUP BY t.id
    ORDER BY rank DESC, t.number DESC
    LIMIT :limit""")


def _sqlite_best(session: Session, terms: Sequence[str], status: str | None, limit: int) -> Any:
    """Each ticket's best article among the newest CANDIDATES matches; SQLite takes the
    bare columns from the row of max(). FTS5 walks the matches newest first and stops at
    the limit; bm25() works only in the full-text query itself, hence the CTE."""
    parameters = {
        "match": fts5_match(terms),
        "status": status,
        "limit": limit,
        "candidates": CANDIDATES,
    }
    return session.execute(_SQLITE, parameters).all()


def _postgres_best(session: Session, terms: Sequence[str], status: str | None, limit: int) -> Any:
    """Each ticket's best article among the newest CANDIDATES matches: the query is each
    word's Italian or English lexemes, all words required; plainto_tsquery reads each word
    as plain text. The query is written out, not a CTE, and every plan is made for the
    words given: the planner then walks the newest articles for common words (stopping at
    the cap) and the GIN index for rare ones. Only the candidates are ranked."""
    query = "(" + " && ".join(f"mailbridge_search_query(:w{i})" for i in range(len(terms))) + ")"
    statement = text(f"""
        WITH m AS MATERIALIZED (
            SELECT f.article_id, a.ticket_id
            FROM article_fts f
            JOIN article a ON a.id = f.article_id
            JOIN ticket t ON t.id = a.ticket_id
            WHERE f.document @@ {query} AND {_FILTER}
            ORDER BY f.article_id DESC
            LIMIT :candidates)
        SELECT number, subject, status, requester_address, article_id, rank FROM (
            SELECT DISTINCT ON (t.id) t.number, t.subject, t.status, t.requester_address,
                   m.article_id, ts_rank(f.document, {query}) AS rank
            FROM m JOIN ticket t ON t.id = m.ticket_id
            JOIN article_fts f ON f.article_id = m.article_id
            ORDER BY t.id, rank DESC
        ) AS best
        ORDER BY rank DESC, number DESC
        LIMIT :limit""")
    parameters: dict[str, Any] = {f"w{i}": term for i, term in enumerate(terms)}
    parameters |= {"status": status, "limit": limit, "candidates": CANDIDATES}
    session.execute(text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"))
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
