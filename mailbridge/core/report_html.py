"""The service report's pictures as one self-contained HTML page: bar charts drawn as table
cells with widths and background colours, inline styles only, no image, no script, no
link to anything, so that Gmail, Outlook and Thunderbird show it as it is, in a mail or a file.

Every value is escaped here, whatever it is; customer text (subjects, queue names) is
cleaned and clipped first. Each bar cell carries `data-bar` (which bar it is) so a test can
find it in a rendered page; mail clients ignore the attribute.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from mailbridge.core.report_pictures import (
    QUEUE_CHARS,
    SUBJECT_CHARS,
    Pictures,
    Wait,
    Week,
    Words,
    clean_line,
    duration_words,
    made_line,
    pct_words,
    period_line,
    scaled,
    summary_line,
    target_line,
    week_label,
    words_for,
)

__all__ = ["BAR_PX", "COLOURS", "HOUR_PX", "MARKER_PX", "render_html"]

PAGE_PX = 640
LABEL_PX = 150
BAR_PX = 360  # the longest bar
MARKER_PX = 2  # the target line
VALUE_PX = PAGE_PX - LABEL_PX - BAR_PX - MARKER_PX
ROW_PX = 12  # a bar's height
HOUR_PX = 100  # the tallest column of the hours
HOUR_COLUMN_PX = 26
COLOURS = {
    "p50": "#2f6db5",
    "p90": "#93b4de",
    "over50": "#c9302c",
    "over90": "#eb9a98",
    "target": "#222222",
    "first": "#3d8b3d",
    "resolution": "#7fbf7f",
    "backlog": "#6b7a90",
    "hour": "#2f6db5",
    "highlight": "#fff1b8",
    "late": "#c9302c",
    "muted": "#666666",
}
_FONT = "font-family:Arial,Helvetica,sans-serif;color:#222222;"
_TABLE = 'role="presentation" cellpadding="0" cellspacing="0" border="0"'
_CELL = "font-size:1px;line-height:1px;mso-line-height-rule:exactly;"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(pictures: Pictures, language: str) -> str:
    """The whole page."""
    words = words_for(language)
    sections = [
        _heading(words.title, 20),
        _para(period_line(pictures, words)),
        _para(summary_line(pictures, words)),
        _first_response(pictures, words),
        _sla(pictures, words),
        _backlog(pictures, words),
        _hours(pictures, words),
        _waits(words.longest_title, pictures.longest, words, "longest"),
        _waits(
            words.unanswered_title.format(count=pictures.unanswered_count),
            pictures.unanswered,
            words,
            "unanswered",
        ),
        _para(words.footer, muted=True),
        _para(made_line(pictures, words), muted=True),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="{words.code}">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width">\n'
        f"<title>{_e(words.title)}</title>\n</head>\n"
        f'<body style="margin:0;padding:16px;background-color:#ffffff;{_FONT}">\n'
        f'<table {_TABLE} width="{PAGE_PX}" style="width:{PAGE_PX}px;{_FONT}font-size:14px;">'
        f"<tr><td>\n" + "\n".join(sections) + "\n</td></tr></table>\n</body>\n</html>\n"
    )


def _heading(text: str, size: int = 16) -> str:
    return f'<h2 style="{_FONT}font-size:{size}px;margin:20px 0 6px 0;">{_e(text)}</h2>'


def _para(text: str, *, muted: bool = False) -> str:
    colour = f"color:{COLOURS['muted']};font-size:12px;" if muted else ""
    return f'<p style="{_FONT}margin:4px 0;{colour}">{_e(text)}</p>'


def _chart(name: str, title: str, rows: Iterable[str], note: str = "") -> str:
    body = "".join(rows) or _empty_row()
    return (
        _heading(title)
        + (_para(note) if note else "")
        + f'<table {_TABLE} data-chart="{_e(name)}" width="{PAGE_PX}" '
        f'style="width:{PAGE_PX}px;table-layout:fixed;{_FONT}font-size:12px;">{body}</table>'
    )


def _empty_row() -> str:
    return f'<tr><td style="{_FONT}font-size:12px;padding:4px 0;">–</td></tr>'


# --- one horizontal bar ----------------------------------------------------------------------


def _segments(parts: Iterable[tuple[int, str | None, str | None]], width: int) -> str:
    """A row of cells `width` px wide: each part (px, colour or None for blank, bar name),
    then blank up to the width. Cells of 0 px are left out: a mail client would widen them."""
    cells = []
    used = 0
    for px, colour, name in parts:
        if px <= 0:
            continue
        used += px
        cells.append(_cell(px, colour, name))
    if width - used > 0:
        cells.append(_cell(width - used, None, None))
    return (
        f'<table {_TABLE} width="{width}" style="width:{width}px;table-layout:fixed;">'
        f"<tr>{''.join(cells)}</tr></table>"
    )


def _cell(px: int, colour: str | None, name: str | None) -> str:
    fill = f' bgcolor="{colour}"' if colour else ""
    background = f"background-color:{colour};" if colour else ""
    named = f' data-bar="{_e(name)}"' if name else ""
    return (
        f'<td width="{px}" height="{ROW_PX}"{fill}{named} '
        f'style="width:{px}px;height:{ROW_PX}px;{background}{_CELL}">&nbsp;</td>'
    )


def _row(label: str, bar: str, value: str, *, shaded: bool, value_colour: str = "") -> str:
    """Label, bar and value; each cell's padding inside its column, so that the columns add
    up to the page and the bars start at the same place in every chart."""
    shade = f' bgcolor="{COLOURS["highlight"]}"' if shaded else ""
    weight = "font-weight:bold;" if shaded else ""
    colour = f"color:{value_colour};" if value_colour else ""
    return (
        f'<tr><td width="{LABEL_PX - 8}"{shade} '
        f'style="width:{LABEL_PX - 8}px;{weight}padding:2px 4px;">{label}</td>'
        f'<td width="{BAR_PX + MARKER_PX}" style="width:{BAR_PX + MARKER_PX}px;padding:2px 0;">'
        f"{bar}</td>"
        f'<td width="{VALUE_PX - 12}" '
        f'style="width:{VALUE_PX - 12}px;{colour}padding:2px 6px;white-space:nowrap;">'
        f"{value}</td></tr>"
    )


def _label(week: Week, words: Words, highlight: str | None, first: bool = True) -> str:
    if not first:
        return ""
    text = _e(week_label(week, words))
    if week.key == highlight:
        text += f"<br>({_e(words.highlight)})"
    return text


# --- the charts ------------------------------------------------------------------------------


def _first_response(pictures: Pictures, words: Words) -> str:
    target = pictures.target.seconds
    values = [v for w in pictures.weeks for v in (w.first_p50, w.first_p90) if v is not None]
    top = max([target, *values])
    marker = scaled(target, top, BAR_PX)
    rows = []
    for week in pictures.weeks:
        for n, (kind, value) in enumerate((("p50", week.first_p50), ("p90", week.first_p90))):
            name = f"first:{week.key}:{kind}"
            parts = _against_target(scaled(value, top, BAR_PX), marker, kind, name)
            shown = f"{_e(getattr(words, kind))} {_e(duration_words(value, words))}"
            late = value is not None and value > target
            rows.append(
                _row(
                    _label(week, words, pictures.highlight, n == 0),
                    _segments(parts, BAR_PX + MARKER_PX),
                    shown,
                    shaded=week.key == pictures.highlight,
                    value_colour=COLOURS["late"] if late else "",
                )
            )
    return _chart("first-response", words.first_title, rows, target_line(pictures, words))


def _against_target(
    length: int, marker: int, kind: str, name: str
) -> list[tuple[int, str | None, str | None]]:
    """A bar of `length` px with the target line at `marker` px: the part beyond it red."""
    line = (MARKER_PX, COLOURS["target"], f"{name}:target")
    if length <= marker:
        return [(length, COLOURS[kind], name), (marker - length, None, None), line]
    over = COLOURS["over50" if kind == "p50" else "over90"]
    return [(marker, COLOURS[kind], name), line, (length - marker, over, f"{name}:over")]


def _sla(pictures: Pictures, words: Words) -> str:
    rows = []
    for week in pictures.weeks:
        pairs = (("first", week.first_met_pct), ("resolution", week.resolution_met_pct))
        for n, (kind, pct) in enumerate(pairs):
            bar = [(scaled(pct, 100, BAR_PX), COLOURS[kind], f"sla:{week.key}:{kind}")]
            rows.append(
                _row(
                    _label(week, words, pictures.highlight, n == 0),
                    _segments(bar, BAR_PX + MARKER_PX),
                    f"{_e(getattr(words, kind))} {_e(pct_words(pct, words))}",
                    shaded=week.key == pictures.highlight,
                )
            )
    return _chart("sla", words.sla_title, rows)


def _backlog(pictures: Pictures, words: Words) -> str:
    top = max((w.backlog for w in pictures.weeks), default=0)
    rows = [
        _row(
            _label(week, words, pictures.highlight),
            _segments(
                [(scaled(week.backlog, top, BAR_PX), COLOURS["backlog"], f"backlog:{week.key}")],
                BAR_PX + MARKER_PX,
            ),
            _e(week.backlog),
            shaded=week.key == pictures.highlight,
        )
        for week in pictures.weeks
    ]
    return _chart("backlog", words.backlog_title, rows)


def _hours(pictures: Pictures, words: Words) -> str:
    """24 columns standing on a common base line, the count above each."""
    top = max(pictures.hours)
    counts, columns, labels = [], [], []
    style = f'width="{HOUR_COLUMN_PX}" align="center" style="width:{HOUR_COLUMN_PX}px;'
    for hour, count in enumerate(pictures.hours):
        height = scaled(count, top, HOUR_PX)
        shown = _e(count) if count else ""
        counts.append(f'<td {style}font-size:9px;color:{COLOURS["muted"]};">{shown}</td>')
        bar = ""
        if height:
            colour = COLOURS["hour"]
            bar = (
                f'<table {_TABLE} width="16" align="center" style="width:16px;"><tr>'
                f'<td width="16" height="{height}" bgcolor="{colour}" data-bar="hour:{hour}" '
                f'style="width:16px;height:{height}px;background-color:{colour};{_CELL}">'
                "&nbsp;</td></tr></table>"
            )
        columns.append(
            f'<td {style}height:{HOUR_PX}px;" height="{HOUR_PX}" valign="bottom">{bar}</td>'
        )
        labels.append(f'<td {style}font-size:10px;border-top:1px solid #999999;">{hour}</td>')
    rows = [f"<tr>{''.join(cells)}</tr>" for cells in (counts, columns, labels)]
    return (
        _heading(words.hours_title.format(zone=pictures.zone))
        + f'<table {_TABLE} data-chart="hours" width="{HOUR_COLUMN_PX * 24}" '
        f'style="width:{HOUR_COLUMN_PX * 24}px;{_FONT}">{"".join(rows)}</table>'
    )


def _waits(title: str, waits: tuple[Wait, ...], words: Words, name: str) -> str:
    head = "".join(
        f'<th align="left" style="padding:3px 6px;border-bottom:1px solid #999999;">{_e(c)}</th>'
        for c in words.columns
    )
    rows = [f"<tr>{head}</tr>"]
    for wait in waits:
        late = f" ({_e(words.late)})" if wait.late else ""
        colour = f"color:{COLOURS['late']};" if wait.late else ""
        rows.append(
            "<tr>"
            f'<td style="padding:3px 6px;white-space:nowrap;">{_e(wait.tag)}</td>'
            f'<td style="padding:3px 6px;">{_e(clean_line(wait.queue, QUEUE_CHARS))}</td>'
            f'<td style="padding:3px 6px;white-space:nowrap;{colour}">'
            f"{_e(duration_words(wait.waited, words))}{late}</td>"
            f'<td style="padding:3px 6px;">{_e(clean_line(wait.subject, SUBJECT_CHARS))}</td>'
            "</tr>"
        )
    if not waits:
        rows.append(f'<tr><td colspan="4" style="padding:3px 6px;">{_e(words.nothing)}</td></tr>')
    return (
        _heading(title) + f'<table {_TABLE} data-table="{name}" width="{PAGE_PX}" '
        f'style="width:{PAGE_PX}px;{_FONT}font-size:12px;border-collapse:collapse;">'
        + "".join(rows)
        + "</table>"
    )
