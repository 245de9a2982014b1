"""Pictures of the service report made by hand, for the renderer's tests (pure and in
Chromium), and a reader of the bar cells of a rendered page by the standard library's HTML
parser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser

from mailbridge.core.report import NOTHING, figures_of
from mailbridge.core.report_pictures import Pictures, Target, Wait, Week

HOSTILE_QUEUE = '<script>alert("q")</script>'
HOSTILE_SUBJECT = (
    'Refund"><img src=x onerror=alert(1)>\r\nBcc: all@x.example \u202egpj.exe ' + "long " * 40
)
HOURS = (0, 0, 0, 0, 0, 0, 0, 1, 4, 12, 20, 16, 8, 9, 14, 11, 7, 3, 2, 0, 0, 0, 1, 0)
WEEKS = (
    Week("2026-11-02", 40, 3600, 14400, 92.5, 80.0, 12),
    Week("2026-11-09", 35, 5400, 36000, 70.0, 65.5, 20),  # p90 over the 8h target
    Week("2026-11-16", 0, None, None, None, None, 8),  # nothing came in
    Week("2026-11-23", 52, 1800, 7200, 100.0, 95.0, 4),
)
TARGET = Target(seconds=28800, business_hours=True, policy="standard")


def known_pictures(**changes: object) -> Pictures:
    total = replace(
        figures_of(NOTHING, {}, (14, None), datetime(2026, 11, 30, tzinfo=UTC)), tickets_in=127
    )
    pictures = Pictures(
        first_day=date(2026, 11, 2),
        last_day=date(2026, 11, 29),
        zone="Europe/Rome",
        made_at=datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
        target=TARGET,
        weeks=WEEKS,
        hours=HOURS,
        longest=(
            Wait("[#1042]", HOSTILE_QUEUE, 93_600, True, HOSTILE_SUBJECT),
            Wait("[#1007]", "billing", 20_000, False, "Invoice copy"),
        ),
        unanswered=(Wait("[#1101]", "default", 200_000, True, "Still waiting"),),
        unanswered_count=3,
        total=total,
        highlight="2026-11-23",
    )
    return replace(pictures, **changes)  # type: ignore[arg-type]


class BarCells(HTMLParser):
    """Every cell with `data-bar`: its name, width and height attributes, and colour."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: dict[str, dict[str, str]] = {}
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = {name: value or "" for name, value in attrs}
        if "data-bar" in values:
            self.bars[values["data-bar"]] = values


def bar_cells(page: str) -> dict[str, dict[str, str]]:
    parser = BarCells()
    parser.feed(page)
    return parser.bars
