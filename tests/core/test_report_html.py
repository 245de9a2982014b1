"""The report's pictures rendered by pure code: every value escaped (a hostile queue name or
subject stays text), nothing that loads from anywhere, bars proportional to their values,
empty data drawn as such, the same content as plain text, in English and Italian."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from mailbridge.core.report_html import BAR_PX, COLOURS, HOUR_PX, MARKER_PX, render_html
from mailbridge.core.report_pictures import (
    QUARTER,
    SUBJECT_CHARS,
    Wait,
    Week,
    local_hours,
    render_text,
    scaled,
    subject_line,
)
from tests.support.report_pictures import (
    HOSTILE_QUEUE,
    HOSTILE_SUBJECT,
    HOURS,
    TARGET,
    WEEKS,
    bar_cells,
    known_pictures,
)

pytestmark = pytest.mark.unit


class Text(HTMLParser):
    """The text a reader sees and every tag and attribute the page has."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self.values.extend(value or "" for _, value in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(page: str) -> Text:
    reader = Text()
    reader.feed(page)
    return reader


def test_hostile_names_and_subjects_stay_text() -> None:
    page = render_html(known_pictures(), "en")
    seen = parsed(page)
    assert seen.tags <= {"html", "head", "meta", "title", "body", "table", "tr", "td", "th",
                         "h2", "p", "br"}  # fmt: skip
    assert not {a for a in seen.attributes if a.startswith("on")}, "no event handler"
    text = "".join(seen.text)
    assert HOSTILE_QUEUE in text  # shown as the characters it is, not run
    assert "<img src=x onerror=alert(1)>" in text
    assert "\u202e" not in page and "\r" not in page
    subject = next(chunk for chunk in seen.text if chunk.startswith("Refund"))
    assert len(subject) <= SUBJECT_CHARS and subject.endswith("…")
    assert "Bcc: all@x.example" in subject  # on the subject's one line
    assert subject.startswith(HOSTILE_SUBJECT[:36]) and len(HOSTILE_SUBJECT) > SUBJECT_CHARS


@pytest.mark.parametrize("language", ["en", "it"])
def test_the_page_loads_nothing_from_anywhere(language: str) -> None:
    """No tag that loads or runs anything, no attribute naming a place, no style with a
    url(): what the page shows is in it."""
    seen = parsed(render_html(known_pictures(), language))
    assert not seen.tags & {"img", "script", "link", "style", "iframe", "object", "a", "base"}
    assert not seen.attributes & {"src", "href", "background", "srcset", "action", "poster"}
    for value in seen.values:
        assert "url(" not in value and "//" not in value and "cid:" not in value


def test_bars_are_proportional_to_their_values() -> None:
    bars = bar_cells(render_html(known_pictures(), "en"))

    def width(name: str) -> int:
        return int(bars[name]["width"])

    # first response: 10h is the longest (over the 8h target), so the scale's top
    top = 36000
    marker = round(TARGET.seconds * BAR_PX / top)
    for week in WEEKS:
        for kind, value in (("p50", week.first_p50), ("p90", week.first_p90)):
            name = f"first:{week.key}:{kind}"
            if value is None:
                assert name not in bars
                assert name + ":target" in bars  # the target line runs through every row
                continue
            drawn = width(name) + (width(name + ":over") if name + ":over" in bars else 0)
            assert abs(drawn - value * BAR_PX / top) <= 1, name
            assert (name + ":over" in bars) == (value > TARGET.seconds)
            if value > TARGET.seconds:
                assert width(name) == marker
                assert bars[name + ":over"]["bgcolor"] in (COLOURS["over50"], COLOURS["over90"])
            assert width(name + ":target") == MARKER_PX
    # met %: 100 is the whole bar
    for week in WEEKS:
        for kind, pct in (("first", week.first_met_pct), ("resolution", week.resolution_met_pct)):
            name = f"sla:{week.key}:{kind}"
            assert (name in bars) == bool(pct)
            if pct:
                assert abs(width(name) - pct * BAR_PX / 100) <= 0.5 + 1e-9, name
    # backlog: the largest is the whole bar
    assert [width(f"backlog:{w.key}") for w in WEEKS] == [216, 360, 144, 72]
    # hours: columns as tall as their counts, the busiest HOUR_PX
    for hour, count in enumerate(HOURS):
        name = f"hour:{hour}"
        assert (name in bars) == (count > 0)
        if count:
            assert abs(int(bars[name]["height"]) - count * HOUR_PX / max(HOURS)) <= 0.5 + 1e-9


def test_each_bar_row_adds_up_to_the_same_width() -> None:
    """The cells of a bar's row fill it exactly: the target line is at one place in every
    row, and no mail client has to guess a width."""
    page = render_html(known_pictures(), "en")
    for row in re.findall(r'<table [^>]*table-layout:fixed;"><tr>(.*?)</tr></table>', page):
        widths = [int(w) for w in re.findall(r'<td width="(\d+)"', row)]
        assert sum(widths) == BAR_PX + MARKER_PX and all(w > 0 for w in widths)


