"""Collision check: did the ticket change after the mail a staff reply answers? Pure.

A staff member answers what a mail of ours showed them: a staff notification (the customer's
newest message) or a collision mail (everything up to then). If the ticket has since
received another staff reply, or a newer customer message, the answer may be stale: two
teammates answering the same notification, or an answer that ignores what the customer
just wrote. `decide` says whether to relay it anyway, relay it and warn, or hold it as a
draft (docs/architecture.md, "Collision check").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_SHOWN",
    "CollisionCheck",
    "CollisionMode",
    "Posted",
    "answered_mail",
    "decide",
    "is_news",
]

CollisionMode = Literal["hold", "warn", "off"]
Action = Literal["relay", "warn", "hold"]
MAX_SHOWN = 5  # newer messages quoted in one collision mail, newest last
MAX_REFERENCES = 100  # References entries looked at: a hostile header cannot cost more


@dataclass(frozen=True, slots=True)
class Posted:
    """What the check needs to know of an article on the ticket."""

    article_id: int
    direction: str  # in | out
    author_kind: str  # customer | staff | system | unverified
    kind: str  # classify's verdict for mail in; reply | note | draft for staff
    internal: bool


def is_news(article: Posted) -> bool:
    """Would a staff member answering the ticket need to have seen this article?

    A customer's own mail, and a staff answer that went to the customer (relayed, observed
    in the Sent folder, or a bare #close). Not: automated mail (it pages nobody), mail from
    an unverified sender (it acts on nothing, so it cannot hold a staff answer either),
    internal notes and held drafts (they went to nobody).
    """
    if article.direction == "in":
        return article.author_kind == "customer" and article.kind == "customer"
    return article.author_kind == "staff" and not article.internal


def answered_mail(
    in_reply_to: str | None, references: Sequence[str], ours: Mapping[str, int | None]
) -> str | None:
    """The Message-ID of the mail of ours (`ours`: Message-ID -> the newest article it
    showed) that a reply answers: the one In-Reply-To names, else the last one of ours in
    References (clients list the thread oldest first). None when none is ours."""
    if in_reply_to and in_reply_to in ours:
        return in_reply_to
    for message_id in reversed(references[-MAX_REFERENCES:]):
        if message_id in ours:
            return message_id
    return None


@dataclass(frozen=True, slots=True)
class CollisionCheck:
    """What to do with a staff reply, and why: `newer` are the articles it did not see."""

    action: Action
    reason: str
    seen_article_id: int | None = None
    newer: tuple[int, ...] = ()
    unchecked: bool = False  # nothing to compare: worth recording, never a reason to hold


def decide(
    mode: CollisionMode,
    *,
    note: bool,
    seen_article_id: int | None,
    articles: Iterable[Posted],
) -> CollisionCheck:
    """Relay, warn or hold a staff reply that saw the ticket up to `seen_article_id`.

    An internal note goes to nobody and never collides. With nothing to compare (the reply
    answers no mail of ours that names what it showed) there is no collision to find: the
    reply is relayed, and the reason says so for the record.
    """
    if mode == "off":
        return CollisionCheck("relay", "collision check off")
    if note:
        return CollisionCheck("relay", "an internal note collides with nothing")
    if seen_article_id is None:
        return CollisionCheck(
            "relay", "unchecked: the reply answers no notification of ours", unchecked=True
        )
    newer = tuple(
        sorted(a.article_id for a in articles if a.article_id > seen_article_id and is_news(a))
    )
    if not newer:
        return CollisionCheck("relay", "nothing new since the answered mail", seen_article_id)
    action: Action = "hold" if mode == "hold" else "warn"
    return CollisionCheck(action, f"{len(newer)} newer message(s)", seen_article_id, newer)
