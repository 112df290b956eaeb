"""Graphs of one metric rendered by rrdtool (SVG or PNG), for the API and the status page.

``render`` takes validated values only; the RRD path comes from the metric's UUID and every
user-visible text is escaped for rrdtool's own syntax. Cumulative meters are drawn as the
per-second rates RRD keeps for them (DERIVE), labelled ``unit/s``.
"""

from __future__ import annotations

import rrdtool

from appliance.model import Kind, Metric
from appliance.storage.policy import CF_FOR_AGGREGATION
from appliance.store import Store

FORMATS = {"svg": ("SVG", "image/svg+xml"), "png": ("PNG", "image/png")}
WIDTH = (100, 3000)
HEIGHT = (50, 2000)


def _text(value: str) -> str:
    """rrdtool reads ``:`` as a separator and ``%``/``\\`` as format characters."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("%", "%%")


def unit_label(metric: Metric) -> str:
    unit = metric.unit or ""
    return f"{unit}/s" if metric.kind is Kind.CUMULATIVE else unit


def render(
    store: Store,
    metric: Metric,
    fmt: str,
    start: float,
    stop: float,
    width: int,
    height: int,
    aggregation: str,
) -> bytes:
    """The graph as image bytes; ``fmt`` is ``svg`` or ``png``."""
    imgformat = FORMATS[fmt][0]
    path = store.measures.path(metric.id)
    title = metric.name or metric.id
    args = [
        "-", "--imgformat", imgformat,
        "--start", str(int(start)), "--end", str(int(stop)),
        "--width", str(width), "--height", str(height),
        "--title", title.replace("\\", "\\\\"),
        "--vertical-label", unit_label(metric),
        "--slope-mode",
    ]
    if path.is_file():
        store.measures.flush(metric.id)
        cf = CF_FOR_AGGREGATION[aggregation]
        label = _text(f"{title} ({aggregation})")
        args += [
            f"DEF:v={path}:v:{cf}",
            f"LINE1:v#0072B2:{label}",
            "GPRINT:v:LAST:last %8.2lf%s",
            "GPRINT:v:MAX:max %8.2lf%s\\n",
        ]
    else:
        # No measure yet: an empty, labelled frame rather than an error.
        args += ["HRULE:0#00000000", "COMMENT:no measures yet\\n"]
    return rrdtool.graphv(*args)["image"]
