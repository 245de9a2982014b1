"""Column types that can store whatever a mail carries, on SQLite and PostgreSQL alike.

PostgreSQL refuses text longer than its column and NUL characters, which SQLite takes;
neither takes lone surrogates (what undecodable bytes become). Every value is bound
before it is written or compared, the same way each time: NUL characters and lone
surrogates become U+FFFD; free text (names, subjects, file names) is clipped to its
column; an identifier (Message-ID, address) too long for its column becomes a stable
digest form, so a later look-up of the same long identifier finds the row and two long
identifiers never meet. `bound_in_memory` applies the same bound to the mapped objects'
attributes, so what the objects hold is what their rows hold.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import JSON, Dialect, String, Text, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.attributes import AttributeEventToken
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ClippedString",
    "DigestString",
    "StateString",
    "StorableJSON",
    "StorableText",
    "bound_in_memory",
    "clipped",
    "fitted",
    "storable",
]

REPLACEMENT = "\ufffd"
ELLIPSIS = "…"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_DIGEST_MARK = "~"  # between what is kept of a long identifier and the digest of all of it
_DIGEST_CHARS = len(_DIGEST_MARK) + 64

_State = TypeVar("_State", bound=StrEnum)


def storable(value: str) -> str:
    """`value` with NUL characters and lone surrogates replaced by U+FFFD."""
    if not (value.isascii() or _below_surrogates(value) or _encodable(value)):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value


def _below_surrogates(value: str) -> bool:
    """Nothing above U+00FF (most European text): found at a copy's cost, where scanning
    every character for a surrogate would cost a hundred times more."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # only a lone surrogate makes UTF-8 fail
        return False
    return True


def clipped(value: str, length: int, tail: int = 0) -> str:
    """Free text clipped to `length` characters, an ellipsis marking the cut; with `tail`,
    that many closing characters are kept (a file name's extension)."""
    if len(value) <= length:
        return value
    tail = min(tail, length // 2)
    head = value[: length - len(ELLIPSIS) - tail]
    return head + ELLIPSIS + (value[-tail:] if tail else "")


def fitted(value: str, length: int) -> str:
    """A storable identifier unchanged when its UTF-8 form fits in `length` bytes (so its
    index entry fits too), else its beginning followed by the SHA-256 of all of it."""
    if len(value) <= length and (value.isascii() or len(value.encode("utf-8")) <= length):
        return value
    encoded = value.encode("utf-8")
    kept = max(length - _DIGEST_CHARS, 0)
    digest = hashlib.sha256(encoded).hexdigest()[: length - kept - len(_DIGEST_MARK)]
    return f"{encoded[:kept].decode('utf-8', 'ignore')}{_DIGEST_MARK}{digest}"


class _Bounded:
    """What the types below share: `bound(value)`, the value as its row will hold it."""

    def bound(self, value: Any) -> Any:
        raise NotImplementedError


class StorableText(TypeDecorator[str], _Bounded):
    """Text of any length, storable; with `length`, clipped to that many characters (the
    column stays TEXT)."""

    impl = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def bound(self, value: str | None) -> str | None:
        if value is None:
            return None
        value = storable(value)
        return value if self.length is None else clipped(value, self.length)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return self.bound(value)


class ClippedString(TypeDecorator[str], _Bounded):
    """Free text in a VARCHAR(length): storable, clipped to the column."""

    impl = String
    cache_ok = True

    def __init__(self, length: int, tail: int = 0) -> None:
        super().__init__(length)
        self.length = length
        self.tail = tail

    def bound(self, value: str | None) -> str | None:
        return None if value is None else clipped(storable(value), self.length, self.tail)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return self.bound(value)


class DigestString(TypeDecorator[str], _Bounded):
    """An identifier in a VARCHAR(length): storable, and fitted to the column (see
    `fitted`), in writes and look-ups alike."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def bound(self, value: str | None) -> str | None:
        return None if value is None else fitted(storable(value), self.length)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return self.bound(value)


class StorableJSON(TypeDecorator[Any], _Bounded):
    """JSON whose every string, key or value, is storable."""

    impl = JSON
    cache_ok = True

    def bound(self, value: Any) -> Any:
        """A copy as the row will hold it. One already storable (nearly all) is copied by
        serialising and reading it back, in C: lists for tuples and string keys, as the
        row gives them back; walking every string in Python cost four times as much."""
        if isinstance(value, dict | list):
            text = _storable_json(value)
            if text is not None:
                return json.loads(text)
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return storable(value)
        if isinstance(value, dict):
            return {self._walk(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(item) for item in value]
        return value

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """What is written: a value already storable as it is (nearly all, and all set on
        an attribute, which bounds it when set) is written as it is, found so by one
        serialisation in C where bounding it walks every string in Python again."""
        if isinstance(value, dict | list) and _storable_json(value) is not None:
            return value
        return self._walk(value)


def _storable_json(value: dict[Any, Any] | list[Any]) -> str | None:
    """`value` serialised, if it holds no NUL and no lone surrogate, so that bounding it
    would write the same JSON; else None. A false alarm (a backslash before "u0000")
    costs only the walk."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return None  # what the column's own serialiser makes of it, bounded first
    if "\\u0000" in text or not (text.isascii() or _below_surrogates(text) or _encodable(text)):
        return None
    return text


class StateString(TypeDecorator[_State]):
    """A state (one of the StrEnums of core.states) in a VARCHAR(length), read back as its
    member. Written and compared as the plain value, so a look-up by a value no member
    has finds nothing instead of failing."""

    impl = String
    cache_ok = True

    def __init__(self, states: type[_State], length: int) -> None:
        super().__init__(length)
        self.states = states

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> _State | None:
        return None if value is None else self.states(value)


def bound_in_memory(base: type[DeclarativeBase]) -> None:
    """Bound every value given to a mapped attribute of these types as it is set, so the
    object holds what its row will (a clipped subject, a digest-form Message-ID)."""
    for mapper in base.registry.mappers:
        for prop in mapper.column_attrs:
            kind = prop.columns[0].type
            if isinstance(kind, _Bounded):
                event.listen(getattr(mapper.class_, prop.key), "set", _setter(kind), retval=True)


def _setter(kind: _Bounded) -> Any:
    def on_set(_target: object, value: Any, _old: Any, _initiator: AttributeEventToken) -> Any:
        return kind.bound(value)

    return on_set
