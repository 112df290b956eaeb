"""One metric's chart as an SVG drawn by rrdtool from the metric's own RRD file.

The archive policy decides the resolution: a range is drawn from the finest granularity
whose archive still covers it (a day of a ``medium`` metric at 1 min, a year at 1 h).
Cumulative meters are stored as DERIVE, so the file already yields rates: their unit gets
``/s``. Nothing here knows Flask; the page only asks for :func:`render`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import rrdtool

from appliance.model import Kind, Metric
from appliance.storage.measures import DS_NAME, Measures
from appliance.storage.policy import ArchivePolicy

#: The time-range selector: key -> (label, seconds).
RANGES: dict[str, tuple[str, int]] = {
    "1h": ("1 hour", 3600),
    "1d": ("1 day", 86400),
    "1w": ("1 week", 7 * 86400),
    "1y": ("1 year", 365 * 86400),
}
DEFAULT_RANGE = "1h"
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


@dataclass(frozen=True, slots=True)
class Chart:
    svg: bytes
    start: int
    end: int
    granularity: int
    last: float | None  # the newest known value in the range, None when there is none


def display_unit(metric: Metric) -> str:
    """The unit a chart shows: a rate for cumulative meters (stored as DERIVE)."""
    unit = metric.unit or ""
    if metric.kind is Kind.CUMULATIVE:
        return f"{unit}/s" if unit else "/s"
    return unit


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


def _text(value: str) -> str:
    """Literal text inside a GPRINT/COMMENT: rrdtool treats ``:`` and ``%`` specially."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("%", "%%")


def graph_args(
    path: Path, metric: Metric, policy: ArchivePolicy, range_key: str, end: int
) -> tuple[list[str], int]:
    """The ``rrdtool graph`` arguments for one metric over one range, and the granularity."""
    label, seconds = RANGES[range_key]
    g = granularity_for(policy, seconds)
    rrd = str(path).replace(":", "\\:")
    unit = display_unit(metric)
    args = [
        "--imgformat", "SVG", "--start", str(end - seconds), "--end", str(end),
        "--width", str(WIDTH), "--height", str(HEIGHT), "--step", str(g),
        "--vertical-label", unit or " ", *STYLE,
        f"DEF:mean={rrd}:{DS_NAME}:AVERAGE:step={g}",
    ]
    # Below the finest step min = max = mean: a band would only add noise.
    if {"min", "max"} <= set(policy.aggregation_methods) and g > policy.step:
        args += [
            f"DEF:lo={rrd}:{DS_NAME}:MIN:step={g}",
            f"DEF:hi={rrd}:{DS_NAME}:MAX:step={g}",
            "CDEF:band=hi,lo,-",
            "LINE:lo",
            f"AREA:band{BAND}:min–max:STACK",
        ]
    u = _text(unit)
    args += [
        f"LINE1.5:mean{LINE}:mean",
        "VDEF:last=mean,LAST",
        "VDEF:low=mean,MINIMUM",
        "VDEF:high=mean,MAXIMUM",
        f"GPRINT:last:now %.3lg %s{u}",
        f"GPRINT:low:min %.3lg %s{u}",
        f"GPRINT:high:max %.3lg %s{u}",
        f"COMMENT:{_text(f'{label} at {step_label(g)}')}\\r",
        "PRINT:last:%lf",
    ]
    return args, g


def render(
    measures: Measures,
    metric: Metric,
    policy: ArchivePolicy,
    range_key: str,
    now: float | None = None,
) -> Chart:
    """Flush the metric out of rrdcached and draw it; a placeholder when it has no file yet."""
    end = int(time.time() if now is None else now)
    seconds = RANGES[range_key][1]
    path = measures.path(metric.id)
    if not path.is_file():
        return Chart(placeholder("no data yet"), end - seconds, end,
                     granularity_for(policy, seconds), None)
    # If rrdcached is restarting, draw what the file holds rather than nothing.
    with contextlib.suppress(OSError):
        measures.flush(metric.id)
    args, g = graph_args(path, metric, policy, range_key, end)
    out = rrdtool.graphv("-", *args)
    try:
        last = float(out.get("print[0]", "nan"))
    except ValueError:
        last = math.nan
    if math.isnan(last):  # nothing known in the range: say so rather than draw empty axes
        return Chart(placeholder(f"no data in the last {RANGES[range_key][0]}"),
                     end - seconds, end, g, None)
    return Chart(out["image"], end - seconds, end, g, last)


def placeholder(message: str) -> bytes:
    """A chart-sized SVG saying why there is no chart (same box, so the layout holds)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}"><rect width="100%" height="100%" fill="#F8FAFC"/>'
        f'<text x="50%" y="50%" text-anchor="middle" dominant-baseline="middle"'
        f' font-family="DejaVu Sans, sans-serif" font-size="14" fill="#64748B">'
        f"{escape(message)}</text></svg>"
    ).encode()
