"""Satisfaction ratings by mail. Pure functions.

The mail that finishes a ticket carries two `mailto:` links, "yes, solved" and "no, not
solved", each to a token address: `support+r1042-good-<expiry>-<mac>@example.com`. The MAC
(core.staff's, with the audience `rating:good` or `rating:bad`, which no staff address can
be) binds the ticket number, the verdict and the expiry day, so a rating token is checked
without the database, and neither it nor a staff reply token (`+t…`) can pass for the other.

A customer who answers the resolution mail in their own words ("risolto, grazie", "no,
still broken") rates it too: `classify_reply` reads short replies only, and says nothing
when in doubt (a question, mixed signals, a long mail): such a mail is an ordinary
follow-up, which a person reads anyway.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from mailbridge.core.folding import strip_accents

# The reply tokens' MAC and day arithmetic: one scheme for every token we issue.
from mailbridge.core.staff import base36, day_number, plus_details, token_mac

Rating = Literal["good", "bad"]
RATINGS: Final[tuple[Rating, ...]] = ("good", "bad")

_DETAIL = re.compile(r"r(\d{1,12})-(good|bad)-([0-9a-z]{1,7})-([a-z2-7]{16})")


# --- tokens ----------------------------------------------------------------------------------


def _audience(verdict: str) -> str:
    return f"rating:{verdict}"  # no "@": never a staff address a reply token names


def rating_address(
    base_address: str, ticket_number: int, verdict: Rating, secret: bytes, *, expires: datetime
) -> str:
    """`support@example.com` -> `support+r1042-good-<expiry day>-<mac>@example.com`, good
    until the end of the UTC day of `expires`."""
    local, _, domain = base_address.rpartition("@")
    expiry = base36(day_number(expires))
    mac = token_mac(secret, ticket_number, expiry, _audience(verdict))
    return f"{local}+r{ticket_number}-{verdict}-{expiry}-{mac}@{domain}"


@dataclass(frozen=True, slots=True)
class RatingToken:
    """A rating token found in a recipient address, not yet checked."""

    ticket_number: int
    verdict: Rating
    expiry: str
    mac: str


def find_rating(recipients: Iterable[str], own_addresses: Iterable[str]) -> RatingToken | None:
    """The first recipient that is one of our addresses with a `+r<number>-<verdict>-…`
    detail."""
    for detail, _ in plus_details(recipients, own_addresses):
        match = _DETAIL.fullmatch(detail)
        if match:
            verdict: Rating = "good" if match.group(2) == "good" else "bad"
            return RatingToken(int(match.group(1)), verdict, match.group(3), match.group(4))
    return None


def check_rating(secret: bytes, token: RatingToken, now: datetime) -> str | None:
    """Why `token` does not hold (None when it does). The MAC is compared in constant time
    and before the expiry, so a guessed token learns nothing from the answer."""
    expected = token_mac(secret, token.ticket_number, token.expiry, _audience(token.verdict))
    if not hmac.compare_digest(expected, token.mac):
        return "the rating address was not issued by us"
    if day_number(now) > int(token.expiry, 36):
        return "the rating address has expired"
    return None


# --- ratings in the customer's own words --------------------------------------------------------

MAX_WORDS = 40  # a longer reply tells more than a rating and wants a person
_MAX_CHARS = 2000  # what is read of a reply at most: a rating is a line
_WORD = re.compile(r"[a-z0-9]+")
_NEGATION_WINDOW = 3  # "non è stato risolto": the negation is up to three words before

# Folded (lower case, no accents, no apostrophes), whole words.
GOOD_PHRASES: Final = (
    "solved",
    "resolved",
    "fixed",
    "works",
    "working",
    "all good",
    "all sorted",
    "sorted",
    "risolto",
    "risolta",
    "funziona",
    "sistemato",
    "sistemata",
    "tutto ok",
    "tutto a posto",
    "perfetto",
)
BAD_PHRASES: Final = (
    "still broken",
    "still not",
    "still doesnt",
    "still does not",
    "still the same",
    "still having",
    "still getting",
    "same problem",
    "same error",
    "same issue",
    "persists",
    "didnt help",
    "did not help",
    "doesnt work",
    "does not work",
    "nothing changed",
    "non va",
    "ancora rotto",
    "stesso problema",
    "stesso errore",
    "persiste",
    "niente da fare",
)
NEGATIONS: Final = frozenset(
    {
        "not",
        "never",
        "isnt",
        "wasnt",
        "arent",
        "havent",
        "hasnt",
        "didnt",
        "dont",
        "doesnt",
        "cant",
        "couldnt",
        "wont",
        "non",
        "mai",
        "nemmeno",
        "neanche",
    }
)


def _words(text: str) -> list[str]:
    folded = strip_accents(text[:_MAX_CHARS].lower()).replace("'", "").replace("\u2019", "")
    return _WORD.findall(folded)


def _found(words: list[str], phrase: str) -> list[int]:
    """Where the phrase starts in `words` (whole words)."""
    wanted = phrase.split()
    size = len(wanted)
    return [i for i in range(len(words) - size + 1) if words[i : i + size] == wanted]


def classify_reply(text: str) -> Rating | None:
    """The rating a short reply to the resolution mail gives: "good" ("risolto, grazie",
    "works now"), "bad" ("no, still broken", "non è risolto"), or None when it is no rating
    or is unclear. Linear in the (capped) text; every phrase is matched as whole words."""
    if "?" in text[:_MAX_CHARS]:
        return None  # a question wants an answer, not a tally
    words = _words(text)
    if not words or len(words) > MAX_WORDS:
        return None
    good = bad = False
    for phrase in GOOD_PHRASES:
        for start in _found(words, phrase):
            if NEGATIONS.intersection(words[max(0, start - _NEGATION_WINDOW) : start]):
                bad = True
            else:
                good = True
    bad = bad or any(_found(words, phrase) for phrase in BAD_PHRASES)
    if good == bad:
        return None  # neither, or both: a person reads it
    return "good" if good else "bad"
