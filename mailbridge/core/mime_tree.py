"""Raw bytes to a MIME tree, read no further than ParseLimits' counts of parts and levels.

The standard parser builds every part it meets and recurses once per level, so 50,000 parts
cost seconds and 5,000 nested levels end in RecursionError with nothing read. Here each part
counts as it is attached to its parent; at the cap the parser is abandoned and the tree read
so far is the message: every part before the cut is whole, and the raw message keeps the rest.
"""

from __future__ import annotations

from email import policy
from email.feedparser import BytesFeedParser
from email.message import Message
from typing import Any

from mailbridge.core.message import ParseLimits
from mailbridge.core.mime_parser import LinearMessage, Lines

# Fed in chunks, the parser never holds a second full-size copy of a big message.
_FEED_CHUNK = 1 << 20


class _CapReached(Exception):
    """Raised inside the parser to stop it; `args[0]` says what was cut."""


class _Counter:
    """Counts the parts of one message as the parser attaches them."""

    def __init__(self, limits: ParseLimits) -> None:
        self.limits = limits
        self.parts = 0
        self.root: _Part | None = None

    def new_part(self, policy: Any = policy.compat32) -> _Part:
        part = _Part(self, policy=policy)
        if self.root is None:
            self.root = part
        return part


class _Part(LinearMessage):
    """A compat32 Message (reading its parameters in one pass) that knows its depth and
    counts the parts attached below it."""

    def __init__(self, counter: _Counter, policy: Any = policy.compat32) -> None:
        super().__init__(policy=policy)
        self.counter = counter
        self.depth = 0

    def attach(self, payload: Any) -> None:
        if isinstance(payload, _Part):
            limits = self.counter.limits
            if self.depth + 1 > limits.max_depth:
                raise _CapReached(
                    f"MIME parts nested deeper than {limits.max_depth} levels: "
                    "what lies below was not read"
                )
            if self.counter.parts + 1 > limits.max_parts:
                raise _CapReached(
                    f"more than {limits.max_parts} MIME parts: the parts after "
                    f"the {limits.max_parts}th were not read"
                )
            self.counter.parts += 1
            payload.depth = self.depth + 1
        super().attach(payload)


def read_tree(raw: bytes, limits: ParseLimits) -> tuple[Message, str | None]:
    """(the message's MIME tree, what was cut or None). Raises what the parser raises
    on bytes it cannot read at all."""
    counter = _Counter(limits)
    parser = BytesFeedParser(_factory=counter.new_part, policy=policy.compat32)
    counter.root = None  # the parser made one part to learn how to call the factory
    parser._input = Lines()  # type: ignore[attr-defined]  # the buffer it reads lines from
    view = memoryview(raw)
    try:
        for start in range(0, len(raw), _FEED_CHUNK):
            parser.feed(bytes(view[start : start + _FEED_CHUNK]))
        return parser.close(), None
    except _CapReached as cap:
        assert counter.root is not None  # a part was being attached to it
        return counter.root, str(cap.args[0])
