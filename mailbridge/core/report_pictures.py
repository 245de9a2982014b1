"""The service report's pictures as plain data (`Pictures`: weeks, hours of arrival, the worst
waits), their words in English and Italian, the arithmetic of their bars, and their plain-text
rendering; core/report_html.py draws the same data as HTML.

The words live here, not in the templates directory: the pictures are drawn in code, and the
values they show are escaped by the renderer, which a template in the sandbox could not be
trusted to leave alone. Languages other than Italian read English, as in core/digest.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from mailbridge.core.humanize import format_day
from mailbridge.core.report import Figures, Report, short_duration
from mailbridge.core.safe_text import clean_header_text
from mailbridge.core.ticket_lines import one_line

__all__ = [
    "HOURS",
    "QUARTER",
    "SUBJECT_CHARS",
    "Pictures",
    "Target",
    "Wait",
    "Week",
    "Words",
    "clean_line",
    "day_words",
    "duration_words",
    "local_hours",
    "pct_words",
    "render_text",
    "scaled",
    "subject_line",
    "weeks_of",
    "words_for",
]

HOURS = 24
QUARTER = 900  # seconds: every zone's offset from UTC is a whole number of quarter hours
SUBJECT_CHARS = 70  # of a customer's subject in the table of waits
QUEUE_CHARS = 30
TEXT_BAR = 30  # characters of the longest bar in the plain text


@dataclass(frozen=True, slots=True)
class Week:
    """One week's figures for the pictures: durations in seconds, percentages 0-100."""

    key: str  # the local date of its Monday, YYYY-MM-DD
    tickets_in: int
    first_p50: int | None
    first_p90: int | None
    first_met_pct: float | None
    resolution_met_pct: float | None
    backlog: int  # unresolved at the end of the week


@dataclass(frozen=True, slots=True)
class Wait:
    """A ticket in the table of waits; never its customer's address."""

    tag: str  # "#1042"
    queue: str
    waited: int  # seconds on its policy's clock
    late: bool  # past its first-response deadline
    subject: str  # as the customer wrote it: the renderers clean and clip it


@dataclass(frozen=True, slots=True)
class Target:
    """The first-response target the weekly times are drawn against: the default policy's."""

    seconds: int
    business_hours: bool
    policy: str


@dataclass(frozen=True, slots=True)
class Pictures:
    first_day: date  # local, included
    last_day: date
    zone: str
    made_at: datetime
    target: Target
    weeks: tuple[Week, ...]
    hours: tuple[int, ...]  # tickets per local hour of arrival, 0 to 23
    longest: tuple[Wait, ...]  # answered tickets of the period, longest first-response wait first
    unanswered: tuple[Wait, ...]  # unanswered at the end of the period, longest wait first
    unanswered_count: int  # all of them, not only those listed
    total: Figures
    highlight: str | None = None  # the key of the week to set apart (the weekly mail's last)

    def __post_init__(self) -> None:
        if len(self.hours) != HOURS:
            raise ValueError(f"hours needs {HOURS} counts, not {len(self.hours)}")


def weeks_of(report: Report) -> tuple[Week, ...]:
    """The weekly figures of a report made `by` week."""
    if report.by != "week":
        raise ValueError("the pictures are drawn from a report by week")
    return tuple(
        Week(
            key=group.key or "",
            tickets_in=group.figures.tickets_in,
            first_p50=group.figures.first_response_p50_seconds,
            first_p90=group.figures.first_response_p90_seconds,
            first_met_pct=group.figures.first_response_sla_met_pct,
            resolution_met_pct=group.figures.resolution_sla_met_pct,
            backlog=group.figures.backlog,
        )
        for group in report.groups
    )


def local_hours(quarters: Mapping[int, int], zone: ZoneInfo) -> tuple[int, ...]:
    """Tickets per local hour of the day from counts per quarter hour since the epoch (what
    the database can count without a time-zone table): each quarter lies in one local hour,
    whatever the zone's offset and its daylight saving time that day."""
    hours = [0] * HOURS
    for quarter, count in quarters.items():
        hours[datetime.fromtimestamp(quarter * QUARTER, UTC).astimezone(zone).hour] += count
    return tuple(hours)


def scaled(value: float | None, top: float, size: int) -> int:
    """The length of a bar of `value` where `top` is `size` long: proportional, at most
    `size`, and at least 1 for any value above zero so that it shows."""
    if value is None or value <= 0 or top <= 0:
        return 0
    return max(1, min(size, round(value * size / top)))


def clean_line(text: str, limit: int) -> str:
    """Customer text as one printable line of at most `limit` characters: no control, format
    or bidirectional characters (U+202E would turn the rest of a row around)."""
    return one_line(clean_header_text(text[: limit * 4]), limit)


