"""The pages' pictures, drawn on the server as SVG: no charting library and no build step, and the page, its
live redraws and the tests all see the same markup.

Each picture is one `<svg role="img">` with a `<title>` and a `<desc>` that says in words what it shows, a
viewBox so that it scales to its container, times in UTC, and a `<title>` on every mark (the browser's
tooltip). Each status has a texture as well as a color (`_patterns`) and a text label beside it, so the
pictures read without color. Counts and summary values come from the stats service (task_outputs.stats),
over the last 24 hours (or 7 days) only: its indexed range queries, within the caller's tenant scope.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from superai_flow.json_queries import json_path
from task_outputs.models import TaskOutput
from task_outputs.stats import StatsQuery, task_output_stats
from task_outputs.templatetags.task_outputs import display_value

WIDTH = 960  # every picture's viewBox width; it scales to its container from there
# Bottom to top in stacked bars, left to right in legends: finished work first.
STATUS_ORDER = (Status.COMPLETED, Status.FAILED, Status.STALE, Status.IN_PROGRESS, Status.RUNNING, Status.QUEUED)
RUNNING = frozenset({Status.RUNNING, Status.IN_PROGRESS})
# Where the form's task names and summary keys come from: the newest outputs only, an index range however
# many the organization has.
RECENT_OUTPUTS = 200
# Time axis steps (seconds) a timeline chooses from: the first that needs at most 6 ticks.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


# --- The timeline of one flow execution's task executions -------------------------------------------


def timeline_svg(attempts: Sequence[TaskExecution], *, now: datetime, live: bool) -> SafeString:
    """One row per attempt, in order of start, with a bar from its start to its finish (to `now` while it
    runs). While the flow is `live` the time axis reaches past `now`, so that the page's script can grow the
    running bars every second until its next redraw; `data-now` and `data-scale` tell it where to."""
    attempts = sorted(attempts, key=lambda a: (a.started_at or a.created_at, a.created_at, a.attempt))
    left, right, top, row = 200, WIDTH - 180, 8, 26
    begin = attempts[0].started_at or attempts[0].created_at
    seconds = max(max((_stop(a, now) - begin).total_seconds() for a in attempts), 1.0)
    if live:
        seconds += max(10.0, seconds / 10)
    scale = (right - left) / seconds  # px per second

    def x_of(moment: datetime) -> float:
        return left + (moment - begin).total_seconds() * scale

    rows, titles = [], []
    for index, attempt in enumerate(attempts):
        y = top + index * row
        duration, title = _attempt_texts(attempt, now)
        titles.append(title)
        status = attempt.status
        if attempt.started_at is None:  # queued: a marker where it was created
            x = x_of(attempt.created_at)
            mark = _tag("path", d=f"M{x:.1f} {y + 3}l6 7-6 7-6-7z", class_="marker", fill=f"url(#tl-{status})")
        else:
            x = x_of(attempt.started_at)
            width = max(x_of(_stop(attempt, now)) - x, 3)
            mark = _tag("rect", x=x, y=y + 4, width=width, height=16, rx=3, class_="bar", fill=f"url(#tl-{status})")
        growing = attempt.started_at is not None and _running(attempt)
        rows.append(
            _tag(
                "g",
                _tag("title", title),
                _tag(
                    "text",
                    _shorten(f"{attempt.task_name} #{attempt.attempt}", 26),
                    x=left - 10,
                    y=y + 17,
                    class_="label",
                    text_anchor="end",
                ),
                mark,
                _tag(
                    "text",
                    f"{Status(status).label} · ",
                    _tag("tspan", duration, data_duration=""),
                    x=right + 12,
                    y=y + 17,
                    class_="label",
                ),
                class_=f"attempt {status}",
                data_start=int(attempt.started_at.timestamp() * 1000) if growing else None,
            )
        )
    axis_y = top + len(attempts) * row + 4
    end = begin + timedelta(seconds=seconds)
    days = sorted({begin.astimezone(UTC).date(), min(end, now).astimezone(UTC).date()})
    counts = Counter(Status(a.status).label.lower() for a in attempts)
    description = (
        f"{_plural(len(attempts), 'attempt')}: {', '.join(f'{n} {label}' for label, n in counts.items())}. "
        + "; ".join(titles)
        + "."
    )
    return _svg(
        "tl",
        "Timeline of task executions",
        description,
        axis_y + 34,
        _patterns("tl"),
        _time_axis(begin, seconds, x_of, left, right, top, axis_y),
        _tag("text", f"UTC {' to '.join(str(day) for day in days)}", x=left - 10, y=axis_y + 18, text_anchor="end"),
        *rows,
        data_now=int(now.timestamp() * 1000),
        data_scale=f"{scale:.6g}",
        data_right=right,
    )


def _running(attempt: TaskExecution) -> bool:
    return attempt.status in RUNNING and attempt.finished_at is None


def _stop(attempt: TaskExecution, now: datetime) -> datetime:
    """Where an attempt's bar ends: its finish; `now` while it runs; else where it starts."""
    if attempt.finished_at:
        return attempt.finished_at
    if attempt.started_at and _running(attempt):
        return now
    return attempt.started_at or attempt.created_at


