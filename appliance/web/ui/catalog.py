"""Resources as the pages list them: a readable name, a headline value, a search.

The index knows resources and metrics; this module picks, per resource, the one metric
worth a glance in a list (a host's CPU, an interface's traffic) and reads its newest value.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from appliance.model import Metric
from appliance.store import Store
from appliance.web.ui.charts import display_unit

#: Attributes that name a resource, tried in order: what tells it apart from its siblings
#: first (a host's disks all share its host name).
NAME_ATTRIBUTES = ("name", "label", "mountpoint", "device_name", "host_name", "host")
#: Types whose rows need more than one attribute to be told apart (data, not code).
NAME_PARTS = {"sensor": ("label", "chip")}
#: The metric shown in a list's value column, first present wins (data, not code).
HEADLINE_METRICS = (
    "hardware.cpu.util",
    "cpu_util",
    "hardware.cpu.load.1min",
    "hardware.sensor.temperature",
    "hardware.sensor.fan",
    "hardware.sensor.voltage",
    "hardware.sensor.power",
    "hardware.sensor.current",
    "network.incoming.bytes",
    "hardware.network.incoming.bytes",
    "disk.device.read.bytes",
    "hardware.disk.read.bytes",
    "hardware.disk.size.used",
    "memory.usage",
    "cpu",
)
PAGE_SIZE = 50
#: How far back the headline value may be: older than this it is not "current".
CURRENT_WINDOW = 3600


@dataclass(slots=True)
class Headline:
    metric: Metric
    value: float | None
    unit: str


def display_name(row: Any) -> str:
    """The device, mountpoint, NIC, domain name or sensor label ("temp1 · k10temp-pci-00c3")."""
    attrs = row["attributes"]
    attrs = json.loads(attrs) if isinstance(attrs, str) else attrs
    parts = [str(attrs[k]) for k in NAME_PARTS.get(row["type"], ()) if attrs.get(k)]
    if parts:
        return " · ".join(parts)
    for key in NAME_ATTRIBUTES:
        if attrs.get(key):
            return str(attrs[key])
    return row["original_resource_id"]


def search(
    store: Store, type_: str | None, query: str, marker: str | None, limit: int = PAGE_SIZE
) -> tuple[list[Any], str | None]:
    """A page of resources whose key or attributes contain ``query``; and the next marker."""
    where, params = "", []
    if query:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = (
            "original_resource_id LIKE ? ESCAPE '\\' OR attributes LIKE ? ESCAPE '\\'"
            " OR id LIKE ? ESCAPE '\\'"
        )
        params = [like, like, like]
    rows = store.index.resources(
        type_, where, params, sort=(("type", True), ("original_resource_id", True), ("id", True)),
        limit=limit + 1, marker=marker,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more and rows else None)


def headline_metric(metrics: dict[str, str]) -> str | None:
    """The id of the metric a list shows for a resource (by :data:`HEADLINE_METRICS`)."""
    for name in HEADLINE_METRICS:
        if name in metrics:
            return metrics[name]
    return metrics[min(metrics)] if metrics else None


def headlines(store: Store, resource_ids: Sequence[str]) -> dict[str, Headline]:
    """Each resource's headline metric with its newest value (a rate for counters)."""
    by_resource = store.index.resource_metrics(resource_ids)
    chosen = {rid: headline_metric(m) for rid, m in by_resource.items()}
    metrics = store.index.metrics_by_id(mid for mid in chosen.values() if mid)
    out = {}
    for rid, mid in chosen.items():
        if mid in metrics:
            metric = metrics[mid]
            out[rid] = Headline(metric, current_value(store, metric), display_unit(metric))
    return out


def current_value(store: Store, metric: Metric, now: float | None = None) -> float | None:
    """The newest known value at the metric's finest granularity (None if none is recent)."""
    policy = store.index.policy(metric.archive_policy_name)
    now = time.time() if now is None else now
    try:
        points = store.measures.fetch(
            metric, policy, "mean", policy.step, now - CURRENT_WINDOW, None
        )
    except OSError:  # rrdcached is restarting: the list still renders, without values
        return None
    return points[-1][1] if points else None


def history(revisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A resource's revisions, newest first, each with what changed from the one before."""
    out = []
    previous: dict[str, Any] | None = None
    for rev in revisions:
        attrs = json.loads(rev["attributes"])
        changes = []
        if previous is not None:
            for key in sorted(set(previous) | set(attrs)):
                if previous.get(key) != attrs.get(key):
                    changes.append((key, previous.get(key), attrs.get(key)))
        out.append({
            "start": rev["revision_start"],
            "end": rev["revision_end"],
            "ended_at": rev["ended_at"],
            "changes": changes,
            "first": previous is None,
        })
        previous = attrs
    return out[::-1]
