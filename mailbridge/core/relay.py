"""What mail passed between customer and staff carries along: the attachments a staff
answer relays to the customer, those a notification to staff carries, and the first name a
relayed answer is signed with. Pure functions."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailbridge.core.humanize import format_size
from mailbridge.core.message import Attachment

__all__ = [
    "INLINE_RELAY_MINIMUM",
    "NOTIFIED_ATTACHMENTS",
    "first_name",
    "notified_attachments",
    "relayed_attachments",
]

# Attachments carried in one notification, at most: the rest are listed (and the list is
# shortened past as many, core.clip), and stay on the ticket.
NOTIFIED_ATTACHMENTS = 100
INLINE_RELAY_MINIMUM = 20_000  # inline parts smaller than this are signature logos
_FIRST_NAME = re.compile(r"[^\W\d_][\w'-]*")


def first_name(display_name: str) -> str:
    """ "Alice Bianchi" -> "Alice"; "Bianchi, Alice" -> "Alice"; never an address."""
    name = display_name.strip()
    if "@" in name:
        return ""
    if "," in name:
        name = name.partition(",")[2]
    match = _FIRST_NAME.search(name)
    return match.group(0) if match else ""


def relayed_attachments(attachments: Sequence[Attachment]) -> tuple[Attachment, ...]:
    """What the staff member attached: not skipped parts, not small inline logos."""
    return tuple(
        a
        for a in attachments
        if not a.skipped
        and a.container is None
        and (not a.inline or a.size >= INLINE_RELAY_MINIMUM)
    )


def notified_attachments(
    attachments: Sequence[Attachment], budget: int
) -> tuple[tuple[Attachment, ...], list[object]]:
    """Attach what fits under `budget` bytes in all; list everything with its size."""
    carried: list[Attachment] = []
    listing: list[object] = []
    for attachment in attachments:
        fits = (
            not attachment.skipped
            and attachment.size <= budget
            and len(carried) < NOTIFIED_ATTACHMENTS
        )
        if fits:
            carried.append(attachment)
            budget -= attachment.size
        listing.append(
            {
                "filename": attachment.filename,
                "size": format_size(attachment.size),
                "attached": fits,
            }
        )
    return tuple(carried), listing