def _attempt_texts(attempt: TaskExecution, now: datetime) -> tuple[str, str]:
    """(duration, tooltip) of one attempt."""
    head = f"{attempt.task_name}, attempt {attempt.attempt}: {Status(attempt.status).label}"
    if attempt.started_at is None:
        return "not started", f"{head}, not started (created {_hms(attempt.created_at)} UTC)"
    start = _hms(attempt.started_at)
    if attempt.finished_at:
        duration = _duration((attempt.finished_at - attempt.started_at).total_seconds())
        return duration, f"{head}, ran {duration} ({start} to {_hms(attempt.finished_at)} UTC)"
    if _running(attempt):
        duration = _duration((now - attempt.started_at).total_seconds())
        return duration, f"{head}, running for {duration} (since {start} UTC)"
    return "unfinished", f"{head} (started {start} UTC)"


def _duration(seconds: float) -> str:
    """How long, as people say it (the page's script formats growing bars the same way)."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return "{} min {:02d} s".format(*divmod(round(seconds), 60))
    return "{} h {:02d} min".format(*divmod(round(seconds / 60), 60))


def _time_axis(begin: datetime, seconds: float, x_of, left: float, right: float, top: float, axis_y: float):
    step = next((s for s in _STEPS if seconds / s <= 6), 86400 * math.ceil(seconds / 86400 / 6))
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%b %d"
    start = begin.timestamp()
    moments = [
        datetime.fromtimestamp(t, UTC) for t in range(math.ceil(start / step) * step, int(start + seconds) + 1, step)
    ]
    return _tag(
        "g",
        _tag("line", x1=left, x2=right, y1=axis_y, y2=axis_y, class_="axis-line"),
        *(
            _tag(
                "g",
                _tag("line", x1=x_of(m), x2=x_of(m), y1=top, y2=axis_y, class_="grid"),
                _tag("text", m.strftime(fmt), x=x_of(m), y=axis_y + 18, text_anchor="middle"),
            )
            for m in moments
        ),
        class_="axis",
    )


# --- Task outputs per hour by status ---------------------------------------------------------------


def outputs_per_hour_svg(outputs: QuerySet[TaskOutput], *, now: datetime) -> SafeString | None:
    """Stacked bars of `outputs` per hour over the last 24 hours, one segment per status; None if none."""
    hours = _hours(now, 24)
    query = StatsQuery(group_by=("hour", "status"), metrics=())
    counts: dict[str, Counter] = defaultdict(Counter)
    for group in task_output_stats(outputs.filter(created_at__gte=hours[0]), query)["groups"]:
        counts[group["key"]["hour"]][group["key"]["status"]] += group["count"]
    if not counts:
        return None
    totals = sum(counts.values(), Counter())
    statuses = [status for status in STATUS_ORDER if totals[status]]
    left, right, plot_top, plot_bottom = 48, WIDTH - 12, 44, 234
    ticks = _value_ticks(0, max(sum(c.values()) for c in counts.values()), integers=True)
    y_of = _linear(0, ticks[-1], plot_bottom, plot_top)
    column = (right - left) / len(hours)
    columns = [
        _column(hour, counts[_hour_key(hour)], statuses, y_of, left + index * column + column * 0.15, column * 0.7)
        for index, hour in enumerate(hours)
        if _hour_key(hour) in counts
    ]
    legend = [(status, f"{_status_text(status).capitalize()} {totals[status]:,}") for status in statuses]
    breakdown = ", ".join(f"{totals[s]:,} {_status_text(s)}" for s in statuses)
    return _svg(
        "ph",
        "Task outputs per hour by status, last 24 hours (UTC)",
        f"{_plural(sum(totals.values()), 'task output')} in the last 24 hours: {breakdown}. Busiest hour: "
        f"{max(sum(c.values()) for c in counts.values()):,}.",
        plot_bottom + 36,
        _patterns("ph"),
        _legend("ph", legend, left, 14),
        _value_axis(ticks, y_of, left, right),
        _hour_axis(hours, lambda i: left + (i + 0.5) * column, plot_bottom),
        *columns,
    )


def _column(hour: datetime, found: Counter, statuses: list[str], y_of, x: float, width: float) -> SafeString:
    """One hour's stacked bar: a segment per status, bottom up, and its total above."""
    segments, base = [], 0
    for status in statuses:
        if found[status]:
            y, height = y_of(base + found[status]), y_of(base) - y_of(base + found[status])
            title = _tag("title", f"{_hour_span(hour)} UTC: {found[status]:,} {_status_text(status)}")
            segments.append(_tag("rect", title, x=x, y=y, width=width, height=height, fill=f"url(#ph-{status})"))
            base += found[status]
    breakdown = ", ".join(f"{found[status]:,} {_status_text(status)}" for status in statuses if found[status])
    return _tag(
        "g",
        _tag("title", f"{_hour_span(hour)} UTC: {_plural(base, 'task output')} ({breakdown})"),
        *segments,
        _tag("text", f"{base:,}", x=x + width / 2, y=y_of(base) - 4, text_anchor="middle", class_="total"),
        class_="column",
        data_hour=_hour_key(hour),
    )