# --- words ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Words:
    code: str  # the language: "en", "it"
    title: str
    period: str  # {first} {last} {zone}
    summary: str  # {tickets} {p50} {p90} {first} {resolution} {backlog}
    first_title: str
    target: str  # {target} {clock} {policy}
    business: str
    calendar: str
    p50: str
    p90: str
    over: str
    sla_title: str
    first: str
    resolution: str
    backlog_title: str
    hours_title: str  # {zone}
    longest_title: str
    unanswered_title: str  # {count}
    columns: tuple[str, str, str, str]
    late: str
    nothing: str
    week: str  # {day}
    highlight: str
    footer: str
    made: str  # {moment} {zone}
    subject: str  # {day}
    subject_period: str  # {first} {last}
    day_letter: str
    decimal: str


_WORDS = {
    "en": Words(
        code="en",
        title="Support report",
        period="Tickets that came in from {first} to {last} ({zone}); spam and merged left out.",
        summary=(
            "{tickets} tickets in. First response: p50 {p50}, p90 {p90}. Deadlines met: "
            "first response {first}, resolution {resolution}. Unresolved at the end: {backlog}."
        ),
        first_title="First response per week",
        target="Target {target} ({clock}, policy {policy}): the black line; red is over it.",
        business="business hours",
        calendar="calendar time",
        p50="p50",
        p90="p90",
        over="over the target",
        sla_title="Deadlines met per week",
        first="first response",
        resolution="resolution",
        backlog_title="Backlog at the end of each week",
        hours_title="Tickets by hour of arrival ({zone})",
        longest_title="Longest waits for a first response",
        unanswered_title="Unanswered at the end: {count}",
        columns=("Ticket", "Queue", "Waited", "Subject"),
        late="late",
        nothing="None.",
        week="week of {day}",
        highlight="last week",
        footer=(
            "Weeks run Monday to Sunday. Times are on each ticket's policy clock (business "
            "hours where the policy counts them); p50 is the median, p90 the time 9 tickets "
            "in 10 were answered within."
        ),
        made="Made {moment} ({zone}).",
        subject="Support report: week of {day}",
        subject_period="Support report: {first} to {last}",
        day_letter="d",
        decimal=".",
    ),
    "it": Words(
        code="it",
        title="Rapporto sull'assistenza",
        period="Richieste arrivate dal {first} al {last} ({zone}); spam e unite escluse.",
        summary=(
            "{tickets} richieste arrivate. Prima risposta: p50 {p50}, p90 {p90}. Scadenze "
            "rispettate: prima risposta {first}, risoluzione {resolution}. Non risolte alla "
            "fine: {backlog}."
        ),
        first_title="Prima risposta per settimana",
        target=(
            "Obiettivo {target} ({clock}, politica {policy}): la linea nera; in rosso "
            "quanto lo supera."
        ),
        business="orario di lavoro",
        calendar="tempo di calendario",
        p50="p50",
        p90="p90",
        over="oltre l'obiettivo",
        sla_title="Scadenze rispettate per settimana",
        first="prima risposta",
        resolution="risoluzione",
        backlog_title="Arretrato alla fine di ogni settimana",
        hours_title="Richieste per ora di arrivo ({zone})",
        longest_title="Attese più lunghe per una prima risposta",
        unanswered_title="Senza risposta alla fine: {count}",
        columns=("Richiesta", "Coda", "Attesa", "Oggetto"),
        late="in ritardo",
        nothing="Nessuna.",
        week="settimana del {day}",
        highlight="ultima settimana",
        footer=(
            "Le settimane vanno da lunedì a domenica. I tempi seguono l'orologio della "
            "politica di ogni richiesta (l'orario di lavoro dove la politica lo conta); p50 "
            "è la mediana, p90 il tempo entro cui hanno avuto risposta 9 richieste su 10."
        ),
        made="Creato il {moment} ({zone}).",
        subject="Rapporto sull'assistenza: settimana del {day}",
        subject_period="Rapporto sull'assistenza: dal {first} al {last}",
        day_letter="g",
        decimal=",",
    ),
}


def words_for(language: str) -> Words:
    return _WORDS.get(language.strip().lower().replace("_", "-").split("-")[0], _WORDS["en"])


def day_words(day: date, words: Words) -> str:
    """ "23 Nov 2026", "23 nov 2026"."""
    return f"{format_day(day, words.code)} {day.year}"


def duration_words(seconds: int | None, words: Words) -> str:
    """ "3h 20m", "2g 4h"; "–" for no data."""
    if seconds is None:
        return "–"
    return short_duration(seconds).replace("d", words.day_letter)


def pct_words(value: float | None, words: Words) -> str:
    return "–" if value is None else f"{value:.1f}".replace(".", words.decimal) + "%"


def subject_line(pictures: Pictures, language: str) -> str:
    """The mail's subject: the highlighted week, else the period."""
    words = words_for(language)
    if pictures.highlight:
        return words.subject.format(day=day_words(date.fromisoformat(pictures.highlight), words))
    return words.subject_period.format(
        first=day_words(pictures.first_day, words), last=day_words(pictures.last_day, words)
    )