def test_empty_data_is_drawn_as_no_data() -> None:
    empty = known_pictures(
        weeks=(Week("2026-11-30", 0, None, None, None, None, 0),),
        hours=(0,) * 24,
        longest=(),
        unanswered=(),
        unanswered_count=0,
        highlight=None,
    )
    page = render_html(empty, "en")
    bars = bar_cells(page)
    assert set(bars) == {"first:2026-11-30:p50:target", "first:2026-11-30:p90:target"}
    text = "".join(parsed(page).text)
    assert text.count("None.") == 2 and "p50 –" in text and "first response –" in text
    plain = render_text(empty, "en")
    assert plain.count("None.") == 2 and "#" not in plain.replace("[#", "")

    nothing = render_html(known_pictures(weeks=()), "it")
    assert 'data-bar="first' not in nothing and "–" in nothing


def test_the_last_week_is_set_apart() -> None:
    page = render_html(known_pictures(), "en")
    assert page.count(COLOURS["highlight"]) == 5  # 2 rows of times, 2 of deadlines, 1 backlog
    assert page.count("(last week)") == 3
    assert render_html(known_pictures(highlight=None), "en").count(COLOURS["highlight"]) == 0


def test_italian_words_and_numbers() -> None:
    page = render_html(known_pictures(), "it")
    text = "".join(parsed(page).text)
    assert page.startswith('<!DOCTYPE html>\n<html lang="it">')
    assert "Prima risposta per settimana" in text and "settimana del 23 nov 2026" in text
    assert "92,5%" in text and "1g 2h (in ritardo)" in text
    assert "Creato il 2026-11-30 08:00 (Europe/Rome)." in text
    assert "Obiettivo 8h (orario di lavoro, politica standard)" in text
    english = "".join(parsed(render_html(known_pictures(), "de")).text)
    assert "First response per week" in english and "92.5%" in english


def test_the_plain_text_has_the_same_content() -> None:
    plain = render_text(known_pictures(), "en")
    lines = plain.splitlines()
    assert lines[0] == "Support report"
    assert "  week of 23 Nov 2026 (last week)" in lines
    # bars of "#" up to the target "|", "!" beyond it: 10h on a scale whose top is 10h
    p90 = next(line for line in lines if line.startswith("    p90") and "10h" in line)
    assert p90.endswith("#" * 24 + "|" + "!" * 6)
    assert "  10:00     20  " + "#" * 30 in lines
    assert '  [#1042]    <script>alert("q")</script>    1d 2h late  Refund"><img ' in plain
    assert "\u202e" not in plain and "\r" not in plain
    assert "Unanswered at the end: 3" in lines
    assert lines[-1] == "Made 2026-11-30 08:00 (Europe/Rome)."
    italian = render_text(known_pictures(), "it")
    assert "Senza risposta alla fine: 3" in italian and "2g 7h in ritardo" in italian


def test_the_subject_names_the_week_or_the_period() -> None:
    assert subject_line(known_pictures(), "en") == "Support report: week of 23 Nov 2026"
    assert subject_line(known_pictures(), "it") == (
        "Rapporto sull'assistenza: settimana del 23 nov 2026"
    )
    assert subject_line(known_pictures(highlight=None), "en") == (
        "Support report: 2 Nov 2026 to 29 Nov 2026"
    )


def test_scaled_bars() -> None:
    assert [scaled(v, 100, 360) for v in (None, 0, -5, 0.01, 50, 100, 250)] == [
        0, 0, 0, 1, 180, 360, 360,
    ]  # fmt: skip
    assert scaled(10, 0, 360) == 0


def quarter(moment: datetime) -> int:
    return int(moment.timestamp()) // QUARTER


def test_arrivals_fall_in_their_local_hour() -> None:
    rome = ZoneInfo("Europe/Rome")
    counts = {
        quarter(datetime(2026, 10, 20, 8, 0, tzinfo=UTC)): 2,  # 10:00 in Rome, summer time
        quarter(datetime(2026, 11, 20, 9, 45, tzinfo=UTC)): 3,  # 10:45 in Rome, winter time
        quarter(datetime(2026, 11, 20, 22, 59, tzinfo=UTC)): 1,  # 23:59
    }
    hours = local_hours(counts, rome)
    assert hours[10] == 5 and hours[23] == 1 and sum(hours) == 6
    # half an hour off UTC: 00:15 and 00:30 UTC are 05:45 and 06:00 in Kolkata
    kolkata = local_hours(
        {quarter(datetime(2026, 1, 1, 0, m, tzinfo=UTC)): 1 for m in (15, 30)},
        ZoneInfo("Asia/Kolkata"),
    )
    assert (kolkata[5], kolkata[6]) == (1, 1)


def test_pictures_refuse_a_day_without_24_hours() -> None:
    with pytest.raises(ValueError, match="24 counts"):
        known_pictures(hours=(1,) * 23)


def test_a_wait_shows_no_customer_address() -> None:
    """A Wait has no field for one: the tables cannot show what they are not given."""
    assert set(Wait.__dataclass_fields__) == {"tag", "queue", "waited", "late", "subject"}
    assert date(2026, 11, 23).weekday() == 0  # the weeks' keys are Mondays