def _status_text(status: str) -> str:
    """A status as the pictures' words say it: `in progress`."""
    return Status(status).label.lower()


# --- A task's numeric summary value over time ----------------------------------------------------------


def summary_svg(outputs: QuerySet[TaskOutput], *, path: list[str], hours: int, now: datetime) -> SafeString | None:
    """The average per hour of the number at `summary.<path>` in `outputs` over the last `hours`, with each
    hour's band from min to max; None when no output of that time has a number there."""
    buckets = _hours(now, hours)
    metric = "summary." + ".".join(path)
    query = StatsQuery(group_by=("hour",), metrics=(tuple(path),))
    found = {
        group["key"]["hour"]: group["metrics"][metric]
        for group in task_output_stats(outputs.filter(created_at__gte=buckets[0]), query)["groups"]
        if group["metrics"][metric]["count"]
    }
    if not found:
        return None
    low, high = min(stat["min"] for stat in found.values()), max(stat["max"] for stat in found.values())
    left, right, plot_top, plot_bottom = 56, WIDTH - 12, 40, 234
    ticks = _value_ticks(low, high)
    y_of = _linear(ticks[0], ticks[-1], plot_bottom, plot_top)
    column = (right - left) / len(buckets)
    band = max(min(column * 0.6, 14), 2)
    marks, lines, line = [], [], []
    for index, hour in enumerate(buckets):
        stat = found.get(_hour_key(hour))
        if stat is None:
            line = []
            continue
        x = left + (index + 0.5) * column
        if not line:
            lines.append(line)
        line.append(f"{x:.1f},{y_of(stat['avg']):.1f}")
        title = (
            f"{_hour_span(hour)} UTC: average {display_value(stat['avg'])} (min {display_value(stat['min'])}, "
            f"max {display_value(stat['max'])}) over {_plural(stat['count'], 'output')}"
        )
        marks.append(
            _tag(
                "g",
                _tag("title", title),
                _tag(
                    "rect",
                    x=left + index * column,
                    y=plot_top,
                    width=column,
                    height=plot_bottom - plot_top,
                    class_="hit",
                ),
                _tag(
                    "rect",
                    x=x - band / 2,
                    y=y_of(stat["max"]),
                    width=band,
                    height=max(y_of(stat["min"]) - y_of(stat["max"]), 1.5),
                    class_="band",
                ),
                _tag("circle", cx=x, cy=y_of(stat["avg"]), r=3.5, class_="point"),
                class_="hour",
                data_hour=_hour_key(hour),
            )
        )
    count = sum(stat["count"] for stat in found.values())
    averages = [stat["avg"] for stat in found.values()]
    period = "24 hours" if hours == 24 else f"{hours // 24} days"
    description = (
        f"{metric} over the last {period}: {_plural(count, 'output')} in {_plural(len(found), 'hour')}, values from "
        f"{display_value(low)} to {display_value(high)}, hourly averages from {display_value(min(averages))} to "
        f"{display_value(max(averages))}."
    )
    legend = _tag(
        "g",
        _tag("line", x1=left, x2=left + 22, y1=10, y2=10, class_="average"),
        _tag("circle", cx=left + 11, cy=10, r=3.5, class_="point"),
        _tag("text", "Average per hour", x=left + 30, y=14),
        _tag("rect", x=left + 170, y=3, width=10, height=14, class_="band"),
        _tag("text", "Min to max of the hour", x=left + 188, y=14),
        class_="legend",
    )
    return _svg(
        "sc",
        f"{metric} per hour, last {period} (UTC)",
        description,
        plot_bottom + 36,
        legend,
        _value_axis(ticks, y_of, left, right),
        _hour_axis(buckets, lambda i: left + (i + 0.5) * column, plot_bottom),
        *marks,
        *(_tag("polyline", points=" ".join(points), class_="average") for points in lines if len(points) > 1),
    )


