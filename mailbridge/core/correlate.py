"""Threading decisions: which ticket, if any, a message belongs to. Pure functions.

The caller looks the candidates up; `choose_ticket` decides between what was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mailbridge.core.message import ParsedMessage


@dataclass(frozen=True, slots=True)
class ThreadClues:
    """What a message says about the conversation it continues."""

    tag_number: int | None
    message_ids: tuple[str, ...]  # In-Reply-To first, then References newest first


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ticket found by one clue, with what the caller knows about it."""

    ticket_id: int
    via: str  # "reference" | "tag"
    participants: frozenset[str]  # addresses that have written on or been written to on it


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    ticket_id: int | None
    via: str | None  # why: "reference", "tag", or None for a new ticket
    ignored_tag: int | None = None  # a tag we did not trust (sender is no participant)


@lru_cache(maxsize=16)
def _tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[" + re.escape(prefix) + r"\s*(\d{1,12})\]")


def format_tag(prefix: str, number: int) -> str:
    return f"[{prefix}{number}]"


def without_tags(text: str, prefix: str) -> str:
    """The text with every ticket tag of ours taken out (a split ticket's subject must not
    carry the old ticket's tag)."""
    return _tag_pattern(prefix).sub(" ", text)


def thread_clues(msg: ParsedMessage, tag_prefix: str) -> ThreadClues:
    match = _tag_pattern(tag_prefix).search(msg.subject)
    parent = [msg.in_reply_to] if msg.in_reply_to else []
    ids = dict.fromkeys([*parent, *reversed(msg.references)])  # each once, first place kept
    return ThreadClues(int(match.group(1)) if match else None, tuple(ids))


def choose_ticket(sender: str, candidates: list[Candidate]) -> ThreadDecision:
    """A reference to a Message-ID we know wins; a subject tag counts only from a participant.

    References are hard to guess, a tag is not: anyone can type `[#1042]` into a subject,
    so a tag from a stranger must not let them write into somebody else's ticket.
    """
    for candidate in candidates:
        if candidate.via == "reference":
            return ThreadDecision(candidate.ticket_id, "reference")
    ignored: int | None = None
    for candidate in candidates:
        if candidate.via == "tag":
            if sender and sender in candidate.participants:
                return ThreadDecision(candidate.ticket_id, "tag")
            ignored = candidate.ticket_id
    return ThreadDecision(None, None, ignored_tag=ignored)
