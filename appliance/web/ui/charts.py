"""One metric's chart for the status page, drawn by the store's one graph renderer
(:mod:`appliance.storage.graphs`, which the API's graphs use too).

The archive policy decides the resolution: a range is drawn from the finest granularity
whose archive still covers it (a day of a ``medium`` metric at 1 min, a year at 1 h).
Cumulative meters are stored as DERIVE, so the file already yields rates: their unit gets
``/s``. Values read as a person reads them (:func:`formatting.shown`: KB as GiB, ns/s as %,
loads plain), formatted here and handed to the renderer as a :class:`graphs.Display`.
Nothing here knows Flask; the page only asks for :func:`render`.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass
from xml.sax.saxutils import escape

from appliance.model import ArchivePolicy, Metric
from appliance.storage import graphs
from appliance.storage.measures import Measures
from appliance.web.ui.formatting import number, shown, span

#: The time-range selector: key -> (label, seconds).
RANGES: dict[str, tuple[str, int]] = {
    "1h": ("1 hour", 3600),
    "1d": ("1 day", 86400),
    "1w": ("1 week", 7 * 86400),
    "1y": ("1 year", 365 * 86400),
}
DEFAULT_RANGE = "1h"
#: A young metric's chart covers at least this many seconds, and this many points.
MIN_WINDOW = 300
MIN_POINTS = 30
WIDTH, HEIGHT = 640, 220
LINE, BAND = "#2563EB", "#2563EB2E"
#: A light, quiet frame that matches the page's CSS.
STYLE = [
    "--border", "0", "--slope-mode", "--full-size-mode", "--disable-rrdtool-tag",
    "--alt-autoscale", "--alt-y-grid",
    "--font", "DEFAULT:8:DejaVu Sans", "--font", "AXIS:7:DejaVu Sans",
    "--color", "BACK#FFFFFF", "--color", "CANVAS#FFFFFF", "--color", "SHADEA#FFFFFF",
    "--color", "SHADEB#FFFFFF", "--color", "FRAME#FFFFFF", "--color", "GRID#E2E8F0",
    "--color", "MGRID#CBD5E1", "--color", "FONT#334155", "--color", "AXIS#94A3B8",
    "--color", "ARROW#94A3B8",
]
LOOK = graphs.Look("SVG", WIDTH, HEIGHT, tuple(STYLE), None, LINE, BAND)


@dataclass(frozen=True, slots=True)
class Chart:
    svg: bytes
    start: int
    end: int
    granularity: int
    last: float | None  # the newest known value in the range, None when there is none


def display_unit(metric: Metric) -> str:
    """The unit a chart shows: a rate for cumulative meters (stored as DERIVE)."""
    return graphs.unit_label(metric)


def granularity_for(policy: ArchivePolicy, seconds: int) -> int:
    """The finest granularity whose archive covers ``seconds``, else the longest archive's."""
    items = sorted(policy.definition, key=lambda i: i.granularity)
    for item in items:
        if item.timespan >= seconds:
            return item.granularity
    return max(items, key=lambda i: i.timespan).granularity


def step_label(seconds: int) -> str:
    for size, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {name}"
    return f"{seconds} s"


def aggregation_for(policy: ArchivePolicy) -> str:
    """The line a chart draws: the mean when the policy keeps it, else what it keeps."""
    return "mean" if "mean" in policy.aggregation_methods else policy.aggregation_methods[0]


def window(range_key: str, g: int, end: int, first: float) -> tuple[int, str]:
    """Where the chart starts, and its legend, given the oldest point in the range.

    A young metric's chart is narrowed to its own life (but not below :data:`MIN_POINTS`
    points), so a fresh appliance shows lines within a minute rather than a few pixels at
    the right edge of an empty hour.
    """
    label, seconds = RANGES[range_key]
    start = end - seconds
    narrowest = end - min(seconds, max(MIN_WINDOW, MIN_POINTS * g))
    young = min(int(first) - g, narrowest)
    if young > start:
        return young, f"last {span(end - young)} (new metric) at {step_label(g)}"
    return start, f"last {label} at {step_label(g)}"