def recent_choices(outputs: QuerySet[TaskOutput], task_name: str) -> tuple[list[str], str, list[str]]:
    """(task names, the task, its numeric summary keys) for the summary chart's form, from the newest
    RECENT_OUTPUTS outputs (of the task, for its keys): the task is `task_name`, else the newest output's."""
    newest = outputs.order_by("-created_at", "-id")
    recent = list(newest.values_list("task_name", flat=True)[:RECENT_OUTPUTS])
    task = task_name or next(iter(recent), "")
    summaries = newest.filter(task_name=task).values_list("summary", flat=True)[:RECENT_OUTPUTS]
    return sorted(set(recent)), task, sorted({key for summary in summaries for key in numeric_keys(summary)})


def numeric_keys(summary: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """The dotted paths of the numbers in a summary object, in nested objects too (three keys deep at most)."""
    if not isinstance(summary, dict) or len(prefix) >= 3:
        return
    for key, value in summary.items():
        if json_path(key) != [key]:  # a key with a dot (or worse) has no dotted path
            continue
        if isinstance(value, dict):
            yield from numeric_keys(value, (*prefix, key))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield ".".join((*prefix, key))


# --- Shared drawing ------------------------------------------------------------------------------------


def _svg(prefix: str, title: str, description: str, height: float, *content, **attributes) -> SafeString:
    return _tag(
        "svg",
        _tag("title", title, id=f"{prefix}-title"),
        _tag("desc", description, id=f"{prefix}-desc"),
        *content,
        viewBox=f"0 0 {WIDTH} {height:.0f}",
        role="img",
        aria_labelledby=f"{prefix}-title {prefix}-desc",
        class_="picture",
        **attributes,
    )


def _patterns(prefix: str) -> SafeString:
    """A fill per status: its color (site.css) and a texture of its own, which tells statuses apart in grey."""
    marks = {
        Status.COMPLETED: "",
        Status.FAILED: _tag("path", d="M0 3H6M3 0V6"),  # cross-hatched
        Status.STALE: _tag("path", d="M0 1.5H6M0 4.5H6"),  # horizontal lines
        Status.RUNNING: _tag("path", d="M1.5 0V6"),  # diagonal stripes
        Status.IN_PROGRESS: _tag("path", d="M1.5 0V6"),  # diagonal stripes, the other way
        Status.QUEUED: _tag("circle", cx=3, cy=3, r=1.1),  # dots
    }
    turns = {Status.FAILED: 45, Status.RUNNING: 45, Status.IN_PROGRESS: -45}
    return _tag(
        "defs",
        *(
            _tag(
                "pattern",
                _tag("rect", width=6, height=6),
                mark,
                id=f"{prefix}-{status}",
                class_=f"texture {status}",
                width=6,
                height=6,
                patternUnits="userSpaceOnUse",
                patternTransform=f"rotate({turns[status]})" if status in turns else None,
            )
            for status, mark in marks.items()
        ),
    )


def _legend(prefix: str, items: list[tuple[str, str]], x: float, y: float) -> SafeString:
    entries = []
    for status, text in items:
        entries.append(_tag("rect", x=x, y=y - 11, width=14, height=14, rx=2, fill=f"url(#{prefix}-{status})"))
        entries.append(_tag("text", text, x=x + 20, y=y))
        x += 40 + 7 * len(text)
    return _tag("g", *entries, class_="legend")


def _value_axis(ticks: list[float], y_of, left: float, right: float) -> SafeString:
    return _tag(
        "g",
        *(
            _tag(
                "g",
                _tag("line", x1=left, x2=right, y1=y_of(t), y2=y_of(t), class_="grid" if i else "axis-line"),
                _tag("text", _axis_number(t), x=left - 6, y=y_of(t) + 4, text_anchor="end"),
            )
            for i, t in enumerate(ticks)
        ),
        class_="axis",
    )


def _hour_axis(hours: list[datetime], x_of: Callable[[int], float], y: float) -> SafeString:
    """Hour labels: every third hour over a day (the date at midnight), each midnight over longer spans."""
    labels = []
    for index, hour in enumerate(hours):
        if hour.hour == 0:
            labels.append(
                _tag("text", hour.strftime("%b %d"), x=x_of(index), y=y + 18, text_anchor="middle", class_="day")
            )
        elif len(hours) <= 24 and hour.hour % 3 == 0:
            labels.append(_tag("text", hour.strftime("%H:00"), x=x_of(index), y=y + 18, text_anchor="middle"))
    return _tag("g", *labels, class_="axis")


def _value_ticks(low: float, high: float, *, integers: bool = False, count: int = 4) -> list[float]:
    """Round values from at most `low` to at least `high`, about `count` steps apart."""
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * 0.999)
    if integers:
        step = max(step, 1)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(n * step, 10) for n in range(first, last + 1)]


