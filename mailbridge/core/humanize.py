"""Customer-facing wording of times, durations and message excerpts, in English and Italian.

Day and month names live here rather than in the OS locale, so the same ticket gets the same
words on every host. Languages without their own table fall back to English.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class _Words:
    weekdays: tuple[str, ...]  # Monday first, as datetime.weekday()
    months: tuple[str, ...]  # January first
    deadline: str  # format with weekday, day, month, at
    units: tuple[tuple[str, str], ...]  # (singular, plural) for day, hour, minute
    joiner: str
    under_a_minute: str


_ENGLISH = _Words(
    weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    deadline="by {weekday} {day} {month} {at}",
    units=(("day", "days"), ("hour", "hours"), ("minute", "minutes")),
    joiner=" and ",
    under_a_minute="less than a minute",
)

_ITALIAN = _Words(
    weekdays=("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    months=(
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
    deadline="entro {weekday} {day} {month} {at}",
    units=(("giorno", "giorni"), ("ora", "ore"), ("minuto", "minuti")),
    joiner=" e ",
    under_a_minute="meno di un minuto",
)

_WORDS = {"en": _ENGLISH, "it": _ITALIAN}

# Italian elides the article before a vowel: "all'una", "all'otto", "all'undici".
_ITALIAN_ELIDED_HOURS = frozenset({1, 8, 11})


def _words(language: str) -> _Words:
    primary = language.strip().lower().replace("_", "-").split("-")[0]
    return _WORDS.get(primary, _ENGLISH)


def _at(local: datetime, words: _Words) -> str:
    if words is _ITALIAN:
        article = "all'" if local.hour in _ITALIAN_ELIDED_HOURS else "alle "
        return f"{article}{local.hour}:{local.minute:02d}"
    return f"at {local.hour:02d}:{local.minute:02d}"


def format_deadline(due: datetime, language: str, tz: ZoneInfo) -> str:
    """The promised reply time as a phrase, e.g. "by Tuesday 24 November at 17:00".

    The year is left out: a promised reply is days away, never a year.
    """
    if due.tzinfo is None:
        raise ValueError("format_deadline needs an aware datetime")
    words = _words(language)
    local = due.astimezone(tz)
    return words.deadline.format(
        weekday=words.weekdays[local.weekday()],
        day=local.day,
        month=words.months[local.month - 1],
        at=_at(local, words),
    )


def format_day(day: date, language: str) -> str:
    """A day as staff read it in a subject, e.g. "12 Jan" ("12 gen" in Italian)."""
    month = _words(language).months[day.month - 1]
    return f"{day.day} {month[:3]}"


def format_duration(delta: timedelta, language: str) -> str:
    """A duration in its two largest units, e.g. "2 days and 3 hours", "45 minuti"."""
    words = _words(language)
    minutes = int(abs(delta).total_seconds()) // 60
    if minutes == 0:
        return words.under_a_minute
    amounts = (minutes // 1440, minutes % 1440 // 60, minutes % 60)
    parts = [
        f"{amount} {singular if amount == 1 else plural}"
        for amount, (singular, plural) in zip(amounts, words.units, strict=True)
        if amount
    ]
    return words.joiner.join(parts[:2])


_BLANK_RUNS = re.compile(r"\n{3,}")


def _printable(line: str) -> str:
    # Terminal escapes and other control characters have no place in a quoted excerpt.
    if line.isprintable():  # the usual line: no character of category C (nor Z but space)
        return line.rstrip()
    return "".join(
        ch for ch in line if ch == "\t" or not unicodedata.category(ch).startswith("C")
    ).rstrip()


def excerpt(text: str, max_lines: int = 6, max_chars: int = 400) -> str:
    """The first lines of a message, for quoting back to its author; "…" marks a cut.

    Plain text without a quote prefix: templates quote it (`|quote` in text, a blockquote
    in HTML).
    """
    lines = [_printable(line) for line in text.replace("\r\n", "\n").split("\n")]
    body = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")
    kept = body.split("\n")
    cut = len(kept) > max_lines
    short = "\n".join(kept[:max_lines]).rstrip()
    if len(short) > max_chars:
        # Cut at a word boundary when there is one in the last fifth.
        head = short[:max_chars]
        space = head.rfind(" ")
        short = head[:space] if space > max_chars * 4 // 5 else head
        cut = True
    return short.rstrip() + " …" if cut else short


def format_size(size: int) -> str:
    """A byte count for people: "812 B", "48 KB", "2.1 MB", "1.3 GB" (decimal units)."""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("KB", 1000), ("MB", 1000**2), ("GB", 1000**3)):
        if size < scale * 1000 or unit == "GB":
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")
