"""The report's page as a browser lays it out (headless Chromium, one launch for the module):
every chart shows, each bar as long or as tall as its value says and in its colour, the
target line at one place in every row, the tables of waits there; and the page makes no
request beyond its own file, which a page that loads an image is caught doing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.report_html import BAR_PX, COLOURS, HOUR_PX, MARKER_PX, render_html
from tests.support.chromium import Chromium, Page, chromium
from tests.support.report_pictures import HOURS, TARGET, WEEKS, known_pictures

pytestmark = pytest.mark.integration

MEASURE = """JSON.stringify({
  bars: Object.fromEntries([...document.querySelectorAll('[data-bar]')].map(cell => {
    const box = cell.getBoundingClientRect();
    return [cell.dataset.bar, {x: box.x, y: box.y, width: box.width, height: box.height,
                               colour: getComputedStyle(cell).backgroundColor}];
  })),
  charts: Object.fromEntries([...document.querySelectorAll('[data-chart], [data-table]')].map(
    table => [table.dataset.chart || table.dataset.table,
              {height: table.getBoundingClientRect().height, rows: table.rows.length,
               text: table.innerText}])),
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def page(browser: Chromium, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_html(known_pictures(), "en"), encoding="utf-8")
    opened = browser.open(path, width=800, height=1200)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def laid_out(page: Page) -> dict[str, Any]:
    return dict(json.loads(page.evaluate(MEASURE)))


def rgb(colour: str) -> str:
    red, green, blue = (int(colour[n : n + 2], 16) for n in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def test_every_chart_and_table_shows(laid_out: dict[str, Any]) -> None:
    charts = laid_out["charts"]
    assert set(charts) == {"first-response", "sla", "backlog", "hours", "longest", "unanswered"}
    for name, chart in charts.items():
        assert chart["height"] > 20, name
    assert charts["first-response"]["rows"] == charts["sla"]["rows"] == 2 * len(WEEKS)
    assert charts["backlog"]["rows"] == len(WEEKS)
    assert "[#1042]" in charts["longest"]["text"] and "[#1101]" in charts["unanswered"]["text"]


def test_the_bars_are_as_long_as_their_values(laid_out: dict[str, Any]) -> None:
    bars = laid_out["bars"]
    top = max(v for w in WEEKS for v in (w.first_p50, w.first_p90) if v)
    for week in WEEKS:
        for kind, value in (("p50", week.first_p50), ("p90", week.first_p90)):
            name = f"first:{week.key}:{kind}"
            shown = (
                bars.get(name, {"width": 0})["width"]
                + bars.get(name + ":over", {"width": 0})["width"]
            )
            assert shown == pytest.approx((value or 0) * BAR_PX / top, abs=1), name
            if name in bars:
                assert bars[name]["height"] >= 10 and bars[name]["colour"] == rgb(COLOURS[kind])
        for kind, pct in (("first", week.first_met_pct), ("resolution", week.resolution_met_pct)):
            cell = bars.get(f"sla:{week.key}:{kind}", {"width": 0, "colour": ""})
            assert cell["width"] == pytest.approx((pct or 0) * BAR_PX / 100, abs=1)
            assert not pct or cell["colour"] == rgb(COLOURS[kind])
        most = max(w.backlog for w in WEEKS)
        backlog = bars[f"backlog:{week.key}"]
        assert backlog["width"] == pytest.approx(week.backlog * BAR_PX / most, abs=1)
    # the part over the target is red and starts where the target line is
    over = bars["first:2026-11-09:p90:over"]
    line = bars["first:2026-11-09:p90:target"]
    assert over["colour"] == rgb(COLOURS["over90"]) and over["x"] == line["x"] + MARKER_PX


def test_the_target_is_one_vertical_line(laid_out: dict[str, Any]) -> None:
    lines = [box for name, box in laid_out["bars"].items() if name.endswith(":target")]
    assert len(lines) == 2 * len(WEEKS)
    top = max(v for w in WEEKS for v in (w.first_p50, w.first_p90) if v)
    start = min(box["x"] for name, box in laid_out["bars"].items() if name.startswith("first:"))
    for box in lines:
        assert box["x"] == lines[0]["x"] and box["width"] == MARKER_PX
        assert box["colour"] == rgb(COLOURS["target"])
    assert lines[0]["x"] - start == pytest.approx(TARGET.seconds * BAR_PX / top, abs=1)


def test_the_hours_stand_on_one_base_line(laid_out: dict[str, Any]) -> None:
    columns = {
        int(n.split(":")[1]): b for n, b in laid_out["bars"].items() if n.startswith("hour:")
    }
    assert sorted(columns) == [hour for hour, count in enumerate(HOURS) if count]
    bottoms = {round(box["y"] + box["height"]) for box in columns.values()}
    assert len(bottoms) == 1
    for hour, box in columns.items():
        assert box["height"] == pytest.approx(HOURS[hour] * HOUR_PX / max(HOURS), abs=1)
    xs = [columns[hour]["x"] for hour in sorted(columns)]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)  # left to right, from 0 to 23


def test_the_page_makes_no_request(page: Page) -> None:
    assert page.requests() == [page.url]


def test_a_page_that_loads_something_is_caught(browser: Chromium, tmp_path: Path) -> None:
    """The check above can fail: an image from elsewhere is seen as a request (it goes
    nowhere: the browser resolves no name and its proxy is a closed port)."""
    path = tmp_path / "loads.html"
    path.write_text(
        '<html><body><img src="http://tracker.example/pixel.png">'
        '<table style="background:url(https://cdn.example/bg.png)"><tr><td>x</td></tr></table>'
        "</body></html>",
        encoding="utf-8",
    )
    loads = browser.open(path)
    try:
        assert set(loads.requests()) >= {
            loads.url,
            "http://tracker.example/pixel.png",
            "https://cdn.example/bg.png",
        }
    finally:
        loads.close()
