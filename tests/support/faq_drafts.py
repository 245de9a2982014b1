"""A draft FAQ entry, as `#faq save` makes one, for the tests of writing and reading it."""

from __future__ import annotations

from datetime import date

from mailbridge.core.faq_drafts import Draft

DRAFT = Draft(
    title="I forgot my password",
    keywords=("password", "forgot"),
    language="en",
    ticket=1042,
    saved=date(2026, 11, 23),
    answer="Use the link on the sign-in page.",
)