def _linear(low: float, high: float, bottom: float, top: float) -> Callable[[float], float]:
    return lambda value: bottom - (value - low) / (high - low) * (bottom - top)


def _axis_number(value: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return display_value(round(value / limit, 2)) + suffix
    return display_value(round(value, 3))


def _hours(now: datetime, count: int) -> list[datetime]:
    """The last `count` whole UTC hours, the current one included."""
    newest = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [newest - timedelta(hours=count - 1 - i) for i in range(count)]


def _hour_key(hour: datetime) -> str:
    """An hour as the stats service's `hour` group names it."""
    return hour.strftime("%Y-%m-%dT%H:00:00Z")


def _hour_span(hour: datetime) -> str:
    return f"{hour:%Y-%m-%d %H}:00 to {hour + timedelta(hours=1):%H}:00"


def _hms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tag(name: str, *children: Any, **attributes: Any) -> SafeString:
    """One SVG element. Children are escaped unless safe already; attribute names lose a trailing `_` and
    have `-` for `_`; None leaves an attribute out; floats are written with one decimal."""
    written = format_html_join(
        "",
        ' {}="{}"',
        (
            (key.rstrip("_").replace("_", "-"), f"{value:.1f}" if isinstance(value, float) else value)
            for key, value in attributes.items()
            if value is not None
        ),
    )
    return format_html("<{0}{1}>{2}</{0}>", name, written, _join(children))


def _join(parts: Iterable[Any]) -> SafeString:
    return mark_safe("".join(str(conditional_escape(part)) for part in parts))
