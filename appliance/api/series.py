"""Many metrics' measures as numpy series, for cross-metric aggregation.

All metrics are flushed from rrdcached in one batch (one round trip instead of one per
metric), then each file is read with ``rrdtool.fetch``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.aggregation import Series
from appliance.model import Metric
from appliance.store import Store


def flush_many(store: Store, metrics: Sequence[Metric]) -> None:
    """Make every acknowledged write of these metrics visible to readers, in one batch."""
    commands = [
        f"FLUSH {store.measures.relpath(m.id)}" for m in metrics if store.measures.exists(m.id)
    ]
    store.client.batch(commands)


def fetch(
    store: Store,
    wanted: Sequence[tuple[Metric, str, tuple[str, str]]],
    granularity: int,
    start: float | None,
    stop: float | None,
) -> list[Series]:
    """One :class:`Series` per ``(metric, aggregation, key)`` at one granularity."""
    out = []
    for metric, aggregation, key in wanted:
        policy = store.index.policy(metric.archive_policy_name)
        points = store.measures.fetch(
            metric, policy, aggregation, granularity, start, stop, flush=False
        )
        if points:
            times, values = np.array(points, dtype=float).T
        else:
            times = values = np.empty(0)
        out.append(Series(key, float(granularity), times, values))
    return out
