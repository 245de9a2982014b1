"""Search tickets by words: every word, in any case, somewhere in the ticket's subject, its
articles' text or its attachments' names. Ranked by how often the words occur, then by
recency, with a snippet around the first match.

A plain scan, bounded: the database picks at most SCAN candidate tickets (newest first)
that hold every word, and only the first TEXT_CHARS of each article are counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from mailbridge.db.models import Article, AttachmentRecord, Ticket

MAX_WORDS = 10
SCAN = 500  # candidate tickets ranked in Python
TEXT_CHARS = 200_000  # characters of one article looked at for ranking and snippets
SNIPPET_CHARS = 160


@dataclass(frozen=True, slots=True)
class SearchHit:
    number: int
    subject: str
    status: str
    requester: str
    snippet: str
    rank: float


def search_words(text: str) -> list[str]:
    """The words of a query, lower-cased, each once, at most MAX_WORDS."""
    return list(dict.fromkeys(w.lower() for w in text.split()))[:MAX_WORDS]


def search_tickets(
    session: Session, words: str, *, status: str | None = None, limit: int = 20
) -> list[SearchHit]:
    """The tickets holding every word of `words`, best first; [] for no words."""
    wanted = search_words(words)
    if not wanted or limit <= 0:
        return []
    query = select(Ticket).where(*(_holds(word) for word in wanted))
    if status is not None:
        query = query.where(Ticket.status == status)
    candidates = session.scalars(query.order_by(Ticket.id.desc()).limit(SCAN)).all()
    hits = [_hit(session, ticket, wanted) for ticket in candidates]
    hits.sort(key=lambda h: (-h.rank, -h.number))
    return hits[:limit]


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _holds(word: str) -> ColumnElement[bool]:
    pattern = _like(word)
    in_articles = exists().where(
        Article.ticket_id == Ticket.id, func.lower(Article.text_body).like(pattern, escape="\\")
    )
    in_files = exists().where(
        Article.ticket_id == Ticket.id,
        AttachmentRecord.article_id == Article.id,
        func.lower(AttachmentRecord.filename).like(pattern, escape="\\"),
    )
    return or_(func.lower(Ticket.subject).like(pattern, escape="\\"), in_articles, in_files)


def _hit(session: Session, ticket: Ticket, words: Sequence[str]) -> SearchHit:
    texts = [ticket.subject or ""]
    articles = session.execute(
        select(Article.id, Article.text_body)
        .where(Article.ticket_id == ticket.id)
        .order_by(Article.id)
    ).all()
    texts.extend((body or "")[:TEXT_CHARS] for _, body in articles)
    ids = [article_id for article_id, _ in articles]
    if ids:
        names = session.scalars(
            select(AttachmentRecord.filename).where(AttachmentRecord.article_id.in_(ids))
        )
        texts.extend(name for name in names if name)
    folded = [t.lower() for t in texts]
    count = sum(text.count(word) for text in folded for word in words)
    return SearchHit(
        number=ticket.number or 0,
        subject=ticket.subject,
        status=str(ticket.status),
        requester=ticket.requester_address,
        snippet=_snippet(texts, folded, words),
        rank=float(count),
    )


def _snippet(texts: Sequence[str], folded: Sequence[str], words: Sequence[str]) -> str:
    """The words around the first match, on one line."""
    for text, low in zip(texts, folded, strict=True):
        found = [i for i in (low.find(w) for w in words) if i >= 0]
        if found:
            start = max(min(found) - SNIPPET_CHARS // 3, 0)
            piece = " ".join(text[start : start + SNIPPET_CHARS].split())
            return (
                ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(text) else "")
            )
    return ""