def week_label(week: Week, words: Words) -> str:
    return words.week.format(day=day_words(date.fromisoformat(week.key), words))


def summary_line(pictures: Pictures, words: Words) -> str:
    total = pictures.total
    return words.summary.format(
        tickets=total.tickets_in,
        p50=duration_words(total.first_response_p50_seconds, words),
        p90=duration_words(total.first_response_p90_seconds, words),
        first=pct_words(total.first_response_sla_met_pct, words),
        resolution=pct_words(total.resolution_sla_met_pct, words),
        backlog=total.backlog,
    )


def target_line(pictures: Pictures, words: Words) -> str:
    target = pictures.target
    return words.target.format(
        target=duration_words(target.seconds, words),
        clock=words.business if target.business_hours else words.calendar,
        policy=clean_line(target.policy, QUEUE_CHARS),
    )


def made_line(pictures: Pictures, words: Words) -> str:
    local = pictures.made_at.astimezone(ZoneInfo(pictures.zone))
    return words.made.format(moment=local.strftime("%Y-%m-%d %H:%M"), zone=pictures.zone)


def period_line(pictures: Pictures, words: Words) -> str:
    return words.period.format(
        first=day_words(pictures.first_day, words),
        last=day_words(pictures.last_day, words),
        zone=pictures.zone,
    )


# --- the plain text -------------------------------------------------------------------------


def render_text(pictures: Pictures, language: str) -> str:
    """The same content as the HTML page, as plain text with bars of "#"."""
    words = words_for(language)
    weeks = pictures.weeks
    first_top = max(
        [pictures.target.seconds, *(v for w in weeks for v in (w.first_p50, w.first_p90) if v)]
    )
    backlog_top = max((w.backlog for w in weeks), default=0)
    hour_top = max(pictures.hours)
    lines = [words.title, "", period_line(pictures, words), summary_line(pictures, words), ""]
    lines += [words.first_title, target_line(pictures, words)]
    target_at = scaled(pictures.target.seconds, first_top, TEXT_BAR)
    for week in weeks:
        lines.append(_text_week(week, words, pictures.highlight))
        for name, value in ((words.p50, week.first_p50), (words.p90, week.first_p90)):
            bar = _text_bar(value, first_top, target_at)
            lines.append(f"    {name:<4} {duration_words(value, words):>8}  {bar}")
    lines += ["", words.sla_title]
    for week in weeks:
        lines.append(_text_week(week, words, pictures.highlight))
        for name, pct in (
            (words.first, week.first_met_pct),
            (words.resolution, week.resolution_met_pct),
        ):
            bar = "#" * scaled(pct, 100, TEXT_BAR)
            lines.append(f"    {name:<16} {pct_words(pct, words):>6}  {bar}")
    lines += ["", words.backlog_title]
    labels = [_text_week(week, words, pictures.highlight) for week in weeks]
    width = max((len(label) for label in labels), default=0)
    for week, label in zip(weeks, labels, strict=True):
        bar = "#" * scaled(week.backlog, backlog_top, TEXT_BAR)
        lines.append(f"{label:<{width}} {week.backlog:>6}  {bar}")
    lines += ["", words.hours_title.format(zone=pictures.zone)]
    for hour, count in enumerate(pictures.hours):
        lines.append(f"  {hour:02d}:00 {count:>6}  {'#' * scaled(count, hour_top, TEXT_BAR)}")
    lines += ["", words.longest_title, *_text_waits(pictures.longest, words)]
    lines += ["", words.unanswered_title.format(count=pictures.unanswered_count)]
    lines += [
        *_text_waits(pictures.unanswered, words),
        "",
        words.footer,
        made_line(pictures, words),
    ]
    return "\n".join(lines) + "\n"


def _text_week(week: Week, words: Words, highlight: str | None) -> str:
    label = week_label(week, words)
    return f"  {label} ({words.highlight})" if week.key == highlight else f"  {label}"


def _text_bar(value: int | None, top: int, target_at: int) -> str:
    """A bar of "#" up to the target and "!" beyond it, the target marked by "|"."""
    length = scaled(value, top, TEXT_BAR)
    cells = ["#" if n < length else " " for n in range(max(length, target_at))]
    for n in range(target_at, length):
        cells[n] = "!"
    cells.insert(target_at, "|")
    return "".join(cells).rstrip()


def _text_waits(waits: Iterable[Wait], words: Words) -> list[str]:
    rows = [
        f"  {wait.tag:<10} {clean_line(wait.queue, QUEUE_CHARS):<16} "
        f"{duration_words(wait.waited, words):>8}{' ' + words.late if wait.late else ''}  "
        f"{clean_line(wait.subject, SUBJECT_CHARS)}"
        for wait in waits
    ]
    return rows or [f"  {words.nothing}"]