def display(unit: str, values: list[float]) -> graphs.Display:
    """How the status page's chart of ``values`` (in the stored ``unit``) reads."""
    how = shown(unit)
    return graphs.Display(
        how.unit, how.scale, base1024=how.prefixes == "iec",
        plain_axis=max((abs(v) * how.scale for v in values), default=0.0) < 1000,
        summary=summary(values, unit),
    )


def summary(values: list[float], unit: str) -> str:
    """``now 23.5 GiB   min 23.4 GiB   max 23.6 GiB``: the legend, and the SVG's title."""
    known = [v for v in values if math.isfinite(v)]
    if not known:
        return "no value yet"
    return (f"now {number(known[-1], unit)}   min {number(min(known), unit)}"
            f"   max {number(max(known), unit)}")


def _titled(svg: bytes, title: str) -> bytes:
    """rrdtool draws text as glyph outlines: a ``<title>`` makes it readable by screen
    readers, browsers' tooltips and tests."""
    return re.sub(rb"(<svg[^>]*>)", lambda m: m.group(1) + b"<title>" +
                  escape(title).encode() + b"</title>", svg, count=1)


def first_point_due(measures: Measures, metric: Metric, step: int, g: int, now: float) -> str:
    """What a chart with no complete bucket says: when its first point is expected.

    A bucket is known once a measure reaches its end. The file's last update is the newest
    measure's time plus the policy's ``step`` (see :mod:`appliance.storage.measures`), so
    the bucket holding it completes with the first measure taken at or after its end minus
    ``step``; a counter also needs a second measure before it has a rate.
    """
    last = measures.last_update(metric.id)
    if last is None:
        return "no measures yet"
    due = (last // g + 1) * g - step
    if due <= now:
        return f"first {step_label(g)} point due with the next measure"
    return (f"first {step_label(g)} point due at "
            f"{time.strftime('%H:%M:%S', time.gmtime(due))} UTC (in {span(due - now)})")


def render(
    measures: Measures,
    metric: Metric,
    policy: ArchivePolicy,
    range_key: str,
    now: float | None = None,
) -> Chart:
    """Flush the metric out of rrdcached and draw it; a placeholder when there is no data
    (for a metric younger than the range, when its first point is due)."""
    end = int(time.time() if now is None else now)
    label, seconds = RANGES[range_key]
    g = granularity_for(policy, seconds)
    aggregation = aggregation_for(policy)
    points: list[tuple[int, float]] = []
    if measures.exists(metric.id):
        # If rrdcached is restarting, draw what the file holds rather than nothing.
        with contextlib.suppress(OSError):
            measures.flush(metric.id)
        points = measures.fetch(metric, policy, aggregation, g, end - seconds, None, flush=False)
    if not points:
        young = metric.created_at is not None and end - metric.created_at < seconds
        message = (first_point_due(measures, metric, policy.step, g, end) if young
                   else f"no data in the last {label}")
        return Chart(placeholder(message), end - seconds, end, g, None)
    # The chart's end reaches the newest bucket, a step past the newest measure (the
    # renderer's time convention), before the window is narrowed to a young metric's life.
    end = graphs.reach(measures, metric, policy, end)
    start, legend = window(range_key, g, end, points[0][0])
    unit = display_unit(metric)
    values = [v for _, v in points if v is not None and math.isfinite(v)]
    drawn = graphs.draw(measures, metric, policy, aggregation, start, end, LOOK, step=g,
                        legend=legend, flush=False, display=display(unit, values))
    title = f"{metric.name or metric.id}: {summary(values, unit)}"
    return Chart(_titled(drawn.image, title), drawn.start, drawn.end, g, drawn.last)


def placeholder(message: str) -> bytes:
    """A chart-sized SVG saying why there is no chart (same box, so the layout holds)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}"><rect width="100%" height="100%" fill="#F8FAFC"/>'
        f'<text x="50%" y="50%" text-anchor="middle" dominant-baseline="middle"'
        f' font-family="DejaVu Sans, sans-serif" font-size="14" fill="#64748B">'
        f"{escape(message)}</text></svg>"
    ).encode()
