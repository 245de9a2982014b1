"""Out of office: the return date an automatic reply states, in Italian, English, German
and French. Pure functions; the caller passes today's date.

`return_date` reads the first READ_LIMIT characters only, with bounded patterns (no nested
quantifiers): linear in the text. A date counts only where the text says it is a return:
a return word shortly before it ("back on", "until", "rientro il", "bis", "jusqu'au",
"de retour le"…), or a range word right before it ("from", "dal", "ab", "du", "to", "al",
"au"…), or the text is nothing but the date ("12 jan", "until 12/01": the argument of
`#away`). "Your order of 3 January" is not a return date.

Which date: the latest of those a return word introduces, else the latest of those a range
word introduces. For a period ("from 3 to 12 January", "dal 3 al 12 gennaio") that is its
end, 12 January: the caller counts the person away through the end of that day, and their
first real mail ends the absence sooner. Numeric dates are day first (12/01, 12.01.2027,
12-01-2027), or ISO (2027-01-12); a date without a year is the next such date on or after
today; a date before today or more than MAX_AHEAD ahead is no return date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

READ_LIMIT = 4000  # characters of the text read
MAX_AHEAD = timedelta(days=366)
_WINDOW_CHARS = 80  # how far before a date return words are looked for
_WINDOW_WORDS = 6

_MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    (
        "january jan gennaio gen januar jänner jaenner janvier janv",
        "february feb febbraio februar février fevrier févr fevr",
        "march mar marzo märz maerz mär mars",
        "april apr aprile avril avr",
        "may maggio mag mai",
        "june jun giugno giu juni juin",
        "july jul luglio lug juli juillet juil",
        "august aug agosto ago août aout",
        "september sep sept settembre set septembre",
        "october oct ottobre ott oktober okt octobre",
        "november nov novembre",
        "december dec dicembre dic dezember dez décembre decembre déc",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that say the date is when someone is back (or the end of their absence).
_RETURN_WORDS = _word_set(
    """
    back return returning returns resume until till til untill through thru again
    rientro rientrerò rientrero rientra rientrare ritorno tornerò tornero torno nuovo fino
    sino partire
    zurück zurueck wieder bis rückkehr rueckkehr
    retour jusqu reviendrai rentrerai revenir rentre nouveau
    """
)
# Words that open or close a range; they count only right before the date.
_RANGE_WORDS = _word_set("from to dal dall al all ab vom du au dès des")
# Words that may stand between a range word and its date.
_FILLERS = _word_set(
    """
    on the il l le la dem den der am
    monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun
    lunedì martedì mercoledì giovedì venerdì sabato domenica lunedi martedi mercoledi
    giovedi venerdi lun mar mer gio ven sab dom
    montag dienstag mittwoch donnerstag freitag samstag sonntag mo di mi do fr sa so
    lundi mardi mercredi jeudi vendredi samedi dimanche
    """
)

_WORD = re.compile(r"[^\W\d_]+")
_ISO = re.compile(r"(?<![\d.:/-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d:])")
_NUMERIC = re.compile(r"(?<![\d.:/-])(\d{1,2})([./-])(\d{1,2})(?:\2(\d{4}|\d{2}))?(?![\d:]|\.\d)")
_DAY_MONTH = re.compile(
    r"(?<![\d.:/])(\d{1,2})(?:st|nd|rd|th|er|°|º|\.)?[ \t]{0,3}(?:of[ \t]{1,3}|de[ \t]{1,3})?"
    r"([^\W\d_]{3,9})\b\.?(?:,?[ \t]{0,3}(\d{4})(?!\d))?"
)
_MONTH_DAY = re.compile(
    r"\b([^\W\d_]{3,9})\.?[ \t]{1,3}(\d{1,2})(?:st|nd|rd|th)?\b(?:,?[ \t]{1,3}(\d{4})(?!\d))?"
)


@dataclass(frozen=True, slots=True)
class _Found:
    start: int
    end: int
    day: date


def return_date(text: str, today: date) -> date | None:
    """The date an out-of-office text says its writer is back (see the module docstring),
    or None when it states none."""
    text = text[:READ_LIMIT].lower()
    found = _dates(text, today)
    strong = [f.day for f in found if _return_word_before(text, f.start)]
    if strong:
        return max(strong)
    weak = [f.day for f in found if _range_word_before(text, f.start)]
    if weak:
        return max(weak)
    if len(found) == 1 and _only_date(text, found[0]):
        return found[0].day
    return None


def _dates(text: str, today: date) -> list[_Found]:
    """Every date the text writes, each span once (numeric forms first)."""
    found: list[_Found] = []
    taken: list[tuple[int, int]] = []

    def keep(start: int, end: int, day: date | None) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        if day is not None and today <= day <= today + MAX_AHEAD:
            found.append(_Found(start, end, day))

    for m in _ISO.finditer(text):
        keep(m.start(), m.end(), _make(int(m[1]), int(m[2]), int(m[3]), today))
    for m in _NUMERIC.finditer(text):
        if m[2] == "-" and not m[4]:
            continue  # "3-12 January" is a range of days, not a date
        keep(m.start(), m.end(), _make(_year(m[4]), int(m[3]), int(m[1]), today))
    for m in _DAY_MONTH.finditer(text):
        if m[2] in _MONTHS:
            keep(m.start(), m.end(), _make(_year(m[3]), _MONTHS[m[2]], int(m[1]), today))
    for m in _MONTH_DAY.finditer(text):
        if m[1] in _MONTHS:
            keep(m.start(), m.end(), _make(_year(m[3]), _MONTHS[m[1]], int(m[2]), today))
    return found


def _year(written: str | None) -> int | None:
    if not written:
        return None
    year = int(written)
    return 2000 + year if year < 100 else year


def _make(year: int | None, month: int, day: int, today: date) -> date | None:
    """The date, or None when there is no such day; without a year, the next one on or
    after today."""
    if year is not None:
        return _valid(year, month, day)
    for candidate_year in (today.year, today.year + 1):
        candidate = _valid(candidate_year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _words_before(text: str, start: int) -> list[str]:
    window = text[max(0, start - _WINDOW_CHARS) : start]
    return _WORD.findall(window)[-_WINDOW_WORDS:]


def _return_word_before(text: str, start: int) -> bool:
    return any(word in _RETURN_WORDS for word in _words_before(text, start))


def _range_word_before(text: str, start: int) -> bool:
    """A range word right before the date (fillers like "the" or a weekday aside), or the
    end of a written range "3-12 January"."""
    if re.search(r"\d[ \t]?[-–][ \t]?$", text[max(0, start - 4) : start]):
        return True
    words = _words_before(text, start)
    while words and words[-1] in _FILLERS:
        words.pop()
    return bool(words) and words[-1] in _RANGE_WORDS


def _only_date(text: str, found: _Found) -> bool:
    """The text is the date alone, perhaps after a return or range word: an argument."""
    rest = _WORD.findall(text[: found.start] + " " + text[found.end :])
    allowed = _RETURN_WORDS | _RANGE_WORDS | _FILLERS
    return all(word in allowed for word in rest) and not re.search(
        r"\d", text[: found.start] + text[found.end :]
    )
