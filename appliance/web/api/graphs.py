"""The API's graphs of one metric (SVG or PNG): formats and bounds of the request, drawn by
the store's one renderer (:mod:`appliance.storage.graphs`), as the status page's charts are.

``render`` takes validated values only.
"""

from __future__ import annotations

from appliance.model import Metric
from appliance.storage import graphs
from appliance.store import Store

FORMATS = {"svg": ("SVG", "image/svg+xml"), "png": ("PNG", "image/png")}
WIDTH = (100, 3000)
HEIGHT = (50, 2000)
LINE = "#0072B2"


def render(
    store: Store,
    metric: Metric,
    fmt: str,
    start: float,
    stop: float,
    width: int,
    height: int,
    aggregation: str,
) -> graphs.Graph:
    """The graph (image bytes, range, newest value); ``fmt`` is ``svg`` or ``png``."""
    look = graphs.Look(FORMATS[fmt][0], width, height, ("--slope-mode",),
                       metric.name or metric.id, LINE)
    policy = store.index.policy(metric.archive_policy_name)
    return graphs.draw(store.measures, metric, policy, aggregation, int(start), int(stop),
                       look)
